"""Under /api/, a query parameter given twice (`?flow=a&flow=b`), or a number past 2^62, is refused: 400 naming it.

No API call takes a list in its query string, and Django would quietly read the last value, so a
script's mistake (or an attacker's ambiguity between a proxy and the server) would go unnoticed. A
number no database integer holds (`?offset=9223372036854775808`) would fail in the query itself.
"""

from __future__ import annotations

import re

from django.http import HttpRequest, HttpResponse, JsonResponse

from console.errors import API_PREFIX
from console.middleware_shapes import RefusingMiddleware

INTEGER = re.compile(r"^\s*[+-]?\d{1,4300}\s*$")
LARGEST = 2**62  # offset + limit must still fit a 64-bit integer


class SingleValuedQueryMiddleware(RefusingMiddleware):
    """Django middleware: answer 400 for a repeated query parameter under /api/, before the view."""

    def refusal(self, request: HttpRequest) -> HttpResponse | None:
        if not request.path_info.startswith(API_PREFIX):
            return None
        repeated = sorted(name for name, values in request.GET.lists() if len(values) > 1)
        if repeated:
            names = ", ".join(f"'{name}'" for name in repeated)
            return JsonResponse({"error": f"the query parameter {names} is given more than once"}, status=400)
        huge = sorted(name for name, value in request.GET.items() if INTEGER.match(value) and abs(int(value)) > LARGEST)
        if huge:
            return JsonResponse({"error": f"the query parameter '{huge[0]}' is out of range"}, status=400)
        return None
