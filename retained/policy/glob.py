"""IAM-style wildcard matching for policy actions and resources.

This is the single policy glob of the project. It is deliberately NOT the MQTT topic
matcher (``retained.topics``): in a policy resource ``+`` and ``#`` are ordinary
characters, and the only wildcards are

* ``*``: any run of characters, possibly empty, INCLUDING ``/``;
* ``?``: exactly one character.

Every other character is literal, so ``topicfilter/a/+`` matches only the filter
``a/+``, and ``a+b`` never matches ``aab`` (a peer built a regex from the raw policy
text and got exactly that wrong). No regular expressions are involved.

A :class:`Pattern` is a parsed glob: a sequence of literal runs and wildcards. It is
built either from raw glob text (:func:`compile_glob`, where ``*`` and ``?`` are
wildcards) or from tokens (:meth:`Pattern.from_tokens`), which is how policy-variable
substitution (``retained.policy.variables``) keeps ``${*}``, ``${?}`` and substituted
values literal. Pure module: standard library only.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "Pattern",
    "Token",
    "Wildcard",
    "compile_glob",
    "escape_literal",
    "glob_match",
]


class Wildcard(enum.Enum):
    """The two wildcards of an IAM-style glob."""

    ANY_RUN = "*"  # any run of characters, including none and including '/'
    ANY_CHAR = "?"  # exactly one character


Token = str | Wildcard
"""One element of a pattern: literal text (a ``str``, never special) or a wildcard."""


def _normalise(tokens: Iterable[Token]) -> tuple[Token, ...]:
    """Merge adjacent literals, drop empty ones, collapse runs of ``*`` (same language)."""
    out: list[Token] = []
    for token in tokens:
        if isinstance(token, str):
            if not token:
                continue
            if out and isinstance(out[-1], str):
                out[-1] += token
                continue
        elif token is Wildcard.ANY_RUN and out and out[-1] is Wildcard.ANY_RUN:
            continue
        out.append(token)
    return tuple(out)


def escape_literal(text: str) -> str:
    """Policy text matching exactly ``text``: ``*``, ``?`` (and ``$`` before ``{``) escaped.

    Used by ``str(Pattern)`` and by callers building policies from client ids etc.
    """
    out: list[str] = []
    for index, char in enumerate(text):
        if char in "*?":
            out.append("${" + char + "}")
        elif char == "$" and text[index + 1 : index + 2] == "{":
            out.append("${$}")
        else:
            out.append(char)
    return "".join(out)


@dataclass(frozen=True)
class Pattern:
    """A parsed glob. Compare with ``==``; ``str()`` gives it back in policy syntax."""

    tokens: tuple[Token, ...]

    def __post_init__(self) -> None:
        # frozen: normalise through object.__setattr__ so equal languages compare equal
        tokens = _normalise(self.tokens)
        object.__setattr__(self, "tokens", tokens)

    @classmethod
    def from_tokens(cls, tokens: Iterable[Token]) -> Pattern:
        return cls(tuple(tokens))

    @classmethod
    def literal(cls, text: str) -> Pattern:
        """A pattern matching exactly ``text``, whatever characters it contains."""
        return cls((text,))

    @property
    def is_literal(self) -> bool:
        """True when the pattern has no wildcard (it matches one string only)."""
        return all(isinstance(token, str) for token in self.tokens)

    def __str__(self) -> str:
        return "".join(
            token.value if isinstance(token, Wildcard) else escape_literal(token)
            for token in self.tokens
        )

    def split(self, separator: str, maxsplit: int = -1) -> tuple[Pattern, ...]:
        """Split on a literal single character, like ``str.split`` (wildcards never split)."""
        if len(separator) != 1:
            raise ValueError("separator must be a single character")
        parts: list[list[Token]] = [[]]
        for token in self.tokens:
            if isinstance(token, Wildcard):
                parts[-1].append(token)
                continue
            pieces = token.split(separator)
            for index, piece in enumerate(pieces):
                if index and (maxsplit < 0 or len(parts) <= maxsplit):
                    parts.append([])
                elif index:
                    parts[-1].append(separator)
                parts[-1].append(piece)
        return tuple(Pattern.from_tokens(part) for part in parts)

    def matches(self, text: str, *, case_sensitive: bool = True) -> bool:
        """Whether the whole of ``text`` matches (anchored at both ends)."""
        if self.is_literal:
            literal = "".join(self.tokens)  # type: ignore[arg-type]
            return literal == text if case_sensitive else literal.casefold() == text.casefold()
        return _compiled(self.tokens, case_sensitive).fullmatch(text) is not None


@lru_cache(maxsize=8192)
def _compiled(tokens: tuple[Token, ...], case_sensitive: bool) -> re.Pattern[str]:
    """The pattern as a regular expression: every literal run escaped (so '+', '.', '['
    stay literal), '*' as '.*' and '?' as '.' (DOTALL: they match any character)."""
    parts = [
        ".*"
        if token is Wildcard.ANY_RUN
        else "."
        if token is Wildcard.ANY_CHAR
        else re.escape(token)
        for token in tokens
    ]
    flags = re.DOTALL if case_sensitive else re.DOTALL | re.IGNORECASE
    return re.compile("".join(parts), flags)


@lru_cache(maxsize=4096)
def compile_glob(text: str) -> Pattern:
    """Parse raw glob text: ``*`` and ``?`` are wildcards, every other character literal.

    Raw text has no escapes; policy text with ``${*}`` escapes and variables goes
    through ``retained.policy.variables.parse_template`` instead.
    """
    tokens: list[Token] = []
    for char in text:
        if char == "*":
            tokens.append(Wildcard.ANY_RUN)
        elif char == "?":
            tokens.append(Wildcard.ANY_CHAR)
        else:
            tokens.append(char)
    return Pattern.from_tokens(tokens)


def glob_match(pattern: Pattern | str, text: str, *, case_sensitive: bool = True) -> bool:
    """Whether ``text`` matches ``pattern`` (raw glob text or a parsed :class:`Pattern`).

    Policy actions are matched with ``case_sensitive=False``, resources with the default.
    """
    if isinstance(pattern, str):
        pattern = compile_glob(pattern)
    return pattern.matches(text, case_sensitive=case_sensitive)
