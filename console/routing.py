"""Websocket routes for browsers."""

from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter


async def refuse_unknown_path(scope, receive, send) -> None:
    """Refuse the handshake of a path no consumer serves (Channels would raise, and log a traceback)."""
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close"})


def websocket_routes():
    from django.urls import path, re_path

    from console.consumers import BatchConsumer, ExecutionConsumer
    from console.middleware import BearerTokenMiddleware
    from console.origin import SameOriginValidator

    routes = URLRouter(
        [
            path("ws/executions/<uuid:execution_id>/", ExecutionConsumer.as_asgi()),
            path("ws/batches/<uuid:batch_id>/", BatchConsumer.as_asgi()),
            re_path(r"", refuse_unknown_path),  # last: every path no route above takes
        ]
    )
    return SameOriginValidator(AuthMiddlewareStack(BearerTokenMiddleware(routes)))
