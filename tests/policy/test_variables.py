"""Tests for retained.policy.variables (pure: no Django)."""

from __future__ import annotations

import re

import pytest

from retained.policy.glob import Pattern, Wildcard, compile_glob
from retained.policy.variables import (
    TemplateError,
    Variable,
    parse_template,
    variable_values,
)

VALUES = {"iot:ClientId": "c*1", "aws:username": "alice"}

# (policy text, parts, pattern with VALUES, text with VALUES)
TEMPLATE_CASES: list[tuple[str, tuple[object, ...], Pattern | None, str | None]] = [
    ("topic/a", ("topic/a",), Pattern.literal("topic/a"), "topic/a"),
    ("a/*", ("a/", Wildcard.ANY_RUN), compile_glob("a/*"), "a/*"),
    ("a/${*}", ("a/*",), Pattern.literal("a/*"), "a/*"),
    ("${?}?", ("?", Wildcard.ANY_CHAR), Pattern.from_tokens(["?", Wildcard.ANY_CHAR]), "??"),
    ("${$}{x}", ("${x}",), Pattern.literal("${x}"), "${x}"),
    ("$aws/x", ("$aws/x",), Pattern.literal("$aws/x"), "$aws/x"),
    (
        "t/${iot:ClientId}/*",
        ("t/", Variable("iot:ClientId"), "/", Wildcard.ANY_RUN),
        Pattern.from_tokens(["t/c*1/", Wildcard.ANY_RUN]),  # the value's '*' is literal
        "t/c*1/*",
    ),
    ("${AWS:USERNAME}", (Variable("aws:username"),), Pattern.literal("alice"), "alice"),
    ("${iot:Connection.Thing.ThingName}", (Variable("iot:Connection.Thing.ThingName"),), None,
     None),
]  # fmt: skip


@pytest.mark.parametrize(("source", "parts", "pattern", "text"), TEMPLATE_CASES)
def test_templates(
    source: str, parts: tuple[object, ...], pattern: Pattern | None, text: str | None
) -> None:
    template = parse_template(source)
    assert template.parts == parts
    assert template.pattern(VALUES) == pattern
    assert template.text(VALUES) == text


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("a/${iot:Nope}", "unknown policy variable '${iot:Nope}'"),
        ("a/${}", "unknown policy variable '${}'"),
        ("a/${iot:ClientId", "unclosed '${' at character 3"),
    ],
)
def test_template_errors(source: str, message: str) -> None:
    with pytest.raises(TemplateError, match=re.escape(message)):
        parse_template(source)


def test_variable_values_ignore_key_case_and_empty_or_non_string_values() -> None:
    context = {
        "IOT:CLIENTID": "c1",
        "iot:Connection.Thing.ThingName": "",
        "aws:username": ["not", "a", "string"],
        "iot:ConnectAttributes": ["LastWill"],
    }
    assert variable_values(context) == {"iot:ClientId": "c1"}
