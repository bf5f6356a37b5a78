"""The only caller of the channel layer: retained-message events -> the "retained" group.

The store emits RetainedChanged after commit, on whatever thread committed (the broker's
writer thread, a Django view thread). This forwards each event, as a plain dict, onto the
event loop that serves the console's WebSockets, so consumers in that process (or, with a
Redis channel layer, in any process) refresh their rows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from channels.layers import get_channel_layer

from retained import events

logger = logging.getLogger(__name__)

RETAINED_GROUP = "retained"


def install(loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    """Start forwarding retained events to the channel layer; returns the undo function."""
    layer = get_channel_layer()
    if layer is None:
        return lambda: None

    async def send(message: dict[str, Any]) -> None:
        try:
            await layer.group_send(RETAINED_GROUP, message)
        except Exception:
            logger.exception("could not forward a retained event to the channel layer")

    def forward(event: events.RetainedChanged) -> None:
        message = event.as_message()
        loop.call_soon_threadsafe(lambda: loop.create_task(send(message)))

    return events.subscribe(forward)
