"""Forms of the policy admin.

The document forms validate by running the service itself (`create_policy`,
`create_policy_version`) in a savepoint that is rolled back: the form shows exactly what the
write would refuse (every problem of the document, the five-version limit, a taken name)
without repeating a rule here. The real write happens in `PolicyAdmin.save_model`, inside
the admin's transaction for the same request.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from retained.models import Policy, PolicyAttachment, PolicyTarget
from retained.policies import (
    PolicyError,
    PolicyParseError,
    create_policy,
    create_policy_version,
)
from retained.policy import KNOWN_ACTIONS, IotAction, PolicyProblem

ROOT_NOTE = (
    "Superusers are the account root: they may do everything, and policies are not "
    "consulted for them (attaching one changes nothing)."
)


def document_widget() -> forms.Textarea:
    return forms.Textarea(
        attrs={"rows": 24, "cols": 90, "class": "policy-document", "spellcheck": "false"}
    )


def example_document() -> str:
    """What the add form starts with: a device may use its own client id and topics."""
    prefix = f"arn:aws:iot:{settings.RETAINED_REGION}:{settings.RETAINED_ACCOUNT_ID}"
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ConnectWithOwnClientId",
                "Effect": "Allow",
                "Action": "iot:Connect",
                "Resource": f"{prefix}:client/${{iot:ClientId}}",
            },
            {
                "Sid": "UseOwnTopics",
                "Effect": "Allow",
                "Action": [
                    "iot:Publish",
                    "iot:Receive",
                    "iot:RetainPublish",
                    "iot:GetRetainedMessage",
                ],
                "Resource": f"{prefix}:topic/devices/${{iot:ClientId}}/*",
            },
            {
                "Sid": "SubscribeToOwnTopics",
                "Effect": "Allow",
                "Action": "iot:Subscribe",
                "Resource": f"{prefix}:topicfilter/devices/${{iot:ClientId}}/*",
            },
        ],
    }
    return json.dumps(document, indent=2)


def problem_text(problem: PolicyProblem) -> str:
    """One problem as the editor reads it: where (path, line/column), then what."""
    where = problem.path or "document"
    if problem.line is not None:
        where = f"{where} (line {problem.line}, column {problem.column})"
    return f"{where}: {problem.message}"


@contextmanager
def _rolled_back() -> Iterator[None]:
    """Run the writes inside, then undo them (a dry run of a service call)."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


