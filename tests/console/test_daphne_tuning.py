"""Daphne's Twisted layer must not parse multipart bodies again (Django parses them)."""

from types import SimpleNamespace

from daphne.http_protocol import WebRequest
from twisted.internet.testing import StringTransport
from twisted.web.http import HTTPChannel

from console.daphne_tuning import skip_twisted_form_parsing


class Server:
    """The one call Daphne's request makes on its server when it is created."""

    def protocol_connected(self, protocol) -> None:
        self.protocol = protocol


def new_request() -> WebRequest:
    channel = HTTPChannel()
    channel.factory = SimpleNamespace(server=Server())
    channel.makeConnection(StringTransport())
    return WebRequest(channel)


def test_requests_made_after_the_tuning_skip_the_form_parse():
    assert skip_twisted_form_parsing() is True
    assert skip_twisted_form_parsing() is True  # idempotent: wrapped once
    assert new_request()._parsePOSTFormSubmission is False
