"""Access keys: creation and lookup (the secret is shown once, kept for SigV4)."""

from __future__ import annotations

import secrets
import string

from django.contrib.auth.models import User
from django.utils import timezone

from retained.models import AccessKey

_KEY_ID_ALPHABET = string.ascii_uppercase + "234567"
_SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"
# Refresh "last used" at most this often, so a busy key is not a write per request.
_LAST_USED_RESOLUTION_SECONDS = 60


def _new_access_key_id() -> str:
    # AWS shape: "AKIA" + 16 base32 characters; ours start with "AKIR" (R for retained).
    return "AKIR" + "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(16))


def _new_secret() -> str:
    return "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))


def create_access_key(*, user: User, description: str = "") -> AccessKey:
    """Create an active key pair for `user`; the caller shows `secret_access_key` once."""
    return AccessKey.objects.create(
        access_key_id=_new_access_key_id(),
        secret_access_key=_new_secret(),
        user=user,
        description=description,
    )


def find_active_access_key(access_key_id: str) -> AccessKey | None:
    return (
        AccessKey.objects.select_related("user")
        .filter(access_key_id=access_key_id, is_active=True, user__is_active=True)
        .first()
    )


def note_access_key_used(key: AccessKey) -> None:
    now = timezone.now()
    stale = key.last_used_at is None or (
        (now - key.last_used_at).total_seconds() > _LAST_USED_RESOLUTION_SECONDS
    )
    if stale:
        AccessKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
