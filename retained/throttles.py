"""This process's rate limiters, built from `settings.RETAINED_LIMITS` when first used.

One `RetainedPublishLimiter` serves everything that publishes retained messages in the
process: the broker (MQTT clients; it is handed the object when it starts), the HTTP API
and the console (charged in `retained.services.publish`, never again by the broker). Will
messages are not charged: one fires at most once per connection, and refusing it would lose
it. The limits are per process: `runbroker` and a `serve --no-broker` each count their own.

When `settings.RETAINED_LIMITS` is replaced (tests), the next call builds fresh limiters.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from django.conf import settings

from retained.conf import Limits
from retained.ratelimit import RateLimiter, RetainedPublishLimiter


@dataclass(frozen=True, slots=True)
class _Limiters:
    limits: Limits
    retained_publishes: RetainedPublishLimiter
    get_retained: RateLimiter
    list_retained: RateLimiter


_lock = threading.Lock()
_current: _Limiters | None = None


def _limiters() -> _Limiters:
    global _current
    limits: Limits = settings.RETAINED_LIMITS
    with _lock:
        if _current is None or _current.limits is not limits:
            _current = _Limiters(
                limits=limits,
                retained_publishes=RetainedPublishLimiter(
                    per_account=limits.retained_publishes_per_second,
                    per_topic=limits.retained_publishes_per_topic_per_second,
                ),
                get_retained=RateLimiter(limits.get_retained_per_second),
                list_retained=RateLimiter(limits.list_retained_per_second),
            )
        return _current


def retained_publish_limiter() -> RetainedPublishLimiter:
    """AWS: 500 retained publishes a second per account, 1 per topic (payloads only)."""
    return _limiters().retained_publishes


def get_retained_limiter() -> RateLimiter:
    """AWS: 500 GetRetainedMessage requests a second per account."""
    return _limiters().get_retained


def list_retained_limiter() -> RateLimiter:
    """AWS: 10 ListRetainedMessages requests a second per account."""
    return _limiters().list_retained
