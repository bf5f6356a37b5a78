"""Opaque, tamper-proof page tokens for keyset pagination (pure, no Django).

A token carries the last topic of the previous page and an HMAC over it, so a client can
neither forge a position nor read more than it is shown. Format: base64url(JSON) "." base64url(MAC).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json

_VERSION = 1
_MAC_BYTES = 16
MAX_TOKEN_LENGTH = 4096


class InvalidPageTokenError(ValueError):
    """The token was not produced by us with this key (or was changed since)."""


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(padded.encode("ascii"))


def _mac(body: bytes, key: bytes) -> bytes:
    return hmac.new(key, body, hashlib.sha256).digest()[:_MAC_BYTES]


def encode_page_token(after_topic: str, *, key: bytes) -> str:
    body = json.dumps({"v": _VERSION, "after": after_topic}, separators=(",", ":")).encode()
    return f"{_b64encode(body)}.{_b64encode(_mac(body, key))}"


def decode_page_token(token: str, *, key: bytes) -> str:
    """Return the topic the next page starts after; raise InvalidPageTokenError otherwise."""
    if not token or len(token) > MAX_TOKEN_LENGTH or not token.isascii() or token.count(".") != 1:
        raise InvalidPageTokenError("nextToken is not a token this server issued")
    body_text, mac_text = token.split(".")
    try:
        body = _b64decode(body_text)
        mac = _b64decode(mac_text)
    except (binascii.Error, ValueError):
        raise InvalidPageTokenError("nextToken is not valid base64") from None
    if not hmac.compare_digest(mac, _mac(body, key)):
        raise InvalidPageTokenError("nextToken has been altered or belongs to another server")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: deeply nested arrays or objects
        raise InvalidPageTokenError("nextToken is malformed") from None
    if not isinstance(data, dict) or data.get("v") != _VERSION:
        raise InvalidPageTokenError("nextToken has an unknown version")
    after = data.get("after")
    if not isinstance(after, str):
        raise InvalidPageTokenError("nextToken is malformed")
    return after
