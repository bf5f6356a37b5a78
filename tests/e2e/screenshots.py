"""The console's screenshots in docs/screenshots/, taken from a real server.

    .venv/bin/python -m tests.e2e.screenshots [--out docs/screenshots]

Starts its own `manage.py serve` on a temporary data dir, has a dozen devices publish
realistic retained messages over MQTT 5 (paho, each with its own client id), signs in as the
admin through the login page in headless Debian Chromium (1280x800) and saves:

* console-list.png: Manage > Retained messages;
* console-detail.png: one message's detail page (JSON payload, MQTT 5 and user properties).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from console.views.links import detail_url
from tests.e2e.conftest import VIEWPORT, admin_password, launch_chromium, log_in
from tests.interop.clients import paho_client, publish_properties
from tests.support.server import REPO_ROOT, make_server

DEFAULT_OUT = REPO_ROOT / "docs" / "screenshots"
DETAIL_TOPIC = "devices/thermostat-livingroom/config"


@dataclass(frozen=True)
class Message:
    client_id: str
    topic: str
    payload: Any  # a JSON document, or str for a text payload
    qos: int = 1
    user_properties: list[tuple[str, str]] = field(default_factory=list)
    expiry: int | None = None

    def encoded(self) -> bytes:
        if isinstance(self.payload, str):
            return self.payload.encode()
        return json.dumps(self.payload, separators=(",", ":")).encode()


MESSAGES = [
    Message(
        "provisioning-service",
        DETAIL_TOPIC,
        {
            "mode": "auto",
            "setpoint_c": 21.5,
            "eco_setpoint_c": 17,
            "schedule": {"weekday": "06:30-22:30", "weekend": "08:00-23:30"},
            "firmware": {"channel": "stable", "version": "2.4.1"},
        },
        user_properties=[
            ("schema", "thermostat-config/v3"),
            ("requested-by", "home-app/ios"),
            ("trace-id", "7f3c9a12-4b8e-4d1f-9a61-2c5e8b0d4f77"),
        ],
    ),
    Message(
        "thermostat-livingroom",
        "devices/thermostat-livingroom/state",
        {"temperature_c": 20.8, "humidity_pct": 41, "heating": True, "battery_pct": 87},
        qos=0,
    ),
    Message(
        "provisioning-service",
        "devices/thermostat-bedroom/config",
        {"mode": "schedule", "setpoint_c": 19, "firmware": {"version": "2.4.1"}},
        user_properties=[("schema", "thermostat-config/v3")],
    ),
    Message(
        "thermostat-bedroom",
        "devices/thermostat-bedroom/state",
        {"temperature_c": 18.9, "humidity_pct": 45, "heating": False, "battery_pct": 54},
        qos=0,
    ),
    Message(
        "door-lock-front",
        "devices/door-lock-front/state",
        {"locked": True, "last_actor": "keypad", "battery_pct": 64, "jammed": False},
    ),
    Message(
        "provisioning-service",
        "devices/door-lock-front/config",
        {"auto_lock_seconds": 30, "keypad_enabled": True, "night_mode": "22:00-06:00"},
    ),
    Message("garage-door", "home/garage/door/state", "closed", qos=0),
    Message(
        "plc-line-2",
        "factory/line-2/press-07/status",
        {"state": "running", "cycle_ms": 1840, "parts_today": 5122, "alarms": []},
    ),
    Message(
        "plc-line-2",
        "factory/line-2/press-08/status",
        {"state": "maintenance", "since": "2025-06-02T07:40:00Z", "ticket": "MNT-20931"},
    ),
    Message(
        "truck-0042",
        "fleet/truck-0042/location",
        {"lat": 47.6062, "lon": -122.3321, "speed_kmh": 54.2, "heading": 118},
        qos=0,
        expiry=3600,
    ),
    Message(
        "fleet-manager",
        "fleet/truck-0042/config",
        {"report_interval_s": 30, "geofence": "seattle-metro", "driver": "d-1187"},
    ),
    Message(
        "greenhouse-ctl",
        "greenhouse/zone-a/irrigation/schedule",
        {"enabled": True, "start": "05:45", "duration_min": 12, "days": ["mon", "wed", "fri"]},
    ),
    Message(
        "web-backend",
        "users/settings/user01",
        {"account_type": "standard", "locale": "en-GB", "notifications": {"email": True}},
    ),
]


def publish_all(port: int) -> None:
    for message in MESSAGES:
        properties = publish_properties(
            content_type=None if isinstance(message.payload, str) else "application/json",
            payload_format_indicator=1,
            user_properties=message.user_properties,
            message_expiry_interval=message.expiry,
        )
        with paho_client(port, client_id=message.client_id) as client:
            reason = client.publish(
                message.topic,
                message.encoded(),
                qos=message.qos,
                retain=True,
                properties=properties,
            )
            if message.qos:
                assert reason == 0, f"{message.topic}: PUBACK {reason}"
            else:
                client.barrier(message.client_id + "/barrier")  # processed before we go on


def take(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="console-screenshots-") as data_dir:
        server = make_server(Path(data_dir))
        server.start()
        try:
            publish_all(server.mqtt_port)
            with sync_playwright() as playwright:
                browser = launch_chromium(playwright)
                context = browser.new_context(viewport=VIEWPORT)
                page = context.new_page()
                log_in(page, server.base_url, "admin", admin_password(server.data_dir))
                page.goto(server.base_url + "/retained/")
                page.wait_for_selector("#retained-rows tr")
                page.wait_for_timeout(500)  # the live connection's first sync settles
                list_png = out / "console-list.png"
                page.screenshot(path=str(list_png))
                page.goto(server.base_url + detail_url(DETAIL_TOPIC))
                page.wait_for_selector("#payload-content")
                page.wait_for_timeout(500)
                detail_png = out / "console-detail.png"
                page.screenshot(path=str(detail_png), full_page=True)
                browser.close()
        finally:
            server.stop()
    return [list_png, detail_png]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    for path in take(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
