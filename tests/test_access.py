"""retained/access.py in-process: who gets which policies, the superuser, variables, and the
snapshot / decision cache following every change (pytest-django, test database).

Changes reach `authorize()` through `transaction.on_commit(reload)`; inside a test's
transaction those callbacks run only when `django_capture_on_commit_callbacks(execute=True)`
captures them, which is what every "change" below is wrapped in (`committed`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from retained import access
from retained.access import ANONYMOUS, POLICY_GENERATION, Principal, authorize
from retained.models import (
    Certificate,
    CertificateStatus,
    Counter,
    Policy,
    PolicyAttachment,
    PolicyTarget,
)
from retained.policies import (
    attach_policy,
    create_policy,
    create_policy_version,
    delete_policy_version,
    detach_policy,
    set_default_version,
)
from retained.policy import Decision, client_arn, topic_arn, topicfilter_arn

pytestmark = pytest.mark.django_db

REGION = "us-east-1"
ACCOUNT = "123456789012"
ARN = f"arn:aws:iot:{REGION}:{ACCOUNT}:"

ALLOWED = Decision.ALLOWED
EXPLICIT = Decision.EXPLICIT_DENY
IMPLICIT = Decision.IMPLICIT_DENY

Capture = Callable[..., AbstractContextManager[Any]]


def topic(name: str) -> str:
    return topic_arn(REGION, ACCOUNT, name)


def topicfilter(name: str) -> str:
    return topicfilter_arn(REGION, ACCOUNT, name)


def client(name: str) -> str:
    return client_arn(REGION, ACCOUNT, name)


def statement(
    effect: str, action: str | list[str], resource: str | list[str], **extra: Any
) -> dict[str, Any]:
    def full(value: str) -> str:
        return value if value == "*" or value.startswith("arn:") else ARN + value

    resources = full(resource) if isinstance(resource, str) else [full(r) for r in resource]
    return {"Effect": effect, "Action": action, "Resource": resources, **extra}


def allow(action: str | list[str], resource: str | list[str], **extra: Any) -> dict[str, Any]:
    return statement("Allow", action, resource, **extra)


def deny(action: str | list[str], resource: str | list[str], **extra: Any) -> dict[str, Any]:
    return statement("Deny", action, resource, **extra)


def document(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def user(name: str) -> Principal:
    return Principal(kind="user", name=name)


def certificate(name: str) -> Principal:
    return Principal(kind="certificate", name=name)


def decision(
    principal: Principal, action: str, resource: str, context: dict[str, Any] | None = None
) -> Decision:
    return authorize(principal, action, resource, context).decision


def generation() -> int:
    counter = Counter.objects.filter(name=POLICY_GENERATION).first()
    return counter.value if counter else 0


@pytest.fixture(autouse=True)
def fresh_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from a snapshot of its own (empty) database, and leaves the module
    state as it found it."""
    monkeypatch.setattr(access, "_snapshot", None)
    monkeypatch.setattr(access, "_decisions", {})
    access.reload()


