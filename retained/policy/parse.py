"""Parse AWS IoT policy documents into :class:`~retained.policy.model.PolicyDocument`.

Every problem is reported at once (:class:`PolicyParseError` carries them all), each
with a path into the document such as ``Statement[1].Action[0]`` and a message written
for the person editing the policy. Only a JSON syntax error stops the parse early, as
there is no document to look at; it comes with its line and column.

Pure module: standard library only.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from retained.policy.arns import PARTITIONS, RESOURCE_TYPES
from retained.policy.glob import Pattern, Wildcard, compile_glob
from retained.policy.model import (
    KNOWN_ACTIONS,
    SUPPORTED_VERSIONS,
    Condition,
    ConditionOperator,
    Effect,
    PolicyDocument,
    SetQualifier,
    Statement,
)
from retained.policy.variables import Template, TemplateError, Variable, parse_template

__all__ = ["DEFAULT_MAX_SIZE", "PolicyParseError", "PolicyProblem", "parse_policy"]

DEFAULT_MAX_SIZE = 2048  # AWS: policy document size, in characters without whitespace
_CURRENT_VERSION = "2012-10-17"
_OLD_VERSION = "2008-10-17"  # IAM: no policy variables in this version
_TOP_LEVEL_KEYS = ("Version", "Statement", "Id")
_STATEMENT_KEYS = ("Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition")
_NO_PRINCIPAL = ("Principal", "NotPrincipal")
_REGION_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-*?")
_ACCOUNT_CHARS = frozenset("0123456789*?")
_VARIABLE_MARK = "\x00"  # stands for a variable when checking the shape of an ARN
_SAMPLE_ARNS = tuple(f"arn:aws:iot:us-east-1:123456789012:{kind}/x" for kind in RESOURCE_TYPES)

_T = TypeVar("_T")


@dataclass(frozen=True)
class PolicyProblem:
    """One problem: where (a path like "Statement[1].Action[0]"; "" for the whole
    document) and what. JSON syntax errors also have a 1-based line and column."""

    path: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        if self.line is not None:
            return f"line {self.line}, column {self.column}: {self.message}"
        return f"{self.path or 'document'}: {self.message}"


class PolicyParseError(ValueError):
    """A policy document that cannot be used; ``errors`` lists every problem found."""

    def __init__(self, errors: list[PolicyProblem]) -> None:
        self.errors = list(errors)
        count = len(self.errors)
        summary = "; ".join(str(problem) for problem in self.errors[:5])
        more = f"; and {count - 5} more" if count > 5 else ""
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"{count} {noun} in the policy document: {summary}{more}")


class _JsonObject(dict[str, object]):
    """A JSON object that remembers the keys it saw more than once (json keeps the last)."""

    duplicates: tuple[str, ...] = ()

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, object]]) -> _JsonObject:
        obj = cls()
        duplicates: list[str] = []
        for key, value in pairs:
            if key in obj and key not in duplicates:
                duplicates.append(key)
            obj[key] = value
        obj.duplicates = tuple(duplicates)
        return obj


def parse_policy(text: str, *, max_bytes: int = DEFAULT_MAX_SIZE) -> PolicyDocument:
    """Parse and validate a policy document; raise :class:`PolicyParseError` listing all problems.

    ``max_bytes`` is the size limit, counted like AWS IoT counts it: characters, not
    counting whitespace.
    """
    parser = _Parser()
    size = sum(1 for char in text if not char.isspace())
    if size > max_bytes:
        parser.problem(
            "",
            f"the document is {size} characters long without whitespace; the limit is {max_bytes}",
        )
    try:
        data: object = json.loads(text, object_pairs_hook=_JsonObject.from_pairs)
    except json.JSONDecodeError as error:
        parser.problems.append(
            PolicyProblem("", f"invalid JSON: {error.msg}", error.lineno, error.colno)
        )
        raise PolicyParseError(parser.problems) from None
    except RecursionError:
        parser.problem("", "invalid JSON: nested too deeply")
        raise PolicyParseError(parser.problems) from None
    except ValueError as error:  # e.g. an integer with more digits than Python converts
        parser.problem("", f"invalid JSON: {error}")
        raise PolicyParseError(parser.problems) from None
    document = parser.document(data)
    if parser.problems or document is None:
        raise PolicyParseError(parser.problems)
    return document


class _Parser:
    """Walks the decoded JSON, collecting problems; builds objects only for valid parts."""

    def __init__(self) -> None:
        self.problems: list[PolicyProblem] = []
        self.version: str | None = None
        self.sids: dict[str, str] = {}  # Sid -> path of the statement that first used it

    def problem(self, path: str, message: str) -> None:
        self.problems.append(PolicyProblem(path, message))

    # ------------------------------------------------------------------ document

    def document(self, data: object) -> PolicyDocument | None:
        if not isinstance(data, dict):
            self.problem("", f"a policy document must be a JSON object, not {_kind(data)}")
            return None
        self.check_keys(data, "", _TOP_LEVEL_KEYS, "top-level key")
        if "Id" in data and not isinstance(data["Id"], str):
            self.problem("Id", f"must be a string, not {_kind(data['Id'])}")
        version = self.document_version(data)
        statements = self.statements(data)
        if version is None or statements is None:
            return None
        return PolicyDocument(version, statements)

    def document_version(self, data: dict[str, object]) -> str | None:
        if "Version" not in data:
            self.problem("Version", f'missing "Version" (use "{_CURRENT_VERSION}")')
            return None
        version = data["Version"]
        if not isinstance(version, str) or version not in SUPPORTED_VERSIONS:
            self.problem(
                "Version",
                f'unknown Version {_show(version)}; use "{_CURRENT_VERSION}" (or "{_OLD_VERSION}")',
            )
            return None
        self.version = version
        return version

    def statements(self, data: dict[str, object]) -> tuple[Statement, ...] | None:
        if "Statement" not in data:
            self.problem("Statement", 'missing "Statement"')
            return None
        raw = data["Statement"]
        if isinstance(raw, dict):
            items: list[tuple[str, object]] = [("Statement", raw)]
        elif isinstance(raw, list):
            if not raw:
                self.problem("Statement", "must contain at least one statement")
                return None
            items = [(f"Statement[{index}]", item) for index, item in enumerate(raw)]
        else:
            self.problem(
                "Statement", f"must be a statement object or a list of them, not {_kind(raw)}"
            )
            return None
        parsed = [self.statement(item, path) for path, item in items]
        valid = [statement for statement in parsed if statement is not None]
        return tuple(valid) if len(valid) == len(parsed) else None

    # ------------------------------------------------------------------ statement

    def statement(self, raw: object, path: str) -> Statement | None:
        if not isinstance(raw, dict):
            self.problem(path, f"a statement must be a JSON object, not {_kind(raw)}")
            return None
        before = len(self.problems)
        self.check_keys(raw, path, _STATEMENT_KEYS, "statement key")
        sid = self.sid(raw, path)
        effect = self.effect(raw, path)
        actions, not_actions = self.either(raw, path, "Action", "NotAction", self.action)
        resources, not_resources = self.either(raw, path, "Resource", "NotResource", self.resource)
        conditions: tuple[Condition, ...] = ()
        if "Condition" in raw:
            conditions = self.conditions(raw["Condition"], _child(path, "Condition"))
        if len(self.problems) > before or effect is None:
            return None
        return Statement(
            effect=effect,
            actions=actions,
            not_actions=not_actions,
            resources=resources,
            not_resources=not_resources,
            conditions=conditions,
            sid=sid,
        )

    def sid(self, raw: dict[str, object], path: str) -> str | None:
        if "Sid" not in raw:
            return None
        sid, sid_path = raw["Sid"], _child(path, "Sid")
        if not isinstance(sid, str):
            self.problem(sid_path, f"must be a string, not {_kind(sid)}")
            return None
        if sid in self.sids:
            self.problem(sid_path, f"duplicate Sid {_show(sid)} (also used by {self.sids[sid]})")
        else:
            self.sids[sid] = path
        return sid

    def effect(self, raw: dict[str, object], path: str) -> Effect | None:
        effect_path = _child(path, "Effect")
        if "Effect" not in raw:
            self.problem(effect_path, 'missing Effect ("Allow" or "Deny")')
            return None
        value = raw["Effect"]
        if isinstance(value, str):
            for effect in Effect:
                if value == effect.value:
                    return effect
        hint = (
            _did_you_mean(value, [effect.value for effect in Effect]) or '; use "Allow" or "Deny"'
        )
        self.problem(effect_path, f"unknown Effect {_show(value)}{hint}")
        return None

    def either(
        self,
        raw: dict[str, object],
        path: str,
        name: str,
        not_name: str,
        parse_item: Callable[[str, str], _T | None],
    ) -> tuple[tuple[_T, ...], tuple[_T, ...]]:
        """Action/NotAction and Resource/NotResource: exactly one of the two, string or list."""
        has, has_not = name in raw, not_name in raw
        if has and has_not:
            self.problem(_child(path, not_name), f"give {name} or {not_name}, not both")
            return (), ()
        if not has and not has_not:
            self.problem(_child(path, name), f"missing {name} (or {not_name})")
            return (), ()
        key = name if has else not_name
        items: list[_T] = []
        for item_path, text in self.strings(raw[key], _child(path, key)):
            item = parse_item(text, item_path)
            if item is not None:
                items.append(item)
        return (tuple(items), ()) if has else ((), tuple(items))

    def action(self, text: str, path: str) -> Pattern | None:
        pattern = compile_glob(text)
        if any(pattern.matches(action, case_sensitive=False) for action in KNOWN_ACTIONS):
            return pattern
        hint = _did_you_mean(text, KNOWN_ACTIONS)
        self.problem(path, f"unknown action {_show(text)}{hint}")
        return None

    def resource(self, text: str, path: str) -> Template | None:
        template = self.template(text, path)
        if template is None:
            return None
        problem = _arn_problem(template)
        if problem is not None:
            self.problem(path, problem)
            return None
        return template

    def template(self, text: str, path: str) -> Template | None:
        try:
            template = parse_template(text)
        except TemplateError as error:
            self.problem(path, str(error))
            return None
        if template.variables and self.version == _OLD_VERSION:
            self.problem(path, f'policy variables need "Version": "{_CURRENT_VERSION}"')
            return None
        return template

    # ------------------------------------------------------------------ conditions

    def conditions(self, raw: object, path: str) -> tuple[Condition, ...]:
        if not isinstance(raw, dict):
            self.problem(path, f"must be a JSON object of operator blocks, not {_kind(raw)}")
            return ()
        self.check_keys(raw, path, None, "condition operator")
        conditions: list[Condition] = []
        for operator_text, block in raw.items():
            operator_path = _child(path, operator_text)
            parsed = self.operator(operator_text, operator_path)
            if not isinstance(block, dict):
                self.problem(
                    operator_path,
                    f"must be a JSON object mapping condition keys to values, not {_kind(block)}",
                )
                continue
            self.check_keys(block, operator_path, None, "condition key")
            if not block:
                self.problem(operator_path, "names no condition key")
            for key, raw_values in block.items():
                key_path = _child(operator_path, key)
                if not key.strip():
                    self.problem(key_path, "empty condition key")
                    continue
                operator = parsed[0] if parsed is not None else None
                values = self.condition_values(raw_values, key_path, operator)
                if parsed is not None and values is not None:
                    operator, qualifier, if_exists = parsed
                    conditions.append(Condition(operator, key, values, qualifier, if_exists))
        return tuple(conditions)

    def operator(
        self, text: str, path: str
    ) -> tuple[ConditionOperator, SetQualifier | None, bool] | None:
        qualifier: SetQualifier | None = None
        base = text
        if ":" in text:
            prefix, _, base = text.partition(":")
            qualifier = next((q for q in SetQualifier if q.value == prefix), None)
            if qualifier is None:
                self.problem(
                    path,
                    f"unknown set qualifier {_show(prefix)}; use ForAllValues: or ForAnyValue:",
                )
                return None
        if_exists = base.endswith("IfExists") and base != "IfExists"
        if if_exists:
            base = base.removesuffix("IfExists")
        operator = next((op for op in ConditionOperator if op.value == base), None)
        if operator is None:
            names = [op.value for op in ConditionOperator]
            hint = _did_you_mean(base, names) or f"; supported: {', '.join(names)}"
            self.problem(path, f"unsupported condition operator {_show(text)}{hint}")
            return None
        if operator is ConditionOperator.NULL and (qualifier is not None or if_exists):
            self.problem(path, "Null takes no ForAllValues:/ForAnyValue: and no IfExists")
            return None
        return operator, qualifier, if_exists

    def condition_values(
        self, raw: object, path: str, operator: ConditionOperator | None
    ) -> tuple[Template, ...] | None:
        boolean = operator in (ConditionOperator.BOOL, ConditionOperator.NULL)
        if boolean:
            raw = _booleans_as_text(raw)
        before = len(self.problems)
        templates: list[Template] = []
        for item_path, text in self.strings(raw, path):
            if boolean and text.lower() not in ("true", "false"):
                assert operator is not None
                self.problem(
                    item_path, f'{operator.value} takes "true" or "false", not {_show(text)}'
                )
                continue
            template = self.template(text, item_path)
            if template is not None:
                templates.append(template)
        return tuple(templates) if len(self.problems) == before else None

    # ------------------------------------------------------------------ helpers

    def strings(self, raw: object, path: str) -> list[tuple[str, str]]:
        """A string or a non-empty list of strings, as (path, text) pairs."""
        if isinstance(raw, str):
            return [(path, raw)]
        if not isinstance(raw, list):
            self.problem(path, f"must be a string or a list of strings, not {_kind(raw)}")
            return []
        if not raw:
            self.problem(path, "must not be an empty list")
        items: list[tuple[str, str]] = []
        for index, item in enumerate(raw):
            if isinstance(item, str):
                items.append((f"{path}[{index}]", item))
            else:
                self.problem(f"{path}[{index}]", f"must be a string, not {_kind(item)}")
        return items

    def check_keys(
        self, raw: dict[str, object], path: str, allowed: Sequence[str] | None, what: str
    ) -> None:
        """Report duplicate keys and, when ``allowed`` is given, unknown ones."""
        if isinstance(raw, _JsonObject):
            for key in raw.duplicates:
                self.problem(_child(path, key), f"duplicate {what} {_show(key)}")
        if allowed is None:
            return
        for key in raw:
            if key in allowed:
                continue
            if key in _NO_PRINCIPAL and what == "statement key":
                self.problem(
                    _child(path, key),
                    f"AWS IoT policies have no {key}: the policy applies to whatever it is"
                    " attached to",
                )
            else:
                hint = _did_you_mean(key, allowed)
                self.problem(_child(path, key), f"unknown {what} {_show(key)}{hint}")


def _arn_problem(template: Template) -> str | None:
    """Why a resource is not "*" or an AWS IoT ARN pattern, or None if it is fine."""
    if template.parts == (Wildcard.ANY_RUN,):
        return None
    # Check the shape on text where a variable is one placeholder character, so that
    # the ':' inside "${iot:ClientId}" does not count as an ARN separator.
    shape = "".join(
        _VARIABLE_MARK
        if isinstance(part, Variable)
        else part.value
        if isinstance(part, Wildcard)
        else part
        for part in template.parts
    )
    malformed = f"malformed ARN {_show(template.source)}: "
    expected = 'expected "*" or "arn:aws:iot:<region>:<account>:<type>/<name>"'
    fields = shape.split(":", 5)
    if len(fields) < 6:
        # A wildcard may stand for several fields ("arn:aws:iot:*"): fine if it can
        # match some AWS IoT resource.
        glob = compile_glob(shape)
        if "*" in shape and any(glob.matches(sample) for sample in _SAMPLE_ARNS):
            return None
        return malformed + expected
    prefix, partition, service, region, account, resource = fields
    if not compile_glob(prefix).matches("arn"):
        return malformed + expected
    if not any(compile_glob(partition).matches(known) for known in PARTITIONS):
        return malformed + f'unknown partition {_show(partition)} (use "aws")'
    if not compile_glob(service).matches("iot"):
        return malformed + f'the service must be "iot", not {_show(service)}'
    if not region or not set(region) <= _REGION_CHARS:
        return malformed + f"bad region {_show(region)}"
    if (
        not account
        or not set(account) <= _ACCOUNT_CHARS
        or (account.isdigit() and len(account) != 12)
    ):
        return malformed + f"bad account {_show(account)} (12 digits)"
    types = ", ".join(RESOURCE_TYPES)
    kind, slash, name = resource.partition("/")
    if slash:
        if _VARIABLE_MARK not in kind and not any(
            compile_glob(kind).matches(known) for known in RESOURCE_TYPES
        ):
            return malformed + f"unknown resource type {_show(kind)} (use one of {types})"
        if not name:
            return malformed + f'nothing after "{kind}/"'
        return None
    if "*" in resource:
        head = compile_glob(resource[: resource.index("*")] + "*")
        if any(head.matches(known + "/") for known in RESOURCE_TYPES):
            return None
    return malformed + f"expected <type>/<name> after the account, with <type> one of {types}"


def _booleans_as_text(raw: object) -> object:
    """Bool and Null accept JSON true/false as well as "true"/"false"."""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, list):
        return [_booleans_as_text(item) if isinstance(item, bool) else item for item in raw]
    return raw


def _child(path: str, key: str) -> str:
    if key.isidentifier():
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _show(value: object, limit: int = 60) -> str:
    """A value as it would appear in the document (JSON), shortened."""
    if isinstance(value, dict | list):
        return _kind(value)
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + '..."'


def _did_you_mean(word: object, candidates: Sequence[str]) -> str:
    """'; did you mean "X"?' for a near miss (case or a typo), else ''."""
    if not isinstance(word, str) or not word or len(word) > 64:
        return ""
    lowered = {candidate.lower(): candidate for candidate in candidates}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.75)
    return f'; did you mean "{lowered[close[0]]}"?' if close else ""
