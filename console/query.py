"""Under /api/, a query parameter given twice (`?flow=a&flow=b`) is refused: 400 naming it.

No API call takes a list in its query string, and Django would quietly read the last value, so a
script's mistake (or an attacker's ambiguity between a proxy and the server) would go unnoticed.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse

from console.errors import API_PREFIX
from console.middleware_shapes import RefusingMiddleware


class SingleValuedQueryMiddleware(RefusingMiddleware):
    """Django middleware: answer 400 for a repeated query parameter under /api/, before the view."""

    def refusal(self, request: HttpRequest) -> HttpResponse | None:
        if not request.path_info.startswith(API_PREFIX):
            return None
        repeated = sorted(name for name, values in request.GET.lists() if len(values) > 1)
        if not repeated:
            return None
        names = ", ".join(f"'{name}'" for name in repeated)
        return JsonResponse({"error": f"the query parameter {names} is given more than once"}, status=400)
