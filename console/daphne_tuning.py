"""Request bodies stream through Daphne to the application, which starts as soon as the headers are in.

Twisted's `Request` stores the whole body (in memory, or a temporary file past 100 kB) and Daphne calls
the application only once it is complete: a limit checked by the application came after a 10 GB
upload was on disk, and a client that declared 100 MB and sent nothing held a request forever. Here,
for every HTTP request (websocket handshakes keep Daphne's own path):

- the application starts from `allHeadersReceived` (Daphne's own `process()` builds the scope, so its
  header checks stay), and can answer before one byte of the body is read;
- each piece Twisted decodes (`handleContentChunk`, Content-Length or chunked) goes to the request's
  `RequestBody`, the application's ASGI `receive`: `http.request` with `more_body=True` for what has
  arrived since the last call, then `more_body=False` once the body is complete. Nothing is stored in
  Twisted: no temporary file, no copy of the whole body;
- while the application does not read (more than `HIGH_WATER` bytes waiting), the connection stops
  reading from its socket: TCP slows the client down, memory stays bounded;
- `Expect: 100-continue` is answered only when the application first reads the body, so a refusal
  reaches the client before it sends anything;
- a request head over Twisted's limits (16 kB, or one line of it) is answered `431` with the reason:
  Twisted answered a bare 400, or closed the connection without a word for a long line;
- an answer finished before the body is complete closes the connection after it; what the client
  still sends meanwhile is read and dropped for `LINGER_SECONDS`, so it sees the answer, not a reset;
- the answer goes at the client's pace: the application's `send` of a body piece waits while the
  connection's send buffer is full (`ResponseFlow`, a Twisted push producer). Twisted buffered every
  piece, so a client that did not read held a 70 MB PNG in the server's memory, per connection;
- and a full send buffer does not stop the reading of a body still arriving. Twisted's channel pauses
  its socket when it cannot send, which is right between requests, but a client that reads the answer
  only once it has sent its whole body (`requests`, browsers, most libraries) then waited for the
  server while the server waited for it: its run failed as a stalled upload after 30 s.

An application that fails after its response started (a run that fails or is cancelled while its
result streams) gets its connection closed, the body's end never sent: the client sees a truncated
transfer (a client that does not read what was sent before is cut off after `ABORT_SECONDS`). Daphne's
own `handle_exception` tried to start a 500 response then, which raised inside its application
checker: the connection stayed open for ever, and the checker, which reaps finished applications and
times requests out, was not scheduled again.

Batching what has arrived into one message (instead of Daphne's 8 kB pieces) keeps a 10 MB photo at
a few dozen messages for Django's `read_body`. Twisted's multipart parse of `request.args` (220-320 ms
per 24 MP photo on the event loop, never read by Daphne) no longer runs: `requestReceived` only ends
the body.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from functools import partial
from typing import Any

# Bytes received and not yet read by the application before the socket stops being read.
HIGH_WATER = 4 * 1024 * 1024
# How long a connection answered before its body ended goes on reading (and dropping) what the client sends.
LINGER_SECONDS = 2.0
# How long a connection whose answer failed waits for its client to read what was sent before it is cut.
ABORT_SECONDS = 30.0

Message = dict[str, Any]


class RequestBody:
    """The ASGI receive channel of one HTTP request: its body as it arrives, then `http.disconnect`."""

    def __init__(
        self,
        pause: Callable[[], None],
        resume: Callable[[], None],
        on_first_read: Callable[[], None] | None = None,
    ) -> None:
        self._pause, self._resume, self._on_first_read = pause, resume, on_first_read
        self._chunks: list[bytes] = []
        self._waiting = 0
        self._paused = False
        self._complete = False  # the client sent the whole body
        self._end_delivered = False
        self._disconnected = False
        self._wakeup: asyncio.Future | None = None
        self.received = 0

    @property
    def complete(self) -> bool:
        return self._complete

    def feed(self, data: bytes) -> None:
        """Take a piece of the body from the connection."""
        if self._disconnected or not data:
            return
        self._chunks.append(data)
        self._waiting += len(data)
        self.received += len(data)
        if self._waiting >= HIGH_WATER:  # again if paused already: Twisted may have resumed the socket since
            self._paused = True
            self._pause()
        self._wake()

    def end(self) -> None:
        """Note that the body is complete."""
        self._complete = True
        self._wake()

    def put_nowait(self, message: Message) -> None:
        """Take a message from Daphne: only `http.disconnect` counts (the body comes through `feed`)."""
        if message["type"] == "http.disconnect":
            self._disconnected = True
            self._chunks.clear()
            self._waiting = 0
            self._wake()

    async def get(self) -> Message:
        """Return what arrived since the last call, waiting for something if nothing did."""
        if self._on_first_read is not None:
            first_read, self._on_first_read = self._on_first_read, None
            first_read()
        while True:
            if self._disconnected:
                return {"type": "http.disconnect"}
            if self._chunks or (self._complete and not self._end_delivered):
                body = b"".join(self._chunks) if len(self._chunks) != 1 else self._chunks[0]
                self._chunks.clear()
                self._waiting = 0
                if self._paused:
                    self._paused = False
                    self._resume()
                self._end_delivered = self._complete
                return {"type": "http.request", "body": body, "more_body": not self._complete}
            self._wakeup = asyncio.get_running_loop().create_future()
            try:
                await self._wakeup
            finally:
                self._wakeup = None

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)


class ResponseFlow:
    """Whether the client takes the answer as fast as it is sent: the request's push producer, for Twisted.

    Twisted calls `pauseProducing` when the connection's send buffer is full and `resumeProducing`
    once it has drained; `stopProducing` when the connection is gone. The application's `send` waits
    in `writable` while paused, so at most one piece beyond the buffer is held for a slow client.
    """

    def __init__(self) -> None:
        self._paused = False
        self._stopped = False
        self._waiters: list[asyncio.Future] = []

    def pauseProducing(self) -> None:
        if not self._stopped:
            self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._wake()

    def stopProducing(self) -> None:
        self._stopped = True
        self.resumeProducing()

    async def writable(self) -> None:
        """Return once the connection can take more (at once unless it is paused), or is gone."""
        while self._paused:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


def _keep_reading_bodies(channel) -> None:
    """Let a full send buffer pause the answer alone while a request body is still arriving (see the top)."""
    if getattr(channel, "_tileflow_reads_bodies", False):
        return
    pause_everything = channel.pauseProducing

    def pauseProducing() -> None:
        request = channel.requests[0] if channel.requests else None
        body = getattr(request, "request_body", None)
        if body is None or body.complete:
            pause_everything()
            return
        channel._waitingForTransport = True
        if channel._requestProducer is not None:
            channel._requestProducer.pauseProducing()

    channel.pauseProducing = pauseProducing  # the transport calls its producer's, this instance's
    channel._tileflow_reads_bodies = True


def _cut_off_later(transport) -> None:
    """Close a connection once its client has read what was sent, or cut it after ABORT_SECONDS."""
    from twisted.internet import reactor

    transport.loseConnection()
    reactor.callLater(ABORT_SECONDS, _abort, transport)


def _abort(transport) -> None:
    if transport.connected:
        transport.abortConnection()


def _is_websocket(request) -> bool:
    upgrade = request.requestHeaders.getRawHeaders(b"Upgrade")
    return bool(upgrade) and upgrade[0].lower() == b"websocket"


def _drop(data: bytes) -> None:
    """Read and forget what a client sends after its answer."""


def _close_after_answer(channel) -> None:
    """Stop taking requests from this connection; drop what still arrives; close it after a while."""
    channel.persistent = False
    channel.dataReceived = _drop
    transport = channel.transport
    if transport is None:
        return
    transport.resumeProducing()  # reading may have been paused for back-pressure
    transport.loseWriteConnection()
    from twisted.internet import reactor

    reactor.callLater(LINGER_SECONDS, transport.loseConnection)


def _refuse_large_headers(channel) -> None:
    """Answer a request whose head is over Twisted's limits with 431 and close: Twisted said 400, or nothing."""
    limit = channel.totalHeadersSize
    body = json.dumps({"error": f"the request's headers are too large: at most {limit} bytes"}).encode()
    channel.transport.write(
        b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
    )
    channel.loseConnection()


