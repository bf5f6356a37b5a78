"""Evaluate AWS IoT policies for one request.

IAM rules, as AWS IoT applies them: everything is implicitly denied; a matching Deny
statement in any policy wins (EXPLICIT_DENY); otherwise a matching Allow allows
(ALLOWED); otherwise IMPLICIT_DENY. A statement matches when its action, resource and
every condition match.

Choices where AWS is silent, made so that a guess never widens access:

* a resource (or condition value) using a policy variable the request does not provide
  does not match, for Allow and Deny alike; for NotResource that makes the whole
  statement not match;
* condition keys are looked up case-insensitively (as in IAM); a key that is absent
  fails the positive operators, passes the negated ones (StringNotEquals, ...), passes
  ``...IfExists`` and ``ForAllValues:`` (vacuously, as IAM does), fails ``ForAnyValue:``.

Pure module: standard library only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from retained.policy.glob import Pattern
from retained.policy.model import (
    Condition,
    ConditionOperator,
    ContextValue,
    Decision,
    Effect,
    EvaluationResult,
    PolicyDocument,
    Request,
    SetQualifier,
    Statement,
)
from retained.policy.variables import Template, variable_values

__all__ = ["evaluate", "statement_matches"]

_GLOB_OPERATORS = frozenset(
    {
        ConditionOperator.STRING_LIKE,
        ConditionOperator.STRING_NOT_LIKE,
        ConditionOperator.ARN_EQUALS,
        ConditionOperator.ARN_NOT_EQUALS,
        ConditionOperator.ARN_LIKE,
        ConditionOperator.ARN_NOT_LIKE,
    }
)
# IAM: ArnEquals and ArnLike both glob, component by component.
_ARN_OPERATORS = frozenset(
    {
        ConditionOperator.ARN_EQUALS,
        ConditionOperator.ARN_NOT_EQUALS,
        ConditionOperator.ARN_LIKE,
        ConditionOperator.ARN_NOT_LIKE,
    }
)
_IGNORE_CASE_OPERATORS = frozenset(
    {
        ConditionOperator.STRING_EQUALS_IGNORE_CASE,
        ConditionOperator.STRING_NOT_EQUALS_IGNORE_CASE,
    }
)
_ARN_FIELDS = 6  # arn:partition:service:region:account:resource


def evaluate(policies: Sequence[tuple[str, PolicyDocument]], request: Request) -> EvaluationResult:
    """Decide ``request`` against the (name, document) policies that apply to the caller."""
    context = _Context.of(request.context)
    allowed_by: tuple[str, int, Statement] | None = None
    for name, document in policies:
        for index, statement in enumerate(document.statements):
            if statement.effect is Effect.ALLOW and allowed_by is not None:
                continue  # already allowed: only a Deny can change the outcome now
            if not _matches(statement, request, context):
                continue
            if statement.effect is Effect.DENY:
                return _decided(Decision.EXPLICIT_DENY, name, index, statement)
            allowed_by = (name, index, statement)
    if allowed_by is not None:
        return _decided(Decision.ALLOWED, *allowed_by)
    what = f"{request.action} on {request.resource}"
    if not policies:
        return EvaluationResult(Decision.IMPLICIT_DENY, f"implicitly denied: no policy ({what})")
    return EvaluationResult(
        Decision.IMPLICIT_DENY, f"implicitly denied: no statement allows {what}"
    )


def statement_matches(statement: Statement, request: Request) -> bool:
    """Whether one statement applies to ``request`` (whatever its effect)."""
    return _matches(statement, request, _Context.of(request.context))


def _decided(
    decision: Decision, policy_name: str, index: int, statement: Statement
) -> EvaluationResult:
    verb = "explicitly denied" if decision is Decision.EXPLICIT_DENY else "allowed"
    sid = f" (Sid {statement.sid!r})" if statement.sid else ""
    return EvaluationResult(
        decision,
        f"{verb} by policy {policy_name!r} Statement[{index}]{sid}",
        policy_name,
        index,
        statement.sid,
    )


@dataclass(frozen=True)
class _Context:
    """The request context prepared once per evaluation."""

    values: Mapping[str, ContextValue]  # keys lowercased: condition keys ignore case
    variables: Mapping[str, str]  # canonical variable name -> value

    @classmethod
    def of(cls, context: Mapping[str, ContextValue]) -> _Context:
        lowered = {key.lower(): value for key, value in context.items()}
        return cls(lowered, variable_values(context))

    def request_values(self, key: str) -> list[str]:
        """The values of a condition key as strings; empty when absent."""
        value = self.values.get(key.lower())
        if value is None:
            return []
        if isinstance(value, bool):
            return ["true" if value else "false"]
        if isinstance(value, str):
            return [value]
        return list(value)


def _matches(statement: Statement, request: Request, context: _Context) -> bool:
    if statement.actions:
        if not any(_action_matches(pattern, request.action) for pattern in statement.actions):
            return False
    elif any(_action_matches(pattern, request.action) for pattern in statement.not_actions):
        return False
    if not _resource_matches(statement, request.resource, context):
        return False
    return all(_condition_holds(condition, context) for condition in statement.conditions)


def _action_matches(pattern: Pattern, action: str) -> bool:
    return pattern.matches(action, case_sensitive=False)  # IAM: action names ignore case


def _resolve(template: Template, context: _Context) -> Pattern | None:
    if template.static_pattern is not None:
        return template.static_pattern
    return template.pattern(context.variables)


def _resource_matches(statement: Statement, resource: str, context: _Context) -> bool:
    if statement.resources:
        for template in statement.resources:
            pattern = _resolve(template, context)
            if pattern is not None and pattern.matches(resource):
                return True
        return False
    patterns = [_resolve(template, context) for template in statement.not_resources]
    resolved = [pattern for pattern in patterns if pattern is not None]
    if len(resolved) < len(patterns):
        return False  # cannot tell what is excluded: do not apply the statement
    return not any(pattern.matches(resource) for pattern in resolved)


def _condition_holds(condition: Condition, context: _Context) -> bool:
    requested = context.request_values(condition.key)
    operator = condition.operator
    if operator is ConditionOperator.NULL:
        wanted = "true" if not requested else "false"
        return any(value.source.lower() == wanted for value in condition.values)
    if not requested:
        if condition.if_exists or condition.qualifier is SetQualifier.FOR_ALL_VALUES:
            return True
        if condition.qualifier is SetQualifier.FOR_ANY_VALUE:
            return False
        return operator.negated
    test = _value_test(condition, context)
    if test is None:
        return False

    def holds_for(value: str) -> bool:
        return not test(value) if operator.negated else test(value)

    if condition.qualifier is SetQualifier.FOR_ALL_VALUES:
        return all(holds_for(value) for value in requested)
    if condition.qualifier is SetQualifier.FOR_ANY_VALUE:
        return any(holds_for(value) for value in requested)
    # No qualifier: a positive operator needs one matching value, a negated one needs
    # every value to stay clear of the condition values.
    if operator.negated:
        return all(holds_for(value) for value in requested)
    return any(holds_for(value) for value in requested)


def _value_test(condition: Condition, context: _Context) -> Callable[[str], bool] | None:
    """Whether one request value matches any condition value (ignoring negation).

    None when a condition value uses a variable the request does not provide.
    """
    operator = condition.operator
    if operator in _GLOB_OPERATORS:
        patterns: list[Pattern] = []
        for template in condition.values:
            pattern = _resolve(template, context)
            if pattern is None:
                return None
            patterns.append(pattern)
        if operator in _ARN_OPERATORS:
            return lambda value: any(_arn_matches(pattern, value) for pattern in patterns)
        return lambda value: any(pattern.matches(value) for pattern in patterns)
    texts: list[str] = []
    for template in condition.values:
        text = template.text(context.variables)
        if text is None:
            return None
        texts.append(text)
    if operator in _IGNORE_CASE_OPERATORS:
        folded = frozenset(text.casefold() for text in texts)
        return lambda value: value.casefold() in folded
    if operator is ConditionOperator.BOOL:
        lowered = frozenset(text.lower() for text in texts)
        return lambda value: value.lower() in lowered
    exact = frozenset(texts)
    return lambda value: value in exact


def _arn_matches(pattern: Pattern, value: str) -> bool:
    """IAM ARN matching: each of the six fields globbed on its own ('*' stops at ':')."""
    expected = pattern.split(":", _ARN_FIELDS - 1)
    actual = value.split(":", _ARN_FIELDS - 1)
    if len(expected) != _ARN_FIELDS or len(actual) != _ARN_FIELDS:
        return False
    return all(part.matches(text) for part, text in zip(expected, actual, strict=True))
