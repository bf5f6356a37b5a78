"""Policy variables and escapes in resources and condition values.

Policy text may contain

* variables: ``${iot:ClientId}``, ``${iot:Connection.Thing.ThingName}``,
  ``${iot:Certificate.Subject.CommonName}`` and ``${aws:username}`` (ours, for console
  users), replaced by values from the request context;
* escapes: ``${*}``, ``${?}`` and ``${$}``, standing for a literal ``*``, ``?`` and ``$``.

A :class:`Template` is the parsed text. Resolving it gives a glob
:class:`~retained.policy.glob.Pattern` in which the raw ``*``/``?`` are wildcards while
escapes AND substituted values are literal: a client whose id is ``*`` must not be
granted every topic by ``topic/${iot:ClientId}/*``.

When the context does not provide a variable the template does not resolve (``None``)
and the caller treats the resource or condition as not matching, for Allow and Deny
alike. Variable names are matched case-insensitively (like IAM condition keys) and
stored in their canonical spelling. Pure module: standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from retained.policy.glob import Pattern, Token, Wildcard, escape_literal

__all__ = [
    "KNOWN_VARIABLES",
    "Template",
    "TemplateError",
    "Variable",
    "escape_literal",
    "parse_template",
    "variable_values",
]

KNOWN_VARIABLES: tuple[str, ...] = (
    "iot:ClientId",
    "iot:Connection.Thing.ThingName",
    "iot:Certificate.Subject.CommonName",
    "aws:username",
)
_CANONICAL = {name.lower(): name for name in KNOWN_VARIABLES}
_ESCAPES = frozenset("*?$")


class TemplateError(ValueError):
    """Policy text with a malformed ``${...}``; ``str(error)`` says what is wrong."""


@dataclass(frozen=True)
class Variable:
    """A ``${name}`` reference, ``name`` in its canonical spelling."""

    name: str


TemplatePart = Token | Variable


@dataclass(frozen=True)
class Template:
    """Parsed policy text: literal runs, raw wildcards and variables."""

    source: str
    parts: tuple[TemplatePart, ...]

    @cached_property
    def variables(self) -> frozenset[str]:
        return frozenset(part.name for part in self.parts if isinstance(part, Variable))

    @cached_property
    def static_pattern(self) -> Pattern | None:
        """The pattern, built once, when the text uses no variable."""
        return self.pattern({}) if not self.variables else None

    def pattern(self, values: Mapping[str, str]) -> Pattern | None:
        """The glob with variables substituted (literally), or None if one is missing.

        ``values`` maps canonical variable names to values (see :func:`variable_values`).
        """
        tokens: list[Token] = []
        for part in self.parts:
            if isinstance(part, Variable):
                value = values.get(part.name)
                if value is None:
                    return None
                tokens.append(value)
            else:
                tokens.append(part)
        return Pattern.from_tokens(tokens)

    def text(self, values: Mapping[str, str]) -> str | None:
        """The text with variables substituted and ``*``/``?`` taken literally.

        For operators that do not glob (StringEquals, Bool, ...). None if a variable is
        missing.
        """
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, Variable):
                value = values.get(part.name)
                if value is None:
                    return None
                out.append(value)
            else:
                out.append(part.value if isinstance(part, Wildcard) else part)
        return "".join(out)


def parse_template(source: str) -> Template:
    """Parse policy text; raise :class:`TemplateError` on an unknown or unclosed ``${``."""
    parts: list[TemplatePart] = []
    literal: list[str] = []

    def flush() -> None:
        if literal:
            parts.append("".join(literal))
            literal.clear()

    index = 0
    while index < len(source):
        char = source[index]
        if char == "$" and source.startswith("${", index):
            close = source.find("}", index + 2)
            if close < 0:
                raise TemplateError(f"unclosed '${{' at character {index + 1}")
            name = source[index + 2 : close]
            if name in _ESCAPES:
                literal.append(name)
            elif name.lower() in _CANONICAL:
                flush()
                parts.append(Variable(_CANONICAL[name.lower()]))
            else:
                known = ", ".join("${" + known + "}" for known in KNOWN_VARIABLES)
                raise TemplateError(
                    f"unknown policy variable '${{{name}}}' (known: {known};"
                    " escapes: ${*}, ${?}, ${$})"
                )
            index = close + 1
            continue
        if char == "*":
            flush()
            parts.append(Wildcard.ANY_RUN)
        elif char == "?":
            flush()
            parts.append(Wildcard.ANY_CHAR)
        else:
            literal.append(char)
        index += 1
    flush()
    return Template(source, tuple(parts))


def variable_values(context: Mapping[str, object]) -> dict[str, str]:
    """The variable values a request context provides, keyed by canonical name.

    Keys are looked up case-insensitively. Only non-empty strings count: a device with
    no thing attached must not get ``topic//*`` out of ``topic/${...ThingName}/*``.
    """
    values: dict[str, str] = {}
    for key, value in context.items():
        name = _CANONICAL.get(key.lower())
        if name is not None and isinstance(value, str) and value:
            values[name] = value
    return values