async def _send(server, request, message: Message) -> None:
    """The application's ASGI `send`: Daphne's, then a wait while the client is behind (see ResponseFlow)."""
    await server.handle_reply(request, message)
    if message["type"] == "http.response.body" and message.get("more_body", False):
        await request.response_flow.writable()


# Statuses Twisted's table lacks (it wrote "422 Unknown Status", "429 Unknown Status" on the status line):
# RFC 9110's names (Python 3.11 still says "Unprocessable Entity"), nginx's 499 for a client that went
# away, and the standard library's for the rest.
STATUS_NAMES = {422: b"Unprocessable Content", 499: b"Client Closed Request"}


def name_statuses() -> None:
    """Give Twisted the reason phrases of the statuses it does not know."""
    from http import HTTPStatus

    from twisted.web import http

    for code, phrase in STATUS_NAMES.items():
        http.RESPONSES.setdefault(code, phrase)
    for status in HTTPStatus:
        http.RESPONSES.setdefault(status.value, status.phrase.encode("ascii"))


def stream_request_bodies() -> bool:
    """Make Daphne stream HTTP request bodies from now on (idempotent); return False when Daphne is absent."""
    try:
        from daphne.http_protocol import WebRequest
        from daphne.server import Server
        from twisted.web.http import HTTPChannel
    except ImportError:
        return False
    if getattr(WebRequest, "_tileflow_streamed", False):
        return True
    original_got_length = WebRequest.gotLength
    original_request_received = WebRequest.requestReceived
    original_handle_content_chunk = WebRequest.handleContentChunk
    original_finish = WebRequest.finish
    original_handle_reply = WebRequest.handle_reply
    original_handle_exception = WebRequest.handle_exception
    original_create_application = Server.create_application
    original_connection_lost = WebRequest.connectionLost
    original_line_received = HTTPChannel.lineReceived

    def gotLength(self: WebRequest, length: int | None) -> None:
        self.request_body = None
        if _is_websocket(self):
            original_got_length(self, length)
            return
        channel = self.channel
        producer = channel._networkProducer
        expect = self.requestHeaders.getRawHeaders(b"Expect")
        expects_continue = bool(expect) and expect[0].lower() == b"100-continue" and channel._version == b"HTTP/1.1"
        send_continue = channel._send100Continue if expects_continue else None
        self.request_body = RequestBody(producer.pauseProducing, producer.resumeProducing, send_continue)
        self.response_flow = ResponseFlow()
        self.registerProducer(self.response_flow, True)
        _keep_reading_bodies(channel)
        self.content = io.BytesIO()  # stays empty: Daphne's process() finds no stored body to hand on
        self.method, self.uri, self.clientproto = channel._command, channel._path, channel._version
        self.path = self.uri.split(b"?", 1)[0]
        self.args = {}
        self.process()
        if expects_continue:
            self.requestHeaders.removeHeader(b"Expect")  # or Twisted answers it at once, after this returns

    def handleContentChunk(self, data: bytes) -> None:
        if self.request_body is None:
            original_handle_content_chunk(self, data)
        elif not self.finished:
            self.request_body.feed(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self.request_body is None:
            original_request_received(self, command, path, version)
        else:
            self.request_body.end()

    def finish(self) -> None:
        if self.producer is not None:
            self.unregisterProducer()  # before Twisted's clean-up, which logs a producer left behind
        body = self.request_body
        if body is None or body.complete or self._disconnected:
            original_finish(self)
            return
        channel = self.channel
        self.queued = True  # Twisted must not take this unread body for the next request on the connection
        original_finish(self)
        _close_after_answer(channel)

    def handle_reply(self, message: Message) -> None:
        original_handle_reply(self, message)
        body = self.request_body
        if message["type"] == "http.response.start" and body is not None and not body.complete:
            self.responseHeaders.setRawHeaders(b"Connection", [b"close"])  # the headers are written with the body

    def handle_exception(self: WebRequest, exception: BaseException) -> None:
        if not self._response_started:
            original_handle_exception(self, exception)  # a 500 response
            return
        # Part of the answer went out: ending the connection without the body's end is what tells the client.
        self.channel.persistent = False
        if self.channel.transport is not None:
            _cut_off_later(self.channel.transport)

    def create_application(self: Server, protocol, scope: dict) -> Any:
        body = getattr(protocol, "request_body", None)
        if scope["type"] != "http" or body is None:
            return original_create_application(self, protocol, scope)
        # Daphne's own create_application, with the request's body as the application's receive.
        assert "application_instance" not in self.connections[protocol]
        scope.setdefault("asgi", {"version": "3.0"})
        instance = self.application(scope=scope, receive=body.get, send=partial(_send, self, protocol))
        if protocol not in self.connections:
            return None
        self.connections[protocol]["application_instance"] = asyncio.ensure_future(
            instance, loop=asyncio.get_event_loop()
        )
        return body

    def connectionLost(self: WebRequest, reason) -> None:
        if self.response_flow is not None:
            self.response_flow.stopProducing()  # a send waiting for the client returns
        original_connection_lost(self, reason)

    def lineReceived(self: HTTPChannel, line: bytes) -> None:
        if self._receivedHeaderSize + len(line) > self.totalHeadersSize:
            _refuse_large_headers(self)
            return
        original_line_received(self, line)

    HTTPChannel.lineReceived = lineReceived
    HTTPChannel.lineLengthExceeded = lambda self, line: _refuse_large_headers(self)  # one line over MAX_LENGTH
    WebRequest.request_body = None
    WebRequest.response_flow = None
    WebRequest.connectionLost = connectionLost
    WebRequest.gotLength = gotLength
    WebRequest.handleContentChunk = handleContentChunk
    WebRequest.requestReceived = requestReceived
    WebRequest.finish = finish
    WebRequest.handle_reply = handle_reply
    WebRequest.handle_exception = handle_exception
    Server.create_application = create_application
    WebRequest._tileflow_streamed = True
    name_statuses()
    return True
