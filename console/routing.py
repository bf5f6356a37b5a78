"""WebSocket routes (the live console pages and the MQTT test client)."""

from __future__ import annotations

from typing import Any

from django.urls import path

from console.consumers import RetainedDetailConsumer, RetainedListConsumer
from console.consumers_test_client import MqttTestClientConsumer

websocket_urlpatterns: list[Any] = [
    path("ws/retained/", RetainedListConsumer.as_asgi()),
    path("ws/retained/detail/", RetainedDetailConsumer.as_asgi()),
    path("ws/test-client/", MqttTestClientConsumer.as_asgi()),
]
