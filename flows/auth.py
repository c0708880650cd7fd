"""Who is calling (CONTRACT §3): a bearer token for scripts, the session with CSRF for browsers.

`authenticate_bearer` is plain, synchronous and database-based so the websocket consumer can reuse it.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import timedelta
from types import SimpleNamespace
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Model, Q, QuerySet
from django.http import Http404, HttpRequest
from django.middleware.csrf import REASON_NO_REFERER, CsrfViewMiddleware
from django.utils import timezone
from ninja.errors import AuthenticationError, HttpError
from ninja.security import HttpBearer
from ninja.security.session import SessionAuth

from flows.models import ApiToken

# Writing last_used_at on every call would turn each read into a write; a minute is precise enough.
LAST_USED_RESOLUTION = timedelta(minutes=1)

M = TypeVar("M", bound=Model)

MISSING_CREDENTIAL = "authentication required: log in, or send 'Authorization: Bearer <token>'"
BAD_TOKEN = "invalid, revoked or malformed token: send 'Authorization: Bearer <token>'"


def authenticate_bearer(header_value: str | None) -> AbstractBaseUser | None:
    """Return the active user owning the unrevoked token in an `Authorization: Bearer …` value, or None."""
    if not header_value:
        return None
    scheme, _, token = header_value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    row = (
        ApiToken.objects.select_related("owner")
        .filter(digest=ApiToken.hash(token), revoked_at__isnull=True, owner__is_active=True)
        .first()
    )
    if row is None:
        return None
    now = timezone.now()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        # A conditional update: concurrent calls write at most once per minute between them.
        ApiToken.objects.filter(pk=row.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION)
        ).update(last_used_at=now)
    return row.owner


def authenticate_session(session_key: str | None) -> AbstractBaseUser | None:
    """Return the active user logged in with the session `session_key` (the session cookie), or None."""
    if not session_key:
        return None
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import get_user

    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    user = get_user(SimpleNamespace(session=store))  # checks the password hash the session was made with
    return user if user.is_authenticated and user.is_active else None


VOUCHED = "tileflow.vouched"  # the ASGI scope key of what `console.upload_gate` checked already


@dataclass(frozen=True, slots=True)
class Vouched:
    """A bearer token the upload gate authenticated for this request, its user, and the flow it checked."""

    authorization: str
    user: AbstractBaseUser
    flow: Any  # flows.models.Flow, the owner's


def vouched(request: HttpRequest) -> Vouched | None:
    """Return what the upload gate checked of this request's caller, if it checked it."""
    found = getattr(request, "scope", {}).get(VOUCHED)
    return found if isinstance(found, Vouched) else None


class BearerTokenAuth(HttpBearer):
    """`Authorization: Bearer <token>`; a header that is present but wrong is refused outright.

    ninja awaits what an auth returns in an async view when it has `is_async`, and calls it plainly
    in a sync one (run in a thread: no event loop there). So on the event loop this answers with a
    coroutine, which takes the user the upload gate already authenticated for the same header (no
    thread hop, no query before an upload's body is read) and else looks the token up in a thread.
    """

    def __init__(self) -> None:
        super().__init__()
        self.is_async = True  # ninja's AuthBase sets it from `authenticate`, which is sync

    def __call__(self, request: HttpRequest) -> Any:
        header = request.headers.get("Authorization")
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # a sync view's thread
            return self.authenticate(request, header) if header else None
        return self._acall(request, header)

    async def _acall(self, request: HttpRequest, header: str | None) -> Any:
        if not header:
            return None
        checked = vouched(request)
        if checked is not None and checked.authorization == header:
            request.user = checked.user
            return checked.user
        return await sync_to_async(self.authenticate)(request, header)

    def authenticate(self, request: HttpRequest, token: str) -> Any:
        user = authenticate_bearer(token)
        if user is None:
            raise AuthenticationError(401, BAD_TOKEN)
        request.user = user
        return user


class _CsrfReason(CsrfViewMiddleware):
    """Django's CSRF check, giving the reason it refuses a request (None when it accepts it)."""

    def _reject(self, request: HttpRequest, reason: str) -> str:
        return reason


def _checked_view(request: HttpRequest) -> None:
    """The view `_CsrfReason` judges a request for: one that is not CSRF-exempt."""


def refuse_without_csrf(request: HttpRequest) -> None:
    """Raise a 403 saying why when a session call fails Django's CSRF check: its Origin, Referer or token."""
    check = _CsrfReason(_checked_view)
    request.csrf_processing_done = False
    check.process_request(request)
    reason = check.process_view(request, _checked_view, (), {})
    if reason is None:
        return
    if reason.startswith("Origin checking failed"):
        raise HttpError(
            403, f"CSRF check failed: the request's Origin {request.META.get('HTTP_ORIGIN')} is not this site"
        )
    if reason == REASON_NO_REFERER:
        raise HttpError(403, "CSRF check failed: an HTTPS request needs a Referer header from this site")
    if reason.startswith("Referer checking failed"):
        raise HttpError(
            403, f"CSRF check failed: the request's Referer {request.META.get('HTTP_REFERER')} is not this site"
        )
    raise HttpError(403, "CSRF check failed: send the csrftoken cookie's value in the X-CSRFToken header")


class SessionCsrfAuth(SessionAuth):
    """The browser's session; its unsafe calls need the CSRF token, as Django's forms do.

    An anonymous caller gets None (hence a 401), not a CSRF failure: CSRF only guards a session.
    """

    def __call__(self, request: HttpRequest) -> Any:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        if self.csrf and not getattr(request, "_ninja_csrf_exempt", False):
            refuse_without_csrf(request)
        return user


bearer_auth = BearerTokenAuth()
session_auth = SessionCsrfAuth(csrf=True)
# The bearer comes first: a script's token must not be judged by the browser's CSRF rule.
api_auth = [bearer_auth, session_auth]


def get_owned_or_404(model_or_queryset: type[M] | QuerySet[M], user: Any, object_id: Any) -> M:
    """Return the object with `object_id` owned by `user`; raise Http404 for a malformed id or another's object."""
    queryset = (
        model_or_queryset if isinstance(model_or_queryset, QuerySet) else model_or_queryset._default_manager.all()
    )
    missing = Http404(f"no such {queryset.model._meta.verbose_name}")
    try:
        key = object_id if isinstance(object_id, uuid.UUID) else uuid.UUID(str(object_id))
    except ValueError:
        raise missing from None
    found = queryset.filter(pk=key, owner=user).first()
    if found is None:
        raise missing
    return found
