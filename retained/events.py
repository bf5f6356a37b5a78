"""Domain events that leave the store after commit: small, serialisable, no ORM objects.

Listeners (the console's live layer, the broker's cache) subscribe in-process; each event
also converts to a plain dict so a channel layer can carry it across processes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

logger = logging.getLogger(__name__)

ChangeKind = Literal["set", "cleared", "expired"]


@dataclass(frozen=True, slots=True)
class RetainedChanged:
    topic: str
    change: ChangeKind
    qos: int | None = None
    payload_size: int | None = None
    last_modified_ms: int | None = None

    def as_message(self) -> dict[str, Any]:
        return {
            "type": "retained.changed",
            "topic": self.topic,
            "change": self.change,
            "qos": self.qos,
            "payload_size": self.payload_size,
            "last_modified_ms": self.last_modified_ms,
        }


Listener = Callable[[RetainedChanged], None]

_listeners: list[Listener] = []
_lock = threading.Lock()


def subscribe(listener: Listener) -> Callable[[], None]:
    """Register a listener; returns the function that unregisters it."""
    with _lock:
        _listeners.append(listener)

    def unsubscribe() -> None:
        with _lock:
            if listener in _listeners:
                _listeners.remove(listener)

    return unsubscribe


def emit(event: RetainedChanged) -> None:
    """Deliver to every listener; one failing listener must not stop the others."""
    with _lock:
        current = list(_listeners)
    for listener in current:
        try:
            listener(event)
        except Exception:
            logger.exception("retained event listener %r failed", listener)
