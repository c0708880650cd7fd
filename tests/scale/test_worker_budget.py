"""A worker's memory budget (TILEFLOW_MEMORY_BUDGET_BYTES, in the worker's own environment): runs placed on
it hold their decoded bytes there, not on the console. A run that does not fit waits until memory frees; a
run that alone exceeds the worker's budget fails with the figures."""

from __future__ import annotations

import io
import threading
from datetime import datetime

import pytest

from runtime.admission import estimate
from runtime.decode import probe
from runtime.testing import make_image
from tests.scale.test_scale_out import SETTINGS, graph
from tests.support.cluster import Cluster, png_bytes

pytestmark = pytest.mark.redis

SMALL = png_bytes(make_image(640, 512, "RGB", seed=3))
LARGE = png_bytes(make_image(1600, 1280, "RGB", seed=4))


def cost(image: bytes, flow: dict) -> int:
    header = probe(io.BytesIO(image), 10**9)
    return estimate(flow, header, tile_size=int(SETTINGS["TILEFLOW_TILE_SIZE"]), max_in_flight=16).total


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    flow = graph(0.15)
    one_run = cost(SMALL, flow)
    assert cost(LARGE, flow) > 2 * one_run
    # The console's budget takes anything; the worker's holds one small run, not two, and never a large one.
    cluster = Cluster(tmp_path_factory.mktemp("worker-budget"), **SETTINGS, TILEFLOW_MEMORY_BUDGET_BYTES=str(10**10))
    try:
        cluster.setup()
        cluster.start_server()
        cluster.start_worker(threads=2, TILEFLOW_WORKER_RUNS="2", TILEFLOW_MEMORY_BUDGET_BYTES=str(int(1.5 * one_run)))
        cluster.slow = cluster.create_flow("slow", flow)
        yield cluster
    finally:
        cluster.stop_all()


def test_runs_that_do_not_fit_together_wait_for_the_worker_memory(cluster):
    runs: list[dict] = []
    threads = [threading.Thread(target=lambda: runs.append(cluster.start_run(cluster.slow, SMALL))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    first, second = sorted((cluster.wait(run["id"], timeout=90) for run in runs), key=lambda body: body["started_at"])
    assert first["status"] == second["status"] == "succeeded", (first["error"], second["error"], cluster.logs())
    # The worker has room for two runs but memory for one: the second started as the first ended (both
    # would start at once otherwise; a run takes seconds here).
    first_start, first_end, second_start = (
        datetime.fromisoformat(value) for value in (first["started_at"], first["finished_at"], second["started_at"])
    )
    assert (second_start - first_start) >= 0.7 * (first_end - first_start), (first, second)


def test_a_run_larger_than_the_worker_budget_fails_with_the_figures(cluster):
    run = cluster.start_run(cluster.slow, LARGE)
    finished = cluster.wait(run["id"], timeout=60)
    assert finished["status"] == "failed", (finished, cluster.logs())
    assert "MB of memory" in finished["error"] and "budget of" in finished["error"], finished["error"]
