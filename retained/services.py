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

from retained import runtime, store, throttles
from retained.conf import Limits
from retained.ratelimit import Throttled
from retained.store import Actor, MessageProperties

PUBLISH_TIMEOUT_SECONDS = 30.0


class RetainedPublishThrottledError(store.StoreError):
    """AWS: retained publishes with a payload are rate limited, per account and per topic."""

    def __init__(self, throttled: Throttled) -> None:
        super().__init__(throttled.message)
        self.throttled = throttled
        self.retry_after = throttled.retry_after
        self.retry_after_seconds = throttled.retry_after_seconds


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

    Raises the store's errors (RetainedPublishThrottledError over the rate limits); nothing
    is half-done.
    """
    limits: Limits = settings.RETAINED_LIMITS
    store.validate_publish(topic, payload, qos=qos, retain=retain, limits=limits)
    if retain and payload:
        # Charged here, once, for the API and the console; the broker charges only MQTT
        # clients. AWS: 0-byte deletes are never throttled.
        throttled = throttles.retained_publish_limiter().try_acquire(topic)
        if throttled is not None:
            raise RetainedPublishThrottledError(throttled)
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
