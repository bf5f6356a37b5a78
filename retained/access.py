"""The one gate: authorize(principal, action, resource, context) for broker, API and console.

Policies and attachments are few and change rarely, so the whole of them is kept in memory
as an immutable `Snapshot` (documents parsed once). Evaluation is pure and never touches the
database, so the broker can call it on its event loop. A change to a policy, version,
attachment, user or group rebuilds the snapshot after commit in this process; other
processes notice a moved generation counter (`refresh_if_stale`, at most every 0.2 s).
Decisions are cached per snapshot.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import F
from django.db.models.signals import m2m_changed, post_delete, post_save

from retained.models import (
    AccessKey,
    Certificate,
    CertificateStatus,
    Counter,
    Policy,
    PolicyAttachment,
    PolicyTarget,
    PolicyVersion,
)
from retained.policy import (
    ContextValue,
    Decision,
    Effect,
    EvaluationResult,
    PolicyDocument,
    PolicyParseError,
    Request,
    evaluate,
    parse_policy,
)

logger = logging.getLogger(__name__)

# How often a process asks the database whether policies changed elsewhere (one tiny query).
GENERATION_CHECK_SECONDS = 0.2
POLICY_GENERATION = "policy_generation"
DECISION_CACHE_SIZE = 100_000


@dataclass(frozen=True, slots=True)
class Principal:
    """Who asks. kind: "user" (console user or access-key owner), "anonymous",
    "certificate". `via` says how they came (access key id, "console") for logs."""

    kind: str
    name: str
    via: str = ""


ANONYMOUS = Principal(kind="anonymous", name="anonymous")


@dataclass(frozen=True, slots=True)
class _UserInfo:
    user_id: int
    is_superuser: bool
    group_ids: tuple[int, ...]


@dataclass(frozen=True)
class Snapshot:
    users: Mapping[str, _UserInfo]
    user_policies: Mapping[int, tuple[str, ...]]
    group_policies: Mapping[int, tuple[str, ...]]
    anonymous_policies: tuple[str, ...]
    certificate_policies: Mapping[str, tuple[str, ...]]
    documents: Mapping[str, PolicyDocument]
    active_certificates: frozenset[str] = frozenset()
    # Access key ids that may authenticate: active keys of active users.
    active_access_keys: frozenset[str] = frozenset()
    generation: int = 0
    loaded_at: float = field(default_factory=time.monotonic)

    def is_root(self, principal: Principal) -> bool:
        if principal.kind != "user":
            return False
        info = self.users.get(principal.name)
        return info is not None and info.is_superuser

    def policy_names(self, principal: Principal) -> tuple[str, ...]:
        if principal.kind == "anonymous":
            return self.anonymous_policies
        if principal.kind == "certificate":
            if principal.name not in self.active_certificates:
                return ()  # inactive, revoked or deleted: default deny
            return self.certificate_policies.get(principal.name, ())
        info = self.users.get(principal.name)
        if info is None:
            return ()
        names = list(self.user_policies.get(info.user_id, ()))
        for group_id in info.group_ids:
            names.extend(self.group_policies.get(group_id, ()))
        return tuple(dict.fromkeys(names))

    def policies(self, principal: Principal) -> list[tuple[str, PolicyDocument]]:
        return [
            (name, self.documents[name])
            for name in self.policy_names(principal)
            if name in self.documents
        ]


def _unrestricted_policy(policies: Sequence[tuple[str, PolicyDocument]]) -> str | None:
    """The policy that allows every action on every resource without conditions, when no
    policy of the principal denies anything; then no request needs a full evaluation."""
    unrestricted = None
    for name, document in policies:
        for statement in document.statements:
            if statement.effect is Effect.DENY:
                return None
            opens_all = (
                not statement.conditions
                and any(str(action).lower() in ("*", "iot:*") for action in statement.actions)
                and any(resource.source == "*" for resource in statement.resources)
            )
            if opens_all and unrestricted is None:
                unrestricted = name
    return unrestricted


_lock = threading.Lock()
_snapshot: Snapshot | None = None
_unrestricted: dict[tuple[int, Principal], str | None] = {}
_decisions: dict[tuple[object, ...], EvaluationResult] = {}

ROOT_RESULT = EvaluationResult(
    decision=Decision.ALLOWED, reason="allowed: superuser (the account root may do everything)"
)


def _generation() -> int:
    counter = Counter.objects.filter(name=POLICY_GENERATION).first()
    return counter.value if counter else 0


def load_snapshot() -> Snapshot:
    """Read every policy's default version, every attachment and user (sync, database)."""
    generation = _generation()
    documents: dict[str, PolicyDocument] = {}
    for version in PolicyVersion.objects.filter(is_default=True).select_related("policy"):
        try:
            documents[version.policy.name] = parse_policy(version.document)
        except PolicyParseError as error:  # saved before validation existed, or edited in SQL
            logger.error("policy %r default version is invalid: %s", version.policy.name, error)
    user_policies: dict[int, list[str]] = {}
    group_policies: dict[int, list[str]] = {}
    certificate_policies: dict[str, list[str]] = {}
    anonymous: list[str] = []
    for attachment in PolicyAttachment.objects.select_related("policy"):
        name = attachment.policy.name
        if attachment.target == PolicyTarget.USER and attachment.user_id is not None:
            user_policies.setdefault(attachment.user_id, []).append(name)
        elif attachment.target == PolicyTarget.GROUP and attachment.group_id is not None:
            group_policies.setdefault(attachment.group_id, []).append(name)
        elif attachment.target == PolicyTarget.CERTIFICATE:
            certificate_policies.setdefault(attachment.certificate_id, []).append(name)
        elif attachment.target == PolicyTarget.ANONYMOUS:
            anonymous.append(name)
    memberships: dict[int, list[int]] = {}
    user_model = get_user_model()
    through = user_model.groups.through
    for user_id, group_id in through.objects.values_list("user_id", "group_id"):
        memberships.setdefault(user_id, []).append(group_id)
    users = {
        username: _UserInfo(user_id, is_superuser, tuple(memberships.get(user_id, ())))
        for user_id, username, is_superuser in user_model.objects.filter(
            is_active=True
        ).values_list("id", user_model.USERNAME_FIELD, "is_superuser")
    }
    active_certificates = frozenset(
        Certificate.objects.filter(status=CertificateStatus.ACTIVE).values_list(
            "certificate_id", flat=True
        )
    )
    active_access_keys = frozenset(
        AccessKey.objects.filter(is_active=True, user__is_active=True).values_list(
            "access_key_id", flat=True
        )
    )
    return Snapshot(
        users=users,
        active_certificates=active_certificates,
        active_access_keys=active_access_keys,
        user_policies={k: tuple(v) for k, v in user_policies.items()},
        group_policies={k: tuple(v) for k, v in group_policies.items()},
        anonymous_policies=tuple(anonymous),
        certificate_policies={k: tuple(v) for k, v in certificate_policies.items()},
        documents=documents,
        generation=generation,
    )


