"""WebSocket routes (the live console and, later, the MQTT test client join here)."""

from __future__ import annotations

from typing import Any

from django.urls import path

from console.consumers import RetainedDetailConsumer, RetainedListConsumer

websocket_urlpatterns: list[Any] = [
    path("ws/retained/", RetainedListConsumer.as_asgi()),
    path("ws/retained/detail/", RetainedDetailConsumer.as_asgi()),
]
