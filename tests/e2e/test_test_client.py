"""The MQTT test client (/test/) in a real browser (Debian's Chromium, headless, driven by
Playwright) against a real `manage.py serve`, with paho-mqtt devices on the other side of the
broker.

Each test uses topics under its own unique prefix (the `topic_prefix` fixture), so the
messages it watches are the only ones its subscriptions see.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from urllib.parse import quote

import pytest
from playwright.sync_api import Browser, BrowserContext, Dialog, Locator, Page, expect

from console.views.links import row_dom_id
from tests.e2e.conftest import ACTION_TIMEOUT_MS, VIEWPORT, admin_password, log_in
from tests.interop.clients import paho_client, publish_properties
from tests.support.server import ServerProcess

KEY_DESCRIPTION = "console test client (temporary)"  # console.consumers_test_client
HOSTILE = "<img src=x onerror=alert(1)><script>alert(2)</script>"
WAIT_MS = 5000  # a message or acknowledgement reaches the page well within this
LEAK_TABS = 20
LEAK_DEADLINE_S = 5.0


# --- helpers ----------------------------------------------------------------------------------


def open_test_client(context: BrowserContext, base_url: str) -> Page:
    """A new tab on /test/, once its badge says connected (the MQTT connection is up)."""
    page = context.new_page()
    page.goto(f"{base_url}/test/")
    expect(page.locator("#connection-badge")).to_have_text("connected", timeout=WAIT_MS)
    return page


def subscription(page: Page, topic_filter: str) -> Locator:
    """The card of one subscription (matched on its filter exactly, not its messages)."""
    return page.locator(".tc-subscription").filter(
        has=page.locator(".tc-filter").get_by_text(topic_filter, exact=True)
    )


def subscribe(page: Page, topic_filter: str, qos: int = 1) -> Locator:
    """Subscribe through the form; the card, once the broker acknowledged (SUBACK)."""
    page.fill("#subscribe-filter", topic_filter)
    page.select_option("#subscribe-qos", str(qos))
    page.click("#subscribe-form button[type=submit]")
    card = subscription(page, topic_filter)
    expect(card.locator(".tc-sub-qos")).to_have_text(f"QoS {qos}", timeout=WAIT_MS)
    expect(card.locator(".tc-sub-status")).to_have_text("", timeout=WAIT_MS)
    return card


def messages(card: Locator) -> Locator:
    return card.locator(".tc-log > li.tc-message")


def publish_from_page(page: Page, topic: str, payload: str, *, retain: bool) -> None:
    page.fill("#publish-topic", topic)
    page.fill("#publish-payload", payload)
    page.set_checked("#publish-retain", retain)
    page.click("#publish-form button[type=submit]")
    expect(page.locator("#tc-notices li.tc-notice-ok").first).to_contain_text(
        f"Published to {topic}", timeout=WAIT_MS
    )


def device_publish(port: int, topic: str, payload: bytes, *, retain: bool = False) -> None:
    """A device's QoS 1 publish, acknowledged (processed by the broker) before this returns."""
    with paho_client(port) as device:
        reason = device.publish(topic, payload, qos=1, retain=retain)
        assert reason == 0, f"PUBACK {reason}"


def temporary_key_count(server: ServerProcess) -> int:
    result = server.manage(
        "shell",
        "--no-imports",
        "-c",
        "from retained.models import AccessKey; "
        f"print(AccessKey.objects.filter(description={KEY_DESCRIPTION!r}).count())",
    )
    return int(result.stdout.strip().splitlines()[-1])


def record_dialogs(page: Page) -> list[str]:
    dialogs: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return dialogs


@pytest.fixture
def test_client_page(
    admin_context: BrowserContext, console_server: ServerProcess
) -> Iterator[Page]:
    page = open_test_client(admin_context, console_server.base_url)
    yield page
    page.close()


# --- (a) a device's publish reaches the page's subscription -----------------------------------


