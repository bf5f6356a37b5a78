"""SigV4 authentication of API requests: the Django adapter around the pure verifier."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone

from retained.access_keys import find_active_access_key, note_access_key_used
from retained.api import sigv4
from retained.api.errors import Unauthorized
from retained.models import AccessKey

SIGNING_SERVICE = "iotdata"


def allowed_regions() -> frozenset[str] | None:
    configured = [r.strip() for r in settings.RETAINED_ALLOWED_REGIONS.split(",") if r.strip()]
    if not configured or "*" in configured:
        return None
    return frozenset(configured)


def wire_request(request: HttpRequest) -> sigv4.HttpRequest:
    """The request as the client signed it: raw (still percent-encoded) path and query."""
    scope = getattr(request, "scope", None)
    if scope is not None:
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("ascii")
        raw_query = scope.get("query_string", b"").decode("ascii")
    else:  # WSGI (Django's test client): the closest we have to the wire form
        raw_path = request.META.get("RAW_URI", request.path).split("?", 1)[0]
        raw_query = request.META.get("QUERY_STRING", "")
    return sigv4.HttpRequest(
        method=request.method or "GET",
        raw_path=raw_path,
        raw_query=raw_query,
        headers={name.lower(): value for name, value in request.headers.items()},
        body=request.body,
    )


def authenticate(request: HttpRequest, wire: sigv4.HttpRequest) -> AccessKey:
    """The active access key that signed this request, or Unauthorized with the reason."""
    try:
        info = sigv4.parse_signature(wire)
    except sigv4.SignatureError as error:
        raise Unauthorized(str(error)) from None
    key = find_active_access_key(info.access_key_id)
    if key is None:
        raise Unauthorized(
            "The security token included in the request is invalid: "
            f"unknown or inactive access key {info.access_key_id!r}"
        )
    try:
        sigv4.verify_signature(
            wire,
            info,
            secret_access_key=key.secret_access_key,
            now=timezone.now(),
            service=SIGNING_SERVICE,
            allowed_regions=allowed_regions(),
            max_skew=timedelta(seconds=settings.RETAINED_LIMITS.sigv4_max_skew_seconds),
        )
    except sigv4.SignatureError as error:
        raise Unauthorized(str(error)) from None
    note_access_key_used(key)
    return key
