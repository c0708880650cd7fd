"""The execution websocket and new runs across Redis faults, on a real redis-server stopped, paused and
restarted under a real Daphne and a runworker: sockets opened after a restart work, open ones still get
their final status, and a run started while Redis is down waits for it or fails saying so."""

from __future__ import annotations

import itertools
import os
import signal
import threading
import time

import pytest

from runtime.testing import make_image
from tests.support.cluster import Cluster, png_bytes
from tests.support.websocket import SocketClient

pytestmark = pytest.mark.redis

SETTINGS = {
    "TILEFLOW_TILE_SIZE": "128",
    "TILEFLOW_TILE_LEASE_SECONDS": "2",
    "TILEFLOW_TILE_MAX_ATTEMPTS": "6",
    "TILEFLOW_HEARTBEAT_SECONDS": "0.5",
    "TILEFLOW_LAYER_PATIENCE_SECONDS": "4",
    "TILEFLOW_STEP_MODULES": "tests.scale.slow_steps",
    "TILEFLOW_LOG_LEVEL": "WARNING",
}
IMAGE = png_bytes(make_image(512, 384, "RGB", seed=5))


def slow_graph(seconds: float) -> dict:
    nodes = [
        {"id": "in", "type": "source", "params": {}},
        {"id": "slow", "type": "slow", "params": {"seconds": seconds}},
        {"id": "out", "type": "output", "params": {"format": "png"}},
    ]
    return {"nodes": nodes, "edges": [{"from": a["id"], "to": b["id"]} for a, b in itertools.pairwise(nodes)]}


# Runs placed on workers (the default with Redis), and conducted by the console (tiles sent to workers).
@pytest.fixture(scope="module", params=["worker", "tiles"])
def cluster(request, tmp_path_factory):
    settings = {**SETTINGS, "TILEFLOW_PLACEMENT": request.param}
    cluster = Cluster(tmp_path_factory.mktemp(f"redis-faults-{request.param}"), **settings)
    try:
        cluster.setup()
        cluster.start_server()
        cluster.start_worker(threads=2)
        cluster.slow = cluster.create_flow("slow", slow_graph(0.12))
        yield cluster
    finally:
        cluster.stop_all()


@pytest.fixture
def up(cluster) -> Cluster:
    """The cluster with Redis running and a live worker (a test before may have stopped them)."""
    if cluster.redis.process is None or cluster.redis.process.poll() is not None:
        cluster.redis.start()
    cluster.ensure_workers(1)
    return cluster


class Follower:
    """A websocket on one execution, read to its end in a thread."""

    def __init__(self, cluster: Cluster, execution_id: str) -> None:
        self.socket = SocketClient(cluster.port, f"/ws/executions/{execution_id}/", cluster.token, timeout=90)
        self.messages: list[dict] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            while (message := self.socket.receive()) is not None:
                self.messages.append(message)
        except OSError as error:
            self.messages.append({"type": "broken", "error": str(error)})

    def result(self, timeout: float = 90) -> list[dict]:
        self.thread.join(timeout)
        self.socket.close()
        return self.messages


def assert_followed_to_the_end(messages: list[dict], execution: dict) -> None:
    assert messages and messages[0]["type"] == "snapshot", messages[:1]
    assert messages[-1] == {"type": "status", "status": execution["status"], "error": execution["error"]}, messages[-3:]
    progress = [message["done"] for message in messages if message["type"] == "progress" and message["node"] == "slow"]
    assert progress == sorted(progress)


def test_open_sockets_get_their_final_status_and_new_ones_work_after_a_restart(up):
    cluster = up
    started = cluster.start_run(cluster.slow, IMAGE)
    before = Follower(cluster, started["id"])
    cluster.wait(started["id"], until=lambda body: body["nodes"]["slow"]["done"] >= 2, timeout=30)
    cluster.redis.stop()
    time.sleep(1.5)
    cluster.redis.start()  # same port, empty: every group membership is gone
    after = Follower(cluster, started["id"])  # the first handshake after the restart

    execution = cluster.wait(started["id"], timeout=90)
    assert execution["status"] in ("succeeded", "failed"), execution
    assert "internal error" not in (execution["error"] or "")
    assert_followed_to_the_end(before.result(), execution)
    assert_followed_to_the_end(after.result(), execution)
    log = cluster.logs()
    assert "Traceback" not in log, log