def test_subscription_in_page_receives_a_device_publish(
    test_client_page: Page, console_server: ServerProcess, topic_prefix: str
) -> None:
    page = test_client_page
    topic = f"{topic_prefix}/users/settings/user01"
    assert page.locator("#client-id").inner_text().startswith("console-admin-")
    card = subscribe(page, topic)
    assert messages(card).count() == 0

    device_publish(console_server.mqtt_port, topic, b'{"account_type": "premium"}')

    expect(messages(card)).to_have_count(1, timeout=WAIT_MS)
    shown = messages(card).first
    assert shown.locator(".tc-topic").inner_text() == topic
    assert json.loads(shown.locator(".tc-payload").inner_text()) == {"account_type": "premium"}
    assert shown.locator(".tc-retained").is_hidden()  # a live message, not the stored one
    assert card.locator(".tc-count").inner_text() == "1 message"


# --- (b) a retained publish from the page -----------------------------------------------------


def test_retained_publish_from_page_shows_on_open_list_and_reaches_later_subscriber(
    admin_context: BrowserContext,
    test_client_page: Page,
    console_server: ServerProcess,
    topic_prefix: str,
) -> None:
    topic = f"{topic_prefix}/users/settings/user01"
    payload = '{"account_type": "standard"}'
    listing = admin_context.new_page()
    try:
        frames: list[str] = []
        listing.on(
            "websocket",
            lambda socket: socket.on("framereceived", lambda data: frames.append(str(data))),
        )
        listing.goto(f"{console_server.base_url}/retained/?q={quote(topic_prefix, safe='')}")
        deadline = time.monotonic() + 5
        while not frames:  # the list's live connection synced: every change reaches it now
            assert time.monotonic() < deadline, "the list's live WebSocket sent nothing"
            listing.wait_for_timeout(20)
        assert listing.locator(f"#{row_dom_id(topic)}").count() == 0

        publish_from_page(test_client_page, topic, payload, retain=True)

        listing.wait_for_selector(f"#{row_dom_id(topic)}", timeout=2000)
        assert listing.locator(f"#{row_dom_id(topic)} td.topic a").inner_text() == topic
    finally:
        listing.close()

    with paho_client(console_server.mqtt_port) as later:
        assert later.subscribe(topic, qos=1) == [1]
        got = later.collect(1)
    assert [(json.loads(m.payload), m.retain) for m in got] == [
        ({"account_type": "standard"}, True)
    ]


# --- (c) retained delivery to wildcard filters: AWS mode vs spec mode -------------------------


def logged(card: Locator) -> list[tuple[str, bool]]:
    """(payload text, shown with the retained badge) of a subscription's log, oldest first."""
    items = [
        (item.locator(".tc-payload").inner_text(), item.locator(".tc-retained").is_visible())
        for item in messages(card).all()
    ]
    items.reverse()  # the log shows the newest first
    return items


def check_retained_delivery(page: Page, server: ServerProcess, prefix: str, *, spec: bool) -> None:
    """The exact filter is subscribed first, then `<prefix>/users/#`; a live publish to a topic
    only the wildcard matches is the barrier: anything the broker sent the wildcard's
    subscription before it (its retained delivery, right after the SUBACK) is on the page."""
    topic = f"{prefix}/users/settings/user01"
    barrier = f"{prefix}/users/barrier"
    stored = json.dumps({"account_type": "standard"}, indent=2)
    device_publish(server.mqtt_port, topic, b'{"account_type": "standard"}', retain=True)

    exact = subscribe(page, topic)
    expect(messages(exact)).to_have_count(1, timeout=WAIT_MS)
    assert logged(exact) == [(stored, True)]  # the retained badge is shown

    wildcard = subscribe(page, f"{prefix}/users/#")
    device_publish(server.mqtt_port, barrier, b"barrier")
    expect(messages(wildcard).first.locator(".tc-payload")).to_have_text("barrier", timeout=WAIT_MS)
    if spec:
        assert logged(wildcard) == [(stored, True), ("barrier", False)]
    else:
        assert logged(wildcard) == [("barrier", False)]
    assert logged(exact)[0] == (stored, True)


def test_aws_mode_wildcard_subscription_gets_no_retained_message(
    test_client_page: Page, console_server: ServerProcess, topic_prefix: str
) -> None:
    check_retained_delivery(test_client_page, console_server, topic_prefix, spec=False)


