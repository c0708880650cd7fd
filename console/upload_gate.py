"""Refuse an upload the caller may not make (401, 404) before one byte of its body is read.

Under Daphne the application starts when the headers are in (`console.daphne_tuning`), but Django's
handler gathers the whole body before any view or middleware can judge the caller. This ASGI
middleware judges it first, for the calls that carry an image (CONTRACT §3 and §7): the credential,
exactly as the API reads it (a bearer token if the header is there, else the session cookie), and
whether the flow is the caller's. A bearer token's user and flow go on to the view in the scope
(`flows.auth.Vouched`), which takes them as found, with no second query before the body is read; a
session is checked again by the view, with its CSRF token.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from channels.db import database_sync_to_async
from django.conf import settings
from django.http.cookie import parse_cookie

from console.limits import Receive, Scope, Send, send_json_refusal
from flows.auth import (
    BAD_TOKEN,
    MISSING_CREDENTIAL,
    VOUCHED,
    Vouched,
    authenticate_bearer,
    authenticate_session,
    get_owned_or_404,
)

UPLOAD_PATH = re.compile(r"^/api/flows/(?P<flow_id>[^/]+)/(?:executions|run|batches)/?$")


@database_sync_to_async
def _refusal(
    authorization: str | None, session_key: str | None, flow_id: str
) -> tuple[tuple[int, str] | None, Vouched | None]:
    """Return the refusal of this caller (or None), and what was checked of a bearer token's caller."""
    from django.http import Http404

    from flows.models import Flow

    if authorization:  # as the API reads it: an empty header is no header
        user = authenticate_bearer(authorization)
        if user is None:
            return (401, BAD_TOKEN), None
    else:
        user = authenticate_session(session_key)
        if user is None:
            return (401, MISSING_CREDENTIAL), None
    try:
        flow = get_owned_or_404(Flow.objects.select_related("owner"), user, flow_id)
    except Http404:
        return (404, "no such flow"), None
    # The view need not look a token up again (a session is checked again, with its CSRF token).
    return None, (Vouched(authorization, user, flow) if authorization else None)


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    """Return a header's value as the view reads it: one sent twice is joined as Django joins it."""
    values = [value.decode("latin-1") for key, value in headers if key.lower() == name]
    if name == b"cookie":
        return "; ".join(value.rstrip("; ") for value in values) if values else None
    return ",".join(values) if values else None


class UploadGateASGIMiddleware:
    """ASGI middleware: answer an upload with no or a bad credential, or for another's flow, unread."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = UPLOAD_PATH.match(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if match is not None:
            headers = scope.get("headers") or []
            cookies = parse_cookie(_header(headers, b"cookie") or "")
            refusal, checked = await _refusal(
                _header(headers, b"authorization"), cookies.get(settings.SESSION_COOKIE_NAME), match["flow_id"]
            )
            if refusal is not None:
                await send_json_refusal(send, *refusal)
                return
            if checked is not None:
                scope = {**scope, VOUCHED: checked}
        await self.app(scope, receive, send)
