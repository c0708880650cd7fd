"""Django's ASGI handler, for bodies that stream in (`console.daphne_tuning`).

Django gathers a request's body before it makes the request, which suits most views. Two additions:

- A chunked body (no `Content-Length`) gets its gathered size as `CONTENT_LENGTH`: Django's form and
  multipart parsers read nothing without one, so a chunked upload looked empty.
- A route can take its body as a stream instead: `stream_body_of("api-1:run_flow")` (the URL's view
  name) makes its requests arrive at once, with an empty `request.body`, and
  `request.body_stream` yields the body's pieces as the client sends them
  (`async for piece in request.body_stream`, once; `RequestAborted` if the client goes away first).
  The upload limit and the body timeout of `console.limits` still apply to those pieces.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator

from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler
from django.urls import Resolver404, resolve

from console.limits import BodyRefused, Message, Receive, Scope, Send
from runtime.api import RunFailed

STREAMED_VIEWS: set[str] = set()


def stream_body_of(view_name: str) -> None:
    """Let the views of the URL named `view_name` read the request body as it arrives."""
    STREAMED_VIEWS.add(view_name)


def _streamed(path: str) -> bool:
    if not STREAMED_VIEWS:
        return False
    try:
        return resolve(path).view_name in STREAMED_VIEWS
    except Resolver404:
        return False


class BodyStream:
    """The body of one request, read once, as it arrives; Django meanwhile sees an empty body."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._complete = False
        self._gone = False
        self._settled = asyncio.Event()  # the body is complete, or the client went away
        self._started = False
        self._django_started = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        if self._started:
            raise RuntimeError("a request body stream is read once")
        self._started = True
        return self._pieces()

    async def _pieces(self) -> AsyncIterator[bytes]:
        while not self._complete:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self._gone = True
                self._settled.set()
                raise RequestAborted("the client went away before the request body was complete")
            self._complete = not message.get("more_body", False)
            if self._complete:
                self._settled.set()
            if message.get("body"):
                yield message["body"]

    async def django_receive(self) -> Message:
        """Django's receive: an empty body at once, then only what tells it that the client went away."""
        if not self._django_started:
            self._django_started = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self._settled.wait()
        if self._gone:
            return {"type": "http.disconnect"}
        return await self._receive()


class TileflowASGIHandler(ASGIHandler):
    """Django's ASGI handler with chunked bodies sized and opted-in routes given their body as a stream."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if _streamed(scope["path"]):
            stream = BodyStream(receive)
            scope = {**scope, "tileflow.body_stream": stream}
            receive = stream.django_receive
        await super().handle(scope, receive, send)

    def create_request(self, scope: Scope, body_file: io.IOBase):
        request, error = super().create_request(scope, body_file)
        if request is None:
            return request, error
        request.body_stream = scope.get("tileflow.body_stream")
        if "CONTENT_LENGTH" not in request.META and request.body_stream is None:
            size = body_file.seek(0, io.SEEK_END)
            body_file.seek(0)
            if size:
                request.META["CONTENT_LENGTH"] = str(size)
        return request, error


class CutShortResponses(logging.Filter):
    """Log a streamed result that a failed run cut short as one line, not as a server error's traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        failure = record.exc_info[1] if record.exc_info else None
        if isinstance(failure, RunFailed | BodyRefused):
            record.msg, record.args, record.exc_info = "a streamed result was cut short: %s", (failure,), None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True