def test_spec_mode_wildcard_subscription_gets_the_retained_message(
    browser: Browser, start_server: Callable[..., ServerProcess], topic_prefix: str
) -> None:
    spec_server = start_server(RETAINED_WILDCARD_DELIVERY="true")
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    try:
        login = context.new_page()
        log_in(login, spec_server.base_url, "admin", admin_password(spec_server.data_dir))
        login.close()
        page = open_test_client(context, spec_server.base_url)
        check_retained_delivery(page, spec_server, topic_prefix, spec=True)
    finally:
        context.close()


def test_aws_mode_wildcard_subscribed_first_shows_no_retained_message(
    test_client_page: Page, console_server: ServerProcess, topic_prefix: str
) -> None:
    page = test_client_page
    topic = f"{topic_prefix}/users/settings/user01"
    device_publish(console_server.mqtt_port, topic, b'{"account_type": "standard"}', retain=True)
    wildcard = subscribe(page, f"{topic_prefix}/users/#")
    exact = subscribe(page, topic)
    expect(messages(exact)).to_have_count(1, timeout=WAIT_MS)
    device_publish(console_server.mqtt_port, f"{topic_prefix}/users/barrier", b"barrier")
    expect(messages(wildcard).first.locator(".tc-payload")).to_have_text("barrier", timeout=WAIT_MS)
    assert logged(wildcard) == [("barrier", False)]


def test_overlapping_subscriptions_show_a_live_message_once_each(
    test_client_page: Page, console_server: ServerProcess, topic_prefix: str
) -> None:
    page = test_client_page
    topic = f"{topic_prefix}/users/settings/user01"
    wildcard = subscribe(page, f"{topic_prefix}/users/#")
    exact = subscribe(page, topic)
    device_publish(console_server.mqtt_port, topic, b"once")
    expect(messages(exact).first).to_be_attached(timeout=WAIT_MS)
    expect(messages(wildcard).first).to_be_attached(timeout=WAIT_MS)
    page.wait_for_timeout(300)  # any further copy arrives right after the first
    assert logged(wildcard) == [("once", False)]
    assert logged(exact) == [("once", False)]


# --- (d) a user without iot:Subscribe ---------------------------------------------------------


def test_subscription_refused_without_iot_subscribe_shows_the_reason(
    user_context: Callable[..., BrowserContext],
    console_server: ServerProcess,
    topic_prefix: str,
) -> None:
    context = user_context("iot:Connect", "iot:Publish", "iot:Receive")
    page = open_test_client(context, console_server.base_url)
    try:
        topic_filter = f"{topic_prefix}/users/settings/user01"
        page.fill("#subscribe-filter", topic_filter)
        page.click("#subscribe-form button[type=submit]")
        refusal = page.locator("#tc-notices li.tc-notice-error").first
        expect(refusal).to_contain_text(f"Subscription to {topic_filter} refused", timeout=WAIT_MS)
        expect(refusal).to_contain_text("Not authorized")
        expect(subscription(page, topic_filter)).to_have_count(0)
        expect(page.locator("#no-subscriptions")).to_be_visible()
        # Publishing is allowed: the same page still works for what the policy grants.
        publish_from_page(page, f"{topic_prefix}/users/settings/user02", "{}", retain=False)
    finally:
        page.close()


# --- (e) a hostile payload is text ------------------------------------------------------------


def test_hostile_payload_renders_as_text(
    test_client_page: Page, console_server: ServerProcess, topic_prefix: str
) -> None:
    page = test_client_page
    dialogs = record_dialogs(page)
    topic = f"{topic_prefix}/users/settings/user01"
    card = subscribe(page, topic)

    device_publish(console_server.mqtt_port, topic, HOSTILE.encode())

    expect(messages(card)).to_have_count(1, timeout=WAIT_MS)
    payload = messages(card).first.locator(".tc-payload")
    expect(payload).to_have_text(HOSTILE)
    expect(payload).to_be_visible()
    assert payload.evaluate("element => element.children.length") == 0
    injected = page.evaluate(
        "Array.from(document.scripts).filter(s => s.textContent.includes('alert(')).length"
        " + document.querySelectorAll('img[src=x]').length"
    )
    assert injected == 0
    page.wait_for_timeout(200)  # an onerror handler would have fired by now
    assert dialogs == []


