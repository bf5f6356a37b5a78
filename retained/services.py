"""Write operations that span more than the store: publishing.

When a broker runs in this process, a publish goes through it: retained messages are stored
(group commit) and every live subscriber receives the message. Without a broker here (e.g. a
web-only process), a retained publish writes the store directly and a non-retained one has
no live subscribers to reach.
"""

from __future__ import annotations

import asyncio
import time

from django.conf import settings

from retained import runtime, store
from retained.conf import Limits
from retained.store import Actor, MessageProperties

PUBLISH_TIMEOUT_SECONDS = 30.0


def publish(
    topic: str,
    payload: bytes,
    *,
    qos: int,
    retain: bool,
    actor: Actor,
    properties: MessageProperties = store.NO_PROPERTIES,
) -> None:
    """Publish a message as `actor` (from a worker thread, never the event loop).

    Raises the store's errors; nothing is half-done.
    """
    limits: Limits = settings.RETAINED_LIMITS
    store.validate_publish(topic, payload, qos=qos, retain=retain, limits=limits)
    broker, loop = runtime.broker_and_loop()
    if broker is None or loop is None:
        if retain:
            store.set_retained(topic, payload, qos=qos, actor=actor, properties=properties)
        return
    from retained.broker.broker import Message, properties_from_store

    expiry = (
        store.clamp_message_expiry(properties.message_expiry_interval, limits)
        if retain
        else (properties.message_expiry_interval)
    )
    message = Message(
        topic=topic,
        payload=payload,
        qos=qos,
        retain=retain,
        properties=properties_from_store(properties),
        expires_at=time.time() + expiry if expiry else None,
        sender=None,
    )
    future = asyncio.run_coroutine_threadsafe(broker.publish(message, actor=actor), loop)
    future.result(timeout=PUBLISH_TIMEOUT_SECONDS)