@pytest.fixture
def committed(django_capture_on_commit_callbacks: Capture) -> Callable[[], Any]:
    """`with committed():` runs the on-commit callbacks (the snapshot reload) at exit."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


# ---------------------------------------------------------------------------- users


def test_user_policy_allow_explicit_deny_and_implicit_deny(committed: Callable[[], Any]) -> None:
    with committed():
        alice = User.objects.create_user("alice")
        policy = create_policy(
            "alice-pub",
            document(
                allow("iot:Publish", "topic/alice/*"),
                deny("iot:Publish", "topic/alice/secret/*"),
            ),
        )
        attach_policy(policy, user=alice)

    allowed = authorize(user("alice"), "iot:Publish", topic("alice/x"))
    assert allowed.decision is ALLOWED
    assert (allowed.policy_name, allowed.statement_index) == ("alice-pub", 0)
    denied = authorize(user("alice"), "iot:Publish", topic("alice/secret/x"))
    assert denied.decision is EXPLICIT
    assert (denied.policy_name, denied.statement_index) == ("alice-pub", 1)
    assert decision(user("alice"), "iot:Publish", topic("bob/x")) is IMPLICIT
    assert decision(user("alice"), "iot:Subscribe", topicfilter("alice/x")) is IMPLICIT


def test_user_without_policy_and_unknown_user_are_implicitly_denied(
    committed: Callable[[], Any],
) -> None:
    with committed():
        User.objects.create_user("nopolicy")
    result = authorize(user("nopolicy"), "iot:Publish", topic("a"))
    assert result.decision is IMPLICIT
    assert "no policy" in result.reason
    assert decision(user("ghost"), "iot:Connect", client("c1")) is IMPLICIT


def test_policies_of_one_user_do_not_apply_to_another(committed: Callable[[], Any]) -> None:
    with committed():
        alice = User.objects.create_user("alice")
        User.objects.create_user("bob")
        attach_policy(create_policy("all", document(allow("iot:*", "*"))), user=alice)
    assert decision(user("alice"), "iot:Publish", topic("x")) is ALLOWED
    assert decision(user("bob"), "iot:Publish", topic("x")) is IMPLICIT
    assert decision(ANONYMOUS, "iot:Publish", topic("x")) is IMPLICIT
    assert decision(certificate("alice"), "iot:Publish", topic("x")) is IMPLICIT


def test_inactive_user_gets_nothing(committed: Callable[[], Any]) -> None:
    with committed():
        alice = User.objects.create_user("alice")
        attach_policy(create_policy("all", document(allow("iot:*", "*"))), user=alice)
    assert decision(user("alice"), "iot:Publish", topic("x")) is ALLOWED
    with committed():
        alice.is_active = False
        alice.save()
    assert decision(user("alice"), "iot:Publish", topic("x")) is IMPLICIT


# ---------------------------------------------------------------------------- groups


def test_group_policy_applies_to_members_and_removal_revokes(
    committed: Callable[[], Any],
) -> None:
    with committed():
        devices = Group.objects.create(name="devices")
        bob = User.objects.create_user("bob")
        User.objects.create_user("carol")
        bob.groups.add(devices)
        attach_policy(
            create_policy("devices-pub", document(allow("iot:Publish", "topic/devices/*"))),
            group=devices,
        )
    assert decision(user("bob"), "iot:Publish", topic("devices/1")) is ALLOWED
    assert decision(user("carol"), "iot:Publish", topic("devices/1")) is IMPLICIT
    assert access.policies_of(user("bob")) == ("devices-pub",)

    with committed():
        bob.groups.remove(devices)
    assert decision(user("bob"), "iot:Publish", topic("devices/1")) is IMPLICIT
    assert access.policies_of(user("bob")) == ()

    with committed():
        devices.user_set.add(bob)  # the reverse side of the same relation
    assert decision(user("bob"), "iot:Publish", topic("devices/1")) is ALLOWED

    with committed():
        bob.groups.clear()
    assert decision(user("bob"), "iot:Publish", topic("devices/1")) is IMPLICIT


def test_deny_in_a_group_policy_beats_allow_in_a_user_policy(
    committed: Callable[[], Any],
) -> None:
    with committed():
        locked = Group.objects.create(name="locked")
        dave = User.objects.create_user("dave")
        dave.groups.add(locked)
        attach_policy(create_policy("all", document(allow("iot:*", "*"))), user=dave)
        attach_policy(
            create_policy("no-retain", document(deny("iot:RetainPublish", "*"))), group=locked
        )
    assert decision(user("dave"), "iot:Publish", topic("a")) is ALLOWED
    result = authorize(user("dave"), "iot:RetainPublish", topic("a"))
    assert result.decision is EXPLICIT
    assert result.policy_name == "no-retain"


def test_the_same_policy_on_user_and_group_is_counted_once(committed: Callable[[], Any]) -> None:
    with committed():
        group = Group.objects.create(name="g")
        erin = User.objects.create_user("erin")
        erin.groups.add(group)
        policy = create_policy("shared", document(allow("iot:Publish", "topic/x")))
        attach_policy(policy, user=erin)
        attach_policy(policy, group=group)
    assert access.policies_of(user("erin")) == ("shared",)
    with committed():
        detach_policy(policy, user=erin)
    assert decision(user("erin"), "iot:Publish", topic("x")) is ALLOWED  # still via the group


def test_deleting_a_group_revokes_its_policies(committed: Callable[[], Any]) -> None:
    with committed():
        group = Group.objects.create(name="temp")
        frank = User.objects.create_user("frank")
        frank.groups.add(group)
        attach_policy(create_policy("p", document(allow("iot:*", "*"))), group=group)
    assert decision(user("frank"), "iot:Connect", client("c")) is ALLOWED
    with committed():
        group.delete()
    assert decision(user("frank"), "iot:Connect", client("c")) is IMPLICIT


# ---------------------------------------------------------------------------- superuser


def test_superuser_is_root_without_any_policy(committed: Callable[[], Any]) -> None:
    with committed():
        User.objects.create_superuser("root", "", "pw")
    for action, resource in [
        ("iot:Connect", client("anything")),
        ("iot:Publish", topic("$aws/things/x")),
        ("iot:RetainPublish", topic("a/b")),
        ("iot:Subscribe", topicfilter("#")),
        ("iot:Receive", topic("a/b")),
        ("iot:GetRetainedMessage", topic("a/b")),
        ("iot:ListRetainedMessages", "*"),
    ]:
        result = authorize(user("root"), action, resource)
        assert result.decision is ALLOWED, action
        assert "superuser" in result.reason


def test_superuser_status_follows_the_user_row(committed: Callable[[], Any]) -> None:
    with committed():
        admin = User.objects.create_user("grace")
    assert decision(user("grace"), "iot:Publish", topic("a")) is IMPLICIT
    with committed():
        admin.is_superuser = True
        admin.save()
    assert decision(user("grace"), "iot:Publish", topic("a")) is ALLOWED
    with committed():
        admin.is_active = False
        admin.save()
    assert decision(user("grace"), "iot:Publish", topic("a")) is IMPLICIT


def test_superuser_name_as_anonymous_or_certificate_is_not_root(
    committed: Callable[[], Any],
) -> None:
    with committed():
        User.objects.create_superuser("root", "", "pw")
    assert decision(certificate("root"), "iot:Publish", topic("a")) is IMPLICIT
    assert decision(Principal(kind="anonymous", name="root"), "iot:Publish", topic("a")) is (
        IMPLICIT
    )


# ---------------------------------------------------------------------------- anonymous


def test_anonymous_policies(committed: Callable[[], Any]) -> None:
    assert decision(ANONYMOUS, "iot:Connect", client("c")) is IMPLICIT
    with committed():
        User.objects.create_user("alice")
        policy = create_policy(
            "anon",
            document(
                allow("iot:Connect", "client/local-*"),
                allow(["iot:Publish", "iot:Receive"], "topic/public/*"),
            ),
        )
        attach_policy(policy, anonymous=True)
    assert decision(ANONYMOUS, "iot:Connect", client("local-1")) is ALLOWED
    assert decision(ANONYMOUS, "iot:Connect", client("remote-1")) is IMPLICIT
    assert decision(ANONYMOUS, "iot:Publish", topic("public/x")) is ALLOWED
    assert decision(ANONYMOUS, "iot:RetainPublish", topic("public/x")) is IMPLICIT
    assert decision(user("alice"), "iot:Publish", topic("public/x")) is IMPLICIT
    with committed():
        detach_policy(policy, anonymous=True)
    assert decision(ANONYMOUS, "iot:Connect", client("local-1")) is IMPLICIT


# ---------------------------------------------------------------------------- certificates


def test_certificate_principal_and_common_name_variable(committed: Callable[[], Any]) -> None:
    cert = "a" * 64
    with committed():
        policy = create_policy(
            "cert",
            document(
                allow("iot:Connect", "client/${iot:Certificate.Subject.CommonName}"),
                allow("iot:Publish", "topic/things/${iot:Certificate.Subject.CommonName}/*"),
            ),
        )
        attach_policy(policy, certificate_id=cert)
        registered = Certificate.objects.create(
            certificate_id=cert,
            certificate_pem="",
            not_before=timezone.now(),
            not_after=timezone.now() + timedelta(days=1),
        )
    cn = {"iot:Certificate.Subject.CommonName": "sensor-7"}
    assert decision(certificate(cert), "iot:Connect", client("sensor-7"), cn) is ALLOWED
    assert decision(certificate(cert), "iot:Connect", client("sensor-8"), cn) is IMPLICIT
    assert decision(certificate(cert), "iot:Publish", topic("things/sensor-7/t"), cn) is ALLOWED
    assert decision(certificate(cert), "iot:Publish", topic("things/sensor-8/t"), cn) is IMPLICIT
    # Without the variable in the context the resource does not resolve: no match.
    assert decision(certificate(cert), "iot:Connect", client("sensor-7")) is IMPLICIT
    assert decision(certificate("b" * 64), "iot:Connect", client("sensor-7"), cn) is IMPLICIT
    assert access.policies_of(certificate(cert)) == ("cert",)
    # Only an ACTIVE certificate has its policies: deactivated, it can do nothing.
    with committed():
        registered.status = CertificateStatus.INACTIVE
        registered.save()
    assert decision(certificate(cert), "iot:Connect", client("sensor-7"), cn) is IMPLICIT
    assert access.policies_of(certificate(cert)) == ()
    assert not access.principal_is_valid(certificate(cert))


# ---------------------------------------------------------------------------- variables


def test_aws_username_variable(committed: Callable[[], Any]) -> None:
    with committed():
        everyone = Group.objects.create(name="everyone")
        for name in ("alice", "bob", "x*"):  # "x*" is not a valid form username; the ORM allows it
            User.objects.create_user(name).groups.add(everyone)
        attach_policy(
            create_policy(
                "home",
                document(allow(["iot:Publish", "iot:Receive"], "topic/home/${aws:username}/*")),
            ),
            group=everyone,
        )
        attach_policy(
            create_policy(
                "anon-home", document(allow("iot:Publish", "topic/home/${aws:username}/*"))
            ),
            anonymous=True,
        )
    assert decision(user("alice"), "iot:Publish", topic("home/alice/lamp")) is ALLOWED
    assert decision(user("alice"), "iot:Publish", topic("home/bob/lamp")) is IMPLICIT
    assert decision(user("bob"), "iot:Receive", topic("home/bob/lamp")) is ALLOWED
    # A substituted value is literal: the user "x*" does not get every home starting with x.
    assert decision(user("x*"), "iot:Publish", topic("home/x*/lamp")) is ALLOWED
    assert decision(user("x*"), "iot:Publish", topic("home/xavier/lamp")) is IMPLICIT
    # Anonymous has no username: the resource does not resolve, nothing matches.
    assert decision(ANONYMOUS, "iot:Publish", topic("home/anonymous/lamp")) is IMPLICIT


def test_client_id_variable_and_decision_cache_keys_on_context(
    committed: Callable[[], Any],
) -> None:
    with committed():
        alice = User.objects.create_user("alice")
        attach_policy(
            create_policy(
                "per-client",
                document(
                    allow("iot:Connect", "client/device-*"),
                    allow("iot:Publish", "topic/devices/${iot:ClientId}/*"),
                ),
            ),
            user=alice,
        )
    resource = topic("devices/device-1/t")
    for _ in range(3):  # repeated: the cache must not answer one client with another's result
        assert decision(user("alice"), "iot:Publish", resource, {"iot:ClientId": "device-1"}) is (
            ALLOWED
        )
        assert decision(user("alice"), "iot:Publish", resource, {"iot:ClientId": "device-2"}) is (
            IMPLICIT
        )
        assert decision(user("alice"), "iot:Publish", resource) is IMPLICIT
    assert decision(user("alice"), "iot:Connect", client("device-1")) is ALLOWED
    assert decision(user("alice"), "iot:Connect", client("sensor-1")) is IMPLICIT


def test_aws_example_2_connect_attributes(committed: Callable[[], Any]) -> None:
    """AWS's retained-will example: only LastWill may be asked for at CONNECT."""
    with committed():
        device = User.objects.create_user("device")
        attach_policy(
            create_policy(
                "aws-will",
                document(
                    allow(
                        "iot:Connect",
                        "client/device1",
                        Condition={
                            "ForAllValues:StringEquals": {"iot:ConnectAttributes": ["LastWill"]}
                        },
                    ),
                    allow(["iot:Publish", "iot:RetainPublish"], "topic/will"),
                ),
            ),
            user=device,
        )

    def connect(attributes: list[str]) -> Decision:
        context = {"iot:ClientId": "device1", "iot:ConnectAttributes": attributes}
        return decision(user("device"), "iot:Connect", client("device1"), context)

    assert connect([]) is ALLOWED
    assert connect(["LastWill"]) is ALLOWED
    assert connect(["PersistentConnect"]) is IMPLICIT
    assert connect(["PersistentConnect", "LastWill"]) is IMPLICIT
    assert connect(["LastWill"]) is ALLOWED  # from the cache, still right
    assert decision(user("device"), "iot:RetainPublish", topic("will")) is ALLOWED