# --- pause and export -------------------------------------------------------------------------


def test_pause_buffers_messages_and_export_downloads_them_as_json(
    test_client_page: Page, console_server: ServerProcess, topic_prefix: str
) -> None:
    page = test_client_page
    topic = f"{topic_prefix}/rpc/request"
    card = subscribe(page, topic)
    device_publish(console_server.mqtt_port, topic, b"first")
    expect(messages(card)).to_have_count(1, timeout=WAIT_MS)

    card.locator(".tc-pause").click()
    expect(card.locator(".tc-pause")).to_have_text("Resume")
    expect(card.locator(".tc-paused")).to_be_visible()
    expect(card.locator(".tc-paused")).to_contain_text("paused")
    device_publish(console_server.mqtt_port, topic, b"\xff\x00binary")
    with paho_client(console_server.mqtt_port) as device:
        properties = publish_properties(
            payload_format_indicator=1,
            response_topic=f"{topic_prefix}/rpc/reply",
            correlation_data=b"request-42",
        )
        assert device.publish(topic, b"third", qos=1, properties=properties) == 0
    # Counted while paused, not rendered.
    expect(card.locator(".tc-count")).to_have_text("3 messages", timeout=WAIT_MS)
    expect(card.locator(".tc-paused-count")).to_have_text("2")
    assert messages(card).count() == 1

    card.locator(".tc-pause").click()
    expect(card.locator(".tc-pause")).to_have_text("Pause")
    expect(card.locator(".tc-paused")).to_be_hidden()
    expect(messages(card)).to_have_count(3)
    newest = messages(card).first
    expect(newest.locator(".tc-payload")).to_have_text("third")
    props = newest.locator(".tc-props")
    expect(props).to_contain_text("Response topic")
    expect(props).to_contain_text(f"{topic_prefix}/rpc/reply")
    expect(props).to_contain_text("Correlation data")
    expect(props).to_contain_text("request-42")

    with page.expect_download() as download_info:
        card.locator(".tc-export").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".json")
    with open(download.path(), encoding="utf-8") as exported:
        data = json.load(exported)
    assert data["subscription"] == topic
    records = data["messages"]
    assert [r.get("payload") for r in records] == ["first", None, "third"]
    assert records[1]["payload_base64"] == "/wBiaW5hcnk="
    assert all(r["topic"] == topic and r["qos"] == 1 and r["retain"] is False for r in records)
    assert records[2]["properties"] == {
        "payload_format_indicator": 1,
        "response_topic": f"{topic_prefix}/rpc/reply",
        "correlation_data": "request-42",
    }
    assert all(r["time"].endswith("Z") for r in records)


# --- closing tabs leaves no connection or key behind ------------------------------------------


def test_closed_tabs_leave_no_temporary_keys(
    admin_context: BrowserContext, console_server: ServerProcess
) -> None:
    # Earlier tests' tabs are closed: wait until their keys are gone too.
    deadline = time.monotonic() + LEAK_DEADLINE_S
    while temporary_key_count(console_server) != 0:
        assert time.monotonic() < deadline, "keys of earlier tabs were not deleted"
    pages = [admin_context.new_page() for _ in range(LEAK_TABS)]
    for page in pages:
        page.goto(f"{console_server.base_url}/test/", wait_until="commit")
    client_ids = set()
    for page in pages:
        expect(page.locator("#connection-badge")).to_have_text("connected", timeout=20_000)
        client_ids.add(page.locator("#client-id").inner_text())
    assert len(client_ids) == LEAK_TABS
    assert all(client_id.startswith("console-admin-") for client_id in client_ids)
    assert temporary_key_count(console_server) == LEAK_TABS

    for page in pages:
        page.close()
    closed = time.monotonic()
    while (count := temporary_key_count(console_server)) != 0:
        assert time.monotonic() - closed < LEAK_DEADLINE_S, f"{count} temporary keys remain"
    print(f"\nall {LEAK_TABS} temporary keys deleted {time.monotonic() - closed:.1f} s after close")
