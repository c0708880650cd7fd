"""Every limit of settings.TILEFLOW refuses with a clear error, and an oversized body is never stored."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest
from django.core.asgi import get_asgi_application

from console.limits import MULTIPART_ALLOWANCE, UploadLimitASGIMiddleware
from flows.models import Execution, Flow
from runtime.testing import chain
from tests.support import raw
from tests.support.http import Client
from tests.support.runs import COMPRESS_AND_WATERMARK, image_bytes, upload, wait_finished

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_channel_layer")]

GIGABYTE = 1024**3


@pytest.fixture
def flow(user) -> Flow:
    return Flow.objects.create(owner=user, name="compress-and-watermark", graph=COMPRESS_AND_WATERMARK)


@pytest.fixture
def upload_dir(settings, tmp_path):
    """Where Django spools uploads larger than FILE_UPLOAD_MAX_MEMORY_SIZE, and where the ASGI body goes."""
    folder = tmp_path / "uploads"
    folder.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(folder)
    return folder


class Body:
    """An ASGI `receive` that produces `total` bytes in 1 MiB pieces, counting what was read."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.read = 0

    async def __call__(self) -> dict:
        piece = min(1024 * 1024, self.total - self.read)
        self.read += piece
        return {"type": "http.request", "body": b"\0" * piece, "more_body": self.read < self.total}


async def call_asgi(headers: list[tuple[bytes, bytes]], body: Body, token: str, flow_id: str) -> tuple[int, dict]:
    app = UploadLimitASGIMiddleware(get_asgi_application())
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": f"/api/flows/{flow_id}/executions",
        "raw_path": f"/api/flows/{flow_id}/executions".encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", b"multipart/form-data; boundary=xyz"),
            *headers,
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    await asyncio.wait_for(app(scope, body, send), 60)
    start = next(message for message in sent if message["type"] == "http.response.start")
    content = b"".join(message.get("body", b"") for message in sent if message["type"] == "http.response.body")
    return start["status"], json.loads(content)


async def test_a_declared_gigabyte_is_refused_before_one_byte_is_read(token, flow, upload_dir):
    body = Body(GIGABYTE)
    status, answer = await call_asgi([(b"content-length", str(GIGABYTE).encode())], body, token, str(flow.id))
    assert status == 413
    assert f"{GIGABYTE} bytes" in answer["error"] and "67108864" in answer["error"]
    assert "TILEFLOW_MAX_UPLOAD_BYTES" in answer["error"]
    assert body.read == 0
    assert list(upload_dir.iterdir()) == []
    assert await Execution.objects.acount() == 0


async def test_a_chunked_gigabyte_is_cut_off_at_the_limit(token, flow, upload_dir, settings):
    settings.TILEFLOW = {**settings.TILEFLOW, "MAX_UPLOAD_BYTES": 4 * 1024 * 1024}
    body = Body(GIGABYTE)  # no Content-Length: the size shows only while reading
    status, answer = await call_asgi([], body, token, str(flow.id))
    assert status == 413
    assert "4194304 bytes" in answer["error"]
    assert body.read <= 4 * 1024 * 1024 + MULTIPART_ALLOWANCE + 1024 * 1024
    assert list(upload_dir.iterdir()) == []
    assert await Execution.objects.acount() == 0


async def test_upload_limit_through_django_middleware_and_view(http, flow, settings):
    settings.TILEFLOW = {**settings.TILEFLOW, "MAX_UPLOAD_BYTES": 200_000}
    data = image_bytes(1200, 1200, format="PNG")  # well over 200 kB + the multipart allowance
    assert len(data) > 200_000 + MULTIPART_ALLOWANCE
    for call in ("executions", "run"):
        response = await http.post(f"/api/flows/{flow.id}/{call}", {"image": upload(data, "big.png")})
        assert response.status_code == 413
        assert "the upload limit is 200000 bytes" in response.json()["error"]
    # Over the file limit but within the envelope allowance: the view's own exact check answers.
    settings.TILEFLOW = {**settings.TILEFLOW, "MAX_UPLOAD_BYTES": len(data) - 10}
    response = await http.post(f"/api/flows/{flow.id}/executions", {"image": upload(data, "big.png")})
    assert response.status_code == 413
    assert f"the upload is {len(data)} bytes; the limit is {len(data) - 10} bytes" in response.json()["error"]
    assert await Execution.objects.acount() == 0


async def test_pixel_limit_names_the_limit(http, flow, settings):
    settings.TILEFLOW = {**settings.TILEFLOW, "MAX_PIXELS": 10_000}
    response = await http.post(f"/api/flows/{flow.id}/executions", {"image": upload(image_bytes(101, 100))})
    assert response.status_code == 400
    assert response.json()["error"] == "the image has 101x100 pixels, more than the limit of 10000 pixels"
    at_limit = await http.post(f"/api/flows/{flow.id}/executions", {"image": upload(image_bytes(100, 100))})
    assert at_limit.status_code == 201


async def test_node_count_and_watermark_text_limits(http, settings):
    settings.TILEFLOW = {**settings.TILEFLOW, "MAX_NODES": 5, "MAX_WATERMARK_TEXT": 10}
    many = chain(*[("grayscale", {})] * 4)  # source, 4 steps, output: 6 nodes
    response = await http.post("/api/flows", {"name": "long", "graph": many}, content_type="application/json")
    assert response.status_code == 400
    messages = [error["message"] for error in response.json()["errors"]]
    assert any("6 nodes" in message and "5" in message for message in messages), messages

    wordy = chain(("watermark", {"text": "x" * 11}))
    response = await http.post("/api/flows", {"name": "wordy", "graph": wordy}, content_type="application/json")
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["node"] is not None and "10" in error["message"], error
    fits = chain(("watermark", {"text": "x" * 10}))
    response = await http.post("/api/flows", {"name": "fits", "graph": fits}, content_type="application/json")
    assert response.status_code == 201


