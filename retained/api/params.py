"""Parsing of the data-plane API's query parameters and x-amz-mqtt5-* headers (pure)."""

from __future__ import annotations

import base64
import binascii
import json
from urllib.parse import parse_qsl, unquote

PAYLOAD_FORMAT_INDICATORS = {"UNSPECIFIED_BYTES": 0, "UTF8_DATA": 1}


class ParameterError(ValueError):
    """A parameter the client sent cannot be used; the message says which and why."""


def parse_query(raw_query: str) -> dict[str, str]:
    """The query string as a dict; a parameter given twice is an error, not a guess."""
    try:
        pairs = parse_qsl(raw_query, keep_blank_values=True, strict_parsing=False, errors="strict")
    except UnicodeDecodeError:
        raise ParameterError("the query string is not valid UTF-8") from None
    query: dict[str, str] = {}
    for name, value in pairs:
        if name in query:
            raise ParameterError(f"{name} is given more than once")
        query[name] = value
    return query


def topic_from_raw_path(raw_path: str, prefix: str) -> str:
    """The topic label after `prefix`, percent-decoded exactly once (strict UTF-8)."""
    if not raw_path.startswith(prefix):
        raise ParameterError("the request path does not name a topic")
    encoded = raw_path[len(prefix) :]
    # SigV4 signs the dot-normalized path; refuse literal dot or empty segments so what was
    # signed and what we act on cannot differ. (Encoded "%2F" slashes are part of the topic.)
    # The first segment counts too: "/topics/./a" is signed as "/topics/a". Only it may be
    # empty: "/topics//a" is the topic "/a".
    segments = encoded.split("/")
    if any(segment in (".", "..") for segment in segments) or "" in segments[1:]:
        raise ParameterError("the request path has empty or dot segments; percent-encode the topic")
    try:
        topic = unquote(encoded, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise ParameterError("the topic is not valid UTF-8 after percent-decoding") from None
    if not topic:
        raise ParameterError("the topic is empty")
    return topic


def parse_int(name: str, raw: str | None, *, default: int, minimum: int, maximum: int) -> int:
    if raw is None:
        return default
    # ASCII digits only: int() alone also takes " 1", "1_0" and other scripts' digits (U+0661).
    digits = raw[1:] if raw[:1] in ("+", "-") else raw
    if not (digits.isascii() and digits.isdigit()):
        raise ParameterError(f"{name} must be an integer, got {raw[:40]!r}")
    try:
        value = int(raw, 10)
    except ValueError:  # more digits than int() converts
        raise ParameterError(f"{name} must be an integer, got {raw[:40]!r}") from None
    if not minimum <= value <= maximum:
        raise ParameterError(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


def parse_bool(name: str, raw: str | None, *, default: bool) -> bool:
    if raw is None:
        return default
    if raw in ("true", "True"):
        return True
    if raw in ("false", "False"):
        return False
    raise ParameterError(f"{name} must be true or false, got {raw[:40]!r}")


def parse_user_properties(header: str | None) -> tuple[tuple[str, str], ...]:
    """x-amz-mqtt5-user-properties: base64 of a JSON array of objects of string values.

    botocore encodes a JSON *string* argument once more as JSON, so a decoded JSON string is
    parsed again: `userProperties='[{"a":"1"}]'` from boto3 and the CLI's form both work.
    """
    if header is None or header == "":
        return ()
    try:
        decoded = base64.b64decode(header.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ParameterError("x-amz-mqtt5-user-properties is not valid base64") from None
    try:
        value = json.loads(decoded)
        if isinstance(value, str):
            value = json.loads(value)
    except ValueError:
        raise ParameterError("x-amz-mqtt5-user-properties is not valid JSON") from None
    if not isinstance(value, list):
        raise ParameterError("x-amz-mqtt5-user-properties must be a JSON array of objects")
    pairs: list[tuple[str, str]] = []
    for item in value:
        if not isinstance(item, dict):
            raise ParameterError('each user property must be a JSON object like {"name": "value"}')
        for name, prop_value in item.items():
            if not isinstance(prop_value, str):
                raise ParameterError(f"user property {name[:40]!r} must have a string value")
            if "\x00" in name or "\x00" in prop_value:
                raise ParameterError("user properties must not contain U+0000")
            pairs.append((name, prop_value))
    return tuple(pairs)


def encode_user_properties(pairs: tuple[tuple[str, str], ...]) -> str | None:
    """GetRetainedMessage's userProperties: base64 of `[{"name":"value"}, ...]`, or None."""
    if not pairs:
        return None
    document = json.dumps([{name: value} for name, value in pairs], separators=(",", ":"))
    return base64.b64encode(document.encode()).decode("ascii")


def parse_payload_format_indicator(header: str | None) -> int | None:
    if header is None or header == "":
        return None
    if header not in PAYLOAD_FORMAT_INDICATORS:
        raise ParameterError(
            "x-amz-mqtt5-payload-format-indicator must be UNSPECIFIED_BYTES or UTF8_DATA"
        )
    return PAYLOAD_FORMAT_INDICATORS[header]


def parse_correlation_data(header: str | None) -> bytes | None:
    if header is None or header == "":
        return None
    try:
        return base64.b64decode(header.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ParameterError("x-amz-mqtt5-correlation-data is not valid base64") from None
