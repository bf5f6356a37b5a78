"""retained.store.console_page: keyset pages in both orders, search, the scan budget."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from retained import store
from retained.store import _prefix_upper_bound, console_page
from tests.console.conftest import put

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("prefix", "upper"),
    [
        ("a", "b"),
        ("a/", "a0"),
        ("\ud7ff", "\ue000"),
        ("a\U0010ffff", "b"),
        ("\U0010ffff", None),
        ("", None),
    ],
)
def test_prefix_upper_bound(prefix: str, upper: str | None) -> None:
    assert _prefix_upper_bound(prefix) == upper


def walk(order: str, forwards: bool, limit: int, **kwargs: object) -> list[str]:
    """Every topic, page by page."""
    topics: list[str] = []
    after = None
    for _ in range(100):
        page = console_page(order=order, forwards=forwards, limit=limit, after=after, **kwargs)  # type: ignore[arg-type]
        topics.extend(row.topic for row in page.rows)
        if page.resume_after is None:
            return topics
        after = page.resume_after
    raise AssertionError("did not finish")


def test_topic_order_both_ways() -> None:
    names = [f"t/{index:02d}" for index in range(11)]
    for name in reversed(names):
        put(name)
    assert walk("topic", True, 3) == names
    assert walk("topic", False, 4) == list(reversed(names))


def test_update_order_with_ties() -> None:
    now = timezone.now()
    for index in range(7):
        put(f"u/{index}", now=now + timedelta(milliseconds=index // 3))
    forwards = walk("updated", True, 2)
    assert sorted(forwards) == [f"u/{index}" for index in range(7)]
    assert walk("updated", False, 3) == list(reversed(forwards))


def test_expired_messages_are_left_out() -> None:
    put("live")
    put(
        "dead",
        properties=store.MessageProperties(message_expiry_interval=1),
        now=timezone.now() - timedelta(seconds=5),
    )
    assert walk("topic", True, 10) == ["live"]


def test_contains_and_filter() -> None:
    for name in ("a/x/1", "a/y/1", "a/x/2", "b/x/1", "ab", "a"):
        put(name)
    assert walk("topic", True, 2, contains="x/") == ["a/x/1", "a/x/2", "b/x/1"]
    assert walk("topic", True, 2, topic_filter="a/+/1") == ["a/x/1", "a/y/1"]
    assert walk("topic", True, 10, topic_filter="a/#") == ["a", "a/x/1", "a/x/2", "a/y/1"]
    assert walk("updated", False, 1, topic_filter="+/x/#") == ["b/x/1", "a/x/2", "a/x/1"]


def test_filter_prefix_uses_a_range_not_like() -> None:
    put("p/q")
    with CaptureQueriesContext(connection) as queries:
        console_page(order="topic", forwards=True, limit=10, topic_filter="p/+")
    sql = queries.captured_queries[0]["sql"]
    assert "LIKE" not in sql.upper()
    assert '"topic" >= ' in sql


def test_scan_budget_pages_through_sparse_matches() -> None:
    for index in range(30):
        put(f"n/{index:02d}/{'hit' if index % 10 == 0 else 'miss'}")
    page = console_page(
        order="topic", forwards=True, limit=5, topic_filter="+/+/hit", scan_budget=7
    )
    assert [row.topic for row in page.rows] == ["n/00/hit"]
    assert page.budget_exhausted
    assert page.resume_after == ("n/06/miss",)
    assert walk("topic", True, 5, topic_filter="+/+/hit", scan_budget=7) == [
        "n/00/hit",
        "n/10/hit",
        "n/20/hit",
    ]


def test_unknown_order() -> None:
    with pytest.raises(ValueError, match="unknown order"):
        console_page(order="size", forwards=True, limit=1)
