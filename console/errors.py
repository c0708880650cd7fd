"""Error answers: `{"error": "..."}` for everything under /api/ (CONTRACT §3), Django's pages elsewhere.

The API's own errors are JSON already (flows/api.py). What reaches a client before or around it, an
unknown path, a refused Host header, a method the path does not take, an error in a middleware,
comes from Django's error handlers (`handler400` … `handler500` in console/urls.py) and from
`ApiErrorsAsJsonMiddleware`, which turns any other non-JSON error answer under /api/ into JSON.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.views import defaults

from console.middleware_shapes import ResponseMiddleware

API_PREFIX = "/api/"


def _is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PREFIX)


def _json(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not _is_api(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, DisallowedHost):
        return _json(400, "the Host header names no host this server answers to (TILEFLOW_ALLOWED_HOSTS)")
    return _json(400, "bad request")


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not _is_api(request):
        return defaults.permission_denied(request, exception)
    return _json(403, "forbidden")


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not _is_api(request):
        return defaults.page_not_found(request, exception)
    return _json(404, f"no such API path: {request.method} {request.path}")


def server_error(request: HttpRequest) -> HttpResponse:
    if not _is_api(request):
        return defaults.server_error(request)
    return _json(500, "internal error; it has been logged")


class WithoutTraceback(logging.Filter):
    """Log a record in one line: a refused Host header is the client's doing, not a failure to debug."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        return True


class ApiErrorsAsJsonMiddleware(ResponseMiddleware):
    """Give every error answer under /api/ a JSON body saying what it is (405 from ninja, for one)."""

    def process(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if response.status_code < 400 or not _is_api(request):
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        answer = _json(response.status_code, _describe(request, response))
        for header in ("Allow", "Retry-After", "WWW-Authenticate", "X-Execution-Id"):
            if header in response:
                answer[header] = response[header]
        return answer


def _describe(request: HttpRequest, response: HttpResponseBase) -> str:
    if response.status_code == 405:
        return f"{request.method} is not allowed here; allowed: {response.get('Allow', 'none')}"
    try:
        return HTTPStatus(response.status_code).phrase.lower()
    except ValueError:
        return f"error {response.status_code}"