# ---------------------------------------------------------------------------- invalidation


def test_attach_and_detach_take_effect_on_the_next_authorize(
    committed: Callable[[], Any],
) -> None:
    with committed():
        alice = User.objects.create_user("alice")
        policy = create_policy("pub", document(allow("iot:Publish", "topic/a/*")))
    request = (user("alice"), "iot:Publish", topic("a/b"))
    assert decision(*request) is IMPLICIT  # now cached
    with committed():
        attach_policy(policy, user=alice)
    assert decision(*request) is ALLOWED
    assert decision(*request) is ALLOWED
    with committed():
        assert detach_policy(policy, user=alice)
    assert decision(*request) is IMPLICIT


def test_set_default_version_takes_effect(committed: Callable[[], Any]) -> None:
    with committed():
        alice = User.objects.create_user("alice")
        policy = create_policy("versions", document(allow("iot:Publish", "topic/v1/*")))
        attach_policy(policy, user=alice)
        create_policy_version(
            policy, document(allow("iot:Publish", "topic/v2/*")), set_as_default=False
        )
    assert decision(user("alice"), "iot:Publish", topic("v1/x")) is ALLOWED
    assert decision(user("alice"), "iot:Publish", topic("v2/x")) is IMPLICIT  # v2 not default
    with committed():
        set_default_version(policy, 2)
    assert decision(user("alice"), "iot:Publish", topic("v1/x")) is IMPLICIT
    assert decision(user("alice"), "iot:Publish", topic("v2/x")) is ALLOWED
    with committed():
        set_default_version(policy, 1)
    assert decision(user("alice"), "iot:Publish", topic("v1/x")) is ALLOWED
    assert decision(user("alice"), "iot:Publish", topic("v2/x")) is IMPLICIT
    with committed():
        create_policy_version(
            policy, document(deny("iot:Publish", "*"), allow("iot:*", "*")), set_as_default=True
        )
    assert decision(user("alice"), "iot:Publish", topic("v1/x")) is EXPLICIT
    assert decision(user("alice"), "iot:Connect", client("c")) is ALLOWED


