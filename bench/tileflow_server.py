"""A real Tileflow console for the benchmarks: daphne on a free loopback port, its own sqlite DB and media.

`TileflowServer` migrates a temporary database, creates a user and an API token through manage.py,
starts daphne, and gives a raw HTTP client (`run`) that sees the streamed body chunk by chunk, so the
time to the first body byte is what a client on the wire would see. Websockets are followed with
`tests/support/websocket.SocketClient`, which stamps each message as it arrives.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import secrets
import signal
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from measure import free_port, log

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
USERNAME = "bench"


def flow_document(
    name: str, steps: list[tuple[str, str, dict[str, Any]]], output: dict[str, Any], source: dict | None = None
) -> dict:
    """Return a flow document (CONTRACT §1): source, then `steps` as (id, type, params) in a chain, then the output."""
    nodes = [{"id": "in", "type": "source", "params": source or {}}]
    nodes += [{"id": node_id, "type": kind, "params": params} for node_id, kind, params in steps]
    nodes.append({"id": "out", "type": "output", "params": output})
    edges = [{"from": before["id"], "to": after["id"]} for before, after in itertools.pairwise(nodes)]
    return {"name": name, "description": "created by bench/", "graph": {"nodes": nodes, "edges": edges}}


@dataclass
class RunTiming:
    """What a client saw of one `POST /api/flows/{id}/run`."""

    execution_id: str
    sent_at: float  # time.time() when the request started, to set against the execution's timestamps
    headers: float  # seconds to the response's status line and headers (upload, probe and run start)
    first_byte: float  # seconds from the request's first byte sent to the response's first body byte
    total: float  # seconds to the last body byte
    size: int
    body: bytes = field(repr=False)
    arrivals: list[tuple[float, int]] = field(default_factory=list, repr=False)  # (seconds, bytes so far)

    @property
    def first_data(self) -> float:
        """Return the seconds to the first byte of image data (past the JPEG/PNG headers, sent with it)."""
        header = image_header_length(self.body)
        return next(seconds for seconds, received in self.arrivals if received > header)


def image_header_length(data: bytes) -> int:
    """Return how many leading bytes of a JPEG or PNG file carry no pixel data (markers, tables, IHDR...)."""
    if data.startswith(b"\xff\xd8"):
        position = 2
        while position + 4 <= len(data):
            marker, length = data[position + 1], struct.unpack(">H", data[position + 2 : position + 4])[0]
            if marker == 0xDA:  # start of scan: the entropy-coded data follows its header
                return position + 2 + length
            position += 2 + length
    elif data.startswith(b"\x89PNG\r\n\x1a\n"):
        position = 8
        while position + 8 <= len(data):
            length, kind = struct.unpack(">I4s", data[position : position + 8])
            if kind == b"IDAT":
                return position + 8
            position += 12 + length
    raise ValueError("not a complete JPEG or PNG header")


class TileflowServer:
    """A Tileflow console in a daphne subprocess, with a bench user and token; a context manager."""

    def __init__(self, workdir: Path | None = None, *, env: dict[str, str] | None = None) -> None:
        self._tempdir = tempfile.TemporaryDirectory(prefix="tileflow-bench-") if workdir is None else None
        self.workdir = Path(self._tempdir.name) if self._tempdir else workdir
        self.env = {
            **os.environ,
            "DATABASE_URL": f"sqlite:///{self.workdir / 'bench.sqlite3'}",
            "TILEFLOW_MEDIA_ROOT": str(self.workdir / "media"),
            "TILEFLOW_SECRET_KEY": "bench-" + secrets.token_hex(24),
            "TILEFLOW_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.port = 0
        self.process: subprocess.Popen | None = None
        self.token = ""
        self.log_path = self.workdir / "daphne.log"

    # -- life cycle -------------------------------------------------------------------------------

    def manage(self, *args: str) -> str:
        """Run `manage.py ARGS` with this server's environment and return its stdout."""
        done = subprocess.run(
            [str(VENV_BIN / "python"), "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")
        return done.stdout

    def prepare(self) -> None:
        """Migrate the database and create the bench user and its API token."""
        self.manage("migrate", "--noinput")
        password_env = {**self.env, "DJANGO_SUPERUSER_PASSWORD": secrets.token_urlsafe(16)}
        subprocess.run(
            [
                str(VENV_BIN / "python"),
                "manage.py",
                "createsuperuser",
                "--noinput",
                "--username",
                USERNAME,
                "--email",
                "bench@example.invalid",
            ],
            cwd=ROOT,
            env=password_env,
            check=True,
            capture_output=True,
        )
        self.token = self.manage("createtoken", USERNAME, "--name", "bench").strip().splitlines()[-1]

    def start(self) -> None:
        """Start daphne and wait until the API answers."""
        self.port = free_port()
        with self.log_path.open("ab") as output:
            self.process = subprocess.Popen(
                [str(VENV_BIN / "daphne"), "-b", "127.0.0.1", "-p", str(self.port), "console.asgi:application"],
                cwd=ROOT,
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne exited at start:\n{self.log_path.read_text()[-3000:]}")
            try:
                status, _ = self.request("GET", "/api/steps")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the Tileflow server did not answer within 60 s")

    def stop(self) -> None:
        """Stop daphne (SIGINT, as Ctrl-C would) and wait for it."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def restart(self) -> None:
        """Start a fresh server process on the same database (its memory counters start from zero)."""
        self.stop()
        self.start()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> TileflowServer:
        self.prepare()
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        if self._tempdir is not None:
            self._tempdir.cleanup()

    # -- HTTP -------------------------------------------------------------------------------------

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "Host": f"127.0.0.1:{self.port}", **(extra or {})}

    def request(self, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
        """Send a JSON request and return (status, decoded JSON or None)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            body = None if payload is None else json.dumps(payload).encode()
            extra = {"Content-Type": "application/json"} if body is not None else {}
            connection.request(method, path, body=body, headers=self.headers(extra))
            answer = connection.getresponse()
            data = answer.read()
            return answer.status, json.loads(data) if data else None
        finally:
            connection.close()

    def create_flow(self, document: dict) -> str:
        """Create a flow (its name made unique) and return its id."""
        document = {**document, "name": f"{document['name']}-{uuid.uuid4().hex[:8]}"}
        status, answer = self.request("POST", "/api/flows", document)
        if status != 201:
            raise RuntimeError(f"POST /api/flows answered {status}: {answer}")
        return answer["id"]

    def execution(self, execution_id: str) -> dict:
        """Return the execution object."""
        status, answer = self.request("GET", f"/api/executions/{execution_id}")
        if status != 200:
            raise RuntimeError(f"GET /api/executions/{execution_id} answered {status}: {answer}")
        return answer

    def start_execution(self, flow_id: str, photo: Path) -> str:
        """Start a background run (`POST /executions`) and return its id."""
        body, content_type = multipart_image(photo)
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            connection.request(
                "POST",
                f"/api/flows/{flow_id}/executions",
                body=body,
                headers=self.headers({"Content-Type": content_type}),
            )
            answer = connection.getresponse()
            data = answer.read()
            if answer.status != 201:
                raise RuntimeError(f"POST /executions answered {answer.status}: {data[:500]!r}")
            return json.loads(data)["id"]
        finally:
            connection.close()

    def run(self, flow_id: str, photo: Path | bytes) -> RunTiming:
        """Time `POST /api/flows/{id}/run` as a streaming client: first body byte and last body byte."""
        body, content_type = multipart_image(photo)
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        try:
            sent_at = time.time()
            started = time.perf_counter()
            connection.request(
                "POST", f"/api/flows/{flow_id}/run", body=body, headers=self.headers({"Content-Type": content_type})
            )
            answer = connection.getresponse()
            headers = time.perf_counter() - started
            if answer.status != 200:
                raise RuntimeError(f"POST /run answered {answer.status}: {answer.read()[:500]!r}")
            chunks: list[bytes] = []
            arrivals: list[tuple[float, int]] = []
            received = 0
            while chunk := answer.read1(1 << 16):
                received += len(chunk)
                arrivals.append((time.perf_counter() - started, received))
                chunks.append(chunk)
            first_byte = arrivals[0][0] if arrivals else None
            total = time.perf_counter() - started
            data = b"".join(chunks)
            if first_byte is None:
                raise RuntimeError("POST /run answered 200 with an empty body")
            return RunTiming(
                answer.getheader("X-Execution-Id") or "", sent_at, headers, first_byte, total, len(data), data, arrivals
            )
        finally:
            connection.close()


def multipart_image(photo: Path | bytes, field_name: str = "image") -> tuple[bytes, str]:
    """Return a multipart/form-data body carrying the photo, and its Content-Type."""
    data = photo if isinstance(photo, bytes) else photo.read_bytes()
    boundary = "tileflow-bench-" + secrets.token_hex(8)
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field_name}"; filename="photo.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def wait_for(server: TileflowServer, execution_id: str, timeout: float = 300) -> dict:
    """Poll an execution until it has finished; return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        execution = server.execution(execution_id)
        if execution["status"] in {"succeeded", "failed", "cancelled"}:
            return execution
        time.sleep(0.05)
    raise TimeoutError(f"execution {execution_id} did not finish within {timeout} s")


if __name__ == "__main__":
    from photos import ensure_photo

    with TileflowServer() as live:
        log(f"server on port {live.port}, pid {live.pid}")
        flow = live.create_flow(
            flow_document("smoke", [("shrink", "resize", {"scale": 0.5})], {"format": "jpeg", "quality": 85})
        )
        timing = live.run(flow, ensure_photo("2mp"))
        print(timing, json.dumps(live.execution(timing.execution_id), indent=1)[:2000])
