"""Refuse an oversized request body with 413 before any of it is read or stored, and a stalled one with 408.

Two layers, because the request reaches Django in two ways. Under Daphne, Django's ASGI handler
gathers the whole body before any Django middleware runs, so `UploadLimitASGIMiddleware` wraps the
ASGI application, which Daphne starts as soon as the headers are in (`console.daphne_tuning`): it
answers a too-large `Content-Length` without reading the body, stops a chunked body (no length) as
soon as it grows past the limit, and gives up a body from which nothing arrived for
`TILEFLOW["BODY_TIMEOUT_SECONDS"]` (408). `UploadLimitMiddleware` is the same size check as a Django
middleware, for WSGI and the test clients, where the body is parsed only when a view asks for it.

The limit is `TILEFLOW["MAX_UPLOAD_BYTES"]` for the image plus `MULTIPART_ALLOWANCE` for the
multipart envelope; the view checks the file's own size exactly.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from console.headers import RAW_SECURITY_HEADERS
from console.middleware_shapes import RefusingMiddleware

# Boundaries, part headers and a few small form fields: far more than a real upload's envelope needs.
MULTIPART_ALLOWANCE = 64 * 1024

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


# A batch's body holds many images (each still held to MAX_UPLOAD_BYTES by the batch's upload handler).
BATCH_PATH = re.compile(r"^/api/flows/[^/]+/batches/?$")


def _limit_setting(path: str) -> tuple[int, str]:
    if BATCH_PATH.match(path):
        return settings.TILEFLOW["BATCH_MAX_UPLOAD_BYTES"], "TILEFLOW_BATCH_MAX_UPLOAD_BYTES"
    return settings.TILEFLOW["MAX_UPLOAD_BYTES"], "TILEFLOW_MAX_UPLOAD_BYTES"


def body_limit(path: str = "") -> int:
    """Return the largest request body accepted at `path`, in bytes."""
    return _limit_setting(path)[0] + MULTIPART_ALLOWANCE


def too_large_message(size: int | None, path: str = "") -> str:
    """Say why a body was refused, naming the limit and the setting that raises it."""
    limit, setting = _limit_setting(path)
    what = f"the request body is {size} bytes" if size is not None else "the request body is too large"
    return f"{what}; the upload limit is {limit} bytes ({setting})"


def _declared_length(value: str | bytes | None) -> int | None:
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        return None
    return length if length >= 0 else None


class UploadLimitMiddleware(RefusingMiddleware):
    """Django middleware: answer 413 when Content-Length exceeds the limit, before the body is parsed."""

    def refusal(self, request: HttpRequest) -> HttpResponse | None:
        length = _declared_length(request.META.get("CONTENT_LENGTH"))
        if length is not None and length > body_limit(request.path):
            response = JsonResponse({"error": too_large_message(length, request.path)}, status=413)
            response["Connection"] = "close"  # the unread body must not be taken for the next request
            return response
        return None


class UploadLimitASGIMiddleware:
    """ASGI middleware: refuse an oversized body unread (declared) or past the limit (chunked); end a stalled one."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        limit = body_limit(path)
        idle = settings.TILEFLOW["BODY_TIMEOUT_SECONDS"]
        headers = dict(scope.get("headers") or [])
        length = _declared_length(headers.get(b"content-length"))
        if length is not None and length > limit:
            await send_json_refusal(send, 413, too_large_message(length, path))
            return
        received = 0
        refusal: tuple[int, str] | None = None
        body_done = False
        started = False
        told: dict[str, tuple[int, str]] = {}  # the refusal, for an app that reads the body as it arrives
        scope = {**scope, BODY_REFUSAL: told}

        async def guarded_receive() -> Message:
            nonlocal received, refusal, body_done
            if refusal is not None:
                return {"type": "http.disconnect"}
            if body_done:  # Django then only listens for a disconnect, for as long as the response takes
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), idle)
            except TimeoutError:
                refusal = told["refusal"] = (408, stalled_message(idle))
                return {"type": "http.disconnect"}  # Django drops what it gathered and answers nothing
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received > limit:
                    refusal = told["refusal"] = (413, too_large_message(None, path))
                    return {"type": "http.disconnect"}
            return message

        finished = False

        async def tracked_send(message: Message) -> None:
            nonlocal started, finished
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                finished = True
            await send(message)

        await self.app(scope, guarded_receive, tracked_send)
        if refusal is not None and not started:
            await send_json_refusal(send, *refusal)
        elif refusal is not None and not finished:
            # An answer that had begun (a /run streaming its result) stopped when its body was refused:
            # the server must end the connection without the answer's end, or the client waits for ever.
            raise BodyRefused(refusal[1])


class BodyRefused(ConnectionAbortedError):
    """The request body was refused after the answer began: the connection is closed without its end."""


BODY_REFUSAL = "tileflow.body_refusal"  # scope key: {"refusal": (status, message)} once the body is refused


def body_refusal(scope: Scope) -> tuple[int, str] | None:
    """Return why this middleware ended the request's body (413 past the limit, 408 stalled), or None."""
    return (scope.get(BODY_REFUSAL) or {}).get("refusal")


def stalled_message(seconds: float) -> str:
    """Say why a body that stopped arriving was given up."""
    return f"the request body stalled: nothing arrived for {seconds:g} seconds (TILEFLOW_BODY_TIMEOUT_SECONDS)"


async def send_json_refusal(send: Send, status: int, message: str) -> None:
    """Answer `{"error": message}` and close the connection: the body, if any, stays unread."""
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *RAW_SECURITY_HEADERS,  # Django's middleware, which adds them elsewhere, never sees this answer
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
