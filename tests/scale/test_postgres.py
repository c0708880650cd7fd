"""The scale-out setup on a real PostgreSQL: Redis, two Daphne consoles and two runworkers share one database.

Everything a deployment does goes through Postgres here: migrations, flows, background and
streamed runs, the websocket, cancelling (also from the other console after Redis restarted
empty), and the sweep that fails the runs of a killed console as "interrupted". Rows are read
back with psycopg straight from Postgres, so a silent fallback to SQLite would fail the tests.
"""

from __future__ import annotations

import time

import psycopg
import pytest

from tests.scale.test_scale_out import (
    IMAGE,
    LEASE,
    SETTINGS,
    TILES,
    assert_a_killed_server_leaves_its_run_interrupted,
    assert_same_pixels,
    graph,
    reference,
)
from tests.support.cluster import Cluster, png_bytes
from tests.support.postgres import PostgresServer, postgres_server
from tests.support.services import free_port
from tests.support.websocket import SocketClient

pytestmark = pytest.mark.redis

SLOW = 0.4  # seconds per tile: TILES (35) tiles on two one-thread workers take about 7 s


@pytest.fixture(scope="module")
def postgres():
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, postgres):
    cluster = Cluster(tmp_path_factory.mktemp("pg"), DATABASE_URL=postgres.url, **SETTINGS)
    try:
        cluster.setup()
        cluster.start_server()
        cluster.start_worker()
        cluster.start_worker()
        cluster.flows = {seconds: cluster.create_flow(f"slow-{seconds}", graph(seconds)) for seconds in (0.02, SLOW)}
        yield cluster
    finally:
        cluster.stop_all()


def row(postgres: PostgresServer, execution_id: str) -> dict:
    """Return the execution's row as Postgres holds it."""
    with psycopg.connect(postgres.url) as connection:
        cursor = connection.execute(
            "SELECT status, error, finished_at, workers FROM flows_execution WHERE id = %s", (execution_id,)
        )
        status, error, finished_at, workers = cursor.fetchone()
    return {"status": status, "error": error, "finished_at": finished_at, "workers": workers}


def test_migrations_and_flows_live_in_postgres(cluster, postgres):
    with psycopg.connect(postgres.url) as connection:
        applied = connection.execute("SELECT count(*) FROM django_migrations WHERE app = 'flows'").fetchone()[0]
        names = {name for (name,) in connection.execute("SELECT name FROM flows_flow").fetchall()}
        server_version = connection.info.server_version
    assert applied >= 1
    assert names == {f"slow-{seconds}" for seconds in cluster.flows}
    assert server_version >= 150000
    assert not (cluster.workdir / "db.sqlite3").exists()  # project_env's default was overridden, never used


def test_a_background_run_succeeds_and_is_recorded_in_postgres(cluster, postgres):
    started = cluster.start_run(cluster.flows[0.02], png_bytes(IMAGE))
    finished = cluster.wait(started["id"])

    assert finished["status"] == "succeeded", (finished["error"], cluster.logs())
    assert_same_pixels(cluster.output(started["id"]), reference())
    stored = row(postgres, started["id"])
    assert stored["status"] == "succeeded" and stored["finished_at"] is not None
    assert sum(stored["workers"].values()) == finished["nodes"]["soft"]["total"] == TILES


def test_the_streamed_run_answers_the_image_and_records_it(cluster, postgres):
    response = cluster.api(
        "POST", f"/api/flows/{cluster.flows[0.02]}/run", files={"image": ("photo.png", png_bytes(IMAGE))}, timeout=60
    )

    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "image/png"
    assert_same_pixels(response.content, reference())
    execution_id = response.headers["X-Execution-Id"]
    assert cluster.wait(execution_id)["status"] == "succeeded"
    assert row(postgres, execution_id)["status"] == "succeeded"


def test_the_websocket_follows_a_run_to_its_end(cluster):
    started = cluster.start_run(cluster.flows[SLOW], png_bytes(IMAGE))
    socket = SocketClient(cluster.port, f"/ws/executions/{started['id']}/", cluster.token, timeout=60)
    try:
        messages = socket.messages()
    finally:
        socket.close()

    assert messages[0]["type"] == "snapshot" and messages[0]["execution"]["id"] == started["id"]
    assert messages[-1] == {"type": "status", "status": "succeeded", "error": None}, messages[-1]
    soft = [message["done"] for message in messages if message["type"] == "progress" and message["node"] == "soft"]
    assert soft and soft == sorted(soft) and soft[-1] == TILES, soft


