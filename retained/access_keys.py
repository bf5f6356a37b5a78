"""Access keys: creation and lookup (the secret is shown once, kept for SigV4)."""

from __future__ import annotations

import secrets
import string
import threading
import time

from django.contrib.auth.models import User
from django.db.models.signals import post_delete, post_save
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


class UnknownAccessKeyError(LookupError):
    pass


def set_access_key_active(access_key_id: str, *, active: bool) -> AccessKey:
    """Activate or deactivate a key. Deactivating closes the broker connections it opened
    (within a second, in every process) and refuses it from then on."""
    key = AccessKey.objects.filter(access_key_id=access_key_id).first()
    if key is None:
        raise UnknownAccessKeyError(f"no access key {access_key_id!r}")
    if key.is_active != active:
        key.is_active = active
        key.save(update_fields=["is_active"])  # save(): the signals clear caches, reload policies
    return key


# A short-lived cache of key lookups: every signed request needs one. Saving or deleting a
# key or a user clears it in this process (signals below); other processes see a change
# within the TTL.
_CACHE_TTL_SECONDS = 5.0
_cache: dict[str, tuple[float, AccessKey | None]] = {}
_cache_lock = threading.Lock()


def find_active_access_key(access_key_id: str) -> AccessKey | None:
    now = time.monotonic()
    with _cache_lock:
        cached = _cache.get(access_key_id)
    if cached is not None and cached[0] > now:
        return cached[1]
    key = (
        AccessKey.objects.select_related("user")
        .filter(access_key_id=access_key_id, is_active=True, user__is_active=True)
        .first()
    )
    with _cache_lock:
        if len(_cache) > 10_000:
            _cache.clear()
        _cache[access_key_id] = (now + _CACHE_TTL_SECONDS, key)
    return key


def clear_access_key_cache(**_: object) -> None:
    with _cache_lock:
        _cache.clear()


for _model in (AccessKey, User):
    post_save.connect(clear_access_key_cache, sender=_model, dispatch_uid=f"akcache-save-{_model}")
    post_delete.connect(
        clear_access_key_cache, sender=_model, dispatch_uid=f"akcache-delete-{_model}"
    )


def note_access_key_used(key: AccessKey) -> None:
    now = timezone.now()
    stale = key.last_used_at is None or (
        (now - key.last_used_at).total_seconds() > _LAST_USED_RESOLUTION_SECONDS
    )
    if stale:
        # A queryset update sends no post_save, so the cache is not cleared by it.
        AccessKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
