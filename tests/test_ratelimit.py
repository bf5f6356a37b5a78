"""retained.ratelimit: token buckets, the retained-publish pair, sign-in lockouts (a fake clock)."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retained.ratelimit import (
    ACCOUNT,
    TOPIC,
    FailureLockout,
    RateLimiter,
    RetainedPublishLimiter,
    Throttled,
    retry_after_seconds,
)


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --- RateLimiter: (rate, [(advance seconds, expected try_acquire answer), ...]) --------------

BUCKET_CASES = {
    "1/s: one now, the next a second later": (
        1,
        [(0, 0.0), (0, 1.0), (0.4, 0.6), (0.6, 0.0), (0, 1.0)],
    ),
    "10/s: a burst of 10, then one every 0.1 s": (
        10,
        [*[(0, 0.0)] * 10, (0, 0.1), (0.1, 0.0), (0, 0.1), (0.05, 0.05), (0.05, 0.0)],
    ),
    "refill is capped at the burst": (
        2,
        [(0, 0.0), (0, 0.0), (100, 0.0), (0, 0.0), (0, 0.5)],
    ),
    "0 = unlimited": (
        0,
        [(0, 0.0)] * 1000,
    ),
    "a refused attempt takes nothing": (
        1,
        [(0, 0.0), (0.5, 0.5), (0.25, 0.25), (0.25, 0.0)],
    ),
    "float refill (0.1 s x 10/s) is a whole token": (
        10,
        [*[(0, 0.0)] * 10, *[(0.1, 0.0)] * 20],
    ),
}


@pytest.mark.parametrize("case", BUCKET_CASES.values(), ids=BUCKET_CASES.keys())
def test_bucket_table(case: tuple[int, list[tuple[float, float]]]) -> None:
    rate, steps = case
    clock = FakeClock()
    limiter = RateLimiter(rate, clock=clock)
    for index, (advance, expected) in enumerate(steps):
        clock.advance(advance)
        assert limiter.try_acquire("k") == pytest.approx(expected, abs=1e-6), f"step {index}"


def test_keys_have_their_own_buckets() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, clock=clock)
    assert limiter.try_acquire("a") == 0.0
    assert limiter.try_acquire("a") == pytest.approx(1.0)
    assert limiter.try_acquire("b") == 0.0


def test_a_rate_below_one_still_grants_one() -> None:
    clock = FakeClock()
    limiter = RateLimiter(0.5, clock=clock)
    assert limiter.try_acquire() == 0.0
    assert limiter.try_acquire() == pytest.approx(2.0)


def test_full_buckets_are_forgotten() -> None:
    """100,000 topics, one publish each, 1 ms apart: memory holds only the buckets that
    could still be refilling (those used in the last second)."""
    clock = FakeClock()
    limiter = RateLimiter(1, clock=clock)
    for n in range(100_000):
        assert limiter.try_acquire(f"topic/{n}") == 0.0
        clock.advance(0.001)
    assert limiter.buckets_held() <= 1001  # those used in the last second
    clock.advance(1.0)
    limiter.try_acquire("one-more")
    assert limiter.buckets_held() == 1


def test_table_full_of_refilling_buckets_refuses_new_keys() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, clock=clock, max_keys=3)
    for key in "abc":
        assert limiter.try_acquire(key) == 0.0
        clock.advance(0.25)
    # "a" was used 0.75 s ago: a new key waits until it has refilled (0.25 s).
    assert limiter.try_acquire("d") == pytest.approx(0.25)
    assert limiter.buckets_held() == 3
    clock.advance(0.25)
    assert limiter.try_acquire("d") == 0.0
    assert limiter.buckets_held() == 3


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="rate"):
        RateLimiter(-1)
    with pytest.raises(ValueError, match="max_keys"):
        RateLimiter(1, max_keys=0)


@settings(max_examples=200, deadline=None)
@given(
    rate=st.integers(min_value=1, max_value=20),
    gaps=st.lists(st.floats(min_value=0, max_value=0.5, allow_nan=False), max_size=200),
)
def test_never_more_than_rate_times_t_plus_burst(rate: int, gaps: list[float]) -> None:
    """In every window [a, b] of attempts, grants <= rate * (b - a) + burst."""
    clock = FakeClock()
    limiter = RateLimiter(rate, clock=clock)
    granted: list[float] = []
    for gap in gaps:
        clock.advance(gap)
        if limiter.try_acquire("k") == 0.0:
            granted.append(clock.now)
    for i, start in enumerate(granted):
        for j in range(i, len(granted)):
            window = granted[j] - start
            assert j - i + 1 <= rate * window + limiter.burst + 1e-6


@settings(max_examples=100, deadline=None)
@given(gaps=st.lists(st.floats(min_value=0, max_value=2, allow_nan=False), max_size=100))
def test_a_refusal_names_the_wait_exactly(gaps: list[float]) -> None:
    """After a refusal, waiting the answered time is enough (and a little less is not)."""
    clock = FakeClock()
    limiter = RateLimiter(2, clock=clock)
    for gap in gaps:
        clock.advance(gap)
        wait = limiter.try_acquire("k")
        if wait:
            if wait > 1e-6:
                clock.advance(wait - 1e-6)
                assert limiter.try_acquire("k") > 0.0
                clock.advance(1e-6)
            else:
                clock.advance(wait)
            assert limiter.try_acquire("k") == 0.0


def test_thread_safety() -> None:
    """Many threads at once never get more than the burst (the clock does not move)."""
    clock = FakeClock()
    limiter = RateLimiter(50, clock=clock)
    granted: list[int] = []
    lock = threading.Lock()

    def hammer() -> None:
        mine = sum(1 for _ in range(200) if limiter.try_acquire("k") == 0.0)
        with lock:
            granted.append(mine)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) == 50


# --- RetainedPublishLimiter ---------------------------------------------------------------------


def test_per_topic_and_per_account() -> None:
    clock = FakeClock()
    limiter = RetainedPublishLimiter(per_account=3, per_topic=1, clock=clock)
    assert limiter.try_acquire("a") is None
    refused = limiter.try_acquire("a")
    assert refused == Throttled(limit=TOPIC, rate=1, retry_after=1.0)
    assert limiter.try_acquire("b") is None  # another topic is not affected
    assert limiter.try_acquire("c") is None
    refused = limiter.try_acquire("d")  # the account's 3 are used up
    assert refused is not None
    assert refused.limit == ACCOUNT
    assert refused.retry_after == pytest.approx(1 / 3)
    assert refused.retry_after_seconds == 1


def test_a_topic_refusal_does_not_use_the_account() -> None:
    clock = FakeClock()
    limiter = RetainedPublishLimiter(per_account=2, per_topic=1, clock=clock)
    assert limiter.try_acquire("a") is None
    for _ in range(10):
        assert limiter.try_acquire("a") is not None
    assert limiter.try_acquire("b") is None  # the account still had its second token


def test_both_refuse_the_longer_wait_is_named() -> None:
    clock = FakeClock()
    limiter = RetainedPublishLimiter(per_account=1, per_topic=1, clock=clock)
    assert limiter.try_acquire("a") is None
    clock.advance(0.5)
    refused = limiter.try_acquire("a")
    assert refused is not None
    assert refused.retry_after == pytest.approx(0.5)


UNLIMITED_CASES = {
    "both off": (0, 0, 100, 100),
    "account off": (0, 1, 2, 1),  # the same topic: only the per-topic limit
    "topic off": (2, 0, 3, 2),
}


@pytest.mark.parametrize("case", UNLIMITED_CASES.values(), ids=UNLIMITED_CASES.keys())
def test_zero_turns_a_limit_off(case: tuple[int, int, int, int]) -> None:
    per_account, per_topic, attempts, allowed = case
    limiter = RetainedPublishLimiter(
        per_account=per_account, per_topic=per_topic, clock=FakeClock()
    )
    assert sum(limiter.try_acquire("t") is None for _ in range(attempts)) == allowed


def test_throttled_message_says_which_limit() -> None:
    topic = Throttled(limit=TOPIC, rate=1, retry_after=0.2)
    account = Throttled(limit=ACCOUNT, rate=500, retry_after=1.5)
    assert topic.message == (
        "Rate exceeded: at most 1 retained publishes per second to one topic; retry in 1 s"
    )
    assert "500 retained publishes per second in this account; retry in 2 s" in account.message


@pytest.mark.parametrize(
    ("wait", "seconds"), [(0.0001, 1), (0.5, 1), (1.0, 1), (1.0000000001, 1), (1.2, 2), (59.9, 60)]
)
def test_retry_after_seconds(wait: float, seconds: int) -> None:
    assert retry_after_seconds(wait) == seconds


# --- FailureLockout: [(advance, "fail"/"check"/"reset", expected seconds locked)] -----------

LOCKOUT_CASES = {
    "the third failure locks": [
        (0, "fail", 0.0),
        (1, "fail", 0.0),
        (1, "fail", 60.0),
        (10, "check", 50.0),
        (10, "fail", 40.0),  # refused while locked: not counted, no longer lock
        (40, "check", 0.0),
        (0, "fail", 0.0),  # afresh after the lockout
    ],
    "failures outside the window do not add up": [
        (0, "fail", 0.0),
        (0, "fail", 0.0),
        (61, "fail", 0.0),
        (0, "fail", 0.0),
        (0, "fail", 60.0),
    ],
    "reset clears the count": [
        (0, "fail", 0.0),
        (0, "fail", 0.0),
        (0, "reset", 0.0),
        (0, "fail", 0.0),
        (0, "fail", 0.0),
        (0, "fail", 60.0),
    ],
}


@pytest.mark.parametrize("steps", LOCKOUT_CASES.values(), ids=LOCKOUT_CASES.keys())
def test_lockout_table(steps: list[tuple[float, str, float]]) -> None:
    clock = FakeClock()
    lockout = FailureLockout(3, window=60, lockout=60, clock=clock)
    for index, (advance, action, expected) in enumerate(steps):
        clock.advance(advance)
        if action == "fail":
            answer = lockout.record_failure("alice")
        elif action == "reset":
            lockout.reset("alice")
            answer = lockout.locked_for("alice")
        else:
            answer = lockout.locked_for("alice")
        assert answer == pytest.approx(expected), f"step {index}"


def test_lockout_keys_are_independent_and_zero_never_locks() -> None:
    clock = FakeClock()
    lockout = FailureLockout(1, window=60, lockout=60, clock=clock)
    assert lockout.record_failure("a") == 60.0
    assert lockout.locked_for("b") == 0.0
    never = FailureLockout(0, window=60, lockout=60, clock=clock)
    assert all(never.record_failure("a") == 0.0 for _ in range(100))


def test_lockout_memory_is_bounded() -> None:
    clock = FakeClock()
    lockout = FailureLockout(5, window=60, lockout=60, clock=clock, max_keys=100)
    for n in range(1000):
        lockout.record_failure(n)
    assert lockout.keys_held() == 100
    clock.advance(61)
    lockout.record_failure("late")
    assert lockout.keys_held() == 1
