"""A websocket's Origin must be the handshake's own origin: scheme, host and port, or a trusted one."""

from __future__ import annotations

import json

import pytest

from console.origin import allowed_origin
from tests.support import raw
from tests.support.http import Client
from tests.support.runs import COMPRESS_AND_WATERMARK, image_bytes


def scope(origin: str | None, host: str | None = "127.0.0.1:8000", scheme: str = "ws", **headers: str) -> dict:
    pairs = [("origin", origin), ("host", host), *headers.items()]
    return {
        "type": "websocket",
        "scheme": scheme,
        "headers": [(name.replace("_", "-").encode(), value.encode()) for name, value in pairs if value is not None],
    }


@pytest.mark.parametrize(
    "origin, host, scheme",
    [
        ("http://127.0.0.1:8000", "127.0.0.1:8000", "ws"),
        ("http://localhost:8000", "localhost:8000", "ws"),
        ("https://localhost", "localhost", "wss"),
        ("https://localhost", "localhost:443", "wss"),  # default ports are the same port
        ("http://[::1]:8000", "[::1]:8000", "ws"),
    ],
)
def test_the_own_origin_is_allowed(origin, host, scheme):
    assert allowed_origin(scope(origin, host, scheme))


@pytest.mark.parametrize(
    "origin, host",
    [
        ("http://localhost:9999", "localhost:8000"),  # another port of the same host
        ("http://127.0.0.1:9999", "127.0.0.1:8000"),
        ("https://127.0.0.1:8000", "127.0.0.1:8000"),  # another scheme
        ("http://localhost:8000", "127.0.0.1:8000"),  # another host name, though allowed
        ("http://evil.example:8000", "evil.example:8000"),  # a host not in ALLOWED_HOSTS
        ("http://127.0.0.1:notaport", "127.0.0.1:8000"),
        ("null", "127.0.0.1:8000"),
        (None, "127.0.0.1:8000"),
        ("http://127.0.0.1:8000", None),
    ],
)
def test_any_other_origin_is_refused(origin, host):
    assert not allowed_origin(scope(origin, host))


def test_trusted_origins_and_the_proxy_header(settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://tileflow.example.com"]
    assert allowed_origin(scope("https://tileflow.example.com", "127.0.0.1:8000"))
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    forwarded = scope("https://localhost:8000", "localhost:8000", x_forwarded_proto="https")
    assert allowed_origin(forwarded)
    assert not allowed_origin(scope("https://localhost:8000", "localhost:8000"))


def handshake(port: int, origin: str, path: str, token: str) -> int:
    headers = {
        "Host": f"127.0.0.1:{port}",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
        "Origin": origin,
        "Authorization": f"Bearer {token}",
    }
    head = raw.head("GET", path, headers)
    with raw.connect(port, timeout=10) as sock:
        sock.sendall(head)
        return int(sock.recv(64).split(b" ", 2)[1])


def test_through_daphne_only_the_own_origin_opens_a_socket(hostile_console):
    client = Client(hostile_console.url, hostile_console.auth)
    status, flow = client.json("POST", "/api/flows", {"name": "origin", "graph": COMPRESS_AND_WATERMARK})
    assert status == 201, flow
    status, _, body = client.upload(f"/api/flows/{flow['id']}/executions", image_bytes(64, 48))
    assert status == 201, body
    path = f"/ws/executions/{json.loads(body)['id']}/"
    port, token = hostile_console.port, hostile_console.token
    assert handshake(port, f"http://127.0.0.1:{port}", path, token) == 101
    assert handshake(port, "http://127.0.0.1:9999", path, token) == 403
    assert handshake(port, f"http://localhost:{port}", path, token) == 403
    assert handshake(port, f"https://127.0.0.1:{port}", path, token) == 403
