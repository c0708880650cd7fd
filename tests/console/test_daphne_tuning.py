"""Daphne starts the application when the headers are in and streams the body to it, storing none of it.

First on Twisted's own HTTP channel fed by hand (what reaches the application, and when), then through a real
Daphne with raw sockets (chunked uploads, `Expect: 100-continue`, connections kept alive).
"""

from __future__ import annotations

import asyncio
import socket
from types import SimpleNamespace

import pytest
from daphne.http_protocol import WebRequest
from daphne.server import Server
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.web.http import HTTPChannel

from console.daphne_tuning import HIGH_WATER, RequestBody, stream_request_bodies
from runtime.testing import chain
from tests.support import raw
from tests.support.http import multipart
from tests.support.runs import decode, image_bytes


class RecordingApp:
    """An ASGI application that reads the body only when told to, recording what it got."""

    def __init__(self) -> None:
        self.scope: dict | None = None
        self.messages: list[dict] = []
        self.read = asyncio.Event()
        self.receive = None

    async def __call__(self, scope, receive, send) -> None:
        self.scope, self.receive = scope, receive
        await asyncio.Event().wait()  # the test drives receive() itself

    async def next_message(self) -> dict:
        message = await asyncio.wait_for(self.receive(), 5)
        self.messages.append(message)
        return message


def new_channel(app) -> tuple[HTTPChannel, StringTransport]:
    stream_request_bodies()
    server = Server(application=app, endpoints=["tcp:port=0"])
    server.connections = {}
    channel = HTTPChannel()
    channel.requestFactory = WebRequest
    channel.factory = SimpleNamespace(server=server, log=lambda request: None)
    transport = StringTransport()
    channel.makeConnection(transport)
    return channel, transport


HEAD = b"POST /api/flows/x/run?output=out HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n"


async def started(app: RecordingApp) -> None:
    for _ in range(100):
        if app.receive is not None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the application did not start")


def test_installing_twice_wraps_once():
    assert stream_request_bodies() is True
    assert stream_request_bodies() is True
    assert WebRequest._tileflow_streamed is True


async def test_the_application_starts_at_the_headers_and_gets_the_body_as_it_arrives():
    app = RecordingApp()
    channel, _ = new_channel(app)
    channel.dataReceived(HEAD % 9)
    await started(app)
    assert app.scope["path"] == "/api/flows/x/run" and app.scope["query_string"] == b"output=out"
    channel.dataReceived(b"abc")
    assert await app.next_message() == {"type": "http.request", "body": b"abc", "more_body": True}
    channel.dataReceived(b"de")
    channel.dataReceived(b"f")  # what arrived since the last read comes as one message
    assert await app.next_message() == {"type": "http.request", "body": b"def", "more_body": True}
    channel.dataReceived(b"ghi")
    assert await app.next_message() == {"type": "http.request", "body": b"ghi", "more_body": False}
    request = channel.requests[0]
    assert request.content.tell() == 0  # Twisted stored nothing


