"""WebSocket routes (the live console and the MQTT test client join here)."""

from __future__ import annotations

from typing import Any

websocket_urlpatterns: list[Any] = []
