"""Runs placed on workers, on a real Redis with real `runworker` processes and a Daphne console.

A run is conducted by one worker; only the compressed input and the encoded output cross Redis.
Faults: a worker killed (SIGKILL) or silenced (SIGSTOP) mid-run hands the run to another worker,
and a `/run` stream that already sent bytes goes on where it was, byte-identical; a Redis restart
costs a hiccup, not a lease. Busy workers take no new runs: runs wait in the lane, in order.
"""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from PIL import Image

from runtime.geometry import tile_grid
from runtime.tiles import Size
from tests.scale.test_scale_out import IMAGE, SETTINGS, TILE, TILES, graph
from tests.support.cluster import Cluster, png_bytes, running_cluster
from tests.support.cluster import clean_output as clean_run
from tests.support.services import manage, stop

pytestmark = pytest.mark.redis

RUN_LEASE = 1.5
NO_WORKER = 2.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    flows = {seconds: graph(seconds) for seconds in (0.0, 0.08)}
    settings = {
        **SETTINGS,
        "TILEFLOW_RUN_LEASE_SECONDS": str(RUN_LEASE),
        "TILEFLOW_WORKER_RUNS": "1",
        "TILEFLOW_NO_WORKER_SECONDS": str(NO_WORKER),
    }
    with running_cluster(tmp_path_factory.mktemp("placement"), flows, **settings) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def clean_output(cluster) -> bytes:
    return clean_run(cluster, cluster.flows[0.08], png_bytes(IMAGE))


def redis_bytes(cluster: Cluster) -> tuple[int, int]:
    stats = dict(line.split(":", 1) for line in cluster.redis_cli("INFO", "stats").splitlines() if ":" in line)
    return int(stats["total_net_input_bytes"]), int(stats["total_net_output_bytes"])


def holder(cluster: Cluster, execution: dict):
    """Return the worker process that conducts the run (the one its tiles are counted for)."""
    names = list(execution["workers"])
    assert len(names) == 1, execution["workers"]
    pid = int(names[0].rpartition(":")[2])
    return next(worker for worker in cluster.live_workers() if worker.pid == pid)


def held_run(cluster: Cluster) -> tuple[dict, dict, object]:
    """Start a slow run; return it, its execution once a worker conducts it, and that worker."""
    started = cluster.start_run(cluster.flows[0.08], png_bytes(IMAGE))
    execution = cluster.wait(started["id"], until=lambda body: body["workers"], timeout=20)
    return started, execution, holder(cluster, execution)


def test_one_worker_conducts_a_run_and_only_compressed_bytes_cross_redis(two_workers):
    cluster = two_workers
    photo = IMAGE.resize((1600, 1280))
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=90)
    upload = buffer.getvalue()
    flow = cluster.create_flow(
        "jpeg",
        {
            "nodes": [
                {"id": "in", "type": "source", "params": {}},
                {"id": "half", "type": "resize", "params": {"scale": 0.5}},
                {"id": "out", "type": "output", "params": {"format": "jpeg", "quality": 90}},
            ],
            "edges": [{"from": "in", "to": "half"}, {"from": "half", "to": "out"}],
        },
    )
    before = redis_bytes(cluster)
    started = cluster.api("POST", f"/api/flows/{flow}/executions", files={"image": ("photo.jpg", upload)}).json()
    finished = cluster.wait(started["id"])
    after = redis_bytes(cluster)
    assert finished["status"] == "succeeded", (finished["error"], cluster.logs())
    output = cluster.output(started["id"])
    payload = len(upload) + len(output)
    into, out_of = after[0] - before[0], after[1] - before[1]
    # Tiles crossing Redis would be ~15 MB each way for this run; placed, it is the files and a little.
    assert into <= 1.5 * payload and out_of <= 1.5 * payload, (into, out_of, payload)
    assert len(finished["workers"]) == 1  # every tile of the run was made by one worker
    assert Image.open(io.BytesIO(output)).size == (800, 640)