def test_an_open_socket_outlasts_a_paused_redis(up):
    cluster = up
    started = cluster.start_run(cluster.slow, IMAGE)
    follower = Follower(cluster, started["id"])
    cluster.wait(started["id"], until=lambda body: body["nodes"]["slow"]["done"] >= 2, timeout=30)
    os.kill(cluster.redis.process.pid, signal.SIGSTOP)
    try:
        time.sleep(3)
    finally:
        os.kill(cluster.redis.process.pid, signal.SIGCONT)
    execution = cluster.wait(started["id"], timeout=90)
    assert execution["status"] in ("succeeded", "failed"), execution
    assert_followed_to_the_end(follower.result(), execution)


def test_a_run_started_while_redis_is_down_runs_once_it_is_back(up):
    cluster = up
    cluster.redis.stop()
    started = cluster.start_run(cluster.slow, IMAGE)  # the API needs the database only
    time.sleep(1.5)
    cluster.redis.start()
    execution = cluster.wait(started["id"], timeout=60)
    assert execution["status"] == "succeeded", (execution["error"], cluster.logs())


def test_a_run_started_while_redis_stays_down_fails_saying_so(up):
    cluster = up
    cluster.redis.stop()
    try:
        started = cluster.start_run(cluster.slow, IMAGE)
        socket = SocketClient(cluster.port, f"/ws/executions/{started['id']}/", cluster.token, timeout=60)
        try:
            messages = socket.messages()  # the socket follows it from the database meanwhile
        finally:
            socket.close()
        execution = cluster.wait(started["id"], timeout=30)
    finally:
        cluster.redis.start()
    assert execution["status"] == "failed", execution
    assert execution["error"].startswith(f"the channel layer at {cluster.redis.url} is unreachable"), execution
    assert messages[0]["type"] == "snapshot"
    assert messages[-1] == {"type": "status", "status": "failed", "error": execution["error"]}
    assert "Traceback" not in cluster.logs()


def test_batch_sockets_open_across_a_restart_and_opened_after_it_follow_the_batch_to_its_end(up):
    cluster = up
    images = [("image", (f"{name}.png", IMAGE)) for name in "abcd"]
    response = cluster.api("POST", f"/api/flows/{cluster.slow}/batches", files=images)
    assert response.status_code == 201, response.text
    batch_id = response.json()["id"]
    before = SocketClient(cluster.port, f"/ws/batches/{batch_id}/", cluster.token, timeout=90)
    first = before.receive()
    assert first["type"] == "snapshot" and first["batch"]["status"] in ("queued", "running"), first
    cluster.redis.stop()
    time.sleep(1)
    cluster.redis.start()
    after = SocketClient(cluster.port, f"/ws/batches/{batch_id}/", cluster.token, timeout=90)
    try:
        messages_before, messages_after = before.messages(), after.messages()
    finally:
        before.close()
        after.close()
    batch = cluster.api("GET", f"/api/batches/{batch_id}").json()
    assert batch["status"] in ("succeeded", "failed"), batch
    assert messages_before and messages_before[-1] == {"type": "status", "status": batch["status"]}, messages_before
    assert messages_after[0]["type"] == "snapshot"
    assert messages_after[-1] == {"type": "status", "status": batch["status"]}


def test_a_sync_run_while_redis_stays_down_answers_503_saying_so(up):
    cluster = up
    cluster.redis.stop()
    try:
        answer = cluster.api("POST", f"/api/flows/{cluster.slow}/run", files={"image": ("a.png", IMAGE)}, timeout=60)
    finally:
        cluster.redis.start()
    assert answer.status_code == 503 and answer.headers["Retry-After"], answer.text
    assert answer.json()["error"].startswith(f"the channel layer at {cluster.redis.url} is unreachable")
