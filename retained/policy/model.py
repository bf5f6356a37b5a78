"""The data of AWS IoT policies: parsed documents, requests and decisions.

Documents are parsed once (``retained.policy.parse``) into these frozen dataclasses and
evaluated by pure functions (``retained.policy.evaluate``). Pure module.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from retained.policy.glob import Pattern
from retained.policy.variables import Template

__all__ = [
    "KNOWN_ACTIONS",
    "SUPPORTED_VERSIONS",
    "Condition",
    "ConditionOperator",
    "ContextValue",
    "Decision",
    "Effect",
    "EvaluationResult",
    "IotAction",
    "PolicyDocument",
    "Request",
    "SetQualifier",
    "Statement",
]

SUPPORTED_VERSIONS: tuple[str, ...] = ("2012-10-17", "2008-10-17")


class IotAction(enum.StrEnum):
    """The data-plane actions a policy can name (the ones this product checks, and shadows)."""

    CONNECT = "iot:Connect"
    PUBLISH = "iot:Publish"
    SUBSCRIBE = "iot:Subscribe"
    RECEIVE = "iot:Receive"
    RETAIN_PUBLISH = "iot:RetainPublish"
    GET_RETAINED_MESSAGE = "iot:GetRetainedMessage"
    LIST_RETAINED_MESSAGES = "iot:ListRetainedMessages"
    DELETE_THING_SHADOW = "iot:DeleteThingShadow"
    GET_THING_SHADOW = "iot:GetThingShadow"
    UPDATE_THING_SHADOW = "iot:UpdateThingShadow"
    LIST_NAMED_SHADOWS_FOR_THING = "iot:ListNamedShadowsForThing"


KNOWN_ACTIONS: tuple[str, ...] = tuple(action.value for action in IotAction)


class Effect(enum.Enum):
    ALLOW = "Allow"
    DENY = "Deny"


class SetQualifier(enum.Enum):
    """How a condition treats a multi-valued context key (e.g. iot:ConnectAttributes)."""

    FOR_ALL_VALUES = "ForAllValues"  # every request value matches; true when there are none
    FOR_ANY_VALUE = "ForAnyValue"  # at least one request value matches


class ConditionOperator(enum.Enum):
    STRING_EQUALS = "StringEquals"
    STRING_NOT_EQUALS = "StringNotEquals"
    STRING_EQUALS_IGNORE_CASE = "StringEqualsIgnoreCase"
    STRING_NOT_EQUALS_IGNORE_CASE = "StringNotEqualsIgnoreCase"
    STRING_LIKE = "StringLike"
    STRING_NOT_LIKE = "StringNotLike"
    BOOL = "Bool"
    ARN_EQUALS = "ArnEquals"
    ARN_NOT_EQUALS = "ArnNotEquals"
    ARN_LIKE = "ArnLike"
    ARN_NOT_LIKE = "ArnNotLike"
    NULL = "Null"  # value "true": the key is absent; "false": it is present

    @property
    def negated(self) -> bool:
        """The Not operators: true when no condition value matches (and when the key is absent)."""
        return "Not" in self.value


@dataclass(frozen=True)
class Condition:
    """One key of one operator block, e.g. ``"StringEquals": {"iot:ClientId": [...]}``."""

    operator: ConditionOperator
    key: str
    values: tuple[Template, ...]
    qualifier: SetQualifier | None = None
    if_exists: bool = False  # the "...IfExists" suffix: true when the key is absent

    def __str__(self) -> str:
        prefix = f"{self.qualifier.value}:" if self.qualifier else ""
        suffix = "IfExists" if self.if_exists else ""
        values = ", ".join(repr(value.source) for value in self.values)
        return f"{prefix}{self.operator.value}{suffix} {self.key!r}: [{values}]"


@dataclass(frozen=True)
class Statement:
    """One statement. Exactly one of actions / not_actions is non-empty, same for resources."""

    effect: Effect
    actions: tuple[Pattern, ...] = ()
    not_actions: tuple[Pattern, ...] = ()
    resources: tuple[Template, ...] = ()
    not_resources: tuple[Template, ...] = ()
    conditions: tuple[Condition, ...] = ()
    sid: str | None = None

    def __post_init__(self) -> None:
        if bool(self.actions) == bool(self.not_actions):
            raise ValueError("a statement needs exactly one of actions and not_actions")
        if bool(self.resources) == bool(self.not_resources):
            raise ValueError("a statement needs exactly one of resources and not_resources")


@dataclass(frozen=True)
class PolicyDocument:
    version: str
    statements: tuple[Statement, ...]


class Decision(enum.Enum):
    """The three outcomes, named as AWS's TestAuthorization API names them."""

    ALLOWED = "ALLOWED"
    EXPLICIT_DENY = "EXPLICIT_DENY"
    IMPLICIT_DENY = "IMPLICIT_DENY"


ContextValue = str | Sequence[str] | bool
"""A request context value: one string, a list of strings (multi-valued key), or a bool."""


@dataclass(frozen=True)
class Request:
    """What is asked: an action (e.g. "iot:Publish") on a full resource ARN, with context.

    Context keys (looked up case-insensitively) include "iot:ClientId",
    "iot:Connection.Thing.ThingName", "iot:Certificate.Subject.CommonName",
    "aws:username" and "iot:ConnectAttributes" (a list: "PersistentConnect", "LastWill").
    """

    action: str
    resource: str
    context: Mapping[str, ContextValue] = field(default_factory=dict)


@dataclass(frozen=True)
class EvaluationResult:
    """The decision and the statement that decided it (none for an implicit deny).

    ``statement_index`` is 0-based, as in the paths of parse problems ("Statement[1]").
    """

    decision: Decision
    reason: str
    policy_name: str | None = None
    statement_index: int | None = None
    statement_sid: str | None = None

    @property
    def allowed(self) -> bool:
        return self.decision is Decision.ALLOWED
