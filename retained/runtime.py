"""What is running in this process (set by serve/runbroker, read by /healthz and services)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

_lock = threading.Lock()
_broker_status = "disabled"  # "disabled" when no broker runs here; "starting" / "ok" / "stopped"
_broker: Any = None
_loop: asyncio.AbstractEventLoop | None = None


def set_broker_status(status: str) -> None:
    global _broker_status
    with _lock:
        _broker_status = status


def broker_status() -> str:
    with _lock:
        return _broker_status


def set_broker(broker: Any, loop: asyncio.AbstractEventLoop | None = None) -> None:
    global _broker, _loop
    with _lock:
        _broker, _loop = broker, loop


def broker_and_loop() -> tuple[Any, asyncio.AbstractEventLoop | None]:
    with _lock:
        return _broker, _loop


_mqtt_port: int | None = None


def set_mqtt_port(port: int | None) -> None:
    global _mqtt_port
    with _lock:
        _mqtt_port = port


def mqtt_port() -> int | None:
    """The MQTT port the broker in this process listens on (None when none runs here)."""
    with _lock:
        return _mqtt_port


_mqtts_port: int | None = None


def set_mqtts_port(port: int | None) -> None:
    global _mqtts_port
    with _lock:
        _mqtts_port = port


def mqtts_port() -> int | None:
    """The MQTT-over-TLS port of the broker in this process (None when none listens)."""
    with _lock:
        return _mqtts_port
