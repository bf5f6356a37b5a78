"""Write operations on policies, versions and attachments (commands, admin, console)."""

from __future__ import annotations

import json

from django.contrib.auth.models import Group, User
from django.db import transaction
from django.db.models import Max

from retained.models import Policy, PolicyAttachment, PolicyTarget, PolicyVersion
from retained.policy import PolicyParseError, parse_policy

__all__ = [
    "PolicyError",
    "PolicyParseError",
    "attach_policy",
    "create_policy",
    "create_policy_version",
    "delete_policy_version",
    "detach_policy",
    "pretty_document",
    "set_default_version",
]


class PolicyError(ValueError):
    """A policy operation that cannot be done (the message says why)."""


def pretty_document(text: str) -> str:
    """The document as it is shown and stored: indented JSON (text kept if it is not JSON)."""
    try:
        return json.dumps(json.loads(text), indent=2)
    except ValueError:
        return text


def create_policy(name: str, document: str, *, description: str = "") -> Policy:
    """A new policy with `document` as version 1 (the default). Raises PolicyParseError."""
    parse_policy(document)
    with transaction.atomic():
        if Policy.objects.filter(name=name).exists():
            raise PolicyError(f"a policy named {name!r} already exists")
        policy = Policy.objects.create(name=name, description=description)
        PolicyVersion.objects.create(
            policy=policy, version_id=1, document=pretty_document(document), is_default=True
        )
    return policy


def create_policy_version(policy: Policy, document: str, *, set_as_default: bool) -> PolicyVersion:
    """AWS: at most 5 versions; delete one before creating a sixth."""
    parse_policy(document)
    with transaction.atomic():
        locked = Policy.objects.select_for_update().get(pk=policy.pk)
        versions = PolicyVersion.objects.filter(policy=locked)
        if versions.count() >= Policy.MAX_VERSIONS:
            raise PolicyError(
                f"policy {policy.name!r} already has {Policy.MAX_VERSIONS} versions; "
                "delete a non-default version first"
            )
        latest = versions.aggregate(latest=Max("version_id"))["latest"] or 0
        if set_as_default:
            versions.filter(is_default=True).update(is_default=False)
        version = PolicyVersion.objects.create(
            policy=locked,
            version_id=latest + 1,
            document=pretty_document(document),
            is_default=set_as_default,
        )
        locked.save(update_fields=["updated_at"])
    return version


def set_default_version(policy: Policy, version_id: int) -> None:
    with transaction.atomic():
        version = PolicyVersion.objects.filter(policy=policy, version_id=version_id).first()
        if version is None:
            raise PolicyError(f"policy {policy.name!r} has no version {version_id}")
        PolicyVersion.objects.filter(policy=policy, is_default=True).update(is_default=False)
        version.is_default = True
        version.save(update_fields=["is_default"])


def delete_policy_version(policy: Policy, version_id: int) -> None:
    version = PolicyVersion.objects.filter(policy=policy, version_id=version_id).first()
    if version is None:
        raise PolicyError(f"policy {policy.name!r} has no version {version_id}")
    if version.is_default:
        raise PolicyError("the default version cannot be deleted; make another one default")
    version.delete()


def _target_fields(
    *, user: User | None, group: Group | None, anonymous: bool, certificate_id: str | None
) -> dict[str, object]:
    chosen = [user is not None, group is not None, anonymous, bool(certificate_id)]
    if sum(chosen) != 1:
        raise PolicyError("name exactly one target: a user, a group, a certificate or anonymous")
    if user is not None:
        return {"target": PolicyTarget.USER, "user": user}
    if group is not None:
        return {"target": PolicyTarget.GROUP, "group": group}
    if certificate_id:
        return {"target": PolicyTarget.CERTIFICATE, "certificate_id": certificate_id}
    return {"target": PolicyTarget.ANONYMOUS}


def attach_policy(
    policy: Policy,
    *,
    user: User | None = None,
    group: Group | None = None,
    anonymous: bool = False,
    certificate_id: str | None = None,
) -> PolicyAttachment:
    fields = _target_fields(
        user=user, group=group, anonymous=anonymous, certificate_id=certificate_id
    )
    attachment, _ = PolicyAttachment.objects.get_or_create(policy=policy, **fields)  # type: ignore[arg-type]
    return attachment


def detach_policy(
    policy: Policy,
    *,
    user: User | None = None,
    group: Group | None = None,
    anonymous: bool = False,
    certificate_id: str | None = None,
) -> bool:
    fields = _target_fields(
        user=user, group=group, anonymous=anonymous, certificate_id=certificate_id
    )
    deleted, _ = PolicyAttachment.objects.filter(policy=policy, **fields).delete()
    return bool(deleted)
