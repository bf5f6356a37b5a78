"""What is running in this process (set by the serve command, read by /healthz)."""

from __future__ import annotations

import threading

_lock = threading.Lock()
_broker_status = "disabled"  # "disabled" until a broker starts here; then "starting" / "ok"


def set_broker_status(status: str) -> None:
    global _broker_status
    with _lock:
        _broker_status = status


def broker_status() -> str:
    with _lock:
        return _broker_status
