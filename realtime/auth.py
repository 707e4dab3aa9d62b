"""WebSocket authentication: an API key in the ``Authorization`` header (non-browser clients), or a
logged-in staff session whose Origin is one of ALLOWED_HOSTS (browsers)."""

from __future__ import annotations

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.security.websocket import AllowedHostsOriginValidator, WebsocketDenier

from events.authentication import api_key_authenticate, bearer_token


class WebsocketAuthMiddleware:
    def __init__(self, inner):
        self.inner = inner
        self.browser = AllowedHostsOriginValidator(AuthMiddlewareStack(inner))

    async def __call__(self, scope, receive, send):
        headers = dict(scope.get("headers") or [])
        token = bearer_token(headers.get(b"authorization", b"").decode("latin1"))
        if token is None:
            return await self.browser(scope, receive, send)
        api_key = await database_sync_to_async(api_key_authenticate)(token)
        if api_key is None:
            return await WebsocketDenier()(scope, receive, send)
        return await self.inner(dict(scope, api_key=api_key), receive, send)


def scope_is_authorized(scope) -> bool:
    if scope.get("api_key") is not None:
        return True
    user = scope.get("user")
    return bool(user is not None and user.is_authenticated and user.is_active and user.is_staff)
