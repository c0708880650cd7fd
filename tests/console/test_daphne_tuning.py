"""Daphne's Twisted layer must not parse multipart bodies again (Django parses them)."""

import io
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


def test_bodies_django_keeps_in_memory_are_not_spooled_to_disk(settings):
    skip_twisted_form_parsing()
    small, large = new_request(), new_request()
    small.gotLength(settings.FILE_UPLOAD_MAX_MEMORY_SIZE)
    large.gotLength(settings.FILE_UPLOAD_MAX_MEMORY_SIZE + 1)
    assert isinstance(small.content, io.BytesIO)
    assert not isinstance(large.content, io.BytesIO)  # a temporary file, as Twisted does
