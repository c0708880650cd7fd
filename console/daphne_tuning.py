"""Stop Daphne's Twisted layer from parsing multipart bodies that nobody reads.

Twisted's `Request.requestReceived` parses every multipart POST into `request.args` with the
`email` package, on the server's only event-loop thread, before Daphne hands the raw body to
Django, which parses it again. Daphne never reads `args`. For a 24 MP photo that parse cost
220-320 ms before a run could start, and it blocked every other request and websocket meanwhile.
"""

from __future__ import annotations


def skip_twisted_form_parsing() -> bool:
    """Turn the parse off for requests Daphne makes from now on; return False when Daphne is absent."""
    try:
        from daphne.http_protocol import WebRequest
    except ImportError:
        return False
    if getattr(WebRequest, "_tileflow_no_form_parsing", False):
        return True
    original_init = WebRequest.__init__

    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self._parsePOSTFormSubmission = False

    WebRequest.__init__ = __init__
    WebRequest._tileflow_no_form_parsing = True
    return True
