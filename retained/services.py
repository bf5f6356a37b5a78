"""Write operations that span more than the store: publishing.

Until the broker exists, a retained publish writes the store directly and a non-retained
publish has nobody to reach. The broker issue routes both through the broker so live
subscribers receive them; callers (API, console) do not change.
"""

from __future__ import annotations

from django.conf import settings

from retained import store
from retained.conf import Limits
from retained.store import Actor, MessageProperties


def publish(
    topic: str,
    payload: bytes,
    *,
    qos: int,
    retain: bool,
    actor: Actor,
    properties: MessageProperties = store.NO_PROPERTIES,
) -> None:
    """Publish a message as `actor`. Raises the store's errors; nothing is half-done."""
    limits: Limits = settings.RETAINED_LIMITS
    if retain:
        store.set_retained(topic, payload, qos=qos, actor=actor, properties=properties)
        return
    store.validate_topic(topic, limits=limits)
    if qos not in (0, 1):
        raise store.InvalidQosError(f"qos must be 0 or 1, got {qos}")
    if len(payload) > limits.max_payload_bytes:
        raise store.PayloadTooLargeError(
            f"payload is {len(payload)} bytes; the limit is {limits.max_payload_bytes} bytes"
        )
