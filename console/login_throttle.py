"""Sign-in throttling for the console and the admin login pages.

After RETAINED_LOGIN_FAILURES_PER_USERNAME failed attempts for one username, or
RETAINED_LOGIN_FAILURES_PER_IP from one client address, within RETAINED_LOGIN_LOCKOUT_SECONDS,
sign-in attempts for that username / from that address are refused with HTTP 429 for that
long (the password is not even checked). Failures are counted from Django's
`user_login_failed` signal; a successful sign-in clears its username's count, never the
address's. The client address is REMOTE_ADDR (behind a proxy, every client shares the
proxy's). State lives in this process's memory: `serve` is one process; a restart forgets it.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import render

from retained.ratelimit import FailureLockout, retry_after_seconds

logger = logging.getLogger("console.login")

View = Callable[..., HttpResponseBase]


@dataclass(frozen=True, slots=True)
class _Lockouts:
    configured: tuple[int, int, int]
    by_username: FailureLockout
    by_address: FailureLockout


_lock = threading.Lock()
_current: _Lockouts | None = None


def _lockouts() -> _Lockouts:
    global _current
    configured = (
        int(settings.RETAINED_LOGIN_FAILURES_PER_USERNAME),
        int(settings.RETAINED_LOGIN_FAILURES_PER_IP),
        int(settings.RETAINED_LOGIN_LOCKOUT_SECONDS),
    )
    with _lock:
        if _current is None or _current.configured != configured:
            per_username, per_address, seconds = configured
            _current = _Lockouts(
                configured=configured,
                by_username=FailureLockout(per_username, window=seconds, lockout=seconds),
                by_address=FailureLockout(per_address, window=seconds, lockout=seconds),
            )
        return _current


def reset() -> None:
    """Forget every count (tests)."""
    global _current
    with _lock:
        _current = None


def _username_key(username: object) -> str:
    return str(username or "").casefold()


def _address(request: HttpRequest | None) -> str:
    return str(request.META.get("REMOTE_ADDR", "")) if request is not None else ""


def locked_for(request: HttpRequest) -> float:
    """Seconds until this sign-in attempt may be checked (0.0: now)."""
    lockouts = _lockouts()
    username = _username_key(request.POST.get("username"))
    address = _address(request)
    return max(
        lockouts.by_username.locked_for(username) if username else 0.0,
        lockouts.by_address.locked_for(address) if address else 0.0,
    )


def note_failure(
    sender: object,
    credentials: dict[str, Any],
    request: HttpRequest | None = None,
    **kwargs: object,
) -> None:
    """`user_login_failed` receiver."""
    lockouts = _lockouts()
    username = _username_key(credentials.get("username"))
    address = _address(request)
    locked = 0.0
    if username:
        locked = lockouts.by_username.record_failure(username)
    if address:
        locked = max(locked, lockouts.by_address.record_failure(address))
    if locked:
        logger.warning(
            "sign-in locked for %d s after failed attempts: username %r from %s",
            locked,
            username,
            address or "?",
        )


def note_success(sender: object, request: HttpRequest, user: Any, **kwargs: object) -> None:
    """`user_logged_in` receiver: the username starts afresh (its address does not)."""
    _lockouts().by_username.reset(_username_key(user.get_username()))


def connect_signals() -> None:
    user_login_failed.connect(note_failure, dispatch_uid="console.login_throttle.failure")
    user_logged_in.connect(note_success, dispatch_uid="console.login_throttle.success")


def throttled(view: View) -> View:
    """Wrap a login view: a POST while its username or address is locked gets 429."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method == "POST":
            wait = locked_for(request)
            if wait:
                return _refusal(request, wait)
        return view(request, *args, **kwargs)

    return wrapper


def _refusal(request: HttpRequest, wait: float) -> HttpResponse:
    seconds = retry_after_seconds(wait)
    response = render(
        request,
        "registration/login_throttled.html",
        {"minutes": math.ceil(seconds / 60), "login_url": request.path},
        status=429,
    )
    response["Retry-After"] = str(seconds)
    return response