class PolicyAddForm(forms.ModelForm):
    document = forms.CharField(
        widget=document_widget(),
        strip=False,
        help_text="The policy document (JSON); it becomes version 1, the default.",
    )

    class Meta:
        model = Policy
        fields = ["name", "description"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        name, document = cleaned.get("name"), cleaned.get("document")
        if not name or document is None:
            return cleaned
        try:
            with _rolled_back():
                create_policy(name, document, description=cleaned.get("description", ""))
        except PolicyParseError as error:
            for problem in error.errors:
                self.add_error("document", problem_text(problem))
        except PolicyError as error:
            # create_policy's one refusal besides the document: the name is taken.
            self.add_error("name", str(error))
        return cleaned


class PolicyChangeForm(forms.ModelForm):
    new_version_document = forms.CharField(
        label="New version",
        required=False,
        strip=False,
        widget=document_widget(),
        help_text=(
            f"Leave empty to keep the versions as they are. A policy has at most "
            f"{Policy.MAX_VERSIONS} versions: delete a non-default one before adding another."
        ),
    )
    set_as_default = forms.BooleanField(
        label="Set the new version as default",
        required=False,
        help_text="The default version is the one enforced.",
    )

    class Meta:
        model = Policy
        fields = ["description"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        document = cleaned.get("new_version_document") or ""
        set_as_default = bool(cleaned.get("set_as_default"))
        if not document.strip():
            if set_as_default:
                self.add_error(
                    "set_as_default",
                    "There is no new version to make the default; to make an existing "
                    "version the default, use its “Set as default” button.",
                )
            return cleaned
        try:
            with _rolled_back():
                create_policy_version(self.instance, document, set_as_default=set_as_default)
        except PolicyParseError as error:
            for problem in error.errors:
                self.add_error("new_version_document", problem_text(problem))
        except PolicyError as error:
            self.add_error("new_version_document", str(error))
        return cleaned


# The field of PolicyAttachment that names each kind of target (anonymous names none).
TARGET_FIELDS: dict[str, str | None] = {
    PolicyTarget.USER: "user",
    PolicyTarget.GROUP: "group",
    PolicyTarget.CERTIFICATE: "certificate_id",
    PolicyTarget.ANONYMOUS: None,
}
TARGET_NAMES: dict[str, str] = {
    PolicyTarget.USER: "a user",
    PolicyTarget.GROUP: "a group",
    PolicyTarget.CERTIFICATE: "a certificate",
    PolicyTarget.ANONYMOUS: "the anonymous principal",
}


class PolicyAttachmentForm(forms.ModelForm):
    class Meta:
        model = PolicyAttachment
        fields = ["target", "user", "group", "certificate_id"]
        help_texts = {"user": ROOT_NOTE}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        target = cleaned.get("target")
        if target is None:
            return cleaned
        wanted = TARGET_FIELDS[target]
        whom = TARGET_NAMES[target]
        for name in ("user", "group", "certificate_id"):
            given = bool(cleaned.get(name))
            if name == wanted and not given:
                self.add_error(name, f"Required: the attachment is to {whom}.")
            elif name != wanted and given:
                self.add_error(name, f"Leave this empty: the attachment is to {whom}.")
        return cleaned


def target_arguments(cleaned: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of attach_policy / detach_policy for a validated attachment."""
    target = cleaned["target"]
    if target == PolicyTarget.ANONYMOUS:
        return {"anonymous": True}
    name = TARGET_FIELDS[target]
    assert name is not None
    return {name: cleaned[name]}


class ResourceKind:
    AUTO = "auto"
    TOPIC = "topic"
    TOPIC_FILTER = "topicfilter"
    CLIENT = "client"
    THING = "thing"

    CHOICES = [
        (AUTO, "As the action is checked (see below)"),
        (TOPIC, "Topic"),
        (TOPIC_FILTER, "Topic filter"),
        (CLIENT, "Client id"),
        (THING, "Thing name"),
    ]


class UserChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        label = obj.get_username()
        if obj.is_superuser:
            label += " (superuser: the account root)"
        if not obj.is_active:
            label += " (inactive)"
        return label


class TestAuthorizationForm(forms.Form):
    principal_type = forms.ChoiceField(
        label="Principal",
        choices=PolicyTarget.choices,
        initial=PolicyTarget.USER,
        widget=forms.RadioSelect,
    )
    user = UserChoiceField(
        queryset=get_user_model().objects.order_by(get_user_model().USERNAME_FIELD),
        required=False,
        help_text=ROOT_NOTE,
    )
    group = forms.ModelChoiceField(
        queryset=Group.objects.order_by("name"),
        required=False,
        help_text="Only the policies attached to this group are evaluated.",
    )
    certificate_id = forms.CharField(label="Certificate id", required=False, max_length=64)
    action = forms.ChoiceField(choices=[(action, action) for action in KNOWN_ACTIONS])
    resource_kind = forms.ChoiceField(
        label="Resource",
        choices=ResourceKind.CHOICES,
        initial=ResourceKind.AUTO,
        help_text=(
            "iot:Connect is checked against a client id, iot:Subscribe against a topic "
            "filter, the shadow actions against a thing name, the other actions against a "
            "topic; iot:ListRetainedMessages against “*” (the value is ignored)."
        ),
    )
    resource = forms.CharField(
        label="Topic / topic filter / client id / thing name", required=False, strip=False
    )
    client_id = forms.CharField(
        label="Client id (iot:ClientId)",
        required=False,
        strip=False,
        help_text="Optional. For a client id resource, that id is used when this is empty.",
    )
    thing_name = forms.CharField(
        label="Thing name (iot:Connection.Thing.ThingName)", required=False, strip=False
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        target = cleaned.get("principal_type")
        wanted = TARGET_FIELDS.get(target) if target else None
        if wanted is not None and not cleaned.get(wanted):
            self.add_error(wanted, "Choose the principal to test.")
        action = cleaned.get("action")
        if action and action != IotAction.LIST_RETAINED_MESSAGES and not cleaned.get("resource"):
            self.add_error("resource", f"{action} needs a resource.")
        return cleaned
