"""AWS IoT policies: parse documents once, evaluate requests with pure functions.

Pure package (standard library only). Typical use::

    document = parse_policy(text)            # raises PolicyParseError (all problems)
    result = evaluate([("p", document)], Request("iot:Publish", topic_arn(r, a, "x/y"),
                                                 {"iot:ClientId": "device1"}))
    result.decision                          # Decision.ALLOWED / EXPLICIT_DENY / IMPLICIT_DENY

Policy resources are IAM globs (``retained.policy.glob``), never MQTT topic filters.
"""

from retained.policy.arns import (
    RESOURCE_TYPES,
    client_arn,
    thing_arn,
    topic_arn,
    topicfilter_arn,
)
from retained.policy.evaluate import evaluate, statement_matches
from retained.policy.glob import Pattern, Wildcard, compile_glob, escape_literal, glob_match
from retained.policy.model import (
    KNOWN_ACTIONS,
    SUPPORTED_VERSIONS,
    Condition,
    ConditionOperator,
    ContextValue,
    Decision,
    Effect,
    EvaluationResult,
    IotAction,
    PolicyDocument,
    Request,
    SetQualifier,
    Statement,
)
from retained.policy.parse import DEFAULT_MAX_SIZE, PolicyParseError, PolicyProblem, parse_policy
from retained.policy.variables import (
    KNOWN_VARIABLES,
    Template,
    TemplateError,
    Variable,
    parse_template,
    variable_values,
)

__all__ = [
    "DEFAULT_MAX_SIZE",
    "KNOWN_ACTIONS",
    "KNOWN_VARIABLES",
    "RESOURCE_TYPES",
    "SUPPORTED_VERSIONS",
    "Condition",
    "ConditionOperator",
    "ContextValue",
    "Decision",
    "Effect",
    "EvaluationResult",
    "IotAction",
    "Pattern",
    "PolicyDocument",
    "PolicyParseError",
    "PolicyProblem",
    "Request",
    "SetQualifier",
    "Statement",
    "Template",
    "TemplateError",
    "Variable",
    "Wildcard",
    "client_arn",
    "compile_glob",
    "escape_literal",
    "evaluate",
    "glob_match",
    "parse_policy",
    "parse_template",
    "statement_matches",
    "thing_arn",
    "topic_arn",
    "topicfilter_arn",
    "variable_values",
]
