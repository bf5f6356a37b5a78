"""Device certificates end to end, in Debian's Chromium against a real `manage.py serve`:
a staff user creates a certificate, downloads the three files the page offers once and
attaches a policy; a paho-mqtt client connects over TLS with those files and publishes a
retained message; Deactivate then closes that connection within seconds and a reconnect is
refused.

With UPDATE_SCREENSHOTS=1 in the environment, the certificate page is also saved as
docs/screenshots/console-certificates.png.
"""

from __future__ import annotations

import json
import os
import ssl
import time
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page

from console.views.links import detail_url
from tests.conftest import ALLOW_ALL_POLICY, ensure_policy
from tests.interop.clients import PahoClient
from tests.support.server import REPO_ROOT, ServerProcess

POLICY = "e2e-certificates-allow-all"
DISCONNECT_DEADLINE = 5.0  # seconds from the Deactivate click to the closed connection
SCREENSHOT = REPO_ROOT / "docs" / "screenshots" / "console-certificates.png"


def download(page: Page, link: Locator, directory: Path) -> Path:
    """Click a download link; the file the browser got, saved under its suggested name."""
    with page.expect_download() as info:
        link.click()
    got = info.value
    assert got.failure() is None
    target = directory / got.suggested_filename
    got.save_as(target)
    return target


def tls_context(root_ca: Path, certificate: Path, private_key: Path) -> ssl.SSLContext:
    """What a device does with the three files: trust the root CA, present the certificate."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(root_ca))
    context.load_cert_chain(str(certificate), str(private_key))
    return context  # 127.0.0.1 is in the server certificate: the host name is checked too


def connect_over_tls(server: ServerProcess, context: ssl.SSLContext, client_id: str) -> PahoClient:
    device = PahoClient(server.mqtts_port, client_id=client_id)
    device.client.tls_set_context(context)
    try:
        return device.connect()
    except Exception:
        device.disconnect()
        raise


def test_create_download_attach_connect_deactivate(
    admin_page: Page, console_server: ServerProcess, tmp_path: Path
) -> None:
    ensure_policy(console_server, POLICY, ALLOW_ALL_POLICY)
    page = admin_page
    base = console_server.base_url
    thing = f"thermostat-{uuid.uuid4().hex[:6]}"

    # Create: one click (a thing name typed first), then the three files, offered once.
    page.goto(f"{base}/certificates/")
    page.fill("#id_thing_name", thing)
    with page.expect_navigation():
        page.click("button:has-text('Create certificate')")
    warning = page.locator("[role=alert]").inner_text()
    assert warning.startswith("Download the private key now: it cannot be retrieved later.")
    certificate_id = page.locator("#certificate-id").inner_text()
    assert len(certificate_id) == 64
    links = page.locator("a[download]")
    assert links.count() == 3
    saved = {path.name: path for path in (download(page, link, tmp_path) for link in links.all())}
    prefix = certificate_id[:10]
    certificate = saved[f"{prefix}-certificate.pem.crt"]
    private_key = saved[f"{prefix}-private.pem.key"]
    root_ca = saved["root-CA.crt"]
    assert certificate.read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert "PRIVATE KEY-----" in private_key.read_text()
    assert root_ca.read_text() == (console_server.pki_dir / "root-CA.crt").read_text()

    # The certificate's page: no key any more; attach the policy.
    with page.expect_navigation():
        page.click("text=I have saved the files")
    certificate_url = f"{base}/certificates/{certificate_id}/"
    assert page.url == certificate_url
    assert "PRIVATE KEY" not in page.content()
    page.select_option("#id_policy", POLICY)
    with page.expect_navigation():
        page.click("button:has-text('Attach policy')")
    assert page.locator(".attached-policies").inner_text().startswith(POLICY)

    page.goto(certificate_url)  # as anyone opening it would see it (no flash message)
    page.screenshot(path=str(tmp_path / "certificate.png"), full_page=True)
    if os.environ.get("UPDATE_SCREENSHOTS"):
        page.screenshot(path=str(SCREENSHOT), full_page=True)

    # A device with those files: connects over TLS and publishes a retained message.
    context = tls_context(root_ca, certificate, private_key)
    topic = f"devices/{thing}/config"
    device = connect_over_tls(console_server, context, thing)
    try:
        assert device.publish(topic, b'{"mode": "auto"}', qos=1, retain=True) == 0
        page.goto(base + detail_url(topic))
        assert json.loads(page.locator("#payload-content").inner_text()) == {"mode": "auto"}

        # Deactivate: the device is disconnected within seconds; it cannot come back.
        page.goto(certificate_url)
        clicked = time.monotonic()
        with page.expect_navigation():
            page.click("button:has-text('Deactivate')")
        assert device.wait_disconnected(DISCONNECT_DEADLINE), "still connected"
        assert time.monotonic() - clicked < DISCONNECT_DEADLINE
        assert "Deactivated" in page.locator(".flash-messages").inner_text()
        assert page.locator(".status").first.inner_text() == "Inactive"
    finally:
        device.disconnect()
    with pytest.raises(ConnectionError, match="CONNACK refused"):
        connect_over_tls(console_server, context, thing)
