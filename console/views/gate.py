"""The console's side of the policy gate: who the signed-in user is to `retained.access`,
which actions a page may offer, and the 403 page that names what is missing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from retained import access
from retained.access import Principal
from retained.policy import Effect, topic_arn

LIST = "iot:ListRetainedMessages"
GET = "iot:GetRetainedMessage"
PUBLISH = "iot:Publish"
RETAIN_PUBLISH = "iot:RetainPublish"
WRITE = (PUBLISH, RETAIN_PUBLISH)
LIST_RESOURCE = "*"


def principal_of(user: AbstractBaseUser | AnonymousUser) -> Principal:
    return Principal(kind="user", name=user.get_username(), via="console")


def resource_of(topic: str) -> str:
    return topic_arn(settings.RETAINED_REGION, settings.RETAINED_ACCOUNT_ID, topic)


@dataclass(frozen=True, slots=True)
class Permission:
    """Whether every one of `actions` is allowed on `resource`, and if not, which are not."""

    actions: tuple[str, ...]
    resource: str
    missing: tuple[str, ...]
    reason: str = ""

    @property
    def allowed(self) -> bool:
        return not self.missing

    @property
    def tooltip(self) -> str:
        """The title of a disabled control: what the user would need."""
        if self.allowed:
            return ""
        return f"Not allowed: your policies do not grant {' and '.join(self.missing)}"


def check(
    user: AbstractBaseUser | AnonymousUser, actions: Sequence[str], resource: str
) -> Permission:
    """Evaluate `actions` on `resource` for `user` (sync: may reload policies)."""
    access.refresh_if_stale()
    return evaluate(principal_of(user), actions, resource)


def evaluate(principal: Principal, actions: Sequence[str], resource: str) -> Permission:
    """Pure over the current policy snapshot (the caller keeps it fresh)."""
    missing: list[str] = []
    reasons: list[str] = []
    for action in actions:
        result = access.authorize(principal, action, resource)
        if not result.allowed:
            missing.append(action)
            reasons.append(access.denial_message(action, resource, result))
    return Permission(tuple(actions), resource, tuple(missing), "; ".join(reasons))


def creatable(user: AbstractBaseUser | AnonymousUser) -> Permission:
    """Whether "Create retained message" can lead anywhere: the topic is not known yet, so
    this asks whether any Allow statement of the user's policies grants each write action
    (on some resource). The topic itself is checked when the form is submitted."""
    snapshot = access.refresh_if_stale()
    principal = principal_of(user)
    if snapshot.is_root(principal):
        return Permission(WRITE, "*", ())
    policies = snapshot.policies(principal)
    missing = tuple(
        action
        for action in WRITE
        if not any(
            statement.effect is Effect.ALLOW
            and any(pattern.matches(action, case_sensitive=False) for pattern in statement.actions)
            for _, document in policies
            for statement in document.statements
        )
    )
    return Permission(WRITE, "*", missing)


def forbidden(request: HttpRequest, permission: Permission) -> HttpResponse:
    """The 403 page naming the missing action(s)."""
    return render(request, "console/forbidden.html", {"permission": permission}, status=403)


def is_root(user: AbstractBaseUser | AnonymousUser) -> bool:
    return bool(getattr(user, "is_superuser", False))
