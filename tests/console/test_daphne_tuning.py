"""Daphne must not parse multipart bodies again (Django parses them), nor feed Django bodies 8 kB at a time."""

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


def test_servers_hand_bodies_to_django_in_pieces_of_a_megabyte_or_more():
    from daphne.server import Server

    from console.daphne_tuning import REQUEST_PIECE

    skip_twisted_form_parsing()
    endpoints = ["tcp:port=0"]
    assert Server(application=None, endpoints=endpoints).request_buffer_size == REQUEST_PIECE
    larger = Server(application=None, endpoints=endpoints, request_buffer_size=4 * REQUEST_PIECE)
    assert larger.request_buffer_size == 4 * REQUEST_PIECE  # a larger size asked for is kept