def test_cancel_stops_the_run(cluster, postgres):
    started = cluster.start_run(cluster.flows[SLOW], png_bytes(IMAGE))
    cluster.wait(started["id"], until=lambda body: body["nodes"]["soft"]["done"] >= 2, timeout=30)

    response = cluster.api("POST", f"/api/executions/{started['id']}/cancel")

    assert response.status_code == 202, response.text
    assert response.json()["status"] == "cancelled"
    stored = row(postgres, started["id"])
    assert stored["status"] == "cancelled" and stored["finished_at"] is not None
    assert cluster.api("GET", f"/api/executions/{started['id']}/output").status_code == 409  # no result to give
    with psycopg.connect(postgres.url) as connection:
        outputs = connection.execute(
            "SELECT count(*) FROM flows_executionoutput WHERE execution_id = %s", (started["id"],)
        ).fetchone()[0]
    assert outputs == 0


def test_a_cancel_from_another_console_reaches_the_run_after_redis_restarts(cluster, postgres):
    second = f"http://127.0.0.1:{(port := free_port())}"
    cluster.start_console(port)
    started = cluster.start_run(cluster.flows[SLOW], png_bytes(IMAGE))
    cluster.wait(started["id"], until=lambda body: body["nodes"]["soft"]["done"] >= 2, timeout=30)
    group = f"asgi:group:tileflow.run.{started['id']}"  # channels_redis' key of the run's control group
    assert cluster.redis_cli("EXISTS", group) == "1"

    cluster.redis.stop()
    cluster.redis.start()  # same port, empty: the conductor's group membership is gone
    # The heartbeat may already have joined again; drop the key so the wait below proves that it does.
    cluster.redis_cli("DEL", group)
    deadline = time.monotonic() + 10
    while cluster.redis_cli("EXISTS", group) != "1":  # the conductor joins again with its heartbeat
        assert time.monotonic() < deadline, f"the conductor did not re-join its control group\n{cluster.logs()}"
        time.sleep(0.05)
    response = cluster.api("POST", f"/api/executions/{started['id']}/cancel", base=second)

    assert response.status_code == 202, response.text
    ended = cluster.wait(started["id"], timeout=20)
    assert ended["status"] == "cancelled", (ended, cluster.logs())
    # The conductor itself stopped: a run that went on would overwrite the row when it ended (~4 s).
    time.sleep(3 * SLOW + 2 * LEASE)
    later = cluster.execution(started["id"])
    assert later["status"] == "cancelled" and later["nodes"]["soft"]["done"] < TILES, later
    assert row(postgres, started["id"])["status"] == "cancelled"


def test_a_killed_console_leaves_its_run_interrupted_in_postgres(cluster, postgres):
    execution_id = assert_a_killed_server_leaves_its_run_interrupted(cluster, cluster.flows[SLOW], cluster.flows[0.02])
    assert row(postgres, execution_id)["error"].startswith("interrupted")


def test_without_postgres_the_helper_fails_saying_what_to_install(monkeypatch):
    from tests.support import postgres as helper

    monkeypatch.delenv("TILEFLOW_PG_BIN", raising=False)
    monkeypatch.setattr(helper.glob, "glob", lambda pattern: [])
    monkeypatch.setattr(helper.shutil, "which", lambda name: None)

    with pytest.raises(RuntimeError, match=r"PostgreSQL is not installed.*apt-get install postgresql"):
        helper.PostgresServer().start()


def test_as_root_without_runuser_the_helper_fails_saying_what_to_do(monkeypatch):
    from tests.support import postgres as helper

    monkeypatch.setattr(helper.os, "geteuid", lambda: 0)
    monkeypatch.setattr(helper.shutil, "which", lambda name: None)

    with pytest.raises(RuntimeError, match=r"`runuser` is missing: install util-linux"):
        helper.PostgresServer().start()
