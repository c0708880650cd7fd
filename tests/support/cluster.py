"""A scale-out Tileflow for tests and benchmarks: Redis, a Daphne console and runworker processes.

Every process is a real one started here with its own database and media (project_env) and
stopped by PID; nothing is shared with the test process but the Redis server.
"""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from tests.support.services import PYTHON, ROOT, RedisServer, free_port, manage, project_env, stop, wait_for_port

FINISHED = ("succeeded", "failed", "cancelled")


class Cluster:
    """One Redis, one console and any number of lane workers, all on this host."""

    def __init__(self, workdir: Path, **settings: str) -> None:
        self.workdir = workdir
        self.redis = RedisServer(workdir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = project_env(workdir, REDIS_URL=self.redis.url, **settings)
        self.server: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.consoles: list[subprocess.Popen] = []  # every Daphne started, the current `server` included
        self.token = ""
        self._logs = 0

    # -- processes ------------------------------------------------------------------------------

    def setup(self) -> None:
        """Start Redis, migrate the database, create a user and its API token."""
        self.redis.start()
        manage("migrate", "--noinput", env=self.env, timeout=180)
        manage(
            "shell",
            "-c",
            "from django.contrib.auth import get_user_model; "
            "get_user_model().objects.create_user('scale', password='scale-out-secret-pw')",
            env=self.env,
            timeout=120,
        )
        self.token = manage("createtoken", "scale", env=self.env, timeout=120).stdout.strip().splitlines()[-1]

    def _log(self, name: str) -> Path:
        self._logs += 1
        return self.workdir / f"{self._logs:02d}-{name}.log"

    def start_server(self) -> subprocess.Popen:
        """Start the console (Daphne) on `self.port`; return once it listens."""
        self.server = self.start_console(self.port)
        return self.server

    def start_console(self, port: int) -> subprocess.Popen:
        """Start a Daphne console on `port` sharing this cluster's Redis, database and media."""
        log = self._log("daphne")
        with log.open("wb") as sink:
            console = subprocess.Popen(
                [str(Path(PYTHON).parent / "daphne"), "-b", "127.0.0.1", "-p", str(port), "console.asgi:application"],
                cwd=ROOT,
                env=self.env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for_port(port, timeout=60, process=console)
        except (TimeoutError, RuntimeError) as error:
            stop(console)
            raise RuntimeError(f"{error}\n{log.read_text()[-4000:]}") from None
        self.consoles.append(console)
        return console

    def start_worker(self, threads: int = 1, **settings: str) -> subprocess.Popen:
        """Start `manage.py runworker tileflow.lane.default` (with `settings` of its own); return once it serves."""
        log = self._log("worker")
        with log.open("wb") as sink:
            worker = subprocess.Popen(
                [PYTHON, str(ROOT / "manage.py"), "runworker", "--threads", str(threads), "tileflow.lane.default"],
                cwd=ROOT,
                env={**self.env, **settings},
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        worker.log = log  # type: ignore[attr-defined]
        deadline = time.monotonic() + 60
        while not re.search(r"threads? on tileflow\.lane\.default", log.read_text()):
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{log.read_text()[-4000:]}")
            time.sleep(0.05)
        self.workers.append(worker)
        return worker

    def live_workers(self) -> list[subprocess.Popen]:
        self.workers = [worker for worker in self.workers if worker.poll() is None]
        return self.workers

    def ensure_workers(self, count: int) -> Cluster:
        """Start workers until `count` are alive (a test before may have killed some); return the cluster."""
        while len(self.live_workers()) < count:
            self.start_worker()
        return self

    def kill(self, process: subprocess.Popen) -> None:
        """Kill `process` with SIGKILL: no cleanup of any kind, as a crash or an OOM kill."""
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)

    def stop_all(self) -> None:
        for process in [*self.workers, *self.consoles]:
            stop(process)
        self.redis.stop()

    # -- Redis ----------------------------------------------------------------------------------

    def redis_cli(self, *args: str) -> str:
        done = subprocess.run(
            ["redis-cli", "-p", str(self.redis.port), *args], capture_output=True, text=True, timeout=10, check=True
        )
        return done.stdout.strip()

    def lane_length(self) -> int:
        """Return how many task messages wait in Redis on the default lane."""
        # channels_redis keeps a channel's messages in a sorted set keyed prefix + channel, no separator.
        return int(self.redis_cli("ZCARD", "asgitileflow.lane.default") or 0)

    # -- the API --------------------------------------------------------------------------------

    def api(self, method: str, path: str, *, base: str | None = None, **options) -> requests.Response:
        """Call the API of the console at `base` (default: the cluster's own) with the cluster's token."""
        headers = {"Authorization": f"Bearer {self.token}", **options.pop("headers", {})}
        url = (base or self.url) + path
        return requests.request(method, url, headers=headers, timeout=options.pop("timeout", 30), **options)

    def create_flow(self, name: str, graph: dict[str, Any]) -> str:
        response = self.api("POST", "/api/flows", json={"name": name, "graph": graph})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def start_run(self, flow_id: str, image: bytes) -> dict[str, Any]:
        response = self.api("POST", f"/api/flows/{flow_id}/executions", files={"image": ("photo.png", image)})
        assert response.status_code == 201, response.text
        return response.json()

    def execution(self, execution_id: str) -> dict[str, Any]:
        response = self.api("GET", f"/api/executions/{execution_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def wait(self, execution_id: str, timeout: float = 60, until=None) -> dict[str, Any]:
        """Poll the execution until it finished and was saved (or `until(execution)` holds); return it."""
        deadline = time.monotonic() + timeout
        while True:
            body = self.execution(execution_id)
            # A live run shows its end before its row has it: wait for finished_at, which is stored.
            ended = body["status"] in FINISHED and body["finished_at"] is not None
            if (until(body) if until else ended) or time.monotonic() > deadline:
                return body
            time.sleep(0.05)

    def output(self, execution_id: str) -> bytes:
        response = self.api("GET", f"/api/executions/{execution_id}/output", timeout=60)
        assert response.status_code == 200, response.text
        return response.content

    def logs(self) -> str:
        """Return the tail of every process log, for assertion messages."""
        return "\n".join(f"--- {log.name}\n{log.read_text()[-2000:]}" for log in sorted(self.workdir.glob("*.log")))


def png_bytes(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


@contextmanager
def running_cluster(workdir: Path, flows: dict[Any, dict[str, Any]], *, workers: int = 2, **settings: str):
    """Yield a started cluster (Redis, console, `workers` one-thread workers) with `flows` created by key."""
    cluster = Cluster(workdir, **settings)
    try:
        cluster.setup()
        cluster.start_server()
        for _ in range(workers):
            cluster.start_worker()
        cluster.workers_ready_at = time.monotonic()
        cluster.flows = {key: cluster.create_flow(f"flow-{key}", graph) for key, graph in flows.items()}
        yield cluster
    finally:
        cluster.stop_all()


def clean_output(cluster: Cluster, flow_id: str, image: bytes) -> bytes:
    """Return the output of a run without any fault (what the faulty runs of a test must match)."""
    started = cluster.start_run(flow_id, image)
    finished = cluster.wait(started["id"])
    assert finished["status"] == "succeeded", (finished["error"], cluster.logs())
    return cluster.output(started["id"])