def test_deleting_a_policy_revokes_it(committed: Callable[[], Any]) -> None:
    with committed():
        alice = User.objects.create_user("alice")
        attach_policy(create_policy("doomed", document(allow("iot:*", "*"))), user=alice)
    assert decision(user("alice"), "iot:Publish", topic("a")) is ALLOWED
    with committed():
        Policy.objects.filter(name="doomed").delete()
    assert decision(user("alice"), "iot:Publish", topic("a")) is IMPLICIT
    assert access.policies_of(user("alice")) == ()


def test_without_commit_the_snapshot_is_unchanged(committed: Callable[[], Any]) -> None:
    """The reload is an on-commit callback: an uncommitted change is not seen (and a rolled
    back one never is)."""
    with committed():
        alice = User.objects.create_user("alice")
        policy = create_policy("p", document(allow("iot:*", "*")))
    before = access.current_snapshot()
    attach_policy(policy, user=alice)  # no commit in this test transaction
    assert access.current_snapshot() is before
    assert decision(user("alice"), "iot:Publish", topic("a")) is IMPLICIT


def test_the_generation_counter_moves_on_each_change(committed: Callable[[], Any]) -> None:
    seen = [generation()]

    def moved(what: str) -> None:
        now = generation()
        assert now > seen[-1], f"generation did not move on {what}: {seen[-1]} -> {now}"
        assert access.current_snapshot() is not None
        assert access.current_snapshot().generation == now, what  # type: ignore[union-attr]
        seen.append(now)

    with committed():
        alice = User.objects.create_user("alice")
    moved("create user")
    with committed():
        group = Group.objects.create(name="g")
    moved("create group")
    with committed():
        policy = create_policy("p", document(allow("iot:Publish", "topic/a")))
    moved("create_policy")
    with committed():
        attach_policy(policy, user=alice)
    moved("attach_policy user")
    with committed():
        attach_policy(policy, group=group)
    moved("attach_policy group")
    with committed():
        alice.groups.add(group)
    moved("group membership add")
    with committed():
        alice.groups.remove(group)
    moved("group membership remove")
    with committed():
        create_policy_version(policy, document(allow("iot:*", "*")), set_as_default=False)
    moved("create_policy_version")
    with committed():
        set_default_version(policy, 2)
    moved("set_default_version")
    with committed():
        delete_policy_version(policy, 1)
    moved("delete_policy_version")
    with committed():
        detach_policy(policy, user=alice)
    moved("detach_policy")
    with committed():
        policy.delete()
    moved("delete policy")
    with committed():
        alice.is_superuser = True
        alice.save()
    moved("user saved")


