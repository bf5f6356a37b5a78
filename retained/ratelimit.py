"""Rate limits as AWS IoT Core applies them, and sign-in lockouts (PURE: no Django).

`RateLimiter` is a token bucket per key: `rate` tokens a second, holding at most `burst`
(by default the rate, so 1/s allows one now and the next a second later). `try_acquire`
answers 0.0 when allowed, else the seconds until a token is there (the Retry-After).

Memory stays bounded however many keys (topics) are seen: a bucket that has refilled is the
same as no bucket, so buckets are kept in order of last use and the oldest are forgotten once
they have had `burst / rate` seconds to refill. At most `max_keys` buckets are held; while
that many are still refilling, a new key is refused until the oldest one is full (failing
closed keeps the rate guarantee exact instead of forgetting a bucket that is still empty).

Every object here is thread-safe: the broker's loop and the API's worker threads share them.
A rate of 0 means unlimited.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass

Clock = Callable[[], float]

DEFAULT_MAX_KEYS = 100_000
# Float refill arithmetic (e.g. 0.1 s x 10/s = 0.9999999) must not refuse a token that is due.
_EPSILON = 1e-9

ACCOUNT = "account"
TOPIC = "topic"


def retry_after_seconds(wait: float) -> int:
    """Whole seconds for an HTTP Retry-After or a message: rounded up, at least 1."""
    return max(1, math.ceil(wait - _EPSILON))


class RateLimiter:
    """Token buckets, one per key; see the module docstring."""

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        clock: Clock = time.monotonic,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        if rate < 0:
            raise ValueError(f"rate must be 0 (unlimited) or more, got {rate}")
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, got {max_keys}")
        self.rate = float(rate)
        self.burst = max(1.0, float(rate if burst is None else burst))
        self.max_keys = max_keys
        self._clock = clock
        self._refill_seconds = self.burst / self.rate if self.rate else 0.0
        # key -> (tokens left, when they were counted); oldest use first.
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def unlimited(self) -> bool:
        return self.rate == 0

    def buckets_held(self) -> int:
        """How many buckets are held (the memory bound's subject)."""
        with self._lock:
            return len(self._buckets)

    def try_acquire(self, key: Hashable = None) -> float:
        """Take a token for `key`: 0.0 when allowed, else the seconds until one is there."""
        if self.rate == 0:
            return 0.0
        with self._lock:
            now = self._clock()
            wait = self._wait(key, now)
            if wait == 0.0:
                self._take(key, now)
            return wait

    # The two halves of try_acquire, for callers holding the lock (RetainedPublishLimiter).
    def _wait(self, key: Hashable, now: float) -> float:
        if self.rate == 0:
            return 0.0
        self._forget_refilled(now)
        entry = self._buckets.get(key)
        if entry is None:
            if len(self._buckets) < self.max_keys:
                return 0.0
            _, oldest_at = next(iter(self._buckets.values()))
            return max(oldest_at + self._refill_seconds - now, _EPSILON)
        tokens = self._tokens(entry, now)
        if tokens >= 1.0 - _EPSILON:
            return 0.0
        return (1.0 - tokens) / self.rate

    def _take(self, key: Hashable, now: float) -> None:
        if self.rate == 0:
            return
        entry = self._buckets.pop(key, None)
        tokens = self.burst if entry is None else self._tokens(entry, now)
        self._buckets[key] = (max(tokens - 1.0, 0.0), now)  # now the most recently used

    def _tokens(self, entry: tuple[float, float], now: float) -> float:
        tokens, at = entry
        return min(self.burst, tokens + max(now - at, 0.0) * self.rate)

    def _forget_refilled(self, now: float) -> None:
        # Oldest use first, so the scan stops at the first bucket that may still be refilling.
        buckets = self._buckets
        while buckets:
            _, at = next(iter(buckets.values()))
            if now - at < self._refill_seconds:
                return
            buckets.popitem(last=False)


@dataclass(frozen=True, slots=True)
class Throttled:
    """A refused retained publish: which limit said no, and when a retry can succeed."""

    limit: str  # ACCOUNT or TOPIC
    rate: float
    retry_after: float  # seconds

    @property
    def retry_after_seconds(self) -> int:
        return retry_after_seconds(self.retry_after)

    @property
    def message(self) -> str:
        scope = "in this account" if self.limit == ACCOUNT else "to one topic"
        return (
            f"Rate exceeded: at most {self.rate:g} retained publishes per second {scope}; "
            f"retry in {self.retry_after_seconds} s"
        )


class RetainedPublishLimiter:
    """AWS: retained publishes with a payload, per account and per topic.

    A publish takes a token from both buckets or from neither, so one refused by the topic's
    limit does not use up the account's."""

    def __init__(
        self,
        *,
        per_account: float,
        per_topic: float,
        clock: Clock = time.monotonic,
        max_topics: int = DEFAULT_MAX_KEYS,
    ) -> None:
        self._account = RateLimiter(per_account, clock=clock)
        self._topics = RateLimiter(per_topic, clock=clock, max_keys=max_topics)
        self._clock = clock
        self._lock = threading.Lock()  # the inner limiters are used only under this lock

    @property
    def unlimited(self) -> bool:
        return self._account.unlimited and self._topics.unlimited

    @property
    def topics_held(self) -> int:
        return self._topics.buckets_held()

    def try_acquire(self, topic: str) -> Throttled | None:
        if self.unlimited:
            return None
        with self._lock:
            now = self._clock()
            account_wait = self._account._wait(None, now)
            topic_wait = self._topics._wait(topic, now)
            if account_wait == 0.0 and topic_wait == 0.0:
                self._account._take(None, now)
                self._topics._take(topic, now)
                return None
        if topic_wait >= account_wait:
            return Throttled(limit=TOPIC, rate=self._topics.rate, retry_after=topic_wait)
        return Throttled(limit=ACCOUNT, rate=self._account.rate, retry_after=account_wait)


@dataclass(slots=True)
class _Failures:
    times: deque[float]
    last: float = 0.0
    locked_until: float = 0.0


class FailureLockout:
    """`limit` failures of one key within `window` seconds lock that key for `lockout`
    seconds; when the lockout ends the key starts afresh. A limit of 0 never locks.

    Attempts refused while locked are not failures (they never reach a password check).
    Entries are forgotten once idle for `window` and `lockout`; at most `max_keys` are held,
    the least recently failed dropped first."""

    def __init__(
        self,
        limit: int,
        *,
        window: float,
        lockout: float,
        clock: Clock = time.monotonic,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        if limit < 0:
            raise ValueError(f"limit must be 0 (never lock) or more, got {limit}")
        self.limit = limit
        self.window = window
        self.lockout = lockout
        self.max_keys = max_keys
        self._clock = clock
        self._entries: OrderedDict[Hashable, _Failures] = OrderedDict()
        self._lock = threading.Lock()

    def keys_held(self) -> int:
        with self._lock:
            return len(self._entries)

    def locked_for(self, key: Hashable) -> float:
        """Seconds until `key` may try again (0.0: it may now)."""
        if self.limit == 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._forget_idle(now)
            entry = self._entries.get(key)
            return self._locked_for(key, entry, now)

    def record_failure(self, key: Hashable) -> float:
        """Count a failure; the seconds `key` is now locked for (0.0: not locked)."""
        if self.limit == 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._forget_idle(now)
            entry = self._entries.pop(key, None)
            if entry is None:
                if len(self._entries) >= self.max_keys:
                    self._entries.popitem(last=False)
                entry = _Failures(times=deque(maxlen=self.limit))
            self._entries[key] = entry  # most recently failed last
            locked = self._locked_for(key, entry, now)
            if locked:
                return locked
            entry.last = now
            entry.times.append(now)
            while entry.times and entry.times[0] <= now - self.window:
                entry.times.popleft()
            if len(entry.times) >= self.limit:
                entry.times.clear()
                entry.locked_until = now + self.lockout
                return self.lockout
            return 0.0

    def reset(self, key: Hashable) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def _locked_for(self, key: Hashable, entry: _Failures | None, now: float) -> float:
        if entry is None or entry.locked_until == 0.0:
            return 0.0
        if now < entry.locked_until:
            return entry.locked_until - now
        entry.locked_until = 0.0  # served its time: start afresh
        entry.times.clear()
        return 0.0

    def _forget_idle(self, now: float) -> None:
        idle = max(self.window, self.lockout)
        entries = self._entries
        while entries:
            entry = next(iter(entries.values()))
            if now - entry.last < idle:
                return
            entries.popitem(last=False)
