"""Table-driven tests for retained.topics (pure module: no Django needed)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retained.topics import (
    InvalidTopicError,
    TopicLimits,
    is_wildcard_filter,
    split_shared_subscription,
    topic_matches,
    validate_topic_filter,
    validate_topic_name,
)

E_ACUTE = "\u00e9"  # 2 bytes in UTF-8
CJK = "\u6e29"  # 3 bytes in UTF-8
EMOJI = "\U0001f600"  # 4 bytes in UTF-8

# --------------------------------------------------------------------------- matching

# (filter, topic, expected)
MATCH_CASES: list[tuple[str, str, bool]] = [
    # literal filters
    ("a", "a", True),
    ("a/b", "a/b", True),
    ("a/b", "a/b/c", False),
    ("a/b/c", "a/b", False),
    ("a/b", "a", False),
    ("a", "b", False),
    ("A", "a", False),  # case-sensitive
    ("sport/Tennis", "sport/tennis", False),
    ("/", "/", True),
    ("/a", "/a", True),
    ("/a", "a", False),
    ("a/", "a", False),
    ("a", "a/", False),
    ("a//b", "a//b", True),
    ("a//b", "a/b", False),
    ("a b", "a b", True),
    ("a b", "ab", False),
    (f"caf{E_ACUTE}/{CJK}", f"caf{E_ACUTE}/{CJK}", True),
    (f"caf{E_ACUTE}", "cafe", False),
    # policy-like / regex-like characters are literal
    ("a.b", "a.b", True),
    ("a.b", "axb", False),
    ("*", "a", False),
    ("*", "*", True),
    ("a/*", "a/b", False),
    ("a/*", "a/*", True),
    ("a?", "ab", False),
    ("a?", "a?", True),
    ("a/.*", "a/bc", False),
    ("[ab]", "a", False),
    # '+': exactly one level, possibly empty
    ("+", "a", True),
    ("+", "/", False),  # two (empty) levels
    ("+", "a/b", False),
    ("+/+", "/", True),
    ("+/+", "a/b", True),
    ("+/+", "a", False),
    ("+/+", "a/b/c", False),
    ("sport/+", "sport/", True),
    ("sport/+", "sport/tennis", True),
    ("sport/+", "sport", False),
    ("sport/+", "sport/tennis/player1", False),
    ("sport/+/player1", "sport/tennis/player1", True),
    ("sport/+/player1", "sport//player1", True),
    ("sport/+/player1", "sport/tennis/player2", False),
    ("+/tennis/#", "sport/tennis/player1/ranking", True),
    ("+/b", "/b", True),
    ("a/+", "a//", False),
    # '#': the parent and any number of levels below it
    ("#", "a", True),
    ("#", "a/b/c", True),
    ("#", "/", True),
    ("#", "/a", True),
    ("sport/#", "sport", True),
    ("sport/#", "sport/", True),
    ("sport/#", "sport/tennis", True),
    ("sport/#", "sport/tennis/player1", True),
    ("sport/#", "sports", False),
    ("sport/#", "sport2/tennis", False),
    ("sport/#", "Sport/tennis", False),
    ("a/#", "a", True),
    ("a/#", "b", False),
    ("a/b/#", "a", False),
    ("a/+/#", "a", False),
    ("a/+/#", "a/b", True),
    ("a/+/#", "a/b/c/d", True),
    ("/#", "/", True),
    ("/#", "a", False),
    # '$' topics [MQTT-4.7.2-1]
    ("#", "$SYS/x", False),
    ("#", "$SYS", False),
    ("#", "$", False),
    ("+", "$SYS", False),
    ("+/x", "$SYS/x", False),
    ("+/monitor", "$SYS/monitor", False),
    ("+/#", "$SYS/x", False),
    ("$SYS/#", "$SYS/x", True),
    ("$SYS/#", "$SYS", True),
    ("$SYS/+", "$SYS/monitor", True),
    ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
    ("$SYS", "$SYS", True),
    ("$+", "$SYS", False),  # not a valid filter, but never a wildcard either
    ("a/$SYS", "a/$SYS", True),
    ("+/$SYS", "a/$SYS", True),  # '$' only matters at the start of the topic
    ("#", "a/$SYS", True),
    ("$aws/things/+/shadow/update", "$aws/things/t1/shadow/update", True),
    ("$aws/things/+/shadow/update", "$aws/things/t1/shadow/get", False),
    ("$aws/#", "$aws/things/t1/shadow/update", True),
]


def _match_id(case: tuple[str, str, bool]) -> str:
    topic_filter, topic, expected = case
    return f"{topic_filter!r}{'~' if expected else '!~'}{topic!r}"


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"), MATCH_CASES, ids=[_match_id(c) for c in MATCH_CASES]
)
def test_topic_matches(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected


def test_match_table_is_large_enough() -> None:
    assert len(MATCH_CASES) >= 50


# ----------------------------------------------------------------- topic name validation

VALID_NAMES: list[tuple[str, str]] = [
    ("simple", "a"),
    ("levels", "a/b/c"),
    ("dollar-sys", "$SYS/x"),
    ("dollar-only", "$foo"),
    ("space", "a b"),
    ("unicode", f"caf{E_ACUTE}/{CJK}"),
    ("slash-only", "/"),
    ("empty-level", "a//b"),
    ("trailing-slash", "a/"),
    ("leading-slash", "/a"),
    ("policy-chars", "a.b/*/?"),
    ("aws-reserved-not-retained", "$aws/things/x/shadow"),
    ("share-literal", "$share/g/a"),
    ("256-ascii", "a" * 256),
    ("256-two-byte", E_ACUTE * 128),
    ("256-three-byte", CJK * 85 + "a"),
    ("256-four-byte", EMOJI * 64),
    ("7-slashes", "a/b/c/d/e/f/g/h"),
    ("7-bare-slashes", "/" * 7),
]


@pytest.mark.parametrize(("case_id", "topic"), VALID_NAMES, ids=[c[0] for c in VALID_NAMES])
def test_valid_topic_names(case_id: str, topic: str) -> None:
    validate_topic_name(topic)


# (id, topic, for_retain, expected substring of the error message)
INVALID_NAMES: list[tuple[str, str, bool, str]] = [
    ("empty", "", False, "empty"),
    ("nul", "a\u0000b", False, "null character"),
    ("nul-only", "\u0000", False, "U+0000"),
    ("lone-surrogate", "\ud800", False, "UTF-8"),
    ("lone-surrogate-in-level", "a/\udfff/b", False, "surrogate"),
    ("plus-level", "a/+/b", False, "wildcard"),
    ("plus-in-level", "a+b", False, "'+'"),
    ("hash-level", "a/#", False, "'#'"),
    ("hash-alone", "#", False, "wildcard"),
    ("plus-alone", "+", False, "wildcard"),
    ("257-ascii", "a" * 257, False, "longer than 256 bytes (257)"),
    ("257-two-byte", E_ACUTE * 128 + "a", False, "longer than 256 bytes (257)"),
    ("258-three-byte", CJK * 86, False, "longer than 256 bytes (258)"),
    ("260-four-byte", EMOJI * 65, False, "longer than 256 bytes (260)"),
    ("300-bytes", "x" * 300, False, "topic is longer than 256 bytes (300)"),
    ("8-slashes", "a/b/c/d/e/f/g/h/i", False, "more than 7 '/' (8)"),
    ("8-bare-slashes", "/" * 8, False, "more than 7 '/' (8)"),
    ("aws-shadow-retain", "$aws/things/x/shadow", True, "$aws/"),
    ("aws-root-retain", "$aws/x", True, "reserved"),
    ("retain-still-checks-wildcards", "a/+", True, "wildcard"),
]


@pytest.mark.parametrize(
    ("case_id", "topic", "for_retain", "message"), INVALID_NAMES, ids=[c[0] for c in INVALID_NAMES]
)
def test_invalid_topic_names(case_id: str, topic: str, for_retain: bool, message: str) -> None:
    with pytest.raises(InvalidTopicError) as excinfo:
        validate_topic_name(topic, for_retain=for_retain)
    assert message in str(excinfo.value)


# Topics valid for retain too: only "$aws/" (lower case, with the slash) is reserved.
RETAIN_OK: list[tuple[str, str]] = [
    ("plain", "a/b"),
    ("dollar-sys", "$SYS/x"),
    ("aws-no-slash", "$aws"),
    ("aws-upper", "$AWS/things/x"),
    ("aws-prefix-word", "$awsome/x"),
    ("aws-not-first", "a/$aws/x"),
]


@pytest.mark.parametrize(("case_id", "topic"), RETAIN_OK, ids=[c[0] for c in RETAIN_OK])
def test_valid_retain_topics(case_id: str, topic: str) -> None:
    validate_topic_name(topic, for_retain=True)


def test_invalid_topic_error_is_value_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        validate_topic_name("")


# (id, limits, topic, valid)
CUSTOM_LIMITS: list[tuple[str, TopicLimits, str, bool]] = [
    ("bytes-at-limit", TopicLimits(max_bytes=4), "abcd", True),
    ("bytes-over-limit", TopicLimits(max_bytes=4), "abcde", False),
    ("multibyte-over-limit", TopicLimits(max_bytes=4), "ab" + E_ACUTE + "c", False),
    ("slashes-at-limit", TopicLimits(max_slashes=1), "a/b", True),
    ("slashes-over-limit", TopicLimits(max_slashes=1), "a/b/c", False),
    ("no-slashes-allowed", TopicLimits(max_slashes=0), "/", False),
]


@pytest.mark.parametrize(
    ("case_id", "limits", "topic", "valid"), CUSTOM_LIMITS, ids=[c[0] for c in CUSTOM_LIMITS]
)
def test_custom_limits(case_id: str, limits: TopicLimits, topic: str, valid: bool) -> None:
    for validate in (validate_topic_name, validate_topic_filter):
        if valid:
            validate(topic, limits=limits)
        else:
            with pytest.raises(InvalidTopicError):
                validate(topic, limits=limits)


# --------------------------------------------------------------- topic filter validation

VALID_FILTERS: list[tuple[str, str]] = [
    ("literal", "a/b"),
    ("hash-alone", "#"),
    ("plus-alone", "+"),
    ("hash-last", "a/#"),
    ("plus-middle", "a/+/b"),
    ("plus-plus", "+/+"),
    ("plus-then-hash", "+/#"),
    ("slash-hash", "/#"),
    ("slash-only", "/"),
    ("empty-levels", "a//b/"),
    ("dollar-sys", "$SYS/#"),
    ("aws", "$aws/things/+/shadow/update"),
    ("policy-chars", "a.b/*/?"),
    ("unicode", f"caf{E_ACUTE}/+/{CJK}"),
    ("shared", "$share/g/a/b"),
    ("shared-hash", "$share/g/#"),
    ("shared-plus", "$share/group-1/+/x"),
    ("shared-dollar-filter", "$share/g/$SYS/#"),
    ("share-no-slash-is-literal", "$share"),
    ("share-upper-is-literal", "$SHARE//a"),
    ("256-bytes", "a" * 256),
    ("256-bytes-two-byte", E_ACUTE * 128),
    ("256-bytes-two-byte-wildcard", E_ACUTE * 127 + "/#"),
    ("7-slashes", "+/+/+/+/+/+/+/#"),
    ("shared-prefix-not-counted-slashes", "$share/g/a/b/c/d/e/f/g/h"),
    ("shared-prefix-not-counted-bytes", "$share/g/" + "a" * 256),
    ("shared-prefix-not-counted-two-byte", "$share/g/" + E_ACUTE * 128),
]


@pytest.mark.parametrize(
    ("case_id", "topic_filter"), VALID_FILTERS, ids=[c[0] for c in VALID_FILTERS]
)
def test_valid_topic_filters(case_id: str, topic_filter: str) -> None:
    validate_topic_filter(topic_filter)


# (id, filter, expected substring of the error message)
INVALID_FILTERS: list[tuple[str, str, str]] = [
    ("empty", "", "empty"),
    ("nul", "a/\u0000", "null character"),
    ("lone-surrogate", "\ud800/#", "UTF-8"),
    ("hash-glued", "a#", "'#'"),
    ("hash-glued-level", "a/b#", "'#' must be a whole level"),
    ("hash-before", "#a", "'#'"),
    ("hash-not-last", "a/#/b", "last level"),
    ("hash-hash", "#/#", "last level"),
    ("plus-glued-after", "a+", "'+' must be a whole level"),
    ("plus-glued-before", "+a", "'+'"),
    ("plus-glued-level", "a/b+/c", "'+'"),
    ("plus-hash", "+#", "'#'"),
    ("257-bytes", "a" * 257, "longer than 256 bytes (257)"),
    ("257-bytes-two-byte", E_ACUTE * 127 + "a/#", "longer than 256 bytes (257)"),
    ("8-slashes", "+/+/+/+/+/+/+/+/#", "more than 7 '/' (8)"),
    ("share-no-filter", "$share/g", "no topic filter"),
    ("share-empty-filter", "$share/g/", "no topic filter"),
    ("share-empty-name", "$share//a", "empty share name"),
    ("share-only-prefix", "$share/", "empty share name"),
    ("share-name-plus", "$share/g+/a", "share name"),
    ("share-name-hash", "$share/#/a", "share name"),
    ("share-bad-filter", "$share/g/a#", "'#'"),
    ("share-hash-not-last", "$share/g/#/a", "last level"),
    ("share-nul-name", "$share/g\u0000/a", "null character"),
    ("share-257-bytes", "$share/g/" + "a" * 257, "longer than 256 bytes (257)"),
    ("long-level-message-shortened", "a" * 100 + "+", "'+' must be a whole level"),
    ("share-8-slashes", "$share/g/a/b/c/d/e/f/g/h/i", "more than 7 '/' (8)"),
]


@pytest.mark.parametrize(
    ("case_id", "topic_filter", "message"), INVALID_FILTERS, ids=[c[0] for c in INVALID_FILTERS]
)
def test_invalid_topic_filters(case_id: str, topic_filter: str, message: str) -> None:
    with pytest.raises(InvalidTopicError) as excinfo:
        validate_topic_filter(topic_filter)
    assert message in str(excinfo.value)


# ------------------------------------------------------------------------ helpers

SPLIT_CASES: list[tuple[str, str | None, str]] = [
    ("$share/g/a/b", "g", "a/b"),
    ("$share/group/#", "group", "#"),
    ("$share/g/$share/h/a", "g", "$share/h/a"),
    ("a/b", None, "a/b"),
    ("#", None, "#"),
    ("$share", None, "$share"),
    ("$SYS/#", None, "$SYS/#"),
]


@pytest.mark.parametrize(
    ("topic_filter", "share_name", "inner"), SPLIT_CASES, ids=[c[0] for c in SPLIT_CASES]
)
def test_split_shared_subscription(topic_filter: str, share_name: str | None, inner: str) -> None:
    assert split_shared_subscription(topic_filter) == (share_name, inner)


WILDCARD_CASES: list[tuple[str, bool]] = [
    ("a/b", False),
    ("#", True),
    ("+", True),
    ("a/+/b", True),
    ("a/#", True),
    ("$SYS/#", True),
    ("$share/g/a/b", False),
    ("$share/g/+", True),
    ("/", False),
    ("a.b/*/?", False),
]


@pytest.mark.parametrize(
    ("topic_filter", "expected"), WILDCARD_CASES, ids=[c[0] for c in WILDCARD_CASES]
)
def test_is_wildcard_filter(topic_filter: str, expected: bool) -> None:
    assert is_wildcard_filter(topic_filter) is expected


# ----------------------------------------------------------------------- property

valid_topic_names = st.text(alphabet="/$ab.", min_size=1, max_size=40).filter(
    lambda t: t.count("/") <= 7
)


@given(valid_topic_names)
def test_matching_properties(topic: str) -> None:
    validate_topic_name(topic)
    validate_topic_filter(topic)
    not_dollar = not topic.startswith("$")

    assert topic_matches(topic, topic)
    assert topic_matches("#", topic) is not_dollar

    all_plus = "/".join("+" for _ in topic.split("/"))
    validate_topic_filter(all_plus)
    assert topic_matches(all_plus, topic) is not_dollar
