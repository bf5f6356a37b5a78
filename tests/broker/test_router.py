"""Tests for the subscription index (retained.broker.router).

The index must agree exactly with retained.topics.topic_matches, the project's
reference matcher: the matching table below checks both, and a Hypothesis property
compares the index with a brute-force scan over random subscription sets.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retained.broker.router import Match, SubscriptionIndex, SubscriptionOptions
from retained.topics import split_shared_subscription, topic_matches, validate_topic_filter

BOUNDED = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

QOS0 = SubscriptionOptions()
QOS1 = SubscriptionOptions(qos=1)


def pairs(matches: list[Match]) -> list[tuple[str, str]]:
    return [(m.client_id, m.topic_filter) for m in matches]


# ============================================================================ matching table

MATCHING = [
    # (filter, topic, matches)
    ("sport/#", "sport", True),  # '#' matches the parent level
    ("sport/#", "sport/", True),
    ("sport/#", "sport/tennis", True),
    ("sport/#", "sport/tennis/player1", True),
    ("sport/#", "sports", False),
    ("sport/#", "sports/tennis", False),
    ("sport/tennis/#", "sport/tennis", True),
    ("sport/tennis/#", "sport", False),
    ("sport/+", "sport/", True),  # '+' matches an empty level
    ("sport/+", "sport", False),
    ("sport/+", "sport/tennis", True),
    ("sport/+", "sport/tennis/player1", False),
    ("sport/+/player1", "sport/tennis/player1", True),
    ("sport/+/player1", "sport//player1", True),
    ("+", "sport", True),
    ("+", "/", False),
    ("+/+", "/", True),
    ("/+", "/", True),
    ("+/", "/", True),
    ("+/+", "a", False),
    ("+/+", "a/b/c", False),
    ("#", "sport", True),
    ("#", "/", True),
    ("#", "a/b/c/d/e/f/g/h", True),
    ("#", "$SYS/x", False),  # [MQTT-4.7.2-1]
    ("#", "$SYS", False),
    ("+", "$SYS", False),
    ("+/monitor", "$SYS/monitor", False),
    ("+/#", "$SYS/monitor", False),
    ("$SYS/#", "$SYS/x", True),
    ("$SYS/#", "$SYS", True),
    ("$SYS/+", "$SYS/monitor", True),
    ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
    ("a/+/$x", "a/b/$x", True),  # '$' only matters on the first level of the topic
    ("a/#", "a/$x", True),
    ("Sport", "sport", False),  # case-sensitive
    ("sport/tennis", "sport/tennis", True),
    ("sport/tennis", "sport/tennis/", False),
    ("a//b", "a//b", True),
    ("a//b", "a/b", False),
    ("/", "/", True),
    ("/#", "/", True),
    ("/#", "a", False),
    ("a.b*?", "a.b*?", True),  # no regex characters
    ("a/b/c/d/e/f/g/#", "a/b/c/d/e/f/g/h", True),
    ("+/+/+/+/+/+/+/+", "a/b/c/d/e/f/g/h", True),
]


@pytest.mark.parametrize(("topic_filter", "topic", "expected"), MATCHING)
def test_matching_table(topic_filter: str, topic: str, expected: bool) -> None:
    validate_topic_filter(topic_filter)
    assert topic_matches(topic_filter, topic) is expected  # the reference agrees with the table
    index = SubscriptionIndex()
    index.add("c", topic_filter, QOS1)
    expected_matches = [Match("c", topic_filter, QOS1, None)] if expected else []
    assert index.match(topic) == expected_matches


@pytest.mark.parametrize(("topic_filter", "topic", "expected"), MATCHING)
def test_matching_table_shared(topic_filter: str, topic: str, expected: bool) -> None:
    shared = f"$share/g/{topic_filter}"
    validate_topic_filter(shared)
    index = SubscriptionIndex()
    index.add("c", shared, QOS0)
    expected_matches = [Match("c", shared, QOS0, "g")] if expected else []
    assert index.match(topic) == expected_matches


def test_all_table_rows_in_one_index() -> None:
    index = SubscriptionIndex()
    filters = sorted({f for f, _, _ in MATCHING})
    for topic_filter in filters:
        index.add("c", topic_filter, QOS0)
    for topic in sorted({t for _, t, _ in MATCHING}):
        got = sorted(f for _, f in pairs(index.match(topic)))
        assert got == [f for f in filters if topic_matches(f, topic)], topic


def test_overlapping_filters_give_one_match_each() -> None:
    index = SubscriptionIndex()
    for topic_filter in ("sport/#", "sport/+", "sport/tennis", "#", "+/+", "other"):
        index.add("c1", topic_filter, QOS0)
    index.add("c2", "sport/tennis", QOS1)
    got = index.match("sport/tennis")
    assert sorted(pairs(got)) == sorted(
        [
            ("c1", "#"),
            ("c1", "sport/#"),
            ("c1", "sport/tennis"),
            ("c1", "sport/+"),
            ("c1", "+/+"),
            ("c2", "sport/tennis"),
        ]
    )
    assert all(m.share_group is None for m in got)
    assert next(m for m in got if m.client_id == "c2").options == QOS1


def test_match_order_is_deterministic_and_documented() -> None:
    index = SubscriptionIndex()
    for client, topic_filter in [
        ("c2", "a/b"),
        ("c1", "+/b"),
        ("c1", "a/b"),
        ("c1", "a/#"),
        ("c3", "#"),
        ("c1", "+/#"),
    ]:
        index.add(client, topic_filter, QOS0)
    # breadth-first along the topic: root '#', then at level 1 '#' children (literal
    # "a" before '+'), then the full filters (literal before '+'); per filter,
    # subscription order.
    assert pairs(index.match("a/b")) == [
        ("c3", "#"),
        ("c1", "a/#"),
        ("c1", "+/#"),
        ("c2", "a/b"),
        ("c1", "a/b"),
        ("c1", "+/b"),
    ]


def test_topic_with_no_subscriptions() -> None:
    index = SubscriptionIndex()
    assert index.match("a/b") == []
    index.add("c", "x/y", QOS0)
    assert index.match("a/b") == []
    assert index.match("x") == []
    assert index.match("x/y/z") == []


# ======================================================================= add / remove / replace


def test_add_new_and_replace() -> None:
    index = SubscriptionIndex()
    assert index.add("c", "a/+", QOS0) is True
    assert index.add("c", "a/+", QOS1) is False  # [MQTT-3.8.4-3] same filter replaces
    assert len(index) == 1
    assert index.count("c") == 1
    assert index.subscriptions_of("c") == {"a/+": QOS1}
    assert index.match("a/b") == [Match("c", "a/+", QOS1, None)]


def test_replace_keeps_match_order() -> None:
    index = SubscriptionIndex()
    index.add("c1", "a", QOS0)
    index.add("c2", "a", QOS0)
    index.add("c1", "a", QOS1)
    assert [(m.client_id, m.options) for m in index.match("a")] == [("c1", QOS1), ("c2", QOS0)]


@pytest.mark.parametrize(
    ("steps", "expected_total", "expected_c1"),
    [
        # each step: (op, client, filter, expected return)
        ([("add", "c1", "a", True)], 1, {"a": QOS0}),
        ([("add", "c1", "a", True), ("add", "c1", "a", False)], 1, {"a": QOS0}),
        ([("add", "c1", "a", True), ("add", "c1", "a/#", True)], 2, {"a": QOS0, "a/#": QOS0}),
        ([("add", "c1", "a", True), ("add", "c2", "a", True)], 2, {"a": QOS0}),
        ([("add", "c1", "a", True), ("remove", "c1", "a", True)], 0, {}),
        ([("remove", "c1", "a", False)], 0, {}),
        ([("add", "c1", "a", True), ("remove", "c1", "b", False)], 1, {"a": QOS0}),
        ([("add", "c1", "a", True), ("remove", "c2", "a", False)], 1, {"a": QOS0}),
        ([("add", "c1", "a", True), ("remove", "c1", "a", True), ("remove", "c1", "a", False)],
         0, {}),
        # a shared and an ordinary subscription to the same filter are two subscriptions
        ([("add", "c1", "a", True), ("add", "c1", "$share/g/a", True)], 2,
         {"a": QOS0, "$share/g/a": QOS0}),
        ([("add", "c1", "$share/g/a", True), ("add", "c1", "$share/h/a", True),
          ("add", "c1", "$share/g/a", False)], 2, {"$share/g/a": QOS0, "$share/h/a": QOS0}),
        ([("add", "c1", "$share/g/a", True), ("remove", "c1", "a", False)], 1,
         {"$share/g/a": QOS0}),
        ([("add", "c1", "a", True), ("remove", "c1", "$share/g/a", False)], 1, {"a": QOS0}),
    ],
)  # fmt: skip
def test_add_remove_table(
    steps: list[tuple[str, str, str, bool]],
    expected_total: int,
    expected_c1: dict[str, SubscriptionOptions],
) -> None:
    index = SubscriptionIndex()
    for op, client, topic_filter, expected in steps:
        if op == "add":
            assert index.add(client, topic_filter, QOS0) is expected
        else:
            assert index.remove(client, topic_filter) is expected
    assert len(index) == expected_total
    assert index.subscriptions_of("c1") == expected_c1
    assert index.count("c1") == len(expected_c1)


def test_remove_stops_matching_only_that_subscription() -> None:
    index = SubscriptionIndex()
    index.add("c1", "a/+", QOS0)
    index.add("c1", "a/b", QOS0)
    index.add("c2", "a/+", QOS0)
    assert index.remove("c1", "a/+") is True
    assert pairs(index.match("a/b")) == [("c1", "a/b"), ("c2", "a/+")]


def test_subscriptions_of_is_a_copy() -> None:
    index = SubscriptionIndex()
    index.add("c", "a", QOS0)
    copy = index.subscriptions_of("c")
    copy["b"] = QOS1
    assert index.subscriptions_of("c") == {"a": QOS0}
    assert index.subscriptions_of("nobody") == {}
    assert index.count("nobody") == 0


def test_remove_client() -> None:
    index = SubscriptionIndex()
    for topic_filter in ("a", "a/#", "+/b", "$share/g/a", "#"):
        index.add("c1", topic_filter, QOS0)
    index.add("c2", "a", QOS0)
    index.add("c2", "$share/g/a", QOS0)
    assert index.remove_client("c1") == 5
    assert index.remove_client("c1") == 0
    assert index.remove_client("nobody") == 0
    assert len(index) == 2
    assert index.count("c1") == 0
    assert index.subscriptions_of("c1") == {}
    assert sorted(pairs(index.match("a"))) == [("c2", "$share/g/a"), ("c2", "a")]


# ============================================================================ pruning


def test_empty_index_has_only_the_root() -> None:
    assert SubscriptionIndex().node_count() == 1


def test_pruning_after_removing_everything() -> None:
    index = SubscriptionIndex()
    filters = ["a/b/c", "a/b", "a/+/c", "a/#", "#", "+", "/", "$SYS/#", "$share/g/a/b/c"]
    for client in ("c1", "c2"):
        for topic_filter in filters:
            index.add(client, topic_filter, QOS0)
    assert index.node_count() > 1
    for topic_filter in filters:
        assert index.remove("c1", topic_filter) is True
    assert index.remove_client("c2") == len(filters)
    assert len(index) == 0
    assert index.node_count() == 1
    assert index.match("a/b/c") == []


def test_pruning_keeps_shared_prefixes() -> None:
    index = SubscriptionIndex()
    index.add("c", "a/b/c/d", QOS0)
    index.add("c", "a/b", QOS0)
    nodes = index.node_count()  # root, a, b, c, d
    assert nodes == 5
    index.remove("c", "a/b/c/d")
    assert index.node_count() == 3  # c and d pruned, b still holds "a/b"
    assert pairs(index.match("a/b")) == [("c", "a/b")]
    index.remove("c", "a/b")
    assert index.node_count() == 1


def test_pruning_with_a_subscribed_inner_node() -> None:
    index = SubscriptionIndex()
    index.add("c", "a", QOS0)
    index.add("c", "a/b", QOS0)
    index.remove("c", "a")
    assert index.node_count() == 3  # "a" has no subscription but a child
    assert pairs(index.match("a/b")) == [("c", "a/b")]
    assert index.match("a") == []


# ============================================================================ shared subscriptions


def test_round_robin_over_three_members() -> None:
    index = SubscriptionIndex()
    for client in ("m1", "m2", "m3"):
        index.add(client, "$share/g/jobs/+", QOS1)
    got = [index.match("jobs/x") for _ in range(7)]
    assert all(len(matches) == 1 for matches in got)
    assert [m[0].client_id for m in got] == ["m1", "m2", "m3", "m1", "m2", "m3", "m1"]
    assert got[0][0] == Match("m1", "$share/g/jobs/+", QOS1, "g")


def test_round_robin_is_per_shared_subscription_across_topics() -> None:
    index = SubscriptionIndex()
    for client in ("m1", "m2"):
        index.add(client, "$share/g/jobs/#", QOS0)
    got = [index.match(topic)[0].client_id for topic in ("jobs/a", "jobs/b", "jobs", "jobs/a")]
    assert got == ["m1", "m2", "m1", "m2"]


def test_two_groups_with_the_same_filter_each_deliver() -> None:
    index = SubscriptionIndex()
    index.add("g1a", "$share/g1/t", QOS0)
    index.add("g1b", "$share/g1/t", QOS0)
    index.add("g2a", "$share/g2/t", QOS0)
    index.add("plain", "t", QOS0)
    first = index.match("t")
    assert pairs(first) == [("plain", "t"), ("g1a", "$share/g1/t"), ("g2a", "$share/g2/t")]
    assert [m.share_group for m in first] == [None, "g1", "g2"]
    second = index.match("t")
    assert pairs(second) == [("plain", "t"), ("g1b", "$share/g1/t"), ("g2a", "$share/g2/t")]


def test_same_group_different_filters_are_different_shared_subscriptions() -> None:
    index = SubscriptionIndex()
    index.add("m1", "$share/g/a/+", QOS0)
    index.add("m2", "$share/g/a/#", QOS0)
    assert sorted(pairs(index.match("a/b"))) == [("m1", "$share/g/a/+"), ("m2", "$share/g/a/#")]


def test_shared_follows_the_dollar_rule() -> None:
    index = SubscriptionIndex()
    index.add("m1", "$share/g/#", QOS0)
    index.add("m2", "$share/g/$SYS/#", QOS0)
    assert pairs(index.match("$SYS/x")) == [("m2", "$share/g/$SYS/#")]


def test_is_member_available_skips_offline_members() -> None:
    index = SubscriptionIndex()
    for client in ("m1", "m2", "m3"):
        index.add(client, "$share/g/t", QOS0)
    online = {"m1", "m3"}
    got = [index.match("t", is_member_available=online.__contains__)[0].client_id for _ in range(4)]
    assert got == ["m1", "m3", "m1", "m3"]
    online.add("m2")
    got = [index.match("t", is_member_available=online.__contains__)[0].client_id for _ in range(3)]
    assert got == ["m1", "m2", "m3"]


def test_is_member_available_falls_back_when_nobody_is_available() -> None:
    index = SubscriptionIndex()
    for client in ("m1", "m2"):
        index.add(client, "$share/g/t", QOS0)

    def nobody(client_id: str) -> bool:
        return False

    got = [index.match("t", is_member_available=nobody) for _ in range(3)]
    assert [[m.client_id for m in matches] for matches in got] == [["m1"], ["m2"], ["m1"]]


def test_removing_a_member() -> None:
    index = SubscriptionIndex()
    for client in ("m1", "m2", "m3"):
        index.add(client, "$share/g/t", QOS0)
    assert index.match("t")[0].client_id == "m1"  # next: m2
    assert index.remove("m2", "$share/g/t") is True
    got = [index.match("t")[0].client_id for _ in range(4)]
    assert got == ["m3", "m1", "m3", "m1"]
    assert index.remove("m1", "$share/g/t") is True
    assert [index.match("t")[0].client_id for _ in range(2)] == ["m3", "m3"]
    assert index.remove_client("m3") == 1
    assert index.match("t") == []
    assert index.node_count() == 1


def test_removing_a_member_before_the_cursor_keeps_the_turn() -> None:
    index = SubscriptionIndex()
    for client in ("m1", "m2", "m3"):
        index.add(client, "$share/g/t", QOS0)
    assert [index.match("t")[0].client_id for _ in range(2)] == ["m1", "m2"]  # next: m3
    index.remove("m1", "$share/g/t")
    assert [index.match("t")[0].client_id for _ in range(3)] == ["m3", "m2", "m3"]


def test_removing_the_last_member_in_turn_wraps() -> None:
    index = SubscriptionIndex()
    for client in ("m1", "m2", "m3"):
        index.add(client, "$share/g/t", QOS0)
    assert [index.match("t")[0].client_id for _ in range(2)] == ["m1", "m2"]  # next: m3
    index.remove("m3", "$share/g/t")
    assert [index.match("t")[0].client_id for _ in range(3)] == ["m1", "m2", "m1"]


def test_new_member_joins_the_end_of_the_rotation_and_resubscribing_keeps_place() -> None:
    index = SubscriptionIndex()
    index.add("m1", "$share/g/t", QOS0)
    index.add("m2", "$share/g/t", QOS0)
    assert index.match("t")[0].client_id == "m1"
    assert index.add("m1", "$share/g/t", QOS1) is False
    index.add("m3", "$share/g/t", QOS0)
    got = [index.match("t")[0] for _ in range(4)]
    assert [m.client_id for m in got] == ["m2", "m3", "m1", "m2"]
    assert got[2].options == QOS1


# ============================================================================ hypothesis

FILTER_LEVELS = st.sampled_from(["a", "b", "", "$x", "+"])
TOPIC_LEVELS = st.sampled_from(["a", "b", "", "$x"])


@st.composite
def topic_filters(draw: st.DrawFn) -> str:
    levels = draw(st.lists(FILTER_LEVELS, min_size=0, max_size=4))
    if levels in ([], [""]) or draw(st.booleans()):
        levels.append("#")  # "" alone is not a valid filter
    return "/".join(levels)


TOPICS = st.lists(TOPIC_LEVELS, min_size=1, max_size=5).map("/".join).filter(bool)
CLIENTS = st.sampled_from(["c1", "c2", "c3"])
GROUPS = st.sampled_from(["g", "h"])


@st.composite
def operations(draw: st.DrawFn) -> list[tuple[bool, str, str]]:
    """A sequence of (add?, client, filter), shared filters included."""
    ops = []
    for _ in range(draw(st.integers(0, 25))):
        topic_filter = draw(topic_filters())
        if draw(st.integers(0, 4)) == 0:
            topic_filter = f"$share/{draw(GROUPS)}/{topic_filter}"
        ops.append((draw(st.integers(0, 3)) > 0, draw(CLIENTS), topic_filter))
    return ops


@BOUNDED
@given(operations(), st.lists(TOPICS, min_size=1, max_size=8))
def test_index_agrees_with_brute_force(ops: list[tuple[bool, str, str]], topics: list[str]) -> None:
    index = SubscriptionIndex()
    subs: set[tuple[str, str]] = set()
    for is_add, client, topic_filter in ops:
        validate_topic_filter(topic_filter)
        if is_add:
            assert index.add(client, topic_filter, QOS0) is ((client, topic_filter) not in subs)
            subs.add((client, topic_filter))
        else:
            assert index.remove(client, topic_filter) is ((client, topic_filter) in subs)
            subs.discard((client, topic_filter))
    assert len(index) == len(subs)
    for client in ("c1", "c2", "c3"):
        assert set(index.subscriptions_of(client)) == {f for c, f in subs if c == client}

    for topic in topics:
        matches = index.match(topic)
        plain = [(m.client_id, m.topic_filter) for m in matches if m.share_group is None]
        assert len(plain) == len(set(plain))  # one Match per (client, filter)
        expected = {
            (c, f) for c, f in subs if not f.startswith("$share/") and topic_matches(f, topic)
        }
        assert set(plain) == expected
        # Shared: exactly one Match per matching (group, filter), to one of its members.
        shared: dict[tuple[str | None, str], list[str]] = {}
        for c, f in subs:
            group, inner = split_shared_subscription(f)
            if group is not None and topic_matches(inner, topic):
                shared.setdefault((group, inner), []).append(c)
        got_shared = [m for m in matches if m.share_group is not None]
        assert len(got_shared) == len(shared)
        for m in got_shared:
            group, inner = split_shared_subscription(m.topic_filter)
            assert group == m.share_group
            assert m.client_id in shared[(group, inner)]

    # Removing everything leaves only the root.
    for client in ("c1", "c2", "c3"):
        index.remove_client(client)
    assert len(index) == 0
    assert index.node_count() == 1
