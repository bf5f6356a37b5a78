"""retained/store.py against a real (test) database."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from retained import events, store
from retained.models import RetainedMessage, SetByKind

pytestmark = pytest.mark.django_db

ACTOR = store.Actor(kind=SetByKind.MQTT, name="device-1")


def limits(**changes: int) -> override_settings:
    return override_settings(
        RETAINED_LIMITS=dataclasses.replace(settings.RETAINED_LIMITS, **changes)
    )


def test_set_then_get_keeps_everything() -> None:
    properties = store.MessageProperties(
        content_type="application/json",
        payload_format_indicator=1,
        response_topic="reply/here",
        correlation_data=b"\x01\x02",
        user_properties=(("a", "1"), ("b", "2"), ("a", "3")),
        message_expiry_interval=60,
    )
    store.set_retained("a/b", b'{"x":1}', qos=1, actor=ACTOR, properties=properties)

    message = store.get_retained("a/b")

    assert message is not None
    assert (message.topic, message.payload, message.qos) == ("a/b", b'{"x":1}', 1)
    assert message.properties == properties
    assert message.set_by == ACTOR
    assert message.expires_at is not None
    assert 58 <= (message.remaining_expiry_seconds(timezone.now()) or 0) <= 60


def test_replace_keeps_one_row_and_the_count() -> None:
    store.set_retained("t", b"1", qos=0, actor=ACTOR)
    store.set_retained("t", b"2", qos=1, actor=ACTOR)
    assert RetainedMessage.objects.count() == 1
    assert store.count_retained() == 1
    message = store.get_retained("t")
    assert message is not None
    assert message.payload == b"2"


def test_empty_payload_clears_and_decrements() -> None:
    store.set_retained("t", b"1", qos=0, actor=ACTOR)
    assert store.set_retained("t", b"", qos=0, actor=ACTOR) is None
    assert store.get_retained("t") is None
    assert store.count_retained() == 0
    assert store.clear_retained("t", actor=ACTOR) is False


def test_quota_refuses_new_topics_only() -> None:
    with limits(max_retained_messages=2):
        store.set_retained("a", b"1", qos=0, actor=ACTOR)
        store.set_retained("b", b"1", qos=0, actor=ACTOR)
        with pytest.raises(store.RetainedQuotaExceededError):
            store.set_retained("c", b"1", qos=0, actor=ACTOR)
        store.set_retained("a", b"replaced", qos=0, actor=ACTOR)
        store.clear_retained("b", actor=ACTOR)
        store.set_retained("c", b"fits now", qos=0, actor=ACTOR)
    assert sorted(RetainedMessage.objects.values_list("topic", flat=True)) == ["a", "c"]
    assert store.count_retained() == 2


@pytest.mark.parametrize(
    ("topic", "payload", "qos", "error"),
    [
        ("a/+", b"x", 0, store.InvalidTopicError),
        ("a/#", b"x", 0, store.InvalidTopicError),
        ("", b"x", 0, store.InvalidTopicError),
        ("$aws/things/t/shadow", b"x", 0, store.InvalidTopicError),
        ("t" * 257, b"x", 0, store.InvalidTopicError),
        ("/".join("abcdefghi"), b"x", 0, store.InvalidTopicError),
        ("nul\x00", b"x", 0, store.InvalidTopicError),
        ("ok", b"x", 2, store.InvalidQosError),
        ("ok", b"x", -1, store.InvalidQosError),
        ("ok", b"x" * (128 * 1024 + 1), 0, store.PayloadTooLargeError),
    ],
    ids=["plus", "hash", "empty", "aws", "257", "8-slashes", "nul", "qos2", "qos-1", "128k+1"],
)
def test_refusals_store_nothing(
    topic: str, payload: bytes, qos: int, error: type[Exception]
) -> None:
    with pytest.raises(error):
        store.set_retained(topic, payload, qos=qos, actor=ACTOR)
    assert RetainedMessage.objects.count() == 0
    assert store.count_retained() == 0


def test_payload_of_exactly_128k_is_accepted() -> None:
    store.set_retained("big", b"x" * 128 * 1024, qos=0, actor=ACTOR)
    assert store.count_retained() == 1


@pytest.mark.parametrize(
    ("requested", "stored"), [(0, 1), (1, 1), (3600, 3600), (604_800, 604_800), (10**9, 604_800)]
)
def test_message_expiry_is_clamped_like_aws(requested: int, stored: int) -> None:
    properties = store.MessageProperties(message_expiry_interval=requested)
    message = store.set_retained("e", b"x", qos=0, actor=ACTOR, properties=properties)
    assert message is not None
    assert message.properties.message_expiry_interval == stored


def test_expired_messages_are_neither_got_nor_listed() -> None:
    past = timezone.now() - timedelta(seconds=30)
    properties = store.MessageProperties(message_expiry_interval=10)
    store.set_retained("old", b"x", qos=0, actor=ACTOR, properties=properties, now=past)
    store.set_retained("new", b"x", qos=0, actor=ACTOR)
    assert store.get_retained("old") is None
    assert [item.topic for item in store.list_page(max_results=10).items] == ["new"]


def test_list_pages_in_byte_order_with_tokens() -> None:
    topics = ["b", "a/z", "a", "\u00e9", "Z", "a/b", "$sys", " space"]
    for topic in topics:
        store.set_retained(topic, topic.encode(), qos=0, actor=ACTOR)
    seen: list[str] = []
    token = None
    sizes = []
    while True:
        page = store.list_page(max_results=3, next_token=token)
        sizes.append(len(page.items))
        seen.extend(item.topic for item in page.items)
        token = page.next_token
        if token is None:
            break
    assert seen == sorted(topics, key=lambda t: t.encode())
    assert sizes == [3, 3, 2]


def test_last_page_that_is_exactly_full_has_no_token() -> None:
    for topic in ("a", "b"):
        store.set_retained(topic, b"x", qos=0, actor=ACTOR)
    assert store.list_page(max_results=2).next_token is None


@pytest.mark.parametrize("max_results", [0, -1, 201])
def test_max_results_out_of_range(max_results: int) -> None:
    with pytest.raises(store.InvalidMaxResultsError):
        store.list_page(max_results=max_results)


def test_tampered_token_is_refused() -> None:
    for topic in ("a", "b", "c"):
        store.set_retained(topic, b"x", qos=0, actor=ACTOR)
    token = store.list_page(max_results=1).next_token
    assert token is not None
    body, mac = token.split(".")
    with pytest.raises(store.InvalidPageTokenError):
        store.list_page(max_results=1, next_token=body + "." + mac[::-1])


def test_events_are_emitted_after_commit_only(django_capture_on_commit_callbacks: object) -> None:
    received: list[events.RetainedChanged] = []
    unsubscribe = events.subscribe(received.append)
    try:
        with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
            store.set_retained("ev", b"x", qos=1, actor=ACTOR)
            assert received == []
        with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
            store.clear_retained("ev", actor=ACTOR)
        with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
            try:
                with transaction.atomic():
                    store.set_retained("rolled-back", b"x", qos=0, actor=ACTOR)
                    raise RuntimeError("abort")
            except RuntimeError:
                pass
    finally:
        unsubscribe()
    assert [(e.topic, e.change) for e in received] == [("ev", "set"), ("ev", "cleared")]
    assert received[0].as_message()["type"] == "retained.changed"
    assert store.get_retained("rolled-back") is None


def test_get_moves_the_access_clock_at_most_hourly() -> None:
    long_ago = timezone.now() - timedelta(days=30)
    store.set_retained("clock", b"x", qos=0, actor=ACTOR, now=long_ago)
    first = store.get_retained("clock")
    assert first is not None
    assert first.last_accessed_at > long_ago
    stored = RetainedMessage.objects.get(topic="clock").last_accessed_at
    store.get_retained("clock", now=stored + timedelta(minutes=5))
    assert RetainedMessage.objects.get(topic="clock").last_accessed_at == stored
    peek = store.get_retained("clock", touch=False, now=stored + timedelta(hours=5))
    assert peek is not None
    assert RetainedMessage.objects.get(topic="clock").last_accessed_at == stored


def test_batch_applies_in_one_transaction_with_per_write_errors() -> None:
    store.set_retained("existing", b"old", qos=0, actor=ACTOR)
    store.set_retained("doomed", b"old", qos=0, actor=ACTOR)
    writes = [
        store.RetainedWrite("existing", b"new", 1, ACTOR),
        store.RetainedWrite("fresh", b"1", 0, ACTOR),
        store.RetainedWrite("bad/+", b"x", 0, ACTOR),
        store.RetainedWrite("fresh", b"2", 1, ACTOR),
        store.RetainedWrite("doomed", b"", 0, ACTOR),
    ]

    results = store.set_retained_many(writes)

    assert isinstance(results[2], store.InvalidTopicError)
    assert results[4] is None
    assert sorted(RetainedMessage.objects.values_list("topic", "payload")) == [
        ("existing", b"new"),
        ("fresh", b"2"),
    ]
    assert store.count_retained() == 2


def test_batch_respects_the_quota() -> None:
    with limits(max_retained_messages=2):
        store.set_retained("a", b"x", qos=0, actor=ACTOR)
        results = store.set_retained_many(
            [store.RetainedWrite(t, b"x", 0, ACTOR) for t in ("b", "c", "a")]
        )
    assert isinstance(results[0], store.Written)
    assert isinstance(results[1], store.RetainedQuotaExceededError)
    assert isinstance(results[2], store.Written)
    assert sorted(RetainedMessage.objects.values_list("topic", flat=True)) == ["a", "b"]
    assert store.count_retained() == 2


def test_sweep_deletes_expired_and_stale_in_bounded_batches() -> None:
    now = timezone.now()
    four_years_ago = now - timedelta(days=4 * 365)
    store.set_retained("fresh", b"x", qos=0, actor=ACTOR)
    store.set_retained(
        "expired",
        b"x",
        qos=0,
        actor=ACTOR,
        properties=store.MessageProperties(message_expiry_interval=5),
        now=now - timedelta(seconds=10),
    )
    for n in range(3):
        store.set_retained(f"stale/{n}", b"x", qos=0, actor=ACTOR, now=four_years_ago)
    store.set_retained("old-but-read", b"x", qos=0, actor=ACTOR, now=four_years_ago)
    RetainedMessage.objects.filter(topic="old-but-read").update(last_accessed_at=now)

    assert store.sweep_retained(now=now, batch_size=2) == 2
    assert store.sweep_retained(now=now, batch_size=2) == 2
    assert store.sweep_retained(now=now, batch_size=2) == 0
    assert sorted(RetainedMessage.objects.values_list("topic", flat=True)) == [
        "fresh",
        "old-but-read",
    ]
    assert store.count_retained() == 2


@pytest.mark.parametrize(
    ("topic_filter", "expected"),
    [
        ("#", ["a", "a/b", "a/b/c", "ab", "x/b"]),
        ("a/#", ["a", "a/b", "a/b/c"]),
        ("a/+", ["a/b"]),
        ("+/b", ["a/b", "x/b"]),
        ("a/b", ["a/b"]),
        ("$SYS/#", ["$SYS/up"]),
        ("nothing/+", []),
    ],
)
def test_iter_retained_matching(topic_filter: str, expected: list[str]) -> None:
    for topic in ("a", "a/b", "a/b/c", "ab", "x/b", "$SYS/up"):
        store.set_retained(topic, b"x", qos=0, actor=ACTOR)
    found = [
        m.topic for chunk in store.iter_retained_matching(topic_filter, chunk_size=2) for m in chunk
    ]
    assert found == expected


def test_matching_page_reads_properties_expiry_and_stops_at_expired() -> None:
    now = timezone.now()
    properties = store.MessageProperties(
        content_type="application/json", user_properties=(("k", "v"),), message_expiry_interval=60
    )
    store.set_retained("p/with", b"1", qos=1, actor=ACTOR, properties=properties, now=now)
    store.set_retained("p/plain", b"2", qos=0, actor=ACTOR, now=now)
    store.set_retained(
        "p/expired",
        b"3",
        qos=0,
        actor=ACTOR,
        properties=store.MessageProperties(message_expiry_interval=1),
        now=now - timedelta(seconds=5),
    )
    copies, after = store.retained_matching_page("p/#", after=None, now=now)
    assert after is None
    assert [copy.topic for copy in copies] == ["p/plain", "p/with"]
    plain, with_properties = copies
    assert plain.properties is store.NO_PROPERTIES
    assert plain.expires_at is None
    assert with_properties.properties.content_type == "application/json"
    assert with_properties.properties.user_properties == (("k", "v"),)
    assert with_properties.expires_at is not None
    assert abs((with_properties.expires_at - now).total_seconds() - 60) < 1


# Rows for the delivery page: topic -> (payload, qos, properties). Payload sizes cross the
# one/two/three byte Remaining Length boundaries; topics include non-ASCII and "$".
DELIVERY_ROWS: dict[str, tuple[bytes, int, store.MessageProperties]] = {
    "d/small": (b"hello", 0, store.NO_PROPERTIES),
    "d/binary": (bytes(range(256)), 0, store.NO_PROPERTIES),
    "d/rl-127": (b"x" * (127 - 2 - len("d/rl-127")), 0, store.NO_PROPERTIES),
    "d/rl-128": (b"x" * (128 - 2 - len("d/rl-128")), 0, store.NO_PROPERTIES),
    "d/rl-16384": (b"y" * (16384 - 2 - len("d/rl-16384")), 0, store.NO_PROPERTIES),
    "d/été/ünïcode/✓": (b"\x00\xff", 0, store.NO_PROPERTIES),
    "d/qos1": (b"one", 1, store.NO_PROPERTIES),
    "d/props": (b"p", 0, store.MessageProperties(content_type="text/plain")),
    "d/expiry": (b"e", 0, store.MessageProperties(message_expiry_interval=600)),
    "$d/dollar": (b"$", 0, store.NO_PROPERTIES),
}


@pytest.mark.parametrize(
    ("granted_qos", "with_properties", "as_copies"),
    [
        # MQTT 5: properties and expiry need the copy; so does QoS 1 granted QoS 1.
        (1, True, {"d/qos1", "d/props", "d/expiry"}),
        (0, True, {"d/props", "d/expiry"}),
        # 3.1.1 has no properties: only QoS 1 on both sides needs the copy.
        (1, False, {"d/qos1"}),
        (0, False, set()),
    ],
)
@pytest.mark.parametrize("topic_filter", ["#", "d/#", "d/+"])
def test_delivery_page_gives_plain_rows_bare_and_the_others_whole(
    granted_qos: int, with_properties: bool, as_copies: set[str], topic_filter: str
) -> None:
    for topic, (payload, qos, properties) in DELIVERY_ROWS.items():
        store.set_retained(topic, payload, qos=qos, actor=ACTOR, properties=properties)
    items: list[store.RetainedItem] = []
    after = None
    while True:  # pages of 3: the keyset continues across them
        page = store.retained_delivery_page(
            topic_filter,
            after=after,
            granted_qos=granted_qos,
            with_properties=with_properties,
            limit=3,
        )
        items += page.items
        assert page.stale == set()  # every clock was set just now
        after = page.after
        if after is None:
            break
    visible = sorted(topic for topic in DELIVERY_ROWS if not topic.startswith("$"))
    if topic_filter == "d/+":
        visible = [topic for topic in visible if topic.count("/") == 1]
    assert [topic for topic, _, _ in items] == visible
    for topic, stored_ms, what in items:
        assert stored_ms == RetainedMessage.objects.get(topic=topic).last_modified_ms
        if topic in as_copies:
            assert isinstance(what, store.RetainedCopy), topic
            assert (what.topic, what.payload) == (topic, DELIVERY_ROWS[topic][0])
        else:
            assert what == DELIVERY_ROWS[topic][0], topic


def test_delivery_page_leaves_out_expired_messages() -> None:
    now = timezone.now()
    store.set_retained(
        "e/gone",
        b"x",
        qos=0,
        actor=ACTOR,
        properties=store.MessageProperties(message_expiry_interval=1),
        now=now - timedelta(seconds=5),
    )
    store.set_retained("e/here", b"y", qos=0, actor=ACTOR, now=now)
    page = store.retained_delivery_page("#", after=None, granted_qos=0, with_properties=True)
    assert page.after is None
    assert [(topic, what) for topic, _, what in page.items] == [("e/here", b"y")]


def test_delivery_page_names_the_clocks_to_move() -> None:
    now = timezone.now()
    store.set_retained("c/old", b"x", qos=0, actor=ACTOR, now=now - timedelta(days=2))
    store.set_retained("c/new", b"y", qos=0, actor=ACTOR, now=now)
    page = store.retained_delivery_page("c/#", after=None, granted_qos=0, with_properties=False)
    assert page.stale == {"c/old"}
    assert page.payload_bytes == 2


def test_touch_moves_only_clocks_older_than_the_resolution() -> None:
    now = timezone.now()
    long_ago = now - timedelta(days=30)
    store.set_retained("t/old", b"x", qos=0, actor=ACTOR, now=long_ago)
    store.set_retained("t/recent", b"x", qos=0, actor=ACTOR, now=now - timedelta(minutes=5))
    assert store.touch_retained(["t/old", "t/recent", "t/missing"], now=now) == 1
    clocks = dict(RetainedMessage.objects.values_list("topic", "last_accessed_at"))
    assert clocks["t/old"] == now
    assert clocks["t/recent"] == now - timedelta(minutes=5)


def test_sweep_searches_indexes_instead_of_scanning_the_table() -> None:
    """At a million rows a full scan per sweep batch would stall the database writer."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        store.sweep_retained()
    select = next(q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT"))
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {select}")
        plan = " | ".join(str(row[-1]) for row in cursor.fetchall())
    assert "SCAN" not in plan, plan
    assert "retained_expires_at_partial" in plan, plan
