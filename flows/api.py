"""The JSON API of CONTRACT §3: routers mounted at /api/, one authentication, one error shape.

Every error answers `{"error": "..."}` or `{"errors": [{"node": ..., "message": ...}]}`; ninja's default
`{"detail": ...}` shapes (and its 422) never reach a client.
"""

import json
import logging

from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from flows.api_batches import router as batches_router
from flows.api_cluster import router as cluster_router
from flows.api_executions import router as executions_router
from flows.api_flows import router as flows_router
from flows.api_triggers import router as triggers_router
from flows.auth import MISSING_CREDENTIAL, api_auth
from flows.validation import describe_error

logger = logging.getLogger("tileflow.api")

api = NinjaAPI(
    title="Tileflow API",
    version="1",
    description="Flows of image steps, run as streams. Authenticate with the browser session (and its CSRF "
    "token) or `Authorization: Bearer <token>` (`manage.py createtoken USERNAME`).",
    auth=api_auth,
    openapi_url="/schema",
    docs_url="/docs",
)
api.add_router("", flows_router)
api.add_router("", executions_router)
api.add_router("", batches_router)
api.add_router("", triggers_router)
api.add_router("", cluster_router)

# Where ninja says a parameter came from; the client thinks in field names, not in these.
PARAM_SOURCES = {"body", "query", "path", "header", "cookie", "form", "file"}


def _error(request: HttpRequest, message: str, status: int) -> HttpResponse:
    return api.create_response(request, {"error": message}, status=status)


@api.exception_handler(AuthenticationError)
def on_unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    message = exc.message if exc.message != "Unauthorized" else None
    return _error(
        request,
        message or MISSING_CREDENTIAL,
        exc.status_code,
    )


@api.exception_handler(HttpError)
def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if isinstance(exc.__cause__, ValueError):  # ninja's "Cannot parse request body" hides which error
        return _error(request, f"the request body is not valid JSON: {exc.__cause__}", exc.status_code)
    return _error(request, exc.message, exc.status_code)


@api.exception_handler(Http404)
def on_not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return _error(request, str(exc) or "not found", 404)


@api.exception_handler(ValidationError)
def on_invalid_request(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    """Answer 400 with each malformed parameter or body field named, as graph errors are."""
    if any(error.get("loc", ("",))[0] == "body" for error in exc.errors) and not _is_json_object(request.body):
        # ninja looks for fields even in a list or a number: "name is required" would mislead.
        return api.create_response(
            request, {"errors": [{"node": None, "message": "the request body must be a JSON object"}]}, status=400
        )
    errors = []
    for error in exc.errors:
        loc = list(error.get("loc", ()))
        source = loc.pop(0) if loc and loc[0] in PARAM_SOURCES else None
        if source == "body" and loc:
            loc.pop(0)  # the view's argument name, which the client never sees
        message = describe_error({**error, "loc": loc}) if loc else describe_error(error)
        errors.append({"node": None, "message": message})
    return api.create_response(request, {"errors": errors}, status=400)


def _is_json_object(body: bytes) -> bool:
    try:
        return isinstance(json.loads(body), dict)
    except ValueError:
        return False


@api.exception_handler(Exception)
def on_unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    logger.exception("unexpected error in %s %s", request.method, request.path)
    return _error(request, "internal error; it has been logged", 500)
