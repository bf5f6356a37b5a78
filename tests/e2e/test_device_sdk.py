"""The seed's device, end to end: the AWS IoT Device SDK v2 for Python (awsiotsdk from PyPI)
publishes `hello from python!` to users/settings/user01 over mutual TLS with the files of
`create_certificate`, retained, QoS 1; the row appears on an open console list without a
reload, and a later subscriber gets the message with the retain flag."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Page

from console.views.links import row_dom_id
from tests.conftest import ensure_policy
from tests.e2e.test_console import open_list
from tests.interop.clients import paho_client
from tests.interop.test_tls import run_seed_pubsub
from tests.support.server import ServerProcess

TOPIC = "users/settings/user01"
MESSAGE = "hello from python!"
SEED_POLICY = """{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:*:*:client/user01"},
 {"Effect": "Allow", "Action": ["iot:Publish", "iot:RetainPublish"],
  "Resource": "arn:aws:iot:*:*:topic/users/settings/${iot:Connection.Thing.ThingName}"}
]}"""


def test_seed_sdk_publish_shows_live_in_the_console_and_reaches_later_subscribers(
    admin_page: Page, console_server: ServerProcess, tmp_path: Path, record_property: Any
) -> None:
    certs = tmp_path / "certs"
    created = console_server.manage("create_certificate", "--out", str(certs), "--thing", "user01")
    certificate_id = created.stdout.strip().splitlines()[-1].split()[-1]
    ensure_policy(console_server, "seed-device", SEED_POLICY)
    console_server.manage("attach_policy", "seed-device", "--certificate", certificate_id)

    open_list(admin_page, console_server.base_url, "users/settings")
    started = time.monotonic()
    result = run_seed_pubsub(console_server.mqtts_port, certs, topic=TOPIC, message=MESSAGE)
    assert result.returncode == 0, result.stdout + result.stderr
    admin_page.wait_for_selector(f"#{row_dom_id(TOPIC)}", timeout=2000)
    record_property("sdk_run_to_row_ms", round((time.monotonic() - started) * 1000))
    row = admin_page.locator(f"#{row_dom_id(TOPIC)}")
    assert row.locator("td.topic a").inner_text() == TOPIC
    assert row.locator("td.num").all_inner_texts() == ["1", f"{len(MESSAGE)} B"]

    with paho_client(console_server.mqtt_port) as subscriber:
        assert subscriber.subscribe(TOPIC, qos=1) == [1]
        (received,) = subscriber.collect(1)
    assert (received.payload, received.retain, received.qos) == (MESSAGE.encode(), True, 1)

    admin_page.goto(f"{console_server.base_url}/retained/{TOPIC}")
    assert MESSAGE in admin_page.locator("body").inner_text()
