"""Websocket paths no consumer serves are refused at the handshake, without a traceback."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator

from console.routing import websocket_routes
from tests.support import raw

HEADERS = [(b"host", b"127.0.0.1:8000"), (b"origin", b"http://127.0.0.1:8000")]


@pytest.mark.parametrize("path", ["/ws/nope/", "/ws/executions/not-a-uuid/", "/", "/ws/executions/"])
async def test_an_unknown_path_is_refused(path):
    socket = WebsocketCommunicator(websocket_routes(), path, headers=HEADERS)
    connected, _ = await socket.connect(timeout=5)
    assert not connected


def test_through_daphne_unknown_paths_answer_403_and_log_no_traceback(hostile_console):
    port = hostile_console.port
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
        "Origin": f"http://127.0.0.1:{port}",
    }
    for path in ("/ws/nope/", "/ws/executions/abc/", "/ws/"):
        head = raw.head("GET", path, {"Host": f"127.0.0.1:{port}", **headers})
        with raw.connect(port, timeout=10) as sock:
            sock.sendall(head)
            assert sock.recv(64).startswith(b"HTTP/1.1 403"), path
    log = hostile_console.log.read_text()
    assert "Traceback" not in log and "No route found" not in log
