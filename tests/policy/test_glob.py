"""Table-driven tests for retained.policy.glob (pure: no Django)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retained.policy.glob import Pattern, Wildcard, compile_glob, escape_literal, glob_match
from retained.policy.variables import parse_template

# (pattern, text, case_sensitive, expected)
GLOB_CASES: list[tuple[str, str, bool, bool]] = [
    # literals
    ("a/b", "a/b", True, True),
    ("a/b", "a/b/c", True, False),
    ("a/b", "a/", True, False),
    ("", "", True, True),
    ("", "a", True, False),
    # '*': any run, including '/' and including nothing
    ("*", "", True, True),
    ("*", "anything/at/all", True, True),
    ("a/*", "a/b", True, True),
    ("a/*", "a/b/c/d", True, True),
    ("a/*", "a/", True, True),
    ("a/*", "a", True, False),
    ("*/status", "x/y/status", True, True),
    ("*/status", "x/y/statusz", True, False),
    ("a*b*c", "abc", True, True),
    ("a*b*c", "a-b-b-c", True, True),
    ("a*b*c", "acb", True, False),
    ("a**b", "ab", True, True),
    ("*a*a*", "aa", True, True),
    ("*a*a*", "a", True, False),
    ("*ab", "aab", True, True),
    # '?': exactly one character (also '/')
    ("a/?", "a/b", True, True),
    ("a/?", "a/bc", True, False),
    ("a/?", "a/", True, False),
    ("a?b", "a/b", True, True),
    ("??", "\u6e29\U0001f600", True, True),
    ("?*?", "ab", True, True),
    ("?*?", "a", True, False),
    # MQTT wildcards and regex metacharacters are literal
    ("a/+", "a/+", True, True),
    ("a/+", "a/b", True, False),
    ("a/#", "a/#", True, True),
    ("a/#", "a/b/c", True, False),
    ("a/#", "a", True, False),
    ("a+b", "aab", True, False),  # the peer bug: '+' must not be a regex quantifier
    ("a+b", "a+b", True, True),
    ("a.b", "axb", True, False),
    ("a.b", "a.b", True, True),
    ("[ab]", "a", True, False),
    ("[ab]", "[ab]", True, True),
    ("a{2}", "aa", True, False),
    ("^a$", "^a$", True, True),
    ("a|b", "a", True, False),
    ("(a)\\d", "(a)\\d", True, True),
    # case
    ("topic/Alpha", "topic/alpha", True, False),
    ("iot:Publish", "IOT:PUBLISH", False, True),
    ("iot:get*", "iot:GetRetainedMessage", False, True),
    ("IOT:?UBLISH", "iot:publish", False, True),
    ("iot:Get*", "iot:ListRetainedMessages", False, False),
]


@pytest.mark.parametrize(("pattern", "text", "case_sensitive", "expected"), GLOB_CASES)
def test_glob_table(pattern: str, text: str, case_sensitive: bool, expected: bool) -> None:
    assert glob_match(pattern, text, case_sensitive=case_sensitive) is expected
    assert compile_glob(pattern).matches(text, case_sensitive=case_sensitive) is expected


def test_literal_tokens_are_never_wildcards() -> None:
    star = Pattern.literal("a/*")
    assert star.matches("a/*")
    assert not star.matches("a/b")
    assert star.is_literal
    question = Pattern.from_tokens(["q", "?", Wildcard.ANY_RUN])
    assert question.matches("q?tail")
    assert not question.matches("qxtail")


def test_patterns_normalise() -> None:
    assert compile_glob("a**b") == compile_glob("a*b")
    assert Pattern.from_tokens(["a", "", "b"]) == Pattern.literal("ab")
    assert Pattern.from_tokens(["a", "b"]).tokens == ("ab",)


def test_str_writes_policy_syntax() -> None:
    assert str(compile_glob("topic/a/*")) == "topic/a/*"
    assert str(Pattern.from_tokens(["a*?", Wildcard.ANY_CHAR])) == "a${*}${?}?"
    assert str(Pattern.literal("${x}")) == "${$}{x}"
    assert str(Pattern.literal("$aws/things")) == "$aws/things"


@pytest.mark.parametrize(
    ("pattern", "maxsplit", "expected"),
    [
        ("a:b:c", -1, ["a", "b", "c"]),
        ("a:b:c", 1, ["a", "b:c"]),
        ("arn:*:iot:r:1:topic/a:b", 5, ["arn", "*", "iot", "r", "1", "topic/a:b"]),
        ("*", 5, ["*"]),
        (":", -1, ["", ""]),
    ],
)
def test_split(pattern: str, maxsplit: int, expected: list[str]) -> None:
    parts = compile_glob(pattern).split(":", maxsplit)
    assert [str(part) for part in parts] == expected
    # a substituted value's ':' is a literal character like any other: it splits too
    substituted = Pattern.from_tokens(["x", Wildcard.ANY_RUN, "a:b"])
    assert substituted.split(":") == (compile_glob("x*a"), Pattern.literal("b"))


ALPHABET = "ab/+#.*?["


def _oracle(pattern: str, text: str) -> bool:
    """Reference matcher for the test only: a regex built with re.escape."""
    regex = "".join(
        ".*" if char == "*" else "." if char == "?" else re.escape(char) for char in pattern
    )
    return re.fullmatch(regex, text, flags=re.DOTALL) is not None


@given(st.text(ALPHABET, max_size=8), st.text(ALPHABET, max_size=10))
def test_glob_agrees_with_reference(pattern: str, text: str) -> None:
    assert glob_match(pattern, text) is _oracle(pattern, text)


@given(st.text())
def test_literal_matches_itself_only(text: str) -> None:
    assert Pattern.literal(text).matches(text)
    assert not Pattern.literal(text).matches(text + "x")
    # escape_literal gives policy text that parses back to exactly this literal
    assert parse_template(escape_literal(text)).pattern({}) == Pattern.literal(text)
    assert str(Pattern.literal(text)) == escape_literal(text)
