"""The admin's Test authorization page: decisions, the deciding statement, superusers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from retained.admin_views.test_authorization import AuthorizationTest
from retained.models import Certificate, CertificateStatus, Policy
from retained.policies import attach_policy, create_policy
from retained.policy import Decision
from tests.admin.conftest import ARN, document

pytestmark = pytest.mark.django_db

URL = reverse("admin:retained_policy_test_authorization")


@pytest.fixture
def alice(devices_policy: Policy) -> User:
    user = User.objects.create_user("alice")
    attach_policy(devices_policy, user=user)
    return user


def run(client: Client, **params: Any) -> tuple[AuthorizationTest, str]:
    """Submit the page's form; the outcome and the page's HTML."""
    query = {"principal_type": "user", "resource_kind": "auto", "action": "iot:Publish"} | params
    response = client.get(URL, query)
    assert response.status_code == 200
    assert response.context["form"].errors == {}
    return response.context["outcome"], response.content.decode()


def test_page_without_a_request_shows_the_form(admin_client: Client) -> None:
    response = admin_client.get(URL)

    assert response.status_code == 200
    assert "outcome" not in response.context
    content = response.content.decode()
    assert 'name="principal_type"' in content
    assert "Superusers are the account root" in content


def test_allowed_names_the_allowing_statement(admin_client: Client, alice: User) -> None:
    outcome, content = run(admin_client, user=alice.pk, resource="devices/d1")

    assert outcome.result.decision is Decision.ALLOWED
    assert (outcome.result.policy_name, outcome.result.statement_index) == ("devices", 0)
    assert outcome.result.statement_sid == "PublishToDevices"
    assert outcome.resource == f"{ARN}:topic/devices/d1"
    assert outcome.policies == ("devices",)
    assert "ALLOWED" in content
    assert escape(f"{ARN}:topic/devices/d1") in content


def test_explicit_deny_shows_the_statement(admin_client: Client, alice: User) -> None:
    outcome, content = run(admin_client, user=alice.pk, resource="devices/secret")

    assert outcome.result.decision is Decision.EXPLICIT_DENY
    assert (outcome.result.statement_index, outcome.result.statement_sid) == (1, "NoSecrets")
    assert outcome.statement is not None
    assert '"Effect": "Deny"' in outcome.statement
    assert "EXPLICIT_DENY" in content
    assert "Statement[1]" in content
    assert escape(outcome.statement) in content
    policy_url = reverse("admin:retained_policy_change", args=[Policy.objects.get().pk])
    assert f'<a href="{policy_url}">devices</a>' in content


def test_implicit_deny_has_no_statement(admin_client: Client, alice: User) -> None:
    outcome, content = run(admin_client, user=alice.pk, resource="other/x")

    assert outcome.result.decision is Decision.IMPLICIT_DENY
    assert outcome.result.policy_name is None
    assert outcome.statement is None
    assert "IMPLICIT_DENY" in content
    assert "no statement allows" in content


def test_superuser_is_the_account_root(admin_client: Client, devices_policy: Policy) -> None:
    root = User.objects.create_superuser("root2")
    attach_policy(devices_policy, user=root)

    outcome, content = run(admin_client, user=root.pk, resource="devices/secret")

    assert outcome.is_root
    assert outcome.result.decision is Decision.ALLOWED
    assert "superuser: the account root may do everything; policies are not consulted" in content
    assert "Attached, but not consulted" in content
    assert "(superuser: the account root)" in content  # in the user choices


def test_group_is_evaluated_with_its_own_policies_only(admin_client: Client, alice: User) -> None:
    ops = Group.objects.create(name="ops")
    attach_policy(create_policy("ops-read", document("iot:Receive")), group=ops)
    alice.groups.add(ops)

    outcome, content = run(
        admin_client, principal_type="group", group=ops.pk, action="iot:Receive", resource="a/b"
    )

    assert outcome.result.decision is Decision.ALLOWED
    assert outcome.policies == ("ops-read",)
    assert outcome.principal == "group ops"
    assert "aws:username" not in outcome.context
    assert "Statement[0]" in content

    outcome, _ = run(admin_client, principal_type="group", group=ops.pk, resource="devices/d1")
    assert outcome.result.decision is Decision.IMPLICIT_DENY  # devices is alice's, not ops'


def test_user_gets_group_policies_too(admin_client: Client, alice: User) -> None:
    ops = Group.objects.create(name="ops")
    attach_policy(create_policy("ops-read", document("iot:Receive")), group=ops)
    alice.groups.add(ops)

    outcome, _ = run(admin_client, user=alice.pk, action="iot:Receive", resource="a/b")

    assert outcome.result.decision is Decision.ALLOWED
    assert outcome.policies == ("devices", "ops-read")
    assert outcome.context["aws:username"] == "alice"


def test_anonymous_without_policies(admin_client: Client, alice: User) -> None:
    outcome, content = run(admin_client, principal_type="anonymous", resource="devices/d1")

    assert outcome.result.decision is Decision.IMPLICIT_DENY
    assert outcome.policies == ()
    assert "None attached." in content


def test_certificate_with_connect_policy_and_variables(admin_client: Client) -> None:
    connect = create_policy(
        "things",
        document(
            "iot:Connect",
            resource=f"{ARN}:client/${{iot:Connection.Thing.ThingName}}",
        ),
    )
    attach_policy(connect, certificate_id="cert-1")
    certificate = Certificate.objects.create(
        certificate_id="cert-1",
        certificate_pem="",
        not_before=timezone.now(),
        not_after=timezone.now() + timedelta(days=1),
    )

    allowed, _ = run(
        admin_client,
        principal_type="certificate",
        certificate_id="cert-1",
        action="iot:Connect",
        resource="sensor-1",
        thing_name="sensor-1",
    )
    denied, _ = run(
        admin_client,
        principal_type="certificate",
        certificate_id="cert-1",
        action="iot:Connect",
        resource="sensor-1",
        thing_name="sensor-2",
    )

    assert allowed.result.decision is Decision.ALLOWED
    assert allowed.resource == f"{ARN}:client/sensor-1"
    assert allowed.context == {
        "iot:ClientId": "sensor-1",
        "iot:Connection.Thing.ThingName": "sensor-1",
    }
    assert denied.result.decision is Decision.IMPLICIT_DENY

    # A certificate that is not ACTIVE has no policies: everything is denied.
    certificate.status = CertificateStatus.INACTIVE
    certificate.save()
    inactive, _ = run(
        admin_client,
        principal_type="certificate",
        certificate_id="cert-1",
        action="iot:Connect",
        resource="sensor-1",
        thing_name="sensor-1",
    )
    assert inactive.result.decision is Decision.IMPLICIT_DENY


def test_subscribe_is_checked_against_a_topic_filter(admin_client: Client) -> None:
    outcome, _ = run(
        admin_client, principal_type="anonymous", action="iot:Subscribe", resource="a/+/#"
    )

    assert outcome.resource == f"{ARN}:topicfilter/a/+/#"


def test_chosen_resource_kind_other_than_the_actions_gets_a_note(
    admin_client: Client,
) -> None:
    outcome, content = run(
        admin_client,
        principal_type="anonymous",
        action="iot:Subscribe",
        resource_kind="topic",
        resource="a/b",
    )

    assert outcome.resource == f"{ARN}:topic/a/b"
    assert outcome.notes == (
        "iot:Subscribe is checked against a topicfilter ARN by the broker and the API; "
        "this test used a topic ARN.",
    )
    assert "checked against a topicfilter ARN" in content


def test_list_retained_messages_is_checked_against_star(admin_client: Client, alice: User) -> None:
    attach_policy(
        create_policy("lister", document("iot:ListRetainedMessages", resource="*")), user=alice
    )

    outcome, _ = run(admin_client, user=alice.pk, action="iot:ListRetainedMessages")

    assert outcome.resource == "*"
    assert outcome.result.decision is Decision.ALLOWED


def test_latest_saves_are_reflected(admin_client: Client, alice: User) -> None:
    before, _ = run(admin_client, user=alice.pk, action="iot:Receive", resource="x")
    attach_policy(create_policy("late", document("iot:Receive")), user=alice)
    after, _ = run(admin_client, user=alice.pk, action="iot:Receive", resource="x")

    assert before.result.decision is Decision.IMPLICIT_DENY
    assert after.result.decision is Decision.ALLOWED


def test_inactive_user_gets_a_note(admin_client: Client, alice: User) -> None:
    alice.is_active = False
    alice.save()

    outcome, _ = run(admin_client, user=alice.pk, resource="devices/d1")

    assert outcome.result.decision is Decision.IMPLICIT_DENY
    assert "This user is inactive: no policy applies to it." in outcome.notes


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"principal_type": "user"}, "user"),
        ({"principal_type": "group"}, "group"),
        ({"principal_type": "certificate"}, "certificate_id"),
        ({"principal_type": "anonymous", "resource": ""}, "resource"),
        ({"principal_type": "anonymous", "action": "iot:Nope"}, "action"),
    ],
)
def test_invalid_requests_show_form_errors(
    admin_client: Client, params: dict[str, str], field: str
) -> None:
    query = {"resource_kind": "auto", "action": "iot:Publish", "resource": "a"} | params

    response = admin_client.get(URL, query)

    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert "outcome" not in response.context


def test_everything_is_escaped(admin_client: Client) -> None:
    user = User.objects.create_user("<i>eve</i>")
    attach_policy(create_policy("<script>x</script>", document("iot:Publish")), user=user)

    outcome, content = run(admin_client, user=user.pk, resource="<b>t</b>", client_id="<u>c</u>")

    assert outcome.result.decision is Decision.ALLOWED
    for raw in ("<script>x</script>", "<i>eve</i>", "<b>t</b>", "<u>c</u>"):
        assert raw not in content
        assert escape(raw) in content


def test_staff_without_view_permission_is_refused(client: Client, staff_user: User) -> None:
    client.force_login(staff_user)

    assert client.get(URL).status_code == 403


def test_staff_with_view_permission_may_test(client: Client, staff_user: User) -> None:
    staff_user.user_permissions.add(Permission.objects.get(codename="view_policy"))
    client.force_login(staff_user)

    response = client.get(
        URL,
        {
            "principal_type": "anonymous",
            "action": "iot:Publish",
            "resource_kind": "auto",
            "resource": "a",
        },
    )

    assert response.status_code == 200
    assert response.context["outcome"].result.decision is Decision.IMPLICIT_DENY
