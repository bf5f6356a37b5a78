"""Persistent state. Only retained/store.py writes RetainedMessage and Counter rows."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class SetByKind(models.TextChoices):
    MQTT = "mqtt", "MQTT client"
    API = "api", "API access key"
    CONSOLE = "console", "Console user"
    WILL = "will", "Will message"
    SYSTEM = "system", "System"


class RetainedMessage(models.Model):
    """The one retained message of a topic (AWS keeps at most one per topic)."""

    # Keyset pagination orders by topic; SQLite compares TEXT as UTF-8 bytes, which is also the
    # order the page tokens assume. (On PostgreSQL, give this column the "C" collation.)
    topic = models.TextField(unique=True)
    payload = models.BinaryField()
    payload_size = models.PositiveIntegerField()
    qos = models.PositiveSmallIntegerField()
    content_type = models.TextField(blank=True, default="")
    payload_format_indicator = models.PositiveSmallIntegerField(null=True, blank=True)
    response_topic = models.TextField(blank=True, default="")
    correlation_data = models.BinaryField(null=True, blank=True)
    # Ordered (name, value) pairs; MQTT 5 allows the same name more than once.
    user_properties = models.JSONField(default=list, blank=True)
    message_expiry_interval = models.PositiveIntegerField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_modified_ms = models.BigIntegerField(db_index=True)
    # Not indexed: the sweeper finds stale rows through last_modified_ms (a row is stale only
    # when both clocks are old), and every retained write would pay for one more index.
    last_accessed_at = models.DateTimeField()
    set_by_kind = models.CharField(max_length=16, choices=SetByKind.choices)
    set_by = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["topic"]
        indexes = [
            # Only messages with an MQTT 5 expiry are in it (most have none): the sweeper's
            # expired-message scan stays cheap and writes without expiry skip it.
            models.Index(
                fields=["expires_at"],
                condition=models.Q(expires_at__isnull=False),
                name="retained_expires_at_partial",
            ),
        ]

    def __str__(self) -> str:
        return self.topic


class Counter(models.Model):
    """Maintained counts (e.g. retained messages), so nothing runs COUNT(*) per request."""

    name = models.CharField(max_length=64, primary_key=True)
    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name}={self.value}"


class AccessKey(models.Model):
    """An AWS-style access key pair belonging to a Django user.

    SigV4 derives its signing key from the secret itself, so the secret must be kept; it is
    shown once at creation and never displayed again.
    """

    access_key_id = models.CharField(max_length=32, unique=True)
    secret_access_key = models.CharField(max_length=64)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="access_keys"
    )
    is_active = models.BooleanField(default=True)
    description = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.access_key_id


class MqttSession(models.Model):
    """A persistent MQTT session (clean session 0 / session expiry > 0): survives restarts."""

    client_id = models.TextField(unique=True)
    protocol_level = models.PositiveSmallIntegerField()
    expiry_interval = models.PositiveIntegerField()
    # None while a connection holds the session; the expiry clock runs from here.
    disconnected_at = models.DateTimeField(null=True, blank=True)
    principal = models.TextField(blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.client_id


class MqttSubscription(models.Model):
    session = models.ForeignKey(MqttSession, on_delete=models.CASCADE, related_name="subscriptions")
    topic_filter = models.TextField()
    qos = models.PositiveSmallIntegerField()
    no_local = models.BooleanField(default=False)
    retain_as_published = models.BooleanField(default=False)
    retain_handling = models.PositiveSmallIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["session", "topic_filter"], name="unique_session_filter"
            )
        ]

    def __str__(self) -> str:
        return self.topic_filter


class MqttQueuedMessage(models.Model):
    """A QoS 1 message waiting for a persistent session's client (deleted on PUBACK)."""

    session = models.ForeignKey(MqttSession, on_delete=models.CASCADE, related_name="queue")
    topic = models.TextField()
    payload = models.BinaryField()
    qos = models.PositiveSmallIntegerField()
    retain = models.BooleanField(default=False)
    properties = models.JSONField(default=dict, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    queued_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.session_id}:{self.topic}"


class Policy(models.Model):
    """An AWS IoT policy: a name and up to 5 versions, one of them the default."""

    MAX_VERSIONS = 5

    name = models.CharField(max_length=128, unique=True)
    description = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "policies"

    def __str__(self) -> str:
        return self.name


class PolicyVersion(models.Model):
    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="versions")
    version_id = models.PositiveIntegerField()
    document = models.TextField()
    is_default = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["policy", "-version_id"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "version_id"], name="unique_policy_version"),
            models.UniqueConstraint(
                fields=["policy"],
                condition=models.Q(is_default=True),
                name="one_default_version_per_policy",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.policy.name} v{self.version_id}"


class PolicyTarget(models.TextChoices):
    USER = "user", "User"
    GROUP = "group", "Group"
    ANONYMOUS = "anonymous", "Anonymous principal"
    CERTIFICATE = "certificate", "Certificate"


class PolicyAttachment(models.Model):
    """A policy attached to a user, a group, a certificate or the anonymous principal."""

    policy = models.ForeignKey(Policy, on_delete=models.CASCADE, related_name="attachments")
    target = models.CharField(max_length=16, choices=PolicyTarget.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE
    )
    group = models.ForeignKey("auth.Group", null=True, blank=True, on_delete=models.CASCADE)
    certificate_id = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["policy", "user"],
                condition=models.Q(target="user"),
                name="unique_policy_user",
            ),
            models.UniqueConstraint(
                fields=["policy", "group"],
                condition=models.Q(target="group"),
                name="unique_policy_group",
            ),
            models.UniqueConstraint(
                fields=["policy", "certificate_id"],
                condition=models.Q(target="certificate"),
                name="unique_policy_certificate",
            ),
            models.UniqueConstraint(
                fields=["policy"],
                condition=models.Q(target="anonymous"),
                name="unique_policy_anonymous",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.policy.name} -> {self.target_label()}"

    def target_label(self) -> str:
        if self.target == PolicyTarget.USER and self.user is not None:
            return f"user {self.user.get_username()}"
        if self.target == PolicyTarget.GROUP and self.group is not None:
            return f"group {self.group.name}"
        if self.target == PolicyTarget.CERTIFICATE:
            return f"certificate {self.certificate_id}"
        return "anonymous"


class BootstrapStep(models.Model):
    """First-run chores done once (so an operator's later deletion is respected)."""

    name = models.CharField(max_length=64, primary_key=True)
    done_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class CertificateStatus(models.TextChoices):
    ACTIVE = "ACTIVE", "Active"
    INACTIVE = "INACTIVE", "Inactive"
    REVOKED = "REVOKED", "Revoked"


class Certificate(models.Model):
    """A device certificate issued by (or registered with) the local CA. Only ACTIVE ones
    may connect. Policies attach to it through PolicyAttachment.certificate_id."""

    # AWS's certificate id: the SHA-256 of the DER encoding, 64 lowercase hex digits.
    certificate_id = models.CharField(max_length=64, primary_key=True)
    certificate_pem = models.TextField()
    status = models.CharField(
        max_length=8, choices=CertificateStatus.choices, default=CertificateStatus.ACTIVE
    )
    subject_common_name = models.CharField(max_length=255, blank=True, default="")
    thing_name = models.CharField(max_length=128, blank=True, default="")
    not_before = models.DateTimeField()
    not_after = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.CharField(max_length=150, blank=True, default="")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.certificate_id[:10]}… ({self.status})"

    @property
    def short_id(self) -> str:
        return self.certificate_id[:10]
