"""The one ASGI application: console pages, the data-plane API, WebSockets."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from console.routing import websocket_urlpatterns  # noqa: E402
from retained.api.asgi import DataPlaneRouter  # noqa: E402
from retained.broker.websocket import MqttWebSocketRouter  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": DataPlaneRouter(ASGIStaticFilesHandler(django_asgi_app)),
        # /mqtt (MQTT over WebSocket) first: devices send no Origin and need no session.
        "websocket": MqttWebSocketRouter(
            AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
        ),
    }
)
