"""The policy admin: list, add, change (versions), attachments, CSRF and staff-only access."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from retained.models import Policy, PolicyAttachment, PolicyTarget, PolicyVersion
from retained.policies import attach_policy, create_policy, create_policy_version
from tests.admin.conftest import ARN, DEVICES_POLICY, document, page_form_data

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:retained_policy_changelist"
ADD = "admin:retained_policy_add"


def change_url(policy: Policy) -> str:
    return reverse("admin:retained_policy_change", args=[policy.pk])


def version_url(policy: Policy, version_id: int, action: str) -> str:
    return reverse(f"admin:retained_policy_{action}_version", args=[policy.pk, version_id])


def versions(policy: Policy) -> dict[int, bool]:
    """version id -> is default"""
    return dict(policy.versions.values_list("version_id", "is_default"))


# --- list ---------------------------------------------------------------------------------


def test_changelist_shows_default_version_count_and_targets(
    admin_client: Client, devices_policy: Policy
) -> None:
    create_policy_version(devices_policy, DEVICES_POLICY, set_as_default=True)
    attach_policy(devices_policy, user=User.objects.create_user("alice"))
    attach_policy(devices_policy, anonymous=True)

    response = admin_client.get(reverse(CHANGELIST))

    assert response.status_code == 200
    row = response.context["cl"].result_list.get(pk=devices_policy.pk)
    assert (row.default_version_id, row.version_count) == (2, 2)
    content = response.content.decode()
    assert "anonymous, user alice" in content
    assert reverse("admin:retained_policy_test_authorization") in content
    assert "Superusers are the account root" in content


def test_changelist_escapes_policy_names(admin_client: Client) -> None:
    create_policy("<b>bold</b>", document("iot:Publish"))

    content = admin_client.get(reverse(CHANGELIST)).content.decode()

    assert "<b>bold</b>" not in content
    assert "&lt;b&gt;bold&lt;/b&gt;" in content


def test_delete_selected_policies_action(admin_client: Client, devices_policy: Policy) -> None:
    create_policy_version(devices_policy, DEVICES_POLICY, set_as_default=False)
    attach_policy(devices_policy, anonymous=True)

    response = admin_client.post(
        reverse(CHANGELIST),
        {"action": "delete_selected", "_selected_action": [devices_policy.pk], "post": "yes"},
    )

    assert response.status_code == 302
    assert not Policy.objects.exists()
    assert not PolicyVersion.objects.exists()
    assert not PolicyAttachment.objects.exists()


# --- add ----------------------------------------------------------------------------------


def test_add_form_is_prefilled_with_a_valid_example(admin_client: Client) -> None:
    response = admin_client.get(reverse(ADD))

    form = response.context["adminform"].form
    example = form["document"].value()
    assert json.loads(example)["Statement"]
    assert 'class="policy-document"' in response.content.decode()


def test_add_valid_policy_creates_version_1_pretty_printed(admin_client: Client) -> None:
    compact = document("iot:Publish", "iot:Subscribe", resource="*")

    response = admin_client.post(
        reverse(ADD), {"name": "p1", "description": "first", "document": compact, "_save": "1"}
    )

    assert response.status_code == 302
    policy = Policy.objects.get(name="p1")
    assert policy.description == "first"
    version = policy.versions.get()
    assert (version.version_id, version.is_default) == (1, True)
    assert version.document == json.dumps(json.loads(compact), indent=2)


INVALID = f"""{{"Version": "2012-10-17", "Statement": [
  {{"Effect": "Allowed", "Action": "iot:Publsh", "Resource": "{ARN}:topic/a"}},
  {{"Effect": "Allow", "Action": "iot:Connect"}},
  {{"Effect": "Allow", "Action": "iot:Connect", "Resource": "{ARN}:nothing/x"}}
]}}"""

INVALID_PROBLEMS = [
    'Statement[0].Effect: unknown Effect "Allowed"; did you mean "Allow"?',
    'Statement[0].Action: unknown action "iot:Publsh"; did you mean "iot:Publish"?',
    "Statement[1].Resource: missing Resource (or NotResource)",
    'Statement[2].Resource: malformed ARN "arn:aws:iot:us-east-1:123456789012:nothing/x": '
    'unknown resource type "nothing" (use one of client, topic, topicfilter, thing, cert)',
]


def test_add_invalid_policy_shows_every_problem_and_saves_nothing(admin_client: Client) -> None:
    response = admin_client.post(reverse(ADD), {"name": "bad", "document": INVALID, "_save": "1"})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["document"] == INVALID_PROBLEMS
    content = response.content.decode()
    for problem in INVALID_PROBLEMS:
        assert escape(problem) in content
    assert not Policy.objects.exists()
    assert not PolicyVersion.objects.exists()


def test_add_json_syntax_error_names_line_and_column(admin_client: Client) -> None:
    response = admin_client.post(
        reverse(ADD),
        {"name": "bad", "document": '{\n  "Version": "2012-10-17",\n  "Statement": [}'},
    )

    assert response.context["adminform"].form.errors["document"] == [
        "document (line 3, column 17): invalid JSON: Expecting value"
    ]
    assert not Policy.objects.exists()


def test_add_taken_name_is_refused_once(admin_client: Client, devices_policy: Policy) -> None:
    response = admin_client.post(
        reverse(ADD), {"name": "devices", "document": document("iot:Publish")}
    )

    assert response.context["adminform"].form.errors["name"] == [
        "a policy named 'devices' already exists"
    ]
    assert Policy.objects.count() == 1


# --- change: versions -----------------------------------------------------------------------


def test_change_page_shows_default_document_pretty_printed(
    admin_client: Client, devices_policy: Policy
) -> None:
    content = admin_client.get(change_url(devices_policy)).content.decode()

    pretty = json.dumps(json.loads(DEVICES_POLICY), indent=2)
    assert f'<pre class="policy-document">{escape(pretty)}</pre>' in content
    assert "Superusers are the account root" in content


def test_new_version_set_as_default(admin_client: Client, devices_policy: Policy) -> None:
    data = page_form_data(admin_client, change_url(devices_policy))
    data |= {"new_version_document": document("iot:Receive"), "set_as_default": "on"}

    response = admin_client.post(change_url(devices_policy), data)

    assert response.status_code == 302
    assert versions(devices_policy) == {1: False, 2: True}


def test_new_version_not_default(admin_client: Client, devices_policy: Policy) -> None:
    data = page_form_data(admin_client, change_url(devices_policy))
    data |= {"new_version_document": document("iot:Receive"), "description": "changed"}

    response = admin_client.post(change_url(devices_policy), data)

    assert response.status_code == 302
    assert versions(devices_policy) == {1: True, 2: False}
    devices_policy.refresh_from_db()
    assert devices_policy.description == "changed"


def test_invalid_new_version_shows_every_problem(
    admin_client: Client, devices_policy: Policy
) -> None:
    data = page_form_data(admin_client, change_url(devices_policy))
    data |= {"new_version_document": INVALID, "set_as_default": "on", "description": "x"}

    response = admin_client.post(change_url(devices_policy), data)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["new_version_document"]
    assert errors == INVALID_PROBLEMS
    assert versions(devices_policy) == {1: True}
    devices_policy.refresh_from_db()
    assert devices_policy.description == "devices may publish"


def test_sixth_version_is_refused_with_the_service_message(
    admin_client: Client, devices_policy: Policy
) -> None:
    for _ in range(4):
        create_policy_version(devices_policy, DEVICES_POLICY, set_as_default=False)
    data = page_form_data(admin_client, change_url(devices_policy))
    data |= {"new_version_document": document("iot:Receive"), "set_as_default": "on"}

    response = admin_client.post(change_url(devices_policy), data)

    assert response.status_code == 200
    message = "policy 'devices' already has 5 versions; delete a non-default version first"
    assert response.context["adminform"].form.errors["new_version_document"] == [message]
    assert escape(message) in response.content.decode()
    assert versions(devices_policy) == {1: True, 2: False, 3: False, 4: False, 5: False}


def test_set_as_default_without_a_document_is_an_error(
    admin_client: Client, devices_policy: Policy
) -> None:
    data = page_form_data(admin_client, change_url(devices_policy)) | {"set_as_default": "on"}

    response = admin_client.post(change_url(devices_policy), data)

    assert "set_as_default" in response.context["adminform"].form.errors


def test_version_buttons_only_for_non_default_versions(
    admin_client: Client, devices_policy: Policy
) -> None:
    create_policy_version(devices_policy, DEVICES_POLICY, set_as_default=False)

    content = admin_client.get(change_url(devices_policy)).content.decode()

    assert f'action="{version_url(devices_policy, 2, "set_default")}"' in content
    assert f'action="{version_url(devices_policy, 2, "delete")}"' in content
    assert version_url(devices_policy, 1, "delete") not in content
    assert 'form="policy-version-2-delete"' in content
    assert 'id="policy-version-2-delete"' in content


def test_set_default_view(admin_client: Client, devices_policy: Policy) -> None:
    create_policy_version(devices_policy, DEVICES_POLICY, set_as_default=False)

    response = admin_client.post(version_url(devices_policy, 2, "set_default"), follow=True)

    assert response.redirect_chain == [(change_url(devices_policy), 302)]
    assert versions(devices_policy) == {1: False, 2: True}
    assert "Version 2 is now the default" in response.content.decode()


def test_set_default_of_a_missing_version_is_a_message(
    admin_client: Client, devices_policy: Policy
) -> None:
    response = admin_client.post(version_url(devices_policy, 9, "set_default"), follow=True)

    assert "policy &#x27;devices&#x27; has no version 9" in response.content.decode().lower()
    assert versions(devices_policy) == {1: True}


def test_delete_non_default_version(admin_client: Client, devices_policy: Policy) -> None:
    create_policy_version(devices_policy, DEVICES_POLICY, set_as_default=False)

    response = admin_client.post(version_url(devices_policy, 2, "delete"), follow=True)

    assert response.status_code == 200
    assert versions(devices_policy) == {1: True}
    assert "Deleted version 2." in response.content.decode()


def test_delete_default_version_is_refused(admin_client: Client, devices_policy: Policy) -> None:
    response = admin_client.post(version_url(devices_policy, 1, "delete"), follow=True)

    assert "the default version cannot be deleted" in response.content.decode().lower()
    assert versions(devices_policy) == {1: True}


@pytest.mark.parametrize("action", ["set_default", "delete"])
def test_version_views_refuse_get(
    admin_client: Client, devices_policy: Policy, action: str
) -> None:
    create_policy_version(devices_policy, DEVICES_POLICY, set_as_default=False)

    response = admin_client.get(version_url(devices_policy, 2, action))

    assert response.status_code == 405
    assert versions(devices_policy) == {1: True, 2: False}


def test_version_views_404_for_a_missing_policy(admin_client: Client) -> None:
    response = admin_client.post(
        reverse("admin:retained_policy_set_default_version", args=[999, 1])
    )

    assert response.status_code == 404


# --- CSRF and access ----------------------------------------------------------------------


def test_set_default_without_csrf_token_is_refused(devices_policy: Policy) -> None:
    create_policy_version(devices_policy, DEVICES_POLICY, set_as_default=False)
    client = Client(enforce_csrf_checks=True)
    client.force_login(User.objects.create_superuser("root", password="pw"))
    url = version_url(devices_policy, 2, "set_default")

    refused = client.post(url)

    assert refused.status_code == 403
    assert versions(devices_policy) == {1: True, 2: False}

    client.get(change_url(devices_policy))  # sets the CSRF cookie
    accepted = client.post(url, {"csrfmiddlewaretoken": client.cookies["csrftoken"].value})

    assert accepted.status_code == 302
    assert versions(devices_policy) == {1: False, 2: True}


@pytest.mark.parametrize(
    ("method", "url_name", "with_policy"),
    [
        ("get", CHANGELIST, False),
        ("get", ADD, False),
        ("get", "admin:retained_policy_test_authorization", False),
        ("post", "admin:retained_policy_set_default_version", True),
        ("post", "admin:retained_policy_delete_version", True),
    ],
)
def test_non_staff_users_are_sent_to_the_admin_login(
    client: Client, devices_policy: Policy, method: str, url_name: str, with_policy: bool
) -> None:
    create_policy_version(devices_policy, DEVICES_POLICY, set_as_default=False)
    client.force_login(User.objects.create_user("user", password="pw"))
    url = reverse(url_name, args=[devices_policy.pk, 2] if with_policy else [])

    response = getattr(client, method)(url)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    assert versions(devices_policy) == {1: True, 2: False}


def test_staff_without_policy_permissions_cannot_change_versions(
    client: Client, devices_policy: Policy, staff_user: User
) -> None:
    create_policy_version(devices_policy, DEVICES_POLICY, set_as_default=False)
    client.force_login(staff_user)

    response = client.post(version_url(devices_policy, 2, "set_default"))

    assert response.status_code == 403
    assert versions(devices_policy) == {1: True, 2: False}


# --- attachments --------------------------------------------------------------------------


def attachment_row(data: dict[str, object], **fields: object) -> None:
    """Fill the first attachment row (an existing attachment, else the blank extra row)."""
    for name, value in fields.items():
        data[f"attachments-0-{name}"] = value


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"target": "user"}, {"user": ["Required: the attachment is to a user."]}),
        ({"target": "group"}, {"group": ["Required: the attachment is to a group."]}),
        (
            {"target": "certificate"},
            {"certificate_id": ["Required: the attachment is to a certificate."]},
        ),
        (
            {"target": "anonymous", "certificate_id": "abc"},
            {"certificate_id": ["Leave this empty: the attachment is to the anonymous principal."]},
        ),
        (
            {"target": "group", "group": "GROUP", "user": "USER"},
            {"user": ["Leave this empty: the attachment is to a group."]},
        ),
    ],
)
def test_attachment_inline_needs_exactly_the_target_field(
    admin_client: Client,
    devices_policy: Policy,
    fields: dict[str, str],
    errors: dict[str, list[str]],
) -> None:
    user = User.objects.create_user("alice")
    group = Group.objects.create(name="ops")
    ids = {"USER": str(user.pk), "GROUP": str(group.pk)}
    data = page_form_data(admin_client, change_url(devices_policy))
    attachment_row(data, **{name: ids.get(value, value) for name, value in fields.items()})

    response = admin_client.post(change_url(devices_policy), data)

    assert response.status_code == 200
    formset = next(
        inline.formset
        for inline in response.context["inline_admin_formsets"]
        if inline.formset.model is PolicyAttachment
    )
    assert formset.errors[0] == errors
    assert not PolicyAttachment.objects.exists()


def test_attachment_inline_attaches_and_detaches(
    admin_client: Client, devices_policy: Policy
) -> None:
    user = User.objects.create_user("alice")
    data = page_form_data(admin_client, change_url(devices_policy))
    attachment_row(data, target="user", user=str(user.pk))

    response = admin_client.post(change_url(devices_policy), data)

    assert response.status_code == 302
    attachment = PolicyAttachment.objects.get()
    assert (attachment.target, attachment.user) == (PolicyTarget.USER, user)

    data = page_form_data(admin_client, change_url(devices_policy))
    data["attachments-0-DELETE"] = "on"
    response = admin_client.post(change_url(devices_policy), data)

    assert response.status_code == 302
    assert not PolicyAttachment.objects.exists()


def test_attachment_inline_edits_an_attachment(
    admin_client: Client, devices_policy: Policy
) -> None:
    attach_policy(devices_policy, anonymous=True)
    data = page_form_data(admin_client, change_url(devices_policy))
    attachment_row(data, target="certificate", certificate_id="cert-1")

    response = admin_client.post(change_url(devices_policy), data)

    assert response.status_code == 302
    attachment = PolicyAttachment.objects.get()
    assert (attachment.target, attachment.certificate_id) == (PolicyTarget.CERTIFICATE, "cert-1")


def test_failed_attachment_rolls_back_a_new_version(
    admin_client: Client, devices_policy: Policy
) -> None:
    data = page_form_data(admin_client, change_url(devices_policy))
    data |= {"new_version_document": document("iot:Receive"), "set_as_default": "on"}
    attachment_row(data, target="user")

    response = admin_client.post(change_url(devices_policy), data)

    assert response.status_code == 200
    assert versions(devices_policy) == {1: True}