def test_refresh_if_stale_follows_another_process(committed: Callable[[], Any]) -> None:
    """Another process's change: rows written and the counter bumped, but no on-commit
    reload here. `refresh_if_stale(check_now=True)` notices the counter."""
    with committed():
        alice = User.objects.create_user("alice")
        policy = create_policy("p", document(allow("iot:*", "*")))
    snapshot = access.current_snapshot()
    assert access.refresh_if_stale(check_now=True) is snapshot  # nothing changed
    # bulk_create sends no signals: as if written by another process
    PolicyAttachment.objects.bulk_create(
        [PolicyAttachment(policy=policy, target=PolicyTarget.USER, user=alice)]
    )
    assert access.refresh_if_stale(check_now=True) is snapshot  # counter not moved yet
    assert decision(user("alice"), "iot:Publish", topic("a")) is IMPLICIT
    Counter.objects.filter(name=POLICY_GENERATION).update(value=generation() + 1)
    refreshed = access.refresh_if_stale(check_now=True)
    assert refreshed is not snapshot
    assert refreshed.generation == generation()
    assert decision(user("alice"), "iot:Publish", topic("a")) is ALLOWED


def test_decisions_are_cached_per_snapshot(committed: Callable[[], Any]) -> None:
    with committed():
        alice = User.objects.create_user("alice")
        attach_policy(create_policy("p", document(allow("iot:Publish", "topic/a"))), user=alice)
    first = authorize(user("alice"), "iot:Publish", topic("a"))
    assert authorize(user("alice"), "iot:Publish", topic("a")) is first  # a cache hit
    assert access._decisions
    access.reload()
    assert not access._decisions  # a new snapshot starts with an empty cache
    again = authorize(user("alice"), "iot:Publish", topic("a"))
    assert again == first
    assert again is not first