def test_a_sync_run_whose_worker_is_killed_still_streams_one_identical_file(two_workers, clean_output):
    cluster = two_workers
    response = cluster.api(
        "POST",
        f"/api/flows/{cluster.flows[0.08]}/run",
        files={"image": ("photo.png", png_bytes(IMAGE))},
        stream=True,
        timeout=60,
    )
    assert response.status_code == 200, response.text
    chunks = response.iter_content(chunk_size=None)
    received = next(chunks)  # bytes already sent to the client when the worker dies
    first_byte = datetime.now(UTC)  # the console and its workers share this host's clock
    execution = cluster.wait(response.headers["X-Execution-Id"], until=lambda body: body["workers"], timeout=20)
    cluster.kill(holder(cluster, execution))
    received += b"".join(chunks)

    assert received == clean_output
    finished = cluster.wait(response.headers["X-Execution-Id"])
    assert finished["status"] == "succeeded", (finished["error"], cluster.logs())
    assert len(finished["workers"]) == 1 and sum(finished["workers"].values()) == TILES  # the second worker's
    assert finished["started_at"] == execution["started_at"] and finished["retries"] >= 1  # the run moved once
    # The first output is the first attempt's, before the client had it; the retry's came a lease after.
    assert datetime.fromisoformat(finished["first_output_at"]) <= first_byte, finished
    assert finished["time_to_first_output_ms"] <= (first_byte - datetime.fromisoformat(finished["started_at"])) / (
        timedelta(milliseconds=1)
    )


