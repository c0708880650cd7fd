"""Websocket authentication by `Authorization: Bearer <token>`, for clients other than browsers."""

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware


@database_sync_to_async
def _user_for(header: str):
    from flows.auth import authenticate_bearer

    return authenticate_bearer(header)


class BearerTokenMiddleware(BaseMiddleware):
    """Set scope["user"] from a bearer token when the handshake carries one (after session auth)."""

    async def __call__(self, scope, receive, send):
        header = dict(scope.get("headers", [])).get(b"authorization")
        if header:
            user = await _user_for(header.decode("latin-1"))
            if user is not None:
                scope = {**scope, "user": user}
            else:
                from django.contrib.auth.models import AnonymousUser

                scope = {**scope, "user": AnonymousUser()}
        return await super().__call__(scope, receive, send)
