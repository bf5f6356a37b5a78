"""Table-driven tests for retained.policy.evaluate (pure: no Django).

Every row: policies (name, JSON text) + request -> expected Decision.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pytest

from retained.policy import (
    ContextValue,
    Decision,
    PolicyDocument,
    Request,
    client_arn,
    evaluate,
    parse_policy,
    statement_matches,
    topic_arn,
    topicfilter_arn,
)

REGION = "us-east-1"
ACCOUNT = "123456789012"
ARN = f"arn:aws:iot:{REGION}:{ACCOUNT}:"

ALLOWED = Decision.ALLOWED
EXPLICIT = Decision.EXPLICIT_DENY
IMPLICIT = Decision.IMPLICIT_DENY

# --------------------------------------------------------------------- AWS's own examples
# As in the AWS IoT developer guide, "Retained message policy examples" (aws-facts.md).

AWS_PUBLISH_RETAINED = """{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["iot:Connect"],
            "Resource": ["arn:aws:iot:us-east-1:123456789012:client/device1"]
        },
        {
            "Effect": "Allow",
            "Action": ["iot:Publish", "iot:RetainPublish"],
            "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/device/sample/configuration"]
        }
    ]
}"""

AWS_RETAINED_WILL = """{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["iot:Connect"],
            "Resource": ["arn:aws:iot:us-east-1:123456789012:client/device1"],
            "Condition": {
                "ForAllValues:StringEquals": {"iot:ConnectAttributes": ["LastWill"]}
            }
        },
        {
            "Effect": "Allow",
            "Action": ["iot:Publish", "iot:RetainPublish"],
            "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/will"]
        }
    ]
}"""

AWS_LIST_AND_GET = """{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["iot:ListRetainedMessages"],
            "Resource": ["*"]
        },
        {
            "Effect": "Allow",
            "Action": ["iot:GetRetainedMessage"],
            "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/foo"]
        }
    ]
}"""


# --------------------------------------------------------------------- snippet helpers


def _resources(value: str | list[str]) -> str | list[str]:
    def full(resource: str) -> str:
        return resource if resource == "*" or resource.startswith("arn:") else ARN + resource

    return full(value) if isinstance(value, str) else [full(item) for item in value]


def statement(
    effect: str,
    action: str | list[str],
    resource: str | list[str],
    *,
    condition: dict[str, Any] | None = None,
    sid: str | None = None,
    not_action: bool = False,
    not_resource: bool = False,
) -> dict[str, Any]:
    """A statement; short resources ("topic/a") get the test region/account ARN prefix."""
    body: dict[str, Any] = {"Effect": effect}
    if sid is not None:
        body["Sid"] = sid
    body["NotAction" if not_action else "Action"] = action
    body["NotResource" if not_resource else "Resource"] = _resources(resource)
    if condition is not None:
        body["Condition"] = condition
    return body


def allow(action: str | list[str], resource: str | list[str], **kwargs: Any) -> dict[str, Any]:
    return statement("Allow", action, resource, **kwargs)


def deny(action: str | list[str], resource: str | list[str], **kwargs: Any) -> dict[str, Any]:
    return statement("Deny", action, resource, **kwargs)


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}, indent=2)


def one(*statements: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """A single policy named "p"."""
    return (("p", policy(*statements)),)


@dataclass(frozen=True)
class Row:
    id: str
    policies: tuple[tuple[str, str], ...]
    action: str
    resource: str  # "topic/a" is expanded to a full ARN; "*" stays "*"
    expected: Decision
    context: dict[str, ContextValue] = field(default_factory=dict)


def rows(
    prefix: str,
    policies: tuple[tuple[str, str], ...],
    *cases: tuple[str, str, Decision] | tuple[str, str, Decision, dict[str, ContextValue]],
) -> list[Row]:
    """Several requests against the same policies: (action, resource, expected[, context])."""
    out = []
    for index, case in enumerate(cases):
        action, resource, expected = case[0], case[1], case[2]
        context = case[3] if len(case) == 4 else {}
        out.append(Row(f"{prefix}-{index}", policies, action, resource, expected, context))
    return out


DEVICE1: dict[str, ContextValue] = {"iot:ClientId": "device1"}
PITFALL = one(
    allow("iot:Subscribe", "topicfilter/a/*"),
    deny("iot:Subscribe", "topicfilter/a/restricted/*", sid="DenyRestricted"),
    allow("iot:Receive", "topic/a/*"),
    deny("iot:Receive", "topic/a/restricted/*"),
)
PER_CLIENT = one(allow("iot:Publish", "topic/${iot:ClientId}/*"))
CONNECT_ATTRIBUTES = "iot:ConnectAttributes"

TABLE: list[Row] = [
    # AWS example 1: connect as device1, publish retained to device/sample/configuration
    *rows(
        "aws-publish-retained",
        (("aws1", AWS_PUBLISH_RETAINED),),
        ("iot:Connect", "client/device1", ALLOWED, DEVICE1),
        ("iot:Connect", "client/device2", IMPLICIT),
        ("iot:Publish", "topic/device/sample/configuration", ALLOWED, DEVICE1),
        ("iot:RetainPublish", "topic/device/sample/configuration", ALLOWED, DEVICE1),
        ("iot:RetainPublish", "topic/device/sample/other", IMPLICIT, DEVICE1),
        ("iot:Subscribe", "topicfilter/device/sample/configuration", IMPLICIT, DEVICE1),
        ("iot:Receive", "topic/device/sample/configuration", IMPLICIT, DEVICE1),
    ),
    # AWS example 2: retained will, ForAllValues:StringEquals on iot:ConnectAttributes
    *rows(
        "aws-retained-will",
        (("aws2", AWS_RETAINED_WILL),),
        ("iot:Connect", "client/device1", ALLOWED, {CONNECT_ATTRIBUTES: ["LastWill"]}),
        (
            "iot:Connect",
            "client/device1",
            IMPLICIT,
            {CONNECT_ATTRIBUTES: ["LastWill", "PersistentConnect"]},
        ),
        ("iot:Connect", "client/device1", IMPLICIT, {CONNECT_ATTRIBUTES: ["PersistentConnect"]}),
        ("iot:Connect", "client/device1", ALLOWED, {CONNECT_ATTRIBUTES: []}),  # vacuous
        ("iot:Connect", "client/device1", ALLOWED),  # key absent: vacuous too (as IAM)
        ("iot:Connect", "client/device2", IMPLICIT, {CONNECT_ATTRIBUTES: ["LastWill"]}),
        ("iot:Publish", "topic/will", ALLOWED),
        ("iot:RetainPublish", "topic/will", ALLOWED),
        ("iot:RetainPublish", "topic/will/x", IMPLICIT),
    ),
    # AWS example 3: list and get
    *rows(
        "aws-list-and-get",
        (("aws3", AWS_LIST_AND_GET),),
        ("iot:ListRetainedMessages", "*", ALLOWED),
        ("iot:ListRetainedMessages", "topic/anything", ALLOWED),
        ("iot:GetRetainedMessage", "topic/foo", ALLOWED),
        ("iot:GetRetainedMessage", "topic/foo/bar", IMPLICIT),
        ("iot:GetRetainedMessage", "topic/bar", IMPLICIT),
        ("iot:Publish", "topic/foo", IMPLICIT),
    ),
    # The documented pitfall: a Deny on topicfilter/a/restricted/* does not stop "a/#";
    # the Deny on iot:Receive is what protects delivery.
    *rows(
        "pitfall",
        PITFALL,
        ("iot:Subscribe", "topicfilter/a/#", ALLOWED),
        ("iot:Subscribe", "topicfilter/a/+/x", ALLOWED),
        ("iot:Subscribe", "topicfilter/a/restricted/x", EXPLICIT),
        ("iot:Subscribe", "topicfilter/a/restricted/#", EXPLICIT),
        ("iot:Receive", "topic/a/restricted/x", EXPLICIT),
        ("iot:Receive", "topic/a/open/x", ALLOWED),
    ),
    # policy variables
    *rows(
        "variables",
        PER_CLIENT,
        ("iot:Publish", "topic/dev1/x", ALLOWED, {"iot:ClientId": "dev1"}),
        ("iot:Publish", "topic/dev1/x/y", ALLOWED, {"iot:ClientId": "dev1"}),
        ("iot:Publish", "topic/dev2/x", IMPLICIT, {"iot:ClientId": "dev1"}),
        ("iot:Publish", "topic/dev1/x", IMPLICIT),  # variable missing: no match
        ("iot:Publish", "topic/dev1/x", IMPLICIT, {"iot:ClientId": ""}),  # empty = missing
        ("iot:Publish", "topic/dev1/x", ALLOWED, {"IOT:CLIENTID": "dev1"}),  # key case
        # a substituted value is literal: client "*" gets topic "*/...", not every topic
        ("iot:Publish", "topic/other/x", IMPLICIT, {"iot:ClientId": "*"}),
        ("iot:Publish", "topic/*/x", ALLOWED, {"iot:ClientId": "*"}),
        ("iot:Publish", "topic/ab/x", IMPLICIT, {"iot:ClientId": "a?"}),
    ),
    *rows(
        "variable-spelling-ignores-case",
        one(allow("iot:Connect", "client/${IOT:clientid}")),
        ("iot:Connect", "client/c1", ALLOWED, {"iot:ClientId": "c1"}),
    ),
    *rows(
        "variable-in-deny",
        one(allow("iot:Publish", "topic/*"), deny("iot:Publish", "topic/${iot:ClientId}/secret")),
        ("iot:Publish", "topic/c1/secret", EXPLICIT, {"iot:ClientId": "c1"}),
        ("iot:Publish", "topic/c2/secret", ALLOWED, {"iot:ClientId": "c1"}),
        ("iot:Publish", "topic/c1/secret", ALLOWED),  # missing variable: the Deny does not match
    ),
    *rows(
        "thing-and-certificate-variables",
        one(
            allow("iot:GetThingShadow", "thing/${iot:Connection.Thing.ThingName}"),
            allow("iot:Receive", "topic/cn/${iot:Certificate.Subject.CommonName}"),
            allow("iot:GetRetainedMessage", "topic/users/${aws:username}/*"),
        ),
        ("iot:GetThingShadow", "thing/t1", ALLOWED, {"iot:Connection.Thing.ThingName": "t1"}),
        ("iot:GetThingShadow", "thing/t1", IMPLICIT),
        (
            "iot:Receive",
            "topic/cn/dev.example",
            ALLOWED,
            {"iot:Certificate.Subject.CommonName": "dev.example"},
        ),
        ("iot:GetRetainedMessage", "topic/users/alice/x", ALLOWED, {"aws:username": "alice"}),
        ("iot:GetRetainedMessage", "topic/users/bob/x", IMPLICIT, {"aws:username": "alice"}),
    ),
    # escapes
    *rows(
        "escapes",
        one(
            allow("iot:Publish", "topic/star/${*}"),
            allow("iot:Publish", "topic/question/q${?}"),
            allow("iot:Publish", "topic/dollar/${$}{iot:ClientId}"),
        ),
        ("iot:Publish", "topic/star/*", ALLOWED),
        ("iot:Publish", "topic/star/anything", IMPLICIT),
        ("iot:Publish", "topic/question/q?", ALLOWED),
        ("iot:Publish", "topic/question/qx", IMPLICIT),
        ("iot:Publish", "topic/dollar/${iot:ClientId}", ALLOWED),
        ("iot:Publish", "topic/dollar/c1", IMPLICIT, {"iot:ClientId": "c1"}),
    ),
    # MQTT wildcards and other characters are literal in policy resources
    *rows(
        "literal-characters",
        one(
            allow("iot:Subscribe", ["topicfilter/a/+", "topicfilter/b/#"]),
            allow("iot:Publish", ["topic/a+b", "topic/c.d"]),
        ),
        ("iot:Subscribe", "topicfilter/a/+", ALLOWED),
        ("iot:Subscribe", "topicfilter/a/b", IMPLICIT),
        ("iot:Subscribe", "topicfilter/b/#", ALLOWED),
        ("iot:Subscribe", "topicfilter/b/c/d", IMPLICIT),
        ("iot:Subscribe", "topicfilter/b", IMPLICIT),
        ("iot:Publish", "topic/a+b", ALLOWED),
        ("iot:Publish", "topic/aab", IMPLICIT),
        ("iot:Publish", "topic/cxd", IMPLICIT),
    ),
    # '*' crosses levels, '?' is exactly one character, resources are case-sensitive
    *rows(
        "wildcards",
        one(
            allow("iot:Publish", ["topic/a/*", "topic/*/status"]),
            allow("iot:Receive", "topic/r/?"),
            allow("iot:GetRetainedMessage", "topic/Alpha"),
        ),
        ("iot:Publish", "topic/a/b/c/d", ALLOWED),
        ("iot:Publish", "topic/a/", ALLOWED),
        ("iot:Publish", "topic/a", IMPLICIT),
        ("iot:Publish", "topic/x/y/status", ALLOWED),
        ("iot:Publish", "topicfilter/a/b", IMPLICIT),  # the resource type is part of the ARN
        ("iot:Receive", "topic/r/x", ALLOWED),
        ("iot:Receive", "topic/r/xy", IMPLICIT),
        ("iot:Receive", "topic/r/", IMPLICIT),
        ("iot:GetRetainedMessage", "topic/alpha", IMPLICIT),
        ("iot:GetRetainedMessage", "topic/Alpha", ALLOWED),
    ),
    *rows(
        "other-region-or-account",
        one(allow("iot:Publish", "topic/a")),
        ("iot:Publish", f"arn:aws:iot:eu-west-1:{ACCOUNT}:topic/a", IMPLICIT),
        ("iot:Publish", f"arn:aws:iot:{REGION}:999999999999:topic/a", IMPLICIT),
    ),
    # NotAction / NotResource
    *rows(
        "not-action",
        one(allow("iot:Publish", "*", not_action=True)),
        ("iot:Subscribe", "topicfilter/x", ALLOWED),
        ("iot:Publish", "topic/x", IMPLICIT),
        ("iot:publish", "topic/x", IMPLICIT),
    ),
    *rows(
        "deny-not-action",
        one(allow("*", "*"), deny(["iot:Connect", "iot:Get*"], "*", not_action=True)),
        ("iot:Connect", "client/c", ALLOWED),
        ("iot:GetRetainedMessage", "topic/x", ALLOWED),
        ("iot:Publish", "topic/x", EXPLICIT),
    ),
    *rows(
        "not-resource",
        one(allow("iot:Publish", "topic/secret/*", not_resource=True)),
        ("iot:Publish", "topic/public", ALLOWED),
        ("iot:Publish", "topic/secret/x", IMPLICIT),
    ),
    *rows(
        "deny-not-resource-with-variable",
        one(
            allow("iot:Receive", "*"),
            deny("iot:Receive", "topic/${iot:ClientId}/*", not_resource=True),
        ),
        ("iot:Receive", "topic/c1/x", ALLOWED, {"iot:ClientId": "c1"}),
        ("iot:Receive", "topic/c2/x", EXPLICIT, {"iot:ClientId": "c1"}),
        # missing variable: the statement does not match (for Deny too)
        ("iot:Receive", "topic/c2/x", ALLOWED),
    ),
    # explicit deny wins across policies, whatever their order
    *rows(
        "deny-across-policies",
        (
            ("allow-all", policy(allow("iot:*", "*"))),
            ("deny-secret", policy(deny("iot:Publish", "topic/secret"))),
        ),
        ("iot:Publish", "topic/secret", EXPLICIT),
        ("iot:Publish", "topic/public", ALLOWED),
        ("iot:Receive", "topic/secret", ALLOWED),
    ),
    *rows(
        "deny-first-policy",
        (
            ("deny-secret", policy(deny("iot:Publish", "topic/secret"))),
            ("allow-all", policy(allow("iot:*", "*"))),
        ),
        ("iot:Publish", "topic/secret", EXPLICIT),
    ),
    *rows(
        "default-deny",
        (),
        ("iot:Connect", "client/c", IMPLICIT),
    ),
    *rows(
        "deny-only",
        one(deny("iot:Publish", "topic/x")),
        ("iot:Publish", "topic/y", IMPLICIT),
        ("iot:Publish", "topic/x", EXPLICIT),
    ),
    # action wildcards and case
    *rows(
        "action-wildcards",
        one(
            allow("iot:Get*", "*"),
            allow("iot:*Retain*", "topic/r"),
            allow("iot:?ublish", "topic/p"),
        ),
        ("iot:GetRetainedMessage", "topic/x", ALLOWED),
        ("iot:GetThingShadow", "thing/t", ALLOWED),
        ("iot:ListRetainedMessages", "*", IMPLICIT),
        ("iot:RetainPublish", "topic/r", ALLOWED),
        ("iot:Publish", "topic/r", IMPLICIT),
        ("iot:Publish", "topic/p", ALLOWED),
    ),
    *rows(
        "action-star",
        one(allow("iot:*", "topic/a"), allow("*", "topic/b")),
        ("iot:Receive", "topic/a", ALLOWED),
        ("iot:DeleteThingShadow", "topic/a", ALLOWED),
        ("iot:Receive", "topic/b", ALLOWED),
        ("iot:Receive", "topic/c", IMPLICIT),
    ),
    *rows(
        "action-case",
        one(allow("IOT:PUBLISH", "topic/a"), allow("iot:receive", "topic/a")),
        ("iot:Publish", "topic/a", ALLOWED),
        ("IoT:publish", "topic/a", ALLOWED),
        ("iot:Receive", "topic/a", ALLOWED),
        ("iot:Subscribe", "topicfilter/a", IMPLICIT),
    ),
    # conditions
    *rows(
        "string-equals",
        one(allow("iot:Connect", "client/*", condition={"StringEquals": {"iot:ClientId": "d1"}})),
        ("iot:Connect", "client/d1", ALLOWED, {"iot:ClientId": "d1"}),
        ("iot:Connect", "client/d2", IMPLICIT, {"iot:ClientId": "d2"}),
        ("iot:Connect", "client/d1", IMPLICIT),  # key absent
        ("iot:Connect", "client/d1", ALLOWED, {"IOT:CLIENTID": "d1"}),  # key names ignore case
    ),
    *rows(
        "string-equals-is-not-a-glob",
        one(allow("iot:Connect", "*", condition={"StringEquals": {"iot:ClientId": "d*"}})),
        ("iot:Connect", "client/d1", IMPLICIT, {"iot:ClientId": "d1"}),
        ("iot:Connect", "client/d*", ALLOWED, {"iot:ClientId": "d*"}),
    ),
    *rows(
        "string-not-equals",
        one(allow("iot:Connect", "*", condition={"StringNotEquals": {"iot:ClientId": "admin"}})),
        ("iot:Connect", "client/user", ALLOWED, {"iot:ClientId": "user"}),
        ("iot:Connect", "client/admin", IMPLICIT, {"iot:ClientId": "admin"}),
        ("iot:Connect", "client/x", ALLOWED),  # IAM: a negated operator holds for an absent key
    ),
    *rows(
        "string-like",
        one(
            allow(
                "iot:Connect", "*", condition={"StringLike": {"iot:ClientId": ["sensor-*", "a+b"]}}
            ),
            deny("iot:Connect", "*", condition={"StringNotLike": {"iot:ClientId": ["*-?", "a+b"]}}),
        ),
        ("iot:Connect", "client/sensor-1", ALLOWED, {"iot:ClientId": "sensor-1"}),
        ("iot:Connect", "client/sensor-12", EXPLICIT, {"iot:ClientId": "sensor-12"}),
        ("iot:Connect", "client/actuator", EXPLICIT, {"iot:ClientId": "actuator"}),
        ("iot:Connect", "client/aab", EXPLICIT, {"iot:ClientId": "aab"}),
        ("iot:Connect", "client/a+b", ALLOWED, {"iot:ClientId": "a+b"}),
    ),
    *rows(
        "bool",
        one(allow("iot:Connect", "*", condition={"Bool": {"aws:SecureTransport": "true"}})),
        ("iot:Connect", "client/c", ALLOWED, {"aws:SecureTransport": True}),
        ("iot:Connect", "client/c", IMPLICIT, {"aws:SecureTransport": False}),
        ("iot:Connect", "client/c", ALLOWED, {"aws:SecureTransport": "TRUE"}),
        ("iot:Connect", "client/c", IMPLICIT),
    ),
    *rows(
        "for-any-value",
        one(
            allow(
                "iot:Connect",
                "*",
                condition={"ForAnyValue:StringEquals": {CONNECT_ATTRIBUTES: ["PersistentConnect"]}},
            )
        ),
        (
            "iot:Connect",
            "client/c",
            ALLOWED,
            {CONNECT_ATTRIBUTES: ["LastWill", "PersistentConnect"]},
        ),
        ("iot:Connect", "client/c", IMPLICIT, {CONNECT_ATTRIBUTES: ["LastWill"]}),
        ("iot:Connect", "client/c", IMPLICIT, {CONNECT_ATTRIBUTES: []}),
    ),
    *rows(
        "deny-for-any-value-lastwill",
        one(
            allow("iot:Connect", "*"),
            deny(
                "iot:Connect",
                "*",
                condition={"ForAnyValue:StringEquals": {CONNECT_ATTRIBUTES: "LastWill"}},
            ),
        ),
        (
            "iot:Connect",
            "client/c",
            EXPLICIT,
            {CONNECT_ATTRIBUTES: ["PersistentConnect", "LastWill"]},
        ),
        ("iot:Connect", "client/c", ALLOWED, {CONNECT_ATTRIBUTES: ["PersistentConnect"]}),
    ),
    *rows(
        "condition-with-variable",
        one(
            allow(
                "iot:Connect",
                "*",
                condition={"StringEquals": {"iot:Connection.Thing.ThingName": "${iot:ClientId}"}},
            )
        ),
        (
            "iot:Connect",
            "client/t1",
            ALLOWED,
            {"iot:ClientId": "t1", "iot:Connection.Thing.ThingName": "t1"},
        ),
        (
            "iot:Connect",
            "client/t1",
            IMPLICIT,
            {"iot:ClientId": "t1", "iot:Connection.Thing.ThingName": "t2"},
        ),
        ("iot:Connect", "client/t1", IMPLICIT, {"iot:Connection.Thing.ThingName": "t1"}),
    ),
    *rows(
        "all-condition-blocks-must-hold",
        one(
            allow(
                "iot:Connect",
                "*",
                condition={
                    "StringLike": {"iot:ClientId": "c-*"},
                    "ForAllValues:StringEquals": {CONNECT_ATTRIBUTES: ["PersistentConnect"]},
                },
            )
        ),
        (
            "iot:Connect",
            "client/c-1",
            ALLOWED,
            {"iot:ClientId": "c-1", CONNECT_ATTRIBUTES: ["PersistentConnect"]},
        ),
        (
            "iot:Connect",
            "client/c-1",
            IMPLICIT,
            {"iot:ClientId": "c-1", CONNECT_ATTRIBUTES: ["LastWill"]},
        ),
        (
            "iot:Connect",
            "client/d-1",
            IMPLICIT,
            {"iot:ClientId": "d-1", CONNECT_ATTRIBUTES: ["PersistentConnect"]},
        ),
    ),
    *rows(
        "if-exists-and-null",
        one(
            allow(
                "iot:GetThingShadow",
                "thing/*",
                condition={"StringEqualsIfExists": {"iot:Connection.Thing.ThingName": "t1"}},
            ),
            allow(
                "iot:UpdateThingShadow",
                "thing/*",
                condition={"Null": {"iot:Connection.Thing.ThingName": "false"}},
            ),
        ),
        ("iot:GetThingShadow", "thing/t1", ALLOWED),
        ("iot:GetThingShadow", "thing/t1", ALLOWED, {"iot:Connection.Thing.ThingName": "t1"}),
        ("iot:GetThingShadow", "thing/t1", IMPLICIT, {"iot:Connection.Thing.ThingName": "t2"}),
        ("iot:UpdateThingShadow", "thing/t1", ALLOWED, {"iot:Connection.Thing.ThingName": "t1"}),
        ("iot:UpdateThingShadow", "thing/t1", IMPLICIT),
    ),
    *rows(
        "arn-like",
        one(
            allow(
                "iot:Publish",
                "*",
                condition={"ArnLike": {"aws:SourceArn": "arn:aws:iot:*:*:thing/t*"}},
            )
        ),
        ("iot:Publish", "topic/x", ALLOWED, {"aws:SourceArn": ARN + "thing/t1"}),
        ("iot:Publish", "topic/x", IMPLICIT, {"aws:SourceArn": ARN + "client/t1"}),
        # '*' does not cross ':' inside ArnLike (fields are matched one by one)
        ("iot:Publish", "topic/x", IMPLICIT, {"aws:SourceArn": "arn:aws:iot:a:b:c:1:thing/t1"}),
    ),
]


@cache
def _parsed(text: str) -> PolicyDocument:
    return parse_policy(text)


def _arn(resource: str) -> str:
    return resource if resource == "*" or resource.startswith("arn:") else ARN + resource


def test_table_is_big_enough_and_ids_are_unique() -> None:
    assert len(TABLE) >= 60
    assert len({row.id for row in TABLE}) == len(TABLE)


@pytest.mark.parametrize("row", [pytest.param(row, id=row.id) for row in TABLE])
def test_evaluation_table(row: Row) -> None:
    policies = [(name, _parsed(text)) for name, text in row.policies]
    request = Request(row.action, _arn(row.resource), row.context)
    result = evaluate(policies, request)
    assert result.decision is row.expected, result.reason
    assert result.allowed is (row.expected is ALLOWED)


# --------------------------------------------------------------------- the result itself


def test_explicit_deny_names_the_policy_and_statement() -> None:
    policies = [(name, _parsed(text)) for name, text in PITFALL]
    request = Request("iot:Subscribe", topicfilter_arn(REGION, ACCOUNT, "a/restricted/x"))
    result = evaluate(policies, request)
    assert result.decision is EXPLICIT
    assert (result.policy_name, result.statement_index, result.statement_sid) == (
        "p",
        1,
        "DenyRestricted",
    )
    assert result.reason == "explicitly denied by policy 'p' Statement[1] (Sid 'DenyRestricted')"


def test_allow_names_the_first_allowing_statement() -> None:
    policies = [("aws1", _parsed(AWS_PUBLISH_RETAINED))]
    request = Request(
        "iot:RetainPublish", topic_arn(REGION, ACCOUNT, "device/sample/configuration")
    )
    result = evaluate(policies, request)
    assert (result.decision, result.policy_name, result.statement_index) == (ALLOWED, "aws1", 1)
    assert result.statement_sid is None
    assert result.reason == "allowed by policy 'aws1' Statement[1]"


def test_implicit_deny_says_what_was_asked() -> None:
    request = Request("iot:Connect", client_arn(REGION, ACCOUNT, "device2"))
    result = evaluate([("aws1", _parsed(AWS_PUBLISH_RETAINED))], request)
    assert (result.decision, result.policy_name, result.statement_index) == (IMPLICIT, None, None)
    assert result.reason == (
        f"implicitly denied: no statement allows iot:Connect on {ARN}client/device2"
    )


def test_statement_matches() -> None:
    (document,) = [_parsed(text) for _, text in PER_CLIENT]
    (only,) = document.statements
    request = Request("iot:Publish", topic_arn(REGION, ACCOUNT, "c1/x"), {"iot:ClientId": "c1"})
    assert statement_matches(only, request)
    assert not statement_matches(only, Request(request.action, request.resource))


def test_arn_helpers() -> None:
    assert client_arn(REGION, ACCOUNT, "device1") == ARN + "client/device1"
    assert topic_arn(REGION, ACCOUNT, "a/b") == ARN + "topic/a/b"
    assert topicfilter_arn(REGION, ACCOUNT, "a/#") == ARN + "topicfilter/a/#"
