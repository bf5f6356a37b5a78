"""How to reach THIS server, for the "publish a retained message" hints of the empty list."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from retained import runtime

DEFAULT_MQTT_PORT = 1883


def mqtt_port() -> int:
    """The MQTT port the broker of this process listens on, when the runtime says; else the
    RETAINED_MQTT_PORT setting, else 1883."""
    reported = getattr(runtime, "mqtt_port", None)
    if callable(reported):
        reported = reported()
    if isinstance(reported, int) and reported > 0:
        return reported
    configured = getattr(settings, "RETAINED_MQTT_PORT", None)
    if isinstance(configured, int) and configured > 0:
        return configured
    return DEFAULT_MQTT_PORT


def split_host(host: str) -> str:
    """The host name of a Host header value ("[::1]:8000" -> "[::1]", "a:80" -> "a")."""
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


@dataclass(frozen=True, slots=True)
class PublishHints:
    host: str  # the host name the browser used (an IPv6 address without brackets)
    endpoint: str  # the console's / API's base URL
    mqtt_port: int

    @classmethod
    def for_host(cls, host_header: str, *, secure: bool) -> PublishHints:
        host_header = host_header or "127.0.0.1"
        scheme = "https" if secure else "http"
        return cls(
            host=split_host(host_header).strip("[]"),
            endpoint=f"{scheme}://{host_header}",
            mqtt_port=mqtt_port(),
        )
