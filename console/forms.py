"""Forms of the console: edit a retained message, create one; device certificates."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.conf import settings
from django.db.models import QuerySet

from console.views.payloads import JSON_CONTENT_TYPES
from retained import store
from retained.certificates import MAX_THING_NAME
from retained.models import Policy
from retained.topics import InvalidTopicError

QOS_CHOICES = [(0, "0 — at most once"), (1, "1 — at least once")]
MAX_CONTENT_TYPE_LENGTH = 256


def parse_user_properties(text: str) -> tuple[tuple[str, str], ...]:
    """One "name=value" per line (split at the first '='); blank lines are skipped; order and
    repeated names are kept, as MQTT 5 allows."""
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, separator, value = line.partition("=")
        if not separator or not name.strip():
            raise forms.ValidationError(
                "Line %(number)d is not name=value: %(line)s",
                code="user_property",
                params={"number": number, "line": line[:80]},
            )
        if "\x00" in line:
            raise forms.ValidationError(
                "Line %(number)d contains the null character.",
                code="user_property",
                params={"number": number},
            )
        pairs.append((name.strip(), value.strip()))
    return tuple(pairs)


def format_user_properties(pairs: tuple[tuple[str, str], ...]) -> str:
    return "\n".join(f"{name}={value}" for name, value in pairs)


class RetainedMessageForm(forms.Form):
    """The payload and properties of a retained message, and the version it was opened at.

    `base_modified_ms` is the last_modified_ms of the message when the form was opened (0: it
    did not exist); the view compares it with the stored one to catch concurrent changes.
    """

    payload = forms.CharField(
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 12, "spellcheck": "false", "class": "mono"}),
    )
    is_json = forms.BooleanField(
        required=False, label="JSON", help_text="Validate the payload as a JSON document."
    )
    qos = forms.TypedChoiceField(
        choices=QOS_CHOICES, coerce=int, initial=0, label="QoS", widget=forms.RadioSelect
    )
    content_type = forms.CharField(
        required=False,
        max_length=MAX_CONTENT_TYPE_LENGTH,
        label="Content type",
        widget=forms.TextInput(attrs={"placeholder": "application/json"}),
    )
    user_properties = forms.CharField(
        required=False,
        strip=False,
        label="User properties",
        help_text="One name=value per line.",
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "class": "mono"}),
    )
    base_modified_ms = forms.IntegerField(min_value=0, widget=forms.HiddenInput, initial=0)

    @property
    def max_payload_bytes(self) -> int:
        limit: int = settings.RETAINED_LIMITS.max_payload_bytes
        return limit

    def clean_payload(self) -> bytes:
        # Browsers send a textarea's line ends as CRLF; a retained payload keeps plain LF.
        text = self.cleaned_data["payload"].replace("\r\n", "\n")
        payload = text.encode("utf-8")
        if not payload:
            raise forms.ValidationError(
                "The payload is empty. An empty retained payload deletes the message: "
                "use Delete for that.",
                code="empty",
            )
        if len(payload) > self.max_payload_bytes:
            raise forms.ValidationError(
                "The payload is %(size)d bytes; the limit is %(limit)d bytes.",
                code="too_large",
                params={"size": len(payload), "limit": self.max_payload_bytes},
            )
        return payload

    def clean_content_type(self) -> str:
        value: str = self.cleaned_data["content_type"].strip()
        if "\x00" in value:
            raise forms.ValidationError("The content type contains the null character.")
        return value

    def clean_user_properties(self) -> tuple[tuple[str, str], ...]:
        return parse_user_properties(self.cleaned_data["user_properties"])

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        payload = cleaned.get("payload")
        wants_json = cleaned.get("is_json") or (
            cleaned.get("content_type", "").lower() in JSON_CONTENT_TYPES
        )
        if payload is not None and wants_json:
            try:
                json.loads(payload.decode("utf-8"))
            except ValueError as error:
                self.add_error("payload", f"Not valid JSON: {error}")
        return cleaned


class CreateRetainedForm(RetainedMessageForm):
    """A new retained message: the topic too."""

    topic = forms.CharField(
        strip=False,
        max_length=1024,
        widget=forms.TextInput(
            attrs={"class": "mono", "placeholder": "devices/thermostat-1/config"}
        ),
    )

    field_order = ["topic", "payload", "is_json", "qos", "content_type", "user_properties"]

    @property
    def max_topic_bytes(self) -> int:
        limit: int = settings.RETAINED_LIMITS.max_topic_bytes
        return limit

    def clean_topic(self) -> str:
        topic: str = self.cleaned_data["topic"]
        try:
            store.validate_topic(topic, limits=settings.RETAINED_LIMITS, for_retain=True)
        except InvalidTopicError as error:
            raise forms.ValidationError(str(error), code="invalid_topic") from None
        return topic


# --- device certificates --------------------------------------------------------------------

MAX_CSR_CHARS = 20_000  # a 4096-bit RSA CSR with a long subject is under 4 KB of PEM


class CreateCertificateForm(forms.Form):
    """The "Create certificate" form: an optional thing name (retained.certificates validates
    it), and a token per rendered form, so that sending the same form again (a reload of the
    result, a double click) leads to the certificate it created instead of minting another."""

    thing_name = forms.CharField(
        required=False,
        max_length=MAX_THING_NAME,
        label="Thing name",
        widget=forms.TextInput(
            attrs={
                "class": "mono",
                "autocomplete": "off",
                "spellcheck": "false",
                "placeholder": "Thing name (optional)",
            }
        ),
    )
    request_token = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)


class RegisterCertificateForm(forms.Form):
    """A device's own certificate signing request, signed by the local CA."""

    csr = forms.CharField(
        label="Certificate signing request (PEM)",
        max_length=MAX_CSR_CHARS,
        widget=forms.Textarea(
            attrs={
                "rows": 14,
                "class": "mono",
                "spellcheck": "false",
                "placeholder": "-----BEGIN CERTIFICATE REQUEST-----",
            }
        ),
    )
    thing_name = forms.CharField(
        required=False,
        max_length=MAX_THING_NAME,
        label="Thing name",
        widget=forms.TextInput(attrs={"class": "mono", "autocomplete": "off"}),
    )


class AttachPolicyForm(forms.Form):
    """One existing policy, by name. `choices` narrows what the select offers (the policies
    not attached yet); any existing policy validates (attaching twice changes nothing)."""

    policy = forms.ModelChoiceField(
        queryset=Policy.objects.all(), to_field_name="name", empty_label="Choose a policy…"
    )

    def __init__(self, *args: Any, choices: QuerySet[Policy] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if choices is not None:
            field = self.fields["policy"]
            assert isinstance(field, forms.ModelChoiceField)
            field.queryset = choices


class DetachPolicyForm(forms.Form):
    policy = forms.ModelChoiceField(
        queryset=Policy.objects.all(), to_field_name="name", widget=forms.HiddenInput
    )
