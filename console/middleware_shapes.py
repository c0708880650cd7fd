"""Two shapes of Django middleware, each the same in sync and async mode (no thread hop).

`ResponseMiddleware` adjusts every response (`process`); `RefusingMiddleware` may answer a request
itself before the view (`refusal` returns the answer, or None to let it through).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase


class _Middleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)


class ResponseMiddleware(_Middleware):
    """Subclasses implement `process(request, response)`, returning the response to send."""

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        return self.process(request, self.get_response(request))

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        return self.process(request, await self.get_response(request))

    def process(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        raise NotImplementedError


class RefusingMiddleware(_Middleware):
    """Subclasses implement `refusal(request)`: an answer that stops the request, or None."""

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        return self.refusal(request) or self.get_response(request)

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        return self.refusal(request) or await self.get_response(request)

    def refusal(self, request: HttpRequest) -> HttpResponseBase | None:
        raise NotImplementedError
