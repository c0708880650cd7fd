"""Leases count from a task's start on a worker, not from its send: a busy lane is not a lost task.

A real Redis and two one-thread `runworker` processes; the conductor runs in the test process so
its counters (retries, acknowledgements) can be read. The lease (1 s) is far shorter than the time
the last tasks of a 16-task window wait in the lane (~2 s behind 0.3 s steps on two workers): counted
from the send, every such task would be re-sent, and with two attempts the run would fail.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest
from channels_redis.core import RedisChannelLayer

from runtime.conductor import Conductor, RunLimits, RunSpec
from tests.scale import slow_steps  # noqa: F401 - registers "slow" for the in-process conductor
from tests.scale.test_scale_out import IMAGE, SETTINGS, TILE, TILES, assert_same_pixels, graph, reference
from tests.support.cluster import Cluster, png_bytes

pytestmark = pytest.mark.redis

LEASE = 1.0
STEP = 0.3


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = Cluster(
        tmp_path_factory.mktemp("lease"),
        **{**SETTINGS, "TILEFLOW_TILE_LEASE_SECONDS": str(LEASE), "TILEFLOW_PLACEMENT": "tiles"},
    )
    try:
        cluster.redis.start()  # the conductor runs here: no console, no database
        yield cluster
    finally:
        cluster.stop_all()


class Run:
    """One run conducted in the test process against the cluster's Redis and workers."""

    def __init__(self, cluster: Cluster, workdir: Path, *, seconds: float, in_flight: int) -> None:
        source = workdir / "photo.png"
        source.write_bytes(png_bytes(IMAGE))
        self.output = workdir / "out" / "out.png"
        self.layer = RedisChannelLayer(hosts=[{"address": cluster.redis.url, "socket_timeout": None}])
        spec = RunSpec(
            execution=str(uuid.uuid4()),
            graph=graph(seconds),
            input_path=source,
            output_dir=workdir / "out",
            limits=RunLimits(tile_size=TILE, max_in_flight=in_flight, lease_seconds=LEASE, max_attempts=2),
        )
        self.conductor = Conductor(spec, self.layer)

    async def finish(self, running: asyncio.Task | None = None) -> str:
        try:
            return await asyncio.wait_for(running or self.conductor.run(), 60)
        finally:
            await self.layer.close_pools()


async def test_a_busy_lane_does_not_count_against_the_lease(two_workers, tmp_path):
    run = Run(two_workers, tmp_path, seconds=STEP, in_flight=16)
    started = time.monotonic()

    status = await run.finish()

    conductor = run.conductor
    assert status == "succeeded", (conductor.error, two_workers.logs())
    assert conductor.record.retries == 0
    assert_same_pixels(run.output.read_bytes(), reference())
    # The run did queue: TILES tasks of 0.3 s on two workers take several leases.
    assert time.monotonic() - started >= TILES * STEP / 2
    # Only tasks that waited a quarter lease or more were acknowledged: the last 12 of the first
    # window, and those sent after them, waited ~2 s; at most one message per task (and its copy).
    assert 8 <= conductor.record.acknowledged <= TILES + conductor.record.duplicates, conductor.record.acknowledged


async def test_an_idle_lane_sends_no_acknowledgement(two_workers, tmp_path):
    # Two tasks in flight, two workers: each task starts the moment it is sent.
    run = Run(two_workers, tmp_path, seconds=0.05, in_flight=2)

    status = await run.finish()

    assert status == "succeeded", (run.conductor.error, two_workers.logs())
    assert run.conductor.record.retries == 0
    assert run.conductor.record.acknowledged == 0
    assert_same_pixels(run.output.read_bytes(), reference())


async def test_a_killed_worker_is_still_detected_in_a_busy_lane(two_workers, tmp_path):
    cluster = two_workers
    victim = cluster.live_workers()[0]
    run = Run(cluster, tmp_path, seconds=STEP, in_flight=16)
    running = asyncio.create_task(run.conductor.run())
    deadline = time.monotonic() + 30
    while not run.conductor.record.nodes or run.conductor.record.nodes["soft"].done < 4:
        assert time.monotonic() < deadline and not running.done(), (run.conductor.error, cluster.logs())
        await asyncio.sleep(0.02)
    cluster.kill(victim)  # it held a running task and one waiting for its thread

    status = await run.finish(running)

    conductor = run.conductor
    assert status == "succeeded", (conductor.error, cluster.logs())
    assert conductor.record.retries >= 1
    assert_same_pixels(run.output.read_bytes(), reference())
    assert sum(conductor.record.workers.values()) == TILES
