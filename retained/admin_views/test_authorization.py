"""The admin's "Test authorization" (AWS: TestAuthorization): one request, its decision and
the statement that decided it.

Users, certificates and the anonymous principal are decided by `access.authorize`, the gate
the broker and the API use, over a freshly loaded snapshot. A group is not a principal that
ever asks, so it is evaluated with the pure engine over just that group's policies.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from retained import access
from retained.models import PolicyTarget, PolicyVersion
from retained.policy import ContextValue, EvaluationResult, IotAction, Request, evaluate
from retained.policy.arns import arn

from .policy_forms import ResourceKind

# The resource each action is checked against by the broker and the API
# (see retained.policy.arns); None: iot:ListRetainedMessages is checked against "*".
ACTION_RESOURCE_KINDS: dict[str, str | None] = {
    IotAction.CONNECT: ResourceKind.CLIENT,
    IotAction.PUBLISH: ResourceKind.TOPIC,
    IotAction.SUBSCRIBE: ResourceKind.TOPIC_FILTER,
    IotAction.RECEIVE: ResourceKind.TOPIC,
    IotAction.RETAIN_PUBLISH: ResourceKind.TOPIC,
    IotAction.GET_RETAINED_MESSAGE: ResourceKind.TOPIC,
    IotAction.LIST_RETAINED_MESSAGES: None,
    IotAction.DELETE_THING_SHADOW: ResourceKind.THING,
    IotAction.GET_THING_SHADOW: ResourceKind.THING,
    IotAction.UPDATE_THING_SHADOW: ResourceKind.THING,
    IotAction.LIST_NAMED_SHADOWS_FOR_THING: ResourceKind.THING,
}

ROOT_MESSAGE = "superuser: the account root may do everything; policies are not consulted"


@dataclass(frozen=True)
class AuthorizationTest:
    """What was asked and what was decided, ready for the page."""

    principal: str
    action: str
    resource: str
    context: Mapping[str, ContextValue]
    result: EvaluationResult
    is_root: bool
    policies: tuple[str, ...]  # attached to the principal, in evaluation order
    unusable: tuple[str, ...]  # attached, but with no valid default version (not evaluated)
    statement: str | None  # the deciding statement, as JSON
    notes: tuple[str, ...]


def resource_kind(action: str, chosen: str) -> str | None:
    """The ARN type the request names; None for "*" (iot:ListRetainedMessages)."""
    if action == IotAction.LIST_RETAINED_MESSAGES:
        return None
    if chosen == ResourceKind.AUTO:
        return ACTION_RESOURCE_KINDS.get(action) or ResourceKind.TOPIC
    return chosen


def resource_arn(kind: str | None, value: str) -> str:
    if kind is None:
        return "*"
    return arn(settings.RETAINED_REGION, settings.RETAINED_ACCOUNT_ID, kind, value)


def run_test(data: Mapping[str, Any]) -> AuthorizationTest:
    """Decide the request described by a valid TestAuthorizationForm's cleaned_data."""
    action: str = data["action"]
    value: str = data.get("resource") or ""
    kind = resource_kind(action, data["resource_kind"])
    resource = resource_arn(kind, value)
    notes: list[str] = []
    expected = ACTION_RESOURCE_KINDS.get(action)
    if kind is not None and expected is not None and kind != expected:
        notes.append(
            f"{action} is checked against a {expected} ARN by the broker and the API; "
            f"this test used a {kind} ARN."
        )
    context: dict[str, ContextValue] = {}
    client_id = data.get("client_id") or ""
    if not client_id and kind == ResourceKind.CLIENT:
        client_id = value
    if client_id:
        context["iot:ClientId"] = client_id
    if data.get("thing_name"):
        context["iot:Connection.Thing.ThingName"] = data["thing_name"]

    snapshot = access.reload()  # the page reflects the latest saves, whatever the cache
    if data["principal_type"] == PolicyTarget.GROUP:
        group = data["group"]
        names = snapshot.group_policies.get(group.pk, ())
        policies = [
            (name, snapshot.documents[name]) for name in names if name in snapshot.documents
        ]
        result = evaluate(policies, Request(action, resource, context))
        label, is_root = f"group {group.name}", False
    else:
        principal = _principal(data)
        if principal.kind == "user":
            context["aws:username"] = principal.name
            if principal.name not in snapshot.users:
                notes.append("This user is inactive: no policy applies to it.")
        names = snapshot.policy_names(principal)
        result = access.authorize(principal, action, resource, context, snapshot=snapshot)
        label, is_root = f"{principal.kind} {principal.name}", snapshot.is_root(principal)
    statement = None
    if result.policy_name is not None and result.statement_index is not None:
        statement = deciding_statement(result.policy_name, result.statement_index)
    return AuthorizationTest(
        principal=label,
        action=action,
        resource=resource,
        context=context,
        result=result,
        is_root=is_root,
        policies=tuple(names),
        unusable=tuple(name for name in names if name not in snapshot.documents),
        statement=statement,
        notes=tuple(notes),
    )


def _principal(data: Mapping[str, Any]) -> access.Principal:
    target = data["principal_type"]
    if target == PolicyTarget.USER:
        return access.Principal(kind="user", name=data["user"].get_username(), via="admin")
    if target == PolicyTarget.CERTIFICATE:
        return access.Principal(kind="certificate", name=data["certificate_id"], via="admin")
    return access.ANONYMOUS


def deciding_statement(policy_name: str, index: int) -> str | None:
    """Statement[index] of the policy's default version, pretty-printed (None if gone)."""
    version = PolicyVersion.objects.filter(policy__name=policy_name, is_default=True).first()
    if version is None:
        return None
    try:
        document = json.loads(version.document)
    except ValueError:
        return None
    statements = document.get("Statement") if isinstance(document, dict) else None
    if isinstance(statements, dict):  # a single statement may be given without a list
        statements = [statements]
    if not isinstance(statements, list) or not 0 <= index < len(statements):
        return None
    return json.dumps(statements[index], indent=2)
