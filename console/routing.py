"""Websocket routes for browsers and channel routes for the step workers."""

from channels.auth import AuthMiddlewareStack
from channels.routing import ChannelNameRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator


def websocket_routes():
    from django.urls import path

    from console.consumers import ExecutionConsumer

    return AllowedHostsOriginValidator(
        AuthMiddlewareStack(URLRouter([path("ws/executions/<uuid:execution_id>/", ExecutionConsumer.as_asgi())]))
    )


def channel_routes():
    from runtime.api import lane_routes

    return ChannelNameRouter(lane_routes())
