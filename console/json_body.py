"""Under /api/, a JSON body must be an object: every call takes one, and ninja would read a list as no fields.

`PATCH /api/flows/{id}` with `[null, null]` answered 200 having changed nothing; schemathesis found it.
A body that is not JSON at all, or too large, is left to the API, which says which; one nested too
deeply for the API to read is refused here.
"""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse

from console.errors import API_PREFIX
from console.middleware_shapes import RefusingMiddleware
from flows import json_text

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class JsonObjectBodyMiddleware(RefusingMiddleware):
    """Django middleware: answer 400 for a JSON body under /api/ that is not an object."""

    def refusal(self, request: HttpRequest) -> HttpResponse | None:
        if request.method not in BODY_METHODS or not request.path_info.startswith(API_PREFIX):
            return None
        if request.content_type != "application/json" or getattr(request, "body_stream", None) is not None:
            return None
        try:
            document = json_text.loads(request.body)
        except json_text.TooDeep as error:  # the API's own parse would fail with a RecursionError
            message = f"the request body is not valid JSON: {error}"
            return JsonResponse({"errors": [{"node": None, "message": message}]}, status=400)
        except (ValueError, RequestDataTooBig):
            return None  # not JSON, or too large: the API says which
        if isinstance(document, dict):
            return None
        message = "the request body must be a JSON object"
        return JsonResponse({"errors": [{"node": None, "message": message}]}, status=400)