_listeners: list[Callable[[Snapshot], None]] = []


def add_snapshot_listener(listener: Callable[[Snapshot], None]) -> None:
    """Called (in the installing thread) after every new snapshot: the broker uses it to
    drop cached decisions and close connections of certificates no longer ACTIVE."""
    _listeners.append(listener)


def remove_snapshot_listener(listener: Callable[[Snapshot], None]) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def install_snapshot(snapshot: Snapshot) -> None:
    global _snapshot
    with _lock:
        _snapshot = snapshot
        _decisions.clear()
        _unrestricted.clear()
    for listener in list(_listeners):
        try:
            listener(snapshot)
        except Exception:
            logger.exception("snapshot listener failed")


def principal_is_valid(principal: Principal, snapshot: Snapshot | None = None) -> bool:
    """May this principal stay connected? A certificate only while it is ACTIVE; a user
    who came with an access key only while the key and the user are active."""
    if principal.kind == "anonymous":
        return True
    snapshot = snapshot or current_snapshot() or reload()
    if principal.kind == "certificate":
        return principal.name in snapshot.active_certificates
    if principal.name not in snapshot.users:
        return False  # deactivated or deleted
    return principal.via in ("console", "admin") or principal.via in snapshot.active_access_keys


def reload() -> Snapshot:
    snapshot = load_snapshot()
    install_snapshot(snapshot)
    return snapshot


def current_snapshot() -> Snapshot | None:
    with _lock:
        return _snapshot


_last_check = 0.0


def refresh_if_stale(*, check_now: bool = False) -> Snapshot:
    """Sync callers (API views, the broker's refresh thread): reload when policies changed
    in any process (the generation counter moved); asks at most every 0.2 s."""
    global _last_check
    snapshot = current_snapshot()
    if snapshot is None:
        return reload()
    now = time.monotonic()
    if not check_now and now - _last_check < GENERATION_CHECK_SECONDS:
        return snapshot
    _last_check = now
    if _generation() != snapshot.generation:
        snapshot = reload()
    return snapshot


