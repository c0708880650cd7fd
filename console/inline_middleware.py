"""Run Django's stock middleware on the event loop instead of through a thread per call.

Under ASGI, `MiddlewareMixin` runs every `process_request`, `process_view` and `process_response` in
Django's thread-sensitive executor: 13 thread hops for each request through the seven stock
middlewares, each waiting for its thread to be scheduled. While a run keeps both cores busy with
tiles, those hops cost `POST /run` ~10 ms before its view and again between the first encoded band
and the response (measured with `bench/`: first byte 87 → 75 ms). Most of these methods only read
headers and cookies and set attributes, so `run_stock_middleware_inline` makes them run inline, and
keeps the thread for calls that reach the database: a session to save, messages to load, a CSRF
check of an unsafe request (it may parse the body, and with CSRF_USE_SESSIONS it reads the session).

The classes stay the ones in settings.MIDDLEWARE (Django's deploy checks look for them by name);
their sync mode (Django's test client, WSGI) is untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest, HttpResponseBase
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.csrf import CsrfViewMiddleware
from django.middleware.locale import LocaleMiddleware
from django.middleware.security import SecurityMiddleware
from django.utils.deprecation import MiddlewareMixin

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

RequestCheck = Callable[[HttpRequest], bool]
ResponseCheck = Callable[[HttpRequest, HttpResponseBase], bool]


def _never(*args: Any) -> bool:
    return False


def _csrf_in_session(*args: Any) -> bool:
    return settings.CSRF_USE_SESSIONS  # the token is then read from, and written to, the session


def _session_to_save(request: HttpRequest, response: HttpResponseBase) -> bool:
    session = getattr(request, "session", None)
    return session is not None and (session.modified or settings.SESSION_SAVE_EVERY_REQUEST)


def _messages_to_store(request: HttpRequest, response: HttpResponseBase) -> bool:
    storage = getattr(request, "_messages", None)  # loading stored messages reads the session
    return storage is not None and (storage.used or storage.added_new)


# Which calls of each stock middleware need a thread; every other call runs inline.
STOCK: dict[type[MiddlewareMixin], tuple[RequestCheck, ResponseCheck]] = {
    SecurityMiddleware: (_never, _never),
    SessionMiddleware: (_never, _session_to_save),  # the store is lazy: only saving it reaches the database
    CommonMiddleware: (_never, _never),
    LocaleMiddleware: (_never, _never),  # the language comes from a cookie or Accept-Language, never the database
    CsrfViewMiddleware: (_csrf_in_session, _csrf_in_session),
    AuthenticationMiddleware: (_never, _never),  # sets the lazy request.user and request.auser
    MessageMiddleware: (_never, _messages_to_store),
    XFrameOptionsMiddleware: (_never, _never),
}


def _in_thread(method: Callable, *args: Any) -> Any:
    return sync_to_async(method, thread_sensitive=True)(*args)


def _inline_acall(request_needs_thread: RequestCheck, response_needs_thread: ResponseCheck):
    async def __acall__(self: MiddlewareMixin, request: HttpRequest) -> HttpResponseBase:
        response = None
        process_request = getattr(self, "process_request", None)
        if process_request is not None:
            if request_needs_thread(request):
                response = await _in_thread(process_request, request)
            else:
                response = process_request(request)
        response = response or await self.get_response(request)
        process_response = getattr(self, "process_response", None)
        if process_response is None:
            return response
        if response_needs_thread(request, response):
            return await _in_thread(process_response, request, response)
        return process_response(request, response)

    return __acall__


async def _csrf_process_view(
    process_view: Callable, request: HttpRequest, callback: Callable, args: tuple, kwargs: dict
) -> Any:
    exempt = getattr(callback, "csrf_exempt", False) or getattr(request, "csrf_processing_done", False)
    if exempt or request.method in SAFE_METHODS:  # accepted without reading the body or the session
        return process_view(request, callback, args, kwargs)
    return await _in_thread(process_view, request, callback, args, kwargs)


def _csrf_init(original_init: Callable):
    def __init__(self: CsrfViewMiddleware, get_response: Callable) -> None:
        original_init(self, get_response)
        if self.async_mode:  # Django takes process_view from the instance: a coroutine in async mode
            self.process_view = partial(_csrf_process_view, self.process_view)

    return __init__


def run_stock_middleware_inline() -> None:
    """Give the stock middleware classes an async path without thread hops (idempotent)."""
    if getattr(MiddlewareMixin, "_tileflow_inline", False):
        return
    for cls, (request_check, response_check) in STOCK.items():
        cls.__acall__ = _inline_acall(request_check, response_check)
    CsrfViewMiddleware.__init__ = _csrf_init(CsrfViewMiddleware.__init__)
    MiddlewareMixin._tileflow_inline = True
