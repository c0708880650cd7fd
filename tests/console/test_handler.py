"""Django's handler sizes chunked bodies, and hands opted-in routes their body as it arrives."""

from __future__ import annotations

import asyncio
import json

import pytest

from console import handler
from console.handler import TileflowASGIHandler, stream_body_of

pytestmark = pytest.mark.urls("tests.console.streamed_urls")


@pytest.fixture
def streamed_view():
    stream_body_of("stream")
    yield
    handler.STREAMED_VIEWS.discard("stream")


def http_scope(path: str, headers: list | None = None) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), (b"content-type", b"text/plain"), *(headers or [])],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }


class Client:
    """Drive the handler as Daphne would, one body piece at a time, noting what was sent when."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces
        self.given = 0
        self.sent: list[dict] = []
        self.answered_after: int | None = None
        self.gone = asyncio.Event()

    async def receive(self) -> dict:
        if self.given < len(self.pieces):
            self.given += 1
            await asyncio.sleep(0)
            more = self.given < len(self.pieces)
            return {"type": "http.request", "body": self.pieces[self.given - 1], "more_body": more}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict) -> None:
        self.sent.append(message)

    async def call(self, path: str, headers: list | None = None) -> tuple[int, dict]:
        task = asyncio.ensure_future(TileflowASGIHandler()(http_scope(path, headers), self.receive, self.send))
        while not any(message["type"] == "http.response.body" for message in self.sent):
            await asyncio.sleep(0.01)
        self.gone.set()
        await asyncio.wait_for(task, 10)
        body = b"".join(message.get("body", b"") for message in self.sent if message["type"] == "http.response.body")
        return self.sent[0]["status"], json.loads(body)


async def test_a_chunked_body_gets_its_length():
    status, answer = await Client([b"ab", b"cd", b"e"]).call("/gathered/")
    assert status == 200
    assert answer == {"length": "5", "body": "abcde"}


async def test_a_declared_length_is_kept():
    status, answer = await Client([b"abc"]).call("/gathered/", [(b"content-length", b"3")])
    assert status == 200
    assert answer == {"length": "3", "body": "abc"}


async def test_an_opted_in_view_reads_the_body_as_it_arrives(streamed_view):
    client = Client([b"a" * 10, b"b" * 20, b"c" * 30])
    status, answer = await client.call("/stream/")
    assert status == 200
    assert answer == {"pieces": [10, 20, 30], "body": ""}  # request.body stays empty: the stream had it


async def test_the_view_starts_before_the_body_ends(streamed_view, monkeypatch):
    from tests.console import streamed_urls

    started = asyncio.Event()
    monkeypatch.setattr(streamed_urls, "view_started", started.set)

    class Slow(Client):
        async def receive(self) -> dict:
            if self.given == 1:
                await asyncio.wait_for(started.wait(), 5)  # the second piece only once the view runs
            return await super().receive()

    status, answer = await Slow([b"x"] * 5).call("/stream/")
    assert status == 200 and answer["pieces"] == [1] * 5


async def test_a_client_gone_mid_body_ends_the_stream(streamed_view):
    class Gone(Client):
        async def receive(self) -> dict:
            if self.given == 1:
                return {"type": "http.disconnect"}
            return await super().receive()

    client = Gone([b"a", b"b", b"c"])
    # The view's stream raises RequestAborted; Django ends the request by itself, answering nothing.
    await asyncio.wait_for(TileflowASGIHandler()(http_scope("/stream/"), client.receive, client.send), 5)
    assert client.sent == []
