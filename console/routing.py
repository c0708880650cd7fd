"""Websocket routes for browsers."""

from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator


def websocket_routes():
    from django.urls import path

    from console.consumers import BatchConsumer, ExecutionConsumer
    from console.middleware import BearerTokenMiddleware

    routes = URLRouter(
        [
            path("ws/executions/<uuid:execution_id>/", ExecutionConsumer.as_asgi()),
            path("ws/batches/<uuid:batch_id>/", BatchConsumer.as_asgi()),
        ]
    )
    return AllowedHostsOriginValidator(AuthMiddlewareStack(BearerTokenMiddleware(routes)))
