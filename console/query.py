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

# What int() reads: digits (any script's), with the ASCII blanks it strips around them. Not `\s`, which
# also matches separators such as \x1c that int() refuses: `?secret=%1C0` was a 500.
INTEGER = re.compile(r"^[ \t\n\r\f\v]*[+-]?\d{1,4300}[ \t\n\r\f\v]*$")
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
        huge = sorted(name for name, value in request.GET.items() if _out_of_range(value))
        if huge:
            return JsonResponse({"error": f"the query parameter '{huge[0]}' is out of range"}, status=400)
        return None


def _out_of_range(value: str) -> bool:
    """Tell whether `value` is an integer no database integer holds; anything else is the view's to judge."""
    if not INTEGER.match(value):
        return False
    try:
        return abs(int(value)) > LARGEST
    except ValueError:  # a form int() does not read after all: not a number, so not out of range
        return False