def test_denial_message_names_action_resource_and_reason(committed: Callable[[], Any]) -> None:
    with committed():
        User.objects.create_user("alice")
    resource = topic("a/b")
    result = authorize(user("alice"), "iot:GetRetainedMessage", resource)
    message = access.denial_message("iot:GetRetainedMessage", resource, result)
    assert "iot:GetRetainedMessage" in message
    assert resource in message
    assert result.reason in message


# ---------------------------------------------------------------------------- allow-all


def test_allow_all_is_still_overridden_by_any_deny(committed: Callable[[], Any]) -> None:
    """An unconditional Allow iot:* on * decides everything only while no policy of the
    principal denies anything: a Deny attached later (or in another policy) still wins."""
    with committed():
        alice = User.objects.create_user("alice")
        attach_policy(create_policy("all", document(allow("iot:*", "*"))), user=alice)
    for action, resource in [
        ("iot:Connect", client("c")),
        ("iot:RetainPublish", topic("a/b")),
        ("iot:ListRetainedMessages", "*"),
    ]:
        assert decision(user("alice"), action, resource) is ALLOWED
    with committed():
        attach_policy(
            create_policy("no-secret", document(deny("iot:Receive", "topic/secret/*"))),
            user=alice,
        )
    assert decision(user("alice"), "iot:Receive", topic("secret/x")) is EXPLICIT
    assert decision(user("alice"), "iot:Receive", topic("public/x")) is ALLOWED


