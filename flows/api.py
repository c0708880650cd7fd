"""The JSON API of CONTRACT §3: routers mounted at /api/, one authentication, one error shape.

Every error answers `{"error": "..."}` or `{"errors": [{"node": ..., "message": ...}]}`; ninja's default
`{"detail": ...}` shapes (and its 422) never reach a client.
"""

import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent, TooManyFilesSent
from django.db import DataError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.http.multipartparser import MultiPartParserError
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from flows import json_text
from flows.api_batches import router as batches_router
from flows.api_cluster import router as cluster_router
from flows.api_executions import router as executions_router
from flows.api_flows import router as flows_router
from flows.api_triggers import router as triggers_router
from flows.auth import MISSING_CREDENTIAL, api_auth
from flows.validation import describe_error

logger = logging.getLogger("tileflow.api")

# Calls whose multipart body must carry the image in the field `image` (CONTRACT §3).
IMAGE_UPLOADS = re.compile(r"/flows/\{flow_id\}/(executions|run)$")


ERROR_SCHEMA = "#/components/schemas/ErrorOut"
LARGEST_QUERY_INTEGER = 2**62


def _document(responses: dict, status: int, description: str) -> None:
    if status not in responses and str(status) not in responses:
        responses[status] = {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": ERROR_SCHEMA}}},
        }


def _bound_integers(schema: dict[str, Any]) -> None:
    """A query integer past 2^62 is refused (console/query.py): say so in the parameter's schema."""
    for option in [schema, *schema.get("anyOf", [])]:
        if option.get("type") == "integer":
            option.setdefault("maximum", LARGEST_QUERY_INTEGER)
            option.setdefault("minimum", -LARGEST_QUERY_INTEGER)


def document_every_answer(schema: dict[str, Any]) -> dict[str, Any]:
    """Add to each operation the answers that come from before its view: a bad Host, a stalled or huge body."""
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                _bound_integers(parameter.get("schema", {}))
            responses = operation.setdefault("responses", {})
            _document(responses, 400, "malformed: a parameter, the body, or a Host this server does not serve")
            body = operation.get("requestBody")
            if body is None:
                continue
            _document(responses, 408, "the request body stalled (TILEFLOW_BODY_TIMEOUT_SECONDS)")
            _document(responses, 413, "the request body is larger than this call takes")
            _document(responses, 415, "the body's Content-Type is not one this call takes")
            form = body.get("content", {}).get("multipart/form-data", {}).get("schema", {})
            if IMAGE_UPLOADS.search(path) and "image" in form.get("properties", {}):
                form["required"] = sorted({*form.get("required", []), "image"})
                _document(responses, 507, "the upload could not be stored (the disk is full)")
    return schema


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield


def without_body(response: HttpResponseBase) -> HttpResponseBase:
    """Return the answer to a HEAD: the GET's status and headers, no body; the GET's body is never produced."""
    if response.streaming:  # a download or a stream: its iterator is closed unread, so no work starts
        bodiless = StreamingHttpResponse(_nothing() if response.is_async else (), status=response.status_code)
    else:
        bodiless = HttpResponse(status=response.status_code)
        bodiless["Content-Length"] = str(len(response.content))
    for name, value in response.items():
        bodiless[name] = value
    bodiless.cookies = response.cookies
    response.close()
    return bodiless


# The order `Allow` lists methods in (ninja lists a set, in no stable order).
METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _method_rank(method: str) -> int:
    return METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)


def _answered(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    if response.status_code == 405 and response.has_header("Allow"):
        response["Allow"] = ", ".join(sorted(response["Allow"].split(", "), key=_method_rank))
    return without_body(response) if request.method == "HEAD" else response


def answering_head(view: Callable) -> Callable:
    """Wrap a path's view: HEAD answers as GET without a body (RFC 9110 §9.3.2), a 405 lists `Allow` in order."""
    if iscoroutinefunction(view):

        async def path_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            return _answered(request, await view(request, *args, **kwargs))

    else:

        def path_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            return _answered(request, view(request, *args, **kwargs))

    path_view.csrf_exempt = True  # as ninja's own views: the API checks CSRF itself (flows/auth.py)
    return path_view


class TileflowAPI(NinjaAPI):
    """ninja's API, with HEAD wherever GET is, and an OpenAPI document that lists every status the server sends."""

    def get_openapi_schema(self, *, path_prefix: str | None = None, path_params: dict | None = None) -> Any:
        schema = super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params)
        for operations in schema["paths"].values():
            operations.pop("head", None)  # the GET's twin: documenting it twice would repeat its operationId
        return document_every_answer(schema)

    def _get_urls(self) -> list:
        """Take HEAD wherever GET is taken (so `Allow` lists it too) and answer it without a body."""
        for bound_router in self._get_bound_routers():
            for path_view in bound_router.path_operations.values():
                for operation in path_view.operations:
                    if "GET" in operation.methods and "HEAD" not in operation.methods:
                        operation.methods = [*operation.methods, "HEAD"]
        urls = super()._get_urls()
        for pattern in urls:
            if getattr(pattern, "callback", None) is not None:
                pattern.callback = answering_head(pattern.callback)
        return urls


api = TileflowAPI(
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
        return isinstance(json_text.loads(body), dict)
    except ValueError:
        return False


@api.exception_handler(RequestDataTooBig)
def on_body_too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    size = request.META.get("CONTENT_LENGTH") or "more than that"
    return _error(
        request,
        f"the request body is {size} bytes; this call takes at most {limit} bytes of JSON or form fields "
        "(DATA_UPLOAD_MAX_MEMORY_SIZE; images go in the multipart field 'image')",
        413,
    )


@api.exception_handler(TooManyFieldsSent)
def on_too_many_fields(request: HttpRequest, exc: TooManyFieldsSent) -> HttpResponse:
    limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
    return _error(request, f"the form has more than {limit} fields (DATA_UPLOAD_MAX_NUMBER_FIELDS)", 413)


@api.exception_handler(TooManyFilesSent)
def on_too_many_files(request: HttpRequest, exc: TooManyFilesSent) -> HttpResponse:
    limit = settings.DATA_UPLOAD_MAX_NUMBER_FILES
    return _error(request, f"the form has more than {limit} files (DATA_UPLOAD_MAX_NUMBER_FILES)", 413)


@api.exception_handler(MultiPartParserError)
def on_bad_multipart(request: HttpRequest, exc: MultiPartParserError) -> HttpResponse:
    return _error(request, f"the multipart body is malformed: {exc}", 400)


@api.exception_handler(SuspiciousOperation)
def on_suspicious(request: HttpRequest, exc: SuspiciousOperation) -> HttpResponse:
    return _error(request, f"the request is malformed: {exc}", 400)


@api.exception_handler(OverflowError)
@api.exception_handler(DataError)
def on_out_of_range(request: HttpRequest, exc: Exception) -> HttpResponse:
    """A number the database cannot hold (`?offset=9223372036854775808`) is the caller's error."""
    return _error(request, "a number in the request is out of range", 400)


@api.exception_handler(Exception)
def on_unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
    logger.exception("unexpected error in %s %s", request.method, request.path)
    return _error(request, "internal error; it has been logged", 500)