async def test_a_body_the_application_does_not_read_pauses_the_socket():
    app = RecordingApp()
    channel, transport = new_channel(app)
    channel.dataReceived(HEAD % (3 * HIGH_WATER))
    await started(app)
    piece = b"\0" * (256 * 1024)
    for _ in range(HIGH_WATER // len(piece)):
        channel.dataReceived(piece)
    assert transport.producerState == "paused"
    message = await app.next_message()
    assert len(message["body"]) == HIGH_WATER and message["more_body"]
    assert transport.producerState == "producing"


class SendingApp:
    """An ASGI application that answers with as many body pieces as the test lets it, recording each send."""

    def __init__(self) -> None:
        self.sent = 0
        self.go_on = asyncio.Queue()

    async def __call__(self, scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while (piece := await self.go_on.get()) is not None:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            self.sent += 1
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def test_an_answer_waits_while_the_client_does_not_read_and_the_body_is_read_meanwhile():
    """Twisted buffered every piece of an answer its client did not read, and stopped reading the body."""
    app = SendingApp()
    channel, transport = new_channel(app)
    channel.dataReceived(HEAD % 6)
    channel.dataReceived(b"abc")
    await asyncio.sleep(0.01)
    await app.go_on.put(b"x" * 1000)
    await asyncio.sleep(0.01)
    assert app.sent == 1
    channel.pauseProducing()  # what the transport does when its send buffer is full
    assert transport.producerState == "producing"  # the body still arriving is still read
    await app.go_on.put(b"y" * 1000)
    await app.go_on.put(b"z" * 1000)
    await asyncio.sleep(0.05)
    assert b"y" * 1000 in transport.value() and b"z" not in transport.value()  # one piece more, then it waits
    assert app.sent == 1
    channel.resumeProducing()  # the client read
    await asyncio.sleep(0.01)
    assert app.sent == 3 and b"z" * 1000 in transport.value()
    channel.dataReceived(b"def")  # the body is whole: Twisted's own pause, which pauses the answer too
    channel.pauseProducing()
    await app.go_on.put(b"w")
    await app.go_on.put(None)
    await asyncio.sleep(0.02)
    assert app.sent == 3
    channel.resumeProducing()
    await asyncio.sleep(0.01)
    assert transport.value().endswith(b"0\r\n\r\n")  # the end was sent; no producer is left registered
    assert channel._requestProducer is None


async def test_a_send_waiting_for_the_client_returns_when_the_connection_is_lost():
    app = SendingApp()
    channel, _ = new_channel(app)
    channel.dataReceived(HEAD % 0)
    await asyncio.sleep(0.01)
    channel.pauseProducing()
    await app.go_on.put(b"x")
    await app.go_on.put(b"y")
    await asyncio.sleep(0.02)
    assert app.sent == 0
    channel.connectionLost(ConnectionDone())
    await asyncio.sleep(0.02)
    assert app.sent == 2  # not left waiting for ever


async def test_expect_100_continue_is_answered_when_the_body_is_first_read():
    app = RecordingApp()
    channel, transport = new_channel(app)
    channel.dataReceived(b"POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
    await started(app)
    assert b"100 Continue" not in transport.value()  # a refusal could still come first
    assert (b"expect", b"100-continue") in app.scope["headers"]
    reading = asyncio.ensure_future(app.next_message())
    await asyncio.sleep(0.01)
    assert transport.value() == b"HTTP/1.1 100 Continue\r\n\r\n"
    channel.dataReceived(b"ok")
    assert (await reading)["body"] == b"ok"


async def test_a_disconnect_ends_the_body():
    body = RequestBody(lambda: None, lambda: None)
    body.feed(b"abc")
    body.put_nowait({"type": "http.request", "body": b"", "more_body": False})  # Daphne's own (empty) feed: ignored
    waiting = asyncio.ensure_future(body.get())
    assert (await waiting)["body"] == b"abc"
    waiting = asyncio.ensure_future(body.get())
    await asyncio.sleep(0)
    body.put_nowait({"type": "http.disconnect"})
    assert await waiting == {"type": "http.disconnect"}


@pytest.fixture(scope="module")
def console(hostile_console):
    return hostile_console


@pytest.fixture(scope="module")
def flow_id(console) -> str:
    from tests.support.http import Client

    graph = {
        "nodes": [{"id": "in", "type": "source", "params": {}}, {"id": "out", "type": "output", "params": {}}],
        "edges": [{"from": "in", "to": "out"}],
    }
    status, flow = Client(console.url, console.auth).json("POST", "/api/flows", {"name": "tuning", "graph": graph})
    assert status == 201, flow
    return flow["id"]


def chunked(data: bytes, piece: int = 65536) -> bytes:
    frames = [b"%x\r\n" % len(data[i : i + piece]) + data[i : i + piece] + b"\r\n" for i in range(0, len(data), piece)]
    return b"".join(frames) + b"0\r\n\r\n"


def test_a_chunked_upload_runs(console, flow_id):
    body, content_type = multipart({"image": ("photo.png", image_bytes(640, 480, format="PNG"))})
    headers = {**console.auth, "Content-Type": content_type, "Transfer-Encoding": "chunked"}
    answer = raw.request(console.port, "POST", f"/api/flows/{flow_id}/run", headers, chunked(body))
    assert answer.status == 200, answer.body[:300]
    assert answer.body.startswith(b"\x89PNG") or b"\x89PNG" in answer.body[:16]


def test_expect_100_continue_through_daphne(console, flow_id):
    body, content_type = multipart({"image": ("photo.png", image_bytes(64, 48, format="PNG"))})
    headers = {"Content-Type": content_type, "Content-Length": str(len(body)), "Expect": "100-continue"}
    with raw.connect(console.port) as sock:  # no credential: refused at once, without a 100 first
        started = raw.time.monotonic()
        sock.sendall(raw.head("POST", f"/api/flows/{flow_id}/executions", headers))
        first = sock.recv(12)
        assert first == b"HTTP/1.1 401", first
    with raw.connect(console.port) as sock:
        sock.sendall(raw.head("POST", f"/api/flows/{flow_id}/executions", {**headers, **console.auth}))
        assert sock.recv(25) == b"HTTP/1.1 100 Continue\r\n\r\n"
        started = raw.time.monotonic()
        sock.sendall(body)
        assert raw.read_answer(sock, started).status == 201


def test_a_connection_serves_several_requests(console, flow_id):
    with raw.connect(console.port) as sock:
        for _ in range(3):
            started = raw.time.monotonic()
            sock.sendall(raw.head("GET", "/api/flows", console.auth))
            answer = raw.read_answer(sock, started)
            assert answer.status == 200 and flow_id in [flow["id"] for flow in answer.json()["flows"]]
        body = b'{"name": "second", "graph": {"nodes": [], "edges": []}}'
        started = raw.time.monotonic()
        sock.sendall(raw.head("POST", "/api/flows", {**console.auth, "Content-Length": str(len(body))}) + body[:10])
        sock.sendall(body[10:])
        assert raw.read_answer(sock, started).status == 400  # an empty graph: read whole, judged, answered


def test_a_result_cut_short_by_its_run_ends_its_connection_without_the_bodys_end(console):
    """A cancelled (or failed) run's streamed result: the client sees a truncated transfer at once, never a hang."""
    from tests.support.http import Client

    client = Client(console.url, console.auth)
    graph = chain(("blur", {"radius": 20}), output={"format": "png"})
    status, flow = client.json("POST", "/api/flows", {"name": "slow blur", "graph": graph})
    assert status == 201, flow
    photo = image_bytes(6000, 4000)
    headers = {**console.auth, "Content-Type": "image/jpeg", "Content-Length": str(len(photo))}
    with raw.connect(console.port, timeout=10) as sock:
        sock.sendall(raw.head("POST", f"/api/flows/{flow['id']}/run", headers) + photo)
        data = b""
        while b"\r\n\r\n" not in data or len(data) < 50_000:  # the head, and the first bands of the PNG
            data += sock.recv(65536)
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
        assert head.startswith("HTTP/1.1 200"), head
        lines = head.split("\r\n")
        execution = next(line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("x-execution-id"))
        status, cancelled = client.json("POST", f"/api/executions/{execution}/cancel")
        assert status == 202 and cancelled["status"] == "cancelled", cancelled
        started = raw.time.monotonic()
        while more := sock.recv(65536):  # a hang raises socket.timeout (10 s)
            data += more
        assert raw.time.monotonic() - started < 5
    assert not data.endswith(b"\r\n0\r\n\r\n")  # no last chunk: the client knows the file is not whole
    assert raw.request(console.port, "GET", "/api/health", {}).status == 200


@pytest.fixture(scope="module")
def png_flow_id(console) -> str:
    from tests.support.http import Client

    graph = chain(output={"format": "png"})
    status, flow = Client(console.url, console.auth).json("POST", "/api/flows", {"name": "to png", "graph": graph})
    assert status == 201, flow
    return flow["id"]


def test_a_client_that_reads_only_once_it_has_sent_everything_gets_its_whole_answer(console, png_flow_id):
    """What requests, browsers and most libraries do. The server's send buffer filled with the first bands of a
    large PNG and Twisted stopped reading the body: the client waited for the server and the server for the
    client, until the run failed as a stalled upload."""
    photo = image_bytes(4000, 3000)
    headers = {**console.auth, "Content-Type": "image/jpeg", "Content-Length": str(len(photo))}
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a client that is not reading yet,
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)  # and whose kernel holds little of its body
    sock.settimeout(20)
    with sock:
        sock.connect(("127.0.0.1", console.port))
        started = raw.time.monotonic()
        sock.sendall(raw.head("POST", f"/api/flows/{png_flow_id}/run", headers))
        step = len(photo) // 8
        for start in range(0, len(photo), step):
            sock.sendall(photo[start : start + step])  # blocked for good if the server stops reading
            raw.time.sleep(0.15)
        answer = raw.read_answer(sock, started)
    assert answer.status == 200, answer.body[:300]
    assert decode(answer.body).size == (4000, 3000)


def test_a_download_read_slowly_arrives_whole(console, png_flow_id):
    from tests.support.http import Client

    client = Client(console.url, console.auth)
    photo = image_bytes(2000, 1500)
    headers = {**console.auth, "Content-Type": "image/jpeg", "Content-Length": str(len(photo))}
    answer = raw.request(console.port, "POST", f"/api/flows/{png_flow_id}/run", headers, photo)
    assert answer.status == 200
    execution = answer.headers["x-execution-id"]
    status, record = client.json("GET", f"/api/executions/{execution}")
    assert status == 200 and record["status"] == "succeeded", record
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(20)
    with sock:
        sock.connect(("127.0.0.1", console.port))
        sock.sendall(raw.head("GET", f"/api/executions/{execution}/output", console.auth))
        data = b""
        while len(data) < 1 << 20:  # the first megabyte, a little at a time: the server waits for the client
            data += sock.recv(16384)
            raw.time.sleep(0.001)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(
            next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
        )
        while len(body) < length and (more := sock.recv(1 << 20)):
            body += more
    assert body == answer.body


@pytest.mark.parametrize("shape", ["one long header", "many headers"])
def test_a_head_over_the_limits_is_answered_431_with_the_reason(console, shape):
    """Twisted closed the connection without a word for a 60 kB bearer token, a bare 400 for many headers."""
    if shape == "one long header":
        headers = {"Authorization": "Bearer " + "x" * 60_000}
    else:
        headers = {f"X-Header-{number}": "y" * 100 for number in range(300)}
    answer = raw.request(console.port, "GET", "/api/flows", headers)
    assert answer.status == 431, answer
    assert "too large" in answer.json()["error"]
    assert raw.request(console.port, "GET", "/api/health", {}).status == 200
