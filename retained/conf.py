"""Typed settings read from the environment.

Every AWS default from shared/reference/aws-facts.md is a `RETAINED_*` environment variable
here. Pure code never reads the environment: it gets a `Limits` (or one of its fields) as an
argument. `limits()` builds it from Django settings, which read the environment once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path


class ConfigError(ValueError):
    """A setting has a value we cannot use; the message names the variable."""


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def env_path(name: str, default: Path) -> Path:
    raw = os.environ.get(name)
    return Path(raw).expanduser().resolve() if raw else default


@dataclass(frozen=True)
class Limits:
    """AWS IoT Core's documented defaults; each field is the env var RETAINED_<FIELD>."""

    max_payload_bytes: int = 128 * 1024
    max_packet_bytes: int = 146 * 1024
    max_topic_bytes: int = 256
    max_topic_slashes: int = 7
    max_retained_messages: int = 500_000
    max_client_id_bytes: int = 128
    keep_alive_min_seconds: int = 30
    keep_alive_max_seconds: int = 1200
    subscriptions_per_subscribe: int = 8
    subscriptions_per_connection: int = 50
    session_expiry_default_seconds: int = 3600
    session_expiry_max_seconds: int = 7 * 24 * 3600
    inflight_qos1_max: int = 100
    # Ours, not AWS's: QoS 1 messages one session may owe (in flight + queued). A connected
    # client that falls this far behind is disconnected; an offline one drops the excess.
    max_queued_messages: int = 10_000
    topic_alias_maximum: int = 8
    message_expiry_max_seconds: int = 604_800
    retention_days: int = 1095
    list_max_results: int = 200
    # Rate limits (per process; the burst is the per-second rate; 0 = unlimited). Retained
    # publishes count only with a payload: 0-byte deletes are never throttled.
    retained_publishes_per_second: int = 500  # per account: MQTT, HTTP Publish, console
    retained_publishes_per_topic_per_second: int = 1
    get_retained_per_second: int = 500  # GetRetainedMessage requests
    list_retained_per_second: int = 10  # ListRetainedMessages requests
    sigv4_max_skew_seconds: int = 900

    @classmethod
    def from_environment(cls) -> Limits:
        values = {
            field.name: env_int(f"RETAINED_{field.name.upper()}", field.default, minimum=0)  # type: ignore[arg-type]
            for field in fields(cls)
        }
        return cls(**values)


RATE_LIMIT_FIELDS = (
    "retained_publishes_per_second",
    "retained_publishes_per_topic_per_second",
    "get_retained_per_second",
    "list_retained_per_second",
)
"""The `Limits` fields that are rates (tests and benchmarks set them to 0: unlimited)."""


def limit_env_names() -> list[str]:
    """The RETAINED_* names of every limit, for the README and `serve --help`."""
    return [f"RETAINED_{field.name.upper()}" for field in fields(Limits)]