def _context_key(context: Mapping[str, ContextValue]) -> tuple[object, ...]:
    return tuple(
        sorted((k, tuple(v) if isinstance(v, list | tuple) else v) for k, v in context.items())
    )


def authorize(
    principal: Principal,
    action: str,
    resource: str,
    context: Mapping[str, ContextValue] | None = None,
    *,
    snapshot: Snapshot | None = None,
) -> EvaluationResult:
    """Decide one request. Pure over the snapshot (which the caller keeps fresh)."""
    snapshot = snapshot or current_snapshot()
    if snapshot is None:
        snapshot = reload()
    if snapshot.is_root(principal):
        return ROOT_RESULT
    open_key = (id(snapshot), principal)
    if open_key not in _unrestricted:
        _unrestricted[open_key] = _unrestricted_policy(snapshot.policies(principal))
    unrestricted = _unrestricted[open_key]
    if unrestricted is not None:
        return EvaluationResult(
            decision=Decision.ALLOWED,
            reason=f"allowed by policy {unrestricted!r} (every action on every resource)",
            policy_name=unrestricted,
        )
    full_context: dict[str, ContextValue] = dict(context or {})
    if principal.kind == "user":
        full_context.setdefault("aws:username", principal.name)
    key = (id(snapshot), principal, action, resource, _context_key(full_context))
    cached = _decisions.get(key)
    if cached is not None:
        return cached
    result = evaluate(snapshot.policies(principal), Request(action, resource, full_context))
    if len(_decisions) >= DECISION_CACHE_SIZE:
        _decisions.clear()
    _decisions[key] = result
    return result


def is_unrestricted(principal: Principal) -> bool:
    """Whether `principal` may do every action on every resource (root, or a policy that
    allows everything while none of theirs denies anything): callers can skip per-resource
    checks for it until policies change."""
    snapshot = current_snapshot() or reload()
    if snapshot.is_root(principal):
        return True
    open_key = (id(snapshot), principal)
    if open_key not in _unrestricted:
        _unrestricted[open_key] = _unrestricted_policy(snapshot.policies(principal))
    return _unrestricted[open_key] is not None


def is_allowed(
    principal: Principal, action: str, resource: str, context: Mapping[str, ContextValue]
) -> bool:
    return authorize(principal, action, resource, context).allowed


def denial_message(action: str, resource: str, result: EvaluationResult) -> str:
    """What a refused caller is told: the action, the resource and why."""
    return f"not authorized to perform {action} on {resource}: {result.reason}"


def policies_of(principal: Principal, snapshot: Snapshot | None = None) -> Sequence[str]:
    snapshot = snapshot or current_snapshot() or reload()
    return snapshot.policy_names(principal)


# --- invalidation ------------------------------------------------------------------------


# Saving a user only matters to policies through these fields (a login saves last_login).
_USER_FIELDS_THAT_MATTER = frozenset({"username", "is_active", "is_superuser"})


def _changed(sender: object = None, update_fields: object = None, **_: object) -> None:
    if (
        sender is get_user_model()
        and isinstance(update_fields, frozenset | set)
        and not (update_fields & _USER_FIELDS_THAT_MATTER)
    ):
        return
    # Bumped inside the changing transaction, so other processes see both or neither.
    updated = Counter.objects.filter(name=POLICY_GENERATION).update(value=F("value") + 1)
    if not updated:
        Counter.objects.get_or_create(name=POLICY_GENERATION, defaults={"value": 1})
    transaction.on_commit(_reload_quietly)


def _reload_quietly() -> None:
    try:
        reload()
    except Exception:
        logger.exception("could not reload policies; keeping the previous snapshot")


def connect_signals() -> None:
    user_model = get_user_model()
    for model in (
        Policy,
        PolicyVersion,
        PolicyAttachment,
        Certificate,
        AccessKey,
        user_model,
        Group,
    ):
        post_save.connect(_changed, sender=model, dispatch_uid=f"access-save-{model.__name__}")
        post_delete.connect(_changed, sender=model, dispatch_uid=f"access-del-{model.__name__}")
    m2m_changed.connect(
        _changed,
        sender=user_model.groups.through,
        dispatch_uid="access-groups",
    )
