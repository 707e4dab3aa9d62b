"""ASGI entry point: HTTP (Django) and WebSockets (Channels), served by daphne."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from realtime.auth import WebsocketAuthMiddleware  # noqa: E402
from realtime.routing import websocket_urlpatterns  # noqa: E402

from . import transport  # noqa: E402
from .twisted_uploads import disable_twisted_multipart_parsing  # noqa: E402

disable_twisted_multipart_parsing()


class EmbeddedWorkerStarter:
    """Starts the in-process scoring worker on the server's event loop (embedded mode only)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            transport.server_started()
        return await self.app(scope, receive, send)


application = EmbeddedWorkerStarter(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": WebsocketAuthMiddleware(URLRouter(websocket_urlpatterns)),
        }
    )
)