DEV = {"iot:ClientId": "dev-1"}
OTHER = {"iot:ClientId": "other"}
NEAR_ALLOW_ALL = [
    pytest.param(
        allow("iot:*", "*", Condition={"StringLike": {"iot:ClientId": "dev-*"}}),
        [
            ("iot:Publish", topic("x"), DEV, ALLOWED),
            ("iot:Publish", topic("x"), OTHER, IMPLICIT),
        ],
        id="condition",
    ),
    pytest.param(
        {"Effect": "Allow", "Action": "iot:*", "NotResource": ARN + "topic/secret/*"},
        [
            ("iot:Publish", topic("x"), DEV, ALLOWED),
            ("iot:Publish", topic("secret/x"), DEV, IMPLICIT),
        ],
        id="not-resource",
    ),
    pytest.param(
        {"Effect": "Allow", "NotAction": "iot:Connect", "Resource": "*"},
        [
            ("iot:Publish", topic("x"), DEV, ALLOWED),
            ("iot:Connect", client("dev-1"), DEV, IMPLICIT),
        ],
        id="not-action",
    ),
    pytest.param(
        allow("iot:*", ARN + "*"),
        [
            ("iot:Publish", topic("x"), DEV, ALLOWED),
            ("iot:ListRetainedMessages", "*", {}, IMPLICIT),  # "*" is not under the ARN
        ],
        id="arn-star",
    ),
    pytest.param(
        allow("iot:Publish", "*"),
        [
            ("iot:Publish", topic("x"), DEV, ALLOWED),
            ("iot:Subscribe", topicfilter("x"), DEV, IMPLICIT),
        ],
        id="one-action",
    ),
]


@pytest.mark.parametrize(("opener", "asks"), NEAR_ALLOW_ALL)
def test_near_allow_all_statements_are_evaluated_as_written(
    opener: dict[str, Any],
    asks: list[tuple[str, str, dict[str, Any], Decision]],
    committed: Callable[[], Any],
) -> None:
    """Statements that look like allow-all but are not: nothing may take a short cut."""
    with committed():
        bob = User.objects.create_user("bob")
        attach_policy(create_policy("near", document(opener)), user=bob)
    for action, resource, context, expected in asks * 2:  # the second time from caches
        assert decision(user("bob"), action, resource, context) is expected, (action, resource)
