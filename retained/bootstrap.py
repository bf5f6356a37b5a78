"""First-start chores: an admin account when there is none."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import transaction

ADMIN_USERNAME = "admin"
CREDENTIALS_FILE = "admin-credentials.txt"


def ensure_admin_account(data_dir: Path) -> tuple[str, str] | None:
    """Create a superuser when none exists; return (username, password) that one time.

    The credentials are also written to the data dir (mode 0600) so they are not lost with
    the terminal; the password is never printed again.
    """
    user_model = get_user_model()
    with transaction.atomic():
        if user_model.objects.filter(is_superuser=True).exists():
            return None
        password = secrets.token_urlsafe(15)
        user_model.objects.create_superuser(username=ADMIN_USERNAME, email="", password=password)
    path = data_dir / CREDENTIALS_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f"username: {ADMIN_USERNAME}\npassword: {password}\n")
    os.chmod(path, 0o600)
    return ADMIN_USERNAME, password


ANONYMOUS_LOCAL_POLICY = "anonymous-local"
ANONYMOUS_LOCAL_DOCUMENT = """{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "LocalQuickStart",
      "Effect": "Allow",
      "Action": "iot:*",
      "Resource": "*"
    }
  ]
}"""


def ensure_anonymous_local_policy(*, mqtt_on_loopback: bool) -> bool:
    """First run only, and only with MQTT on loopback: let anonymous local clients do
    everything (so the quick start works with mosquitto_pub). Deleting the policy later
    sticks: the step is recorded and never repeated."""
    from retained.models import BootstrapStep, Policy
    from retained.policies import attach_policy, create_policy

    with transaction.atomic():
        _, created = BootstrapStep.objects.get_or_create(name=ANONYMOUS_LOCAL_POLICY)
        if not created or not mqtt_on_loopback:
            return False
        policy = Policy.objects.filter(name=ANONYMOUS_LOCAL_POLICY).first()
        if policy is None:
            policy = create_policy(
                ANONYMOUS_LOCAL_POLICY,
                ANONYMOUS_LOCAL_DOCUMENT,
                description="Seeded on first start: anonymous clients on this machine may do "
                "everything. Delete it (or detach it) to require credentials.",
            )
        attach_policy(policy, anonymous=True)
    return True
