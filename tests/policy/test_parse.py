"""Table-driven tests for retained.policy.parse (pure: no Django)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retained.policy import (
    ConditionOperator,
    Effect,
    PolicyParseError,
    PolicyProblem,
    SetQualifier,
    parse_policy,
)

ARN = "arn:aws:iot:us-east-1:123456789012:"
VALID_STATEMENT: dict[str, Any] = {
    "Effect": "Allow",
    "Action": "iot:Publish",
    "Resource": ARN + "topic/a",
}


def document(*, top: dict[str, Any] | None = None, **statement: Any) -> str:
    """A valid one-statement document, with statement keys replaced (None removes one)."""
    body = dict(VALID_STATEMENT)
    for key, value in statement.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    doc: dict[str, Any] = {"Version": "2012-10-17", "Statement": [body]}
    for key, value in (top or {}).items():
        if value is None:
            doc.pop(key)
        else:
            doc[key] = value
    return json.dumps(doc)


def problems(text: str, **kwargs: Any) -> list[PolicyProblem]:
    with pytest.raises(PolicyParseError) as caught:
        parse_policy(text, **kwargs)
    return caught.value.errors


S = "Statement[0]"

# (id, document text, expected path, expected message); each document has one problem
ERROR_CASES: list[tuple[str, str, str, str]] = [
    ("not-json-empty", "", "", "invalid JSON: Expecting value"),
    ("not-object", "[]", "", "a policy document must be a JSON object, not a list"),
    ("missing-version", document(top={"Version": None}), "Version",
     'missing "Version" (use "2012-10-17")'),
    ("unknown-version", document(top={"Version": "2012-10-18"}), "Version",
     'unknown Version "2012-10-18"; use "2012-10-17" (or "2008-10-17")'),
    ("version-not-string", document(top={"Version": 2012}), "Version",
     'unknown Version 2012; use "2012-10-17" (or "2008-10-17")'),
    ("unknown-top-level-key", document(top={"Statements": []}), "Statements",
     'unknown top-level key "Statements"; did you mean "Statement"?'),
    ("unknown-top-level-key-no-hint", document(top={"Owner": "me"}), "Owner",
     'unknown top-level key "Owner"'),
    ("id-not-string", document(top={"Id": 3}), "Id", "must be a string, not a number"),
    ("missing-statement", document(top={"Statement": None}), "Statement",
     'missing "Statement"'),
    ("statement-not-object-or-list", document(top={"Statement": "Allow all"}), "Statement",
     "must be a statement object or a list of them, not a string"),
    ("statement-empty-list", document(top={"Statement": []}), "Statement",
     "must contain at least one statement"),
    ("statement-item-not-object", document(top={"Statement": [VALID_STATEMENT, 7]}),
     "Statement[1]", "a statement must be a JSON object, not a number"),
    ("unknown-statement-key", document(Actions="iot:Publish"), f"{S}.Actions",
     'unknown statement key "Actions"; did you mean "Action"?'),
    ("principal", document(Principal="*"), f"{S}.Principal",
     "AWS IoT policies have no Principal: the policy applies to whatever it is attached to"),
    ("sid-not-string", document(Sid=1), f"{S}.Sid", "must be a string, not a number"),
    ("missing-effect", document(Effect=None), f"{S}.Effect",
     'missing Effect ("Allow" or "Deny")'),
    ("effect-wrong-case", document(Effect="allow"), f"{S}.Effect",
     'unknown Effect "allow"; did you mean "Allow"?'),
    ("effect-unknown", document(Effect="Permit"), f"{S}.Effect",
     'unknown Effect "Permit"; use "Allow" or "Deny"'),
    ("missing-action", document(Action=None), f"{S}.Action",
     "missing Action (or NotAction)"),
    ("action-and-notaction", document(NotAction="iot:Connect"), f"{S}.NotAction",
     "give Action or NotAction, not both"),
    ("action-typo", document(Action=["iot:Connect", "iot:Publsh"]), f"{S}.Action[1]",
     'unknown action "iot:Publsh"; did you mean "iot:Publish"?'),
    ("action-other-service", document(Action="s3:GetObject"), f"{S}.Action",
     'unknown action "s3:GetObject"'),
    ("action-wildcard-matches-nothing", document(Action="iot:Foo*"), f"{S}.Action",
     'unknown action "iot:Foo*"'),
    ("action-not-string", document(Action=5), f"{S}.Action",
     "must be a string or a list of strings, not a number"),
    ("action-item-not-string", document(Action=["iot:Publish", None]), f"{S}.Action[1]",
     "must be a string, not null"),
    ("action-empty-list", document(Action=[]), f"{S}.Action", "must not be an empty list"),
    ("missing-resource", document(Resource=None), f"{S}.Resource",
     "missing Resource (or NotResource)"),
    ("resource-and-notresource", document(NotResource="*"), f"{S}.NotResource",
     "give Resource or NotResource, not both"),
    ("resource-not-arn", document(Resource="topic/a"), f"{S}.Resource",
     'malformed ARN "topic/a": expected "*" or'
     ' "arn:aws:iot:<region>:<account>:<type>/<name>"'),
    ("resource-other-service", document(Resource="arn:aws:s3:::bucket"), f"{S}.Resource",
     'malformed ARN "arn:aws:s3:::bucket": the service must be "iot", not "s3"'),
    ("resource-unknown-type", document(Resource=ARN + "topics/a"), f"{S}.Resource",
     f'malformed ARN "{ARN}topics/a": unknown resource type "topics"'
     " (use one of client, topic, topicfilter, thing, cert)"),
    ("resource-bad-account",
     document(Resource="arn:aws:iot:us-east-1:12345:topic/a"), f"{S}.Resource",
     'malformed ARN "arn:aws:iot:us-east-1:12345:topic/a": bad account "12345" (12 digits)'),
    ("resource-bad-region",
     document(Resource="arn:aws:iot:US_EAST:123456789012:topic/a"), f"{S}.Resource",
     'malformed ARN "arn:aws:iot:US_EAST:123456789012:topic/a": bad region "US_EAST"'),
    ("resource-no-name", document(Resource=ARN + "topic/"), f"{S}.Resource",
     f'malformed ARN "{ARN}topic/": nothing after "topic/"'),
    ("resource-unknown-variable", document(Resource=ARN + "topic/${iot:ClientID2}"),
     f"{S}.Resource",
     "unknown policy variable '${iot:ClientID2}' (known: ${iot:ClientId},"
     " ${iot:Connection.Thing.ThingName}, ${iot:Certificate.Subject.CommonName},"
     " ${aws:username}; escapes: ${*}, ${?}, ${$})"),
    ("resource-unclosed-variable", document(Resource=ARN + "topic/${iot:ClientId"),
     f"{S}.Resource", "unclosed '${' at character 42"),
    ("variables-need-2012",
     document(top={"Version": "2008-10-17"}, Resource=ARN + "topic/${iot:ClientId}"),
     f"{S}.Resource", 'policy variables need "Version": "2012-10-17"'),
    ("condition-not-object", document(Condition=["StringEquals"]), f"{S}.Condition",
     "must be a JSON object of operator blocks, not a list"),
    ("condition-operator-typo", document(Condition={"StringEqual": {"iot:ClientId": "a"}}),
     f"{S}.Condition.StringEqual",
     'unsupported condition operator "StringEqual"; did you mean "StringEquals"?'),
    ("condition-operator-unsupported",
     document(Condition={"NumericLessThan": {"iot:ClientId": "1"}}),
     f"{S}.Condition.NumericLessThan",
     'unsupported condition operator "NumericLessThan"; supported: StringEquals,'
     " StringNotEquals, StringEqualsIgnoreCase, StringNotEqualsIgnoreCase, StringLike,"
     " StringNotLike, Bool, ArnEquals, ArnNotEquals, ArnLike, ArnNotLike, Null"),
    ("condition-unknown-qualifier",
     document(Condition={"ForEachValue:StringEquals": {"iot:ConnectAttributes": "LastWill"}}),
     f'{S}.Condition["ForEachValue:StringEquals"]',
     'unknown set qualifier "ForEachValue"; use ForAllValues: or ForAnyValue:'),
    ("condition-block-not-object", document(Condition={"StringEquals": "iot:ClientId"}),
     f"{S}.Condition.StringEquals",
     "must be a JSON object mapping condition keys to values, not a string"),
    ("condition-block-empty", document(Condition={"StringEquals": {}}),
     f"{S}.Condition.StringEquals", "names no condition key"),
    ("condition-value-not-string", document(Condition={"StringEquals": {"iot:ClientId": 7}}),
     f'{S}.Condition.StringEquals["iot:ClientId"]',
     "must be a string or a list of strings, not a number"),
    ("condition-bool-value", document(Condition={"Bool": {"aws:SecureTransport": "yes"}}),
     f'{S}.Condition.Bool["aws:SecureTransport"]', 'Bool takes "true" or "false", not "yes"'),
    ("condition-null-qualified", document(Condition={"ForAllValues:Null": {"k": "true"}}),
     f'{S}.Condition["ForAllValues:Null"]',
     "Null takes no ForAllValues:/ForAnyValue: and no IfExists"),
    ("condition-value-variable",
     document(Condition={"StringEquals": {"iot:ClientId": ["${iot:Thing}"]}}),
     f'{S}.Condition.StringEquals["iot:ClientId"][0]',
     "unknown policy variable '${iot:Thing}' (known: ${iot:ClientId},"
     " ${iot:Connection.Thing.ThingName}, ${iot:Certificate.Subject.CommonName},"
     " ${aws:username}; escapes: ${*}, ${?}, ${$})"),
    ("duplicate-key",
     '{"Version": "2012-10-17", "Version": "2012-10-17", "Statement": '
     + json.dumps(VALID_STATEMENT) + "}",
     "Version", 'duplicate top-level key "Version"'),
    ("duplicate-sid",
     document(top={"Statement": [dict(VALID_STATEMENT, Sid="A"), dict(VALID_STATEMENT, Sid="A")]}),
     "Statement[1].Sid", 'duplicate Sid "A" (also used by Statement[0])'),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "path", "message"),
    [pytest.param(text, path, message, id=case) for case, text, path, message in ERROR_CASES],
)
def test_parse_error_table(text: str, path: str, message: str) -> None:
    assert [(problem.path, problem.message) for problem in problems(text)] == [(path, message)]


def test_json_syntax_error_has_line_and_column() -> None:
    text = '{"Version": "2012-10-17",\n  "Statement": [}'
    assert problems(text) == [PolicyProblem("", "invalid JSON: Expecting value", 2, 17)]
    assert str(problems(text)[0]) == "line 2, column 17: invalid JSON: Expecting value"


def test_size_limit_counts_characters_without_whitespace() -> None:
    text = document()
    size = sum(1 for char in text if not char.isspace())
    assert parse_policy(text, max_bytes=size)
    padded = json.dumps(json.loads(text), indent="\t" * 200)
    assert parse_policy(padded)  # whitespace does not count towards the 2048 limit
    assert problems(text, max_bytes=size - 1) == [
        PolicyProblem(
            "",
            f"the document is {size} characters long without whitespace; the limit is {size - 1}",
        )
    ]


def test_oversized_document_still_reports_its_other_problems() -> None:
    text = document(Effect="Permit", Action=["iot:Publish"] * 300)
    found = problems(text)
    assert [problem.path for problem in found] == ["", f"{S}.Effect"]
    assert found[0].message.endswith("the limit is 2048")


def test_every_problem_is_reported_at_once() -> None:
    text = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "iot:Connect", "Resource": ARN + "client/a"},
                {
                    "Effect": "Alow",
                    "Action": ["iot:Publish", "iot:Publsh"],
                    "Resource": "topic/a",
                    "Condition": {"StringEqualz": {"iot:ClientId": "a"}},
                },
            ],
        }
    )
    with pytest.raises(PolicyParseError) as caught:
        parse_policy(text)
    assert [(problem.path, problem.message) for problem in caught.value.errors] == [
        ("Statement[1].Effect", 'unknown Effect "Alow"; did you mean "Allow"?'),
        ("Statement[1].Action[1]", 'unknown action "iot:Publsh"; did you mean "iot:Publish"?'),
        (
            "Statement[1].Resource",
            'malformed ARN "topic/a": expected "*" or'
            ' "arn:aws:iot:<region>:<account>:<type>/<name>"',
        ),
        (
            "Statement[1].Condition.StringEqualz",
            'unsupported condition operator "StringEqualz"; did you mean "StringEquals"?',
        ),
    ]
    assert str(caught.value).startswith("4 problems in the policy document: Statement[1].Effect")


# ----------------------------------------------------------------------------- valid input

VALID_RESOURCES = [
    "*",
    ARN + "topic/a/b",
    ARN + "topicfilter/a/+",
    ARN + "topic/${iot:ClientId}/*",
    ARN + "topic/a:b",  # ':' in a topic name is part of the name
    ARN + "*",
    ARN + "topic*",
    "arn:aws:iot:*:*:client/*",
    "arn:aws:iot:*",
    "arn:aws-cn:iot:cn-north-1:123456789012:thing/t1",
    "arn:aws:iot:us-east-1:123456789012:cert/abc",
    "arn:aws:iot:us-east-?:123456789012:client/c",
    "arn:aws:iot:us-east-1:123456789012:*/a",
]


@pytest.mark.parametrize("resource", VALID_RESOURCES)
def test_valid_resources(resource: str) -> None:
    statement = parse_policy(document(Resource=resource)).statements[0]
    assert [template.source for template in statement.resources] == [resource]


VALID_ACTIONS = ["*", "iot:*", "iot:Get*", "iot:*Shadow", "IOT:publish", "iot:?eceive"]


@pytest.mark.parametrize("action", VALID_ACTIONS)
def test_valid_actions(action: str) -> None:
    assert parse_policy(document(Action=action)).statements[0].actions


def test_parsed_document_shape() -> None:
    text = json.dumps(
        {
            "Version": "2012-10-17",
            "Id": "example",
            "Statement": {
                "Sid": "WillOnly",
                "Effect": "Deny",
                "NotAction": ["iot:Connect"],
                "NotResource": ARN + "client/${iot:ClientId}",
                "Condition": {
                    "ForAllValues:StringEquals": {"iot:ConnectAttributes": ["LastWill"]},
                    "BoolIfExists": {"aws:SecureTransport": True},
                },
            },
        }
    )
    doc = parse_policy(text)
    assert doc.version == "2012-10-17"
    (statement,) = doc.statements
    assert statement.sid == "WillOnly"
    assert statement.effect is Effect.DENY
    assert statement.actions == ()
    assert [str(pattern) for pattern in statement.not_actions] == ["iot:Connect"]
    assert statement.not_resources[0].variables == {"iot:ClientId"}
    first, second = statement.conditions
    assert first.operator is ConditionOperator.STRING_EQUALS
    assert first.qualifier is SetQualifier.FOR_ALL_VALUES
    assert first.key == "iot:ConnectAttributes"
    assert [value.source for value in first.values] == ["LastWill"]
    assert second.operator is ConditionOperator.BOOL
    assert second.if_exists
    assert [value.source for value in second.values] == ["true"]


def test_2008_version_without_variables_is_accepted() -> None:
    assert parse_policy(document(top={"Version": "2008-10-17"})).version == "2008-10-17"


# ----------------------------------------------------------------------------- robustness

POLICY_KEYS = st.sampled_from(
    [
        "Version", "Statement", "Effect", "Action", "NotAction", "Resource", "NotResource",
        "Condition", "Sid", "Id", "StringEquals", "ForAllValues:StringLike", "Bool", "Null",
        "iot:ClientId",
    ]
)  # fmt: skip
POLICY_STRINGS = st.sampled_from(
    [
        "2012-10-17", "2008-10-17", "Allow", "Deny", "iot:*", "iot:Publish", "*", "true",
        ARN + "topic/${iot:ClientId}/*", ARN + "topic/${", "arn:aws:iot:*", "arn:", "${*}",
    ]
)  # fmt: skip
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text()
    | POLICY_STRINGS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(POLICY_KEYS | st.text(max_size=5), children, max_size=5)
    ),
    max_leaves=30,
)


def _parse_or_policy_error(text: str) -> None:
    """Parsing either succeeds or raises PolicyParseError with at least one problem."""
    try:
        parse_policy(text)
    except PolicyParseError as error:
        found = error.errors
    else:
        return
    assert found
    assert all(isinstance(problem, PolicyProblem) for problem in found)


@given(st.text())
def test_arbitrary_text_raises_only_policy_errors(text: str) -> None:
    _parse_or_policy_error(text)


@settings(max_examples=300)
@given(JSON_VALUES)
def test_arbitrary_json_raises_only_policy_errors(value: object) -> None:
    _parse_or_policy_error(json.dumps(value))


@given(st.dictionaries(POLICY_KEYS, JSON_VALUES, max_size=4))
def test_arbitrary_statements_raise_only_policy_errors(statement: dict[str, object]) -> None:
    _parse_or_policy_error(json.dumps({"Version": "2012-10-17", "Statement": [statement]}))