def test_a_silent_worker_loses_its_run_within_a_few_seconds(two_workers, clean_output):
    cluster = two_workers
    started, execution, silent = held_run(cluster)
    os.kill(silent.pid, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        moved = cluster.wait(started["id"], until=lambda body: set(body["workers"]) != set(execution["workers"]))
        assert time.monotonic() - stopped < RUN_LEASE + 3, "the run did not move within a few seconds"
        finished = cluster.wait(started["id"])
    finally:
        os.kill(silent.pid, signal.SIGCONT)
    assert moved and finished["status"] == "succeeded", (finished["error"], cluster.logs())
    assert cluster.output(started["id"]) == clean_output
    # The worker woken up again learns that its attempt was given up, and takes new runs.
    time.sleep(RUN_LEASE)
    again = [cluster.start_run(cluster.flows[0.0], png_bytes(IMAGE)) for _ in range(2)]
    for run in again:
        assert cluster.wait(run["id"])["status"] == "succeeded"


def test_an_offer_swallowed_by_a_stopped_idle_worker_is_offered_again(two_workers):
    """A worker stopped while it waits on the lane is still handed an offer by Redis, and never claims it."""
    cluster = two_workers
    stopped = cluster.live_workers()[0]
    os.kill(stopped.pid, signal.SIGSTOP)
    try:
        runs = [cluster.start_run(cluster.flows[0.0], png_bytes(IMAGE))["id"] for _ in range(3)]
        finished = [cluster.wait(run, timeout=30) for run in runs]
        assert [body["status"] for body in finished] == ["succeeded"] * 3, cluster.logs()
        assert all(body["retries"] == 0 for body in finished), [body["retries"] for body in finished]
        assert all(str(stopped.pid) not in "".join(body["workers"]) for body in finished)
    finally:
        os.kill(stopped.pid, signal.SIGCONT)
    # Woken up, it claims the offer it held, is told to drop it, and takes new runs.
    time.sleep(RUN_LEASE)
    again = [cluster.start_run(cluster.flows[0.0], png_bytes(IMAGE)) for _ in range(3)]
    assert [cluster.wait(run["id"])["status"] for run in again] == ["succeeded"] * 3


def test_busy_workers_take_no_new_run_and_runs_wait_in_order(two_workers):
    cluster = two_workers
    lengths: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            lengths.append(int(cluster.redis_cli("ZCARD", "asgitileflow.runs") or 0))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        runs = [cluster.start_run(cluster.flows[0.08], png_bytes(IMAGE))["id"] for _ in range(4)]
        finished = [cluster.wait(run, timeout=90) for run in runs]
    finally:
        done.set()
        watcher.join()
    assert all(body["status"] == "succeeded" for body in finished), cluster.logs()
    assert max(lengths) == 2, lengths  # two runs held by the two one-run workers, two waiting in Redis
    starts = [body["started_at"] for body in finished]
    assert starts == sorted(starts), starts  # taken in the order they were offered


def test_a_redis_restart_is_a_hiccup_for_a_run_in_flight(two_workers, clean_output):
    cluster = two_workers
    started = cluster.start_run(cluster.flows[0.08], png_bytes(IMAGE))
    cluster.wait(started["id"], until=lambda body: body["nodes"]["soft"]["done"] >= 4, timeout=30)
    cluster.redis.stop()
    time.sleep(1)
    cluster.redis.start()  # same port, empty: every queued message is gone
    back = time.monotonic()
    finished = cluster.wait(started["id"], timeout=60)
    assert finished["status"] == "succeeded", (finished["error"], cluster.logs())
    # The run needs ~2 s more of work; a lost message waited for its lease would add 30 s (tiles) or more.
    assert time.monotonic() - back < 15, time.monotonic() - back
    assert cluster.output(started["id"]) == clean_output


def test_health_says_what_is_down_and_staff_see_the_workers(two_workers):
    cluster = two_workers
    health = requests.get(f"{cluster.url}/api/health", timeout=10)
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert cluster.api("GET", "/api/workers").status_code == 403
    manage(
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model; "
        "get_user_model().objects.filter(username='scale').update(is_staff=True)",
        env=cluster.env,
        timeout=120,
    )
    listed = cluster.api("GET", "/api/workers").json()["workers"]
    assert sorted(worker["pid"] for worker in listed) == sorted(worker.pid for worker in cluster.live_workers())
    assert all(worker["threads"] == 1 and worker["capacity"] == 1 for worker in listed), listed
    assert not any(worker["draining"] for worker in listed), listed  # SIGTERM shows it (test below)

    cluster.redis.stop()
    try:
        down = requests.get(f"{cluster.url}/api/health", timeout=10)
        assert down.status_code == 503 and down.json() == {"status": "the channel layer (Redis) is unreachable"}
        unknown = cluster.api("GET", "/api/workers")
        assert unknown.status_code == 503 and unknown.headers["Retry-After"] == "5", unknown.text
        assert unknown.json()["error"].startswith("the workers cannot be listed: the channel layer at redis://")
    finally:
        cluster.redis.start()
    deadline = time.monotonic() + 10
    while requests.get(f"{cluster.url}/api/health", timeout=10).status_code != 200:  # the workers beat again
        assert time.monotonic() < deadline, cluster.logs()
        time.sleep(0.1)


def test_runs_are_taken_fairly_across_users(two_workers):
    cluster = two_workers
    manage(
        "shell",
        "-c",
        "from django.contrib.auth import get_user_model; "
        "get_user_model().objects.create_user('bea', password='bea-pw-42x')",
        env=cluster.env,
        timeout=120,
    )
    bea = manage("createtoken", "bea", env=cluster.env, timeout=120).stdout.strip().splitlines()[-1]
    flow = cluster.api(
        "POST", "/api/flows", json={"name": "bea", "graph": graph(0.08)}, headers={"Authorization": f"Bearer {bea}"}
    ).json()["id"]
    many: list[str] = []
    # Started together, as six scripts would (a POST answers once its run has a slot).
    posts = [
        threading.Thread(target=lambda: many.append(cluster.start_run(cluster.flows[0.08], png_bytes(IMAGE))["id"]))
        for _ in range(6)
    ]
    for post in posts:
        post.start()
    time.sleep(1.0)
    response = cluster.api(
        "POST",
        f"/api/flows/{flow}/executions",
        files={"image": ("photo.png", png_bytes(IMAGE))},
        headers={"Authorization": f"Bearer {bea}"},
    )
    assert response.status_code == 201, response.text
    hers = response.json()["id"]
    for post in posts:
        post.join()
    finished = [cluster.wait(run, timeout=120) for run in many]
    deadline = time.monotonic() + 60
    while (mine := cluster.api("GET", f"/api/executions/{hers}", headers={"Authorization": f"Bearer {bea}"}).json())[
        "finished_at"
    ] is None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert mine["status"] == "succeeded" and all(body["status"] == "succeeded" for body in finished)
    # The first user holds at most MAX_CONCURRENT_RUNS_PER_USER (4) places: her run, offered last,
    # starts before the first user's fifth and sixth.
    starts = sorted(body["started_at"] for body in finished)
    assert mine["started_at"] < starts[4], (mine["started_at"], starts)


def test_a_batch_runs_its_items_on_the_workers_as_unattended_runs(two_workers):
    cluster = two_workers
    flow = cluster.create_flow("batch", graph(0.0))
    photos = [("a.png", png_bytes(IMAGE)), ("b.png", png_bytes(IMAGE.rotate(90, expand=True)))]
    files = [("image", photo) for photo in photos] + [("image", ("broken.png", png_bytes(IMAGE)[:300]))]
    created = cluster.api("POST", f"/api/flows/{flow}/batches", files=files)
    assert created.status_code == 201, created.text
    deadline = time.monotonic() + 60
    while (batch := cluster.api("GET", f"/api/batches/{created.json()['id']}").json())["status"] not in (
        "succeeded",
        "failed",
    ):
        assert time.monotonic() < deadline, (batch, cluster.logs())
        time.sleep(0.2)
    items = {item["name"]: item for item in batch["items"]}
    assert (batch["succeeded"], batch["failed"]) == (2, 1), (items, cluster.logs())
    assert "broken.png" in items and items["broken.png"]["error"]
    worker_pids = {worker.pid for worker in cluster.live_workers()}
    for name, (width, height) in (("a.png", IMAGE.size), ("b.png", IMAGE.size[::-1])):
        execution = cluster.execution(items[name]["execution"])
        assert {int(worker.rpartition(":")[2]) for worker in execution["workers"]} <= worker_pids, execution
        # Conducted on a worker as an unattended run: its grid has no short first rows.
        size = Size(width, height)
        tile = max(TILE, 1024)  # an item's tiles: TILEFLOW_BATCH_TILE_SIZE's default
        assert execution["nodes"]["in"]["total"] == len(tile_grid(size, tile, short=False)) < len(tile_grid(size, tile))
        assert Image.open(io.BytesIO(cluster.output(execution["id"]))).size == (width, height)


def test_a_sync_run_with_no_worker_running_fails_soon_saying_so_while_a_batch_waits(two_workers):
    cluster = two_workers
    for worker in cluster.live_workers():
        stop(worker)
    deadline = time.monotonic() + 15  # a worker's roster entry outlives it by 10 s at most
    while requests.get(f"{cluster.url}/api/health", timeout=10).json() != {"status": "no worker is running"}:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    batch = cluster.api(
        "POST", f"/api/flows/{cluster.flows[0.0]}/batches", files={"image": ("waits.png", png_bytes(IMAGE))}
    )
    assert batch.status_code == 201, batch.text
    started = time.monotonic()
    answer = cluster.api("POST", f"/api/flows/{cluster.flows[0.0]}/run", files={"image": ("a.png", png_bytes(IMAGE))})
    waited = time.monotonic() - started
    assert answer.status_code == 503 and answer.headers["Retry-After"], answer.text
    assert answer.json()["error"].startswith("no worker is running: nothing took the run in ")
    assert NO_WORKER <= waited < NO_WORKER + 5
    failed = cluster.execution(answer.headers["X-Execution-Id"])
    assert failed["status"] == "failed" and failed["error"] == answer.json()["error"]
    assert cluster.api("GET", f"/api/batches/{batch.json()['id']}").json()["status"] in ("queued", "running")
    cluster.ensure_workers(1)  # the batch's unattended item waited for a worker: it runs now
    deadline = time.monotonic() + 60
    while (done := cluster.api("GET", f"/api/batches/{batch.json()['id']}").json())["status"] != "succeeded":
        assert time.monotonic() < deadline and done["status"] in ("queued", "running"), done
        time.sleep(0.2)


def roster_runs(cluster: Cluster) -> dict[int, int]:
    """Return each worker's runs in progress, as its roster entry in Redis says (pid -> runs)."""
    import json

    keys = cluster.redis_cli("--scan", "--pattern", "tileflow:worker:*").split()
    entries = [json.loads(cluster.redis_cli("GET", key)) for key in keys]
    return {entry["pid"]: entry["runs"] for entry in entries}


def test_a_cancelled_run_frees_its_worker_at_once(two_workers):
    cluster = two_workers
    started, _, worker = held_run(cluster)
    assert cluster.api("POST", f"/api/executions/{started['id']}/cancel").status_code == 202
    assert cluster.wait(started["id"])["status"] == "cancelled"
    deadline = time.monotonic() + 3  # it waited 10 leases for an end the console never confirms
    while roster_runs(cluster).get(worker.pid) != 0:
        assert time.monotonic() < deadline, roster_runs(cluster)
        time.sleep(0.1)


def test_the_scratch_of_runs_whose_worker_died_is_removed(tmp_path):
    import subprocess

    from runtime.hosting import remove_dead_scratch

    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = tmp_path / f"tileflow-run-{gone.pid}-abc"
    alive = tmp_path / f"tileflow-run-{os.getpid()}-def"
    other = tmp_path / "tileflow-run-notapid"
    for folder in (dead, alive, other):
        (folder / "out").mkdir(parents=True)
    assert remove_dead_scratch(tmp_path) == 1
    assert not dead.exists() and alive.exists() and other.exists()


def roster_entry(cluster: Cluster, pid: int) -> dict | None:
    import json

    for key in cluster.redis_cli("--scan", "--pattern", "tileflow:worker:*").split():
        entry = json.loads(cluster.redis_cli("GET", key) or "null")
        if entry and entry["pid"] == pid:
            return entry
    return None


def test_a_worker_told_to_stop_finishes_its_run_takes_no_new_one_and_exits(two_workers, clean_output):
    cluster = two_workers
    started, execution, stopping = held_run(cluster)
    os.kill(stopping.pid, signal.SIGTERM)
    deadline = time.monotonic() + 3
    while not (roster_entry(cluster, stopping.pid) or {}).get("draining"):
        assert time.monotonic() < deadline, roster_entry(cluster, stopping.pid)
        time.sleep(0.05)
    later = cluster.start_run(cluster.flows[0.0], png_bytes(IMAGE))  # for the other worker

    finished = cluster.wait(started["id"])
    assert finished["status"] == "succeeded", (finished["error"], cluster.logs())
    assert set(finished["workers"]) == set(execution["workers"]) and finished["retries"] == 0  # finished there
    assert cluster.output(started["id"]) == clean_output
    other = cluster.wait(later["id"])
    assert other["status"] == "succeeded" and set(other["workers"]).isdisjoint(execution["workers"])
    assert stopping.wait(10) == 0
    assert "drained, stopping" in stopping.log.read_text()  # type: ignore[attr-defined]
    assert roster_entry(cluster, stopping.pid) is None  # it left the roster


@pytest.mark.parametrize("room", ["none", "left"])
def test_a_worker_stopped_at_once_gives_its_run_back_without_waiting_for_the_lease(two_workers, clean_output, room):
    cluster = two_workers
    if room == "left":  # its drain waits for its runs, not for room to take another (seen: they were cancelled)
        for worker in cluster.live_workers():
            stop(worker)
        roomy = cluster.start_worker(TILEFLOW_WORKER_RUNS="2")
        started, execution, stopping = held_run(cluster)
        assert stopping is roomy
        cluster.start_worker()  # to take the run over
    else:
        started, execution, stopping = held_run(cluster)
    os.kill(stopping.pid, signal.SIGTERM)
    time.sleep(0.2)
    os.kill(stopping.pid, signal.SIGTERM)  # a second signal: no drain
    given_back = time.monotonic()
    moved = cluster.wait(started["id"], until=lambda body: set(body["workers"]) - set(execution["workers"]))
    assert time.monotonic() - given_back < RUN_LEASE, ("the run waited for its lease to lapse", cluster.logs())
    assert stopping.wait(10) == 0
    finished = cluster.wait(started["id"])
    assert moved and finished["status"] == "succeeded", (finished["error"], cluster.logs())
    assert finished["retries"] == 1 and cluster.output(started["id"]) == clean_output
    consoles = "".join(log.read_text() for log in cluster.workdir.glob("*daphne*.log"))
    assert f"worker {next(iter(execution['workers']))} stopped and gave it back" in consoles


def wait_free(cluster: Cluster, pid: int, within: float) -> float:
    """Wait until worker `pid`'s roster entry shows no run; return how long that took."""
    began = time.monotonic()
    while roster_runs(cluster).get(pid) != 0:
        assert time.monotonic() - began < within, (roster_runs(cluster), cluster.logs()[-3000:])
        time.sleep(0.1)
    return time.monotonic() - began


def test_a_drop_lost_with_redis_reaches_the_worker_once_redis_is_back(two_workers, clean_output):
    cluster = two_workers
    started, _, first = held_run(cluster)
    cluster.redis.stop()
    time.sleep(RUN_LEASE + 1.0)  # the console gives the silent worker's run up; its run.drop cannot be sent
    cluster.redis.start()
    finished = cluster.wait(started["id"], timeout=60)
    assert finished["status"] == "succeeded", (finished["error"], cluster.logs())
    assert cluster.output(started["id"]) == clean_output
    # It waited 10 leases for an end nobody would confirm, its slot held; its next heartbeat is told now.
    wait_free(cluster, first.pid, within=2 * RUN_LEASE)


def test_a_cancel_sent_while_redis_is_down_frees_the_worker_once_redis_is_back(two_workers):
    cluster = two_workers
    started, _, worker = held_run(cluster)
    cluster.redis.stop()
    try:
        cancelled = cluster.api("POST", f"/api/executions/{started['id']}/cancel")
        assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled", cancelled.text
    finally:
        cluster.redis.start()
    wait_free(cluster, worker.pid, within=2 * RUN_LEASE + 1)
    assert cluster.wait(started["id"])["status"] == "cancelled"


def test_a_killed_worker_leaves_the_roster_and_the_health_check_within_a_few_seconds(two_workers):
    cluster = two_workers
    workers = cluster.live_workers()
    cluster.kill(workers[0])
    killed = time.monotonic()
    while workers[0].pid in roster_runs(cluster):
        assert time.monotonic() - killed < 4.5, roster_runs(cluster)
        time.sleep(0.1)
    assert workers[1].pid in roster_runs(cluster)  # the live one stays listed
    assert requests.get(f"{cluster.url}/api/health", timeout=10).status_code == 200
    cluster.kill(workers[1])
    killed = time.monotonic()
    while (health := requests.get(f"{cluster.url}/api/health", timeout=10)).status_code == 200:
        assert time.monotonic() - killed < 4.5, "a killed worker still counted as running"
        time.sleep(0.1)
    assert health.status_code == 503 and health.json() == {"status": "no worker is running"}
