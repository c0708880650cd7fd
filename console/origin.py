"""Websocket `Origin` check: the page that opens a socket must come from this very origin (scheme, host, port).

Channels' `AllowedHostsOriginValidator` compares the Origin's host name with ALLOWED_HOSTS and ignores
its port, so a page served by anything else on the same host (`http://localhost:9999`) could open a
socket with the visitor's session. This is the rule Django's CSRF check applies to unsafe requests:
the Origin must equal the scheme and Host of the handshake itself (the Host being an allowed one), or
be listed in CSRF_TRUSTED_ORIGINS (a TLS-terminating proxy's public origin).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

DEFAULT_PORTS = {"http": 80, "https": 443}


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def _secure(scope: dict[str, Any]) -> bool:
    if scope.get("scheme") in ("wss", "https"):
        return True
    proxy = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy:  # ("HTTP_X_FORWARDED_PROTO", "https"): trusted only when configured
        name = proxy[0].removeprefix("HTTP_").replace("_", "-").lower().encode()
        return _header(scope, name) == proxy[1]
    return False


def allowed_origin(scope: dict[str, Any]) -> bool:
    """Tell whether the handshake's Origin is this server's own origin, or a trusted one."""
    origin = _header(scope, b"origin")
    host = _header(scope, b"host")
    if not origin:
        return False
    if origin in settings.CSRF_TRUSTED_ORIGINS:
        return True
    if not host:
        return False
    domain, port = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return False
    scheme = "https" if _secure(scope) else "http"
    try:
        parsed = urlsplit(origin)
        origin_port = parsed.port or DEFAULT_PORTS.get(parsed.scheme)
    except ValueError:  # a port that is not a number
        return False
    own_port = int(port) if port else DEFAULT_PORTS[scheme]
    return (parsed.scheme, parsed.hostname, origin_port) == (scheme, domain.strip("[]"), own_port)


class SameOriginValidator:
    """ASGI middleware: refuse a websocket handshake whose Origin is not this server's own."""

    def __init__(self, application: Callable[..., Awaitable[None]]) -> None:
        self.application = application

    async def __call__(self, scope, receive, send) -> None:
        if allowed_origin(scope):
            await self.application(scope, receive, send)
        else:
            await WebsocketDenier()(scope, receive, send)
