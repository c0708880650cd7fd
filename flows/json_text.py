"""JSON from a client: `json.loads`, with nesting past the interpreter's recursion limit a ValueError too.

`json.loads` of `[[[…]]]` a thousand deep raises RecursionError, which no caller expected: every JSON
body of the API answered 500 (found by an acceptance probe). Callers that catch ValueError now answer 400.
"""

from __future__ import annotations

import json
from typing import Any


class TooDeep(ValueError):
    """The JSON nests arrays or objects deeper than this process can read."""


def loads(text: str | bytes) -> Any:
    """Return the document in `text`; raise ValueError if it is not JSON, TooDeep if it nests too deeply."""
    try:
        return json.loads(text)
    except RecursionError:
        raise TooDeep("it is nested too deeply") from None