async def test_runs_beyond_the_per_user_limit_wait_queued(http, flow, settings):
    settings.TILEFLOW = {**settings.TILEFLOW, "MAX_CONCURRENT_RUNS_PER_USER": 1, "TILE_SIZE": 64}
    first = (await http.post(f"/api/flows/{flow.id}/executions", {"image": upload(image_bytes(1600, 1200))})).json()
    second = await http.post(f"/api/flows/{flow.id}/executions", {"image": upload(image_bytes(64, 64))})
    assert second.status_code == 201  # not refused
    waiting = (await http.get(f"/api/executions/{second.json()['id']}")).json()
    assert waiting["status"] == "queued"
    running = (await http.get(f"/api/executions/{first['id']}")).json()
    assert running["status"] == "running"
    done_first = await wait_finished(http, first["id"])
    done_second = await wait_finished(http, second.json()["id"])
    assert done_first["status"] == done_second["status"] == "succeeded"
    # The second started only once the first had finished.
    assert done_second["started_at"] >= done_first["finished_at"]


# Through a real Daphne, with raw sockets: what a hostile client actually sends.

LIMIT = 64 * 1024 * 1024  # the hostile console's TILEFLOW_MAX_UPLOAD_BYTES (the default)


@pytest.fixture(scope="module")
def live_flow(hostile_console) -> str:
    client = Client(hostile_console.url, hostile_console.auth)
    status, flow = client.json("POST", "/api/flows", {"name": "limits", "graph": COMPRESS_AND_WATERMARK})
    assert status == 201, flow
    return flow["id"]


def quiet(console) -> tuple[int, list]:
    """The server's resident memory and temporary files once its requests have ended."""
    time.sleep(0.5)
    return raw.rss_bytes(console.process.pid), raw.files_under(console.tmp) + raw.files_under(console.workdir / "media")


def deleted_temp_files(console) -> list[str]:
    """Files the server holds open in its TMPDIR, named or already unlinked (as Twisted's and Django's are)."""
    fds = Path(f"/proc/{console.process.pid}/fd")
    targets = []
    for fd in fds.iterdir():
        try:
            targets.append(os.readlink(fd))
        except FileNotFoundError:
            continue
    return [target for target in targets if target.startswith(str(console.tmp))]


@pytest.mark.parametrize("credential", ["none", "token"])
def test_a_declared_10_gb_body_is_answered_at_once(hostile_console, live_flow, credential):
    headers = {
        "Content-Length": "10000000000",
        "Content-Type": "multipart/form-data; boundary=x",
        **(hostile_console.auth if credential == "token" else {}),
    }
    with raw.connect(hostile_console.port) as sock:
        started = time.monotonic()
        sock.sendall(raw.head("POST", f"/api/flows/{live_flow}/executions", headers))
        answer = raw.read_answer(sock, started)
        assert answer.status == 413, answer
        assert answer.seconds < 2
        assert answer.headers["content-type"] == "application/json"
        assert answer.headers["connection"] == "close"
        assert answer.headers["x-content-type-options"] == "nosniff"  # the headers Django's answers carry
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        assert "10000000000 bytes" in answer.json()["error"]
        assert deleted_temp_files(hostile_console) == []  # nothing stored while the connection is still open


def test_a_chunked_200_mb_body_is_cut_off_at_the_limit_and_leaves_nothing(hostile_console, live_flow):
    headers = {
        **hostile_console.auth,
        "Transfer-Encoding": "chunked",
        "Content-Type": "multipart/form-data; boundary=x",
    }
    rss_before, files_before = quiet(hostile_console)
    with raw.connect(hostile_console.port, timeout=60) as sock:
        started = time.monotonic()
        sock.sendall(raw.head("POST", f"/api/flows/{live_flow}/executions", headers))
        sent = raw.send_until_answered(sock, 200 * 1024 * 1024, chunked=True)
        answer = raw.read_answer(sock, started)
    assert answer.status == 413, answer
    assert "TILEFLOW_MAX_UPLOAD_BYTES" in answer.json()["error"]
    # Cut off at the limit: what was sent past it is at most the server's read-ahead and the socket buffers.
    assert LIMIT < sent < LIMIT + 24 * 1024 * 1024, sent
    rss_after, files_after = quiet(hostile_console)
    assert files_after == files_before == []
    assert deleted_temp_files(hostile_console) == []
    assert rss_after - rss_before < 24 * 1024 * 1024, (rss_before, rss_after)


def test_a_stalled_body_is_given_up_with_408(hostile_console, live_flow):
    headers = {**hostile_console.auth, "Content-Length": str(50_000_000), "Content-Type": "image/jpeg"}
    with raw.connect(hostile_console.port) as sock:
        started = time.monotonic()
        sock.sendall(raw.head("POST", f"/api/flows/{live_flow}/run", headers) + b"\xff\xd8" * 1000)
        answer = raw.read_answer(sock, started)
    assert answer.status == 408, answer
    assert 1.5 < answer.seconds < 10
    assert answer.json()["error"] == (
        "the request body stalled: nothing arrived for 2 seconds (TILEFLOW_BODY_TIMEOUT_SECONDS)"
    )
    assert deleted_temp_files(hostile_console) == []
