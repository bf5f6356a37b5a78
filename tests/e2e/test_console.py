"""The console in a real browser (Debian's Chromium, headless, driven by Playwright) against a
real `manage.py serve`, with paho-mqtt clients on the other side of the broker.

Each test uses topics under its own unique prefix and opens the list searched for that prefix,
so the rows it watches are the only ones on the page.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from urllib.parse import quote

from playwright.sync_api import BrowserContext, Dialog, Locator, Page, WebSocket

from console.views.links import delete_url, detail_url, edit_url, row_dom_id
from tests.interop.clients import paho_client, publish_properties
from tests.support.server import ServerProcess

XSS = "<script>alert(1)</script>"
IMG = '<img src="x" onerror="alert(2)">'  # fires without any <script> element
LIVE_DEADLINE_MS = 1000  # a retained change shows on open pages within a second
WRITE_TOOLTIP = "iot:Publish and iot:RetainPublish"


# --- helpers ----------------------------------------------------------------------------------


class LiveFrames:
    """Frames the page's list/detail WebSocket received (recorded from before navigation, so
    the consumer's first sync cannot be missed)."""

    def __init__(self, page: Page, path: str) -> None:
        self.frames: list[str] = []
        self.page = page

        def on_socket(socket: WebSocket) -> None:
            if socket.url.split("?")[0].endswith(path):
                socket.on("framereceived", lambda payload: self.frames.append(str(payload)))

        page.on("websocket", on_socket)

    def wait_for_sync(self, timeout: float = 5.0) -> None:
        """Until the consumer accepted and sent its first fragments: from then on it is in the
        group and every retained change reaches the page."""
        deadline = time.monotonic() + timeout
        while not self.frames:
            assert time.monotonic() < deadline, "the live WebSocket sent nothing"
            self.page.wait_for_timeout(20)


def open_list(page: Page, base_url: str, query: str) -> LiveFrames:
    """The list searched for `query`, with its live connection up."""
    live = LiveFrames(page, "/ws/retained/")
    page.goto(f"{base_url}/retained/?q={quote(query, safe='')}")
    live.wait_for_sync()
    return live


def open_detail(page: Page, base_url: str, topic: str) -> LiveFrames:
    live = LiveFrames(page, "/ws/retained/detail/")
    page.goto(base_url + detail_url(topic))
    live.wait_for_sync()
    return live


def row(page: Page, topic: str) -> Locator:
    return page.locator(f"#{row_dom_id(topic)}")


def publish_retained(
    port: int, topic: str, payload: bytes, *, user_properties: Sequence[tuple[str, str]] = ()
) -> None:
    """A device's retained QoS 1 publish, acknowledged (stored) before this returns."""
    with paho_client(port) as device:
        props = publish_properties(user_properties=user_properties) if user_properties else None
        reason = device.publish(topic, payload, qos=1, retain=True, properties=props)
        assert reason == 0, f"PUBACK {reason}"


def forbidden_actions(page: Page) -> list[str]:
    assert page.locator("h1").first.inner_text() == "Not allowed"
    return page.locator("code.action").all_inner_texts()


def assert_disabled_with_tooltip(control: Locator, *actions: str) -> None:
    """A control that cannot be used, and whose tooltip (its title or its wrapper's) names
    every one of `actions`."""
    state = control.evaluate(
        """element => ({
            disabled: element.disabled === true
                || element.getAttribute("aria-disabled") === "true",
            clickable: element.tagName === "A" && element.hasAttribute("href"),
            titles: [element, ...(function* () {
                for (let e = element.parentElement; e; e = e.parentElement) yield e;
            })()].map(e => e.getAttribute("title") || "").filter(Boolean),
        })"""
    )
    assert state["disabled"], f"not disabled: {state}"
    assert not state["clickable"], f"a link: {state}"
    assert state["titles"], "no tooltip"
    for action in actions:
        assert action in state["titles"][0], (action, state["titles"][0])


def no_script_injected(page: Page) -> None:
    """No element made from the markup: no <script> holding its code, no <img src=x>."""
    injected = page.evaluate(
        "Array.from(document.scripts).filter(s => s.textContent.includes('alert(')).length"
        " + document.querySelectorAll('img[src=x]').length"
    )
    assert injected == 0


# --- (a) a device's retained publish shows on an open list ------------------------------------


def test_retained_publish_appears_on_open_list_within_a_second(
    admin_page: Page,
    console_server: ServerProcess,
    topic_prefix: str,
    record_property: Callable[[str, object], None],
) -> None:
    topic = f"{topic_prefix}/devices/thermostat-1/config"
    open_list(admin_page, console_server.base_url, topic_prefix)
    assert row(admin_page, topic).count() == 0
    admin_page.evaluate("window.__sameDocument = true")  # gone if the page reloads

    with paho_client(console_server.mqtt_port) as device:
        reason = device.publish(topic, b'{"mode": "auto"}', qos=1, retain=True)
        assert reason == 0, f"PUBACK {reason}"
        acked = time.monotonic()
        admin_page.wait_for_selector(f"#{row_dom_id(topic)}", timeout=LIVE_DEADLINE_MS)
        elapsed_ms = (time.monotonic() - acked) * 1000
    record_property("row_after_puback_ms", round(elapsed_ms))
    print(f"\nrow shown {elapsed_ms:.0f} ms after the PUBACK")

    shown = row(admin_page, topic)
    assert shown.locator("td.topic a").inner_text() == topic
    assert shown.locator("td.num").all_inner_texts() == ["1", "16 B"]
    assert admin_page.evaluate("window.__sameDocument") is True
    assert admin_page.locator("#retained-total").inner_text().strip().isdigit()


# --- (b) edit in the browser reaches MQTT subscribers ------------------------------------------


def test_edit_in_browser_reaches_live_and_later_subscribers(
    admin_page: Page, console_server: ServerProcess, topic_prefix: str
) -> None:
    port = console_server.mqtt_port
    topic = f"{topic_prefix}/devices/thermostat-1/config"
    before = {"mode": "auto", "setpoint": 21}
    after = {"mode": "eco", "setpoint": 18.5}
    publish_retained(port, topic, json.dumps(before).encode())

    with paho_client(port) as watcher:
        assert watcher.subscribe(topic, qos=1) == [1]
        [stored] = watcher.collect(1)
        assert (json.loads(stored.payload), stored.retain) == (before, True)

        admin_page.goto(console_server.base_url + detail_url(topic))
        with admin_page.expect_navigation():
            admin_page.get_by_role("link", name="Edit", exact=True).click()
        assert admin_page.url == console_server.base_url + edit_url(topic)
        payload_box = admin_page.locator("#id_payload")
        assert json.loads(payload_box.input_value()) == before
        payload_box.fill(json.dumps(after))
        with admin_page.expect_navigation():
            admin_page.get_by_role("button", name="Save").click()

        assert admin_page.url == console_server.base_url + detail_url(topic)
        assert "Saved." in admin_page.locator(".flash-messages").inner_text()
        assert json.loads(admin_page.locator("#payload-content").inner_text()) == after

        live = watcher.collect(1)
        assert [(json.loads(m.payload), m.retain) for m in live] == [(after, False)]

    with paho_client(port) as later:
        assert later.subscribe(topic, qos=1) == [1]
        got = later.collect(1)
        assert [(json.loads(m.payload), m.retain) for m in got] == [(after, True)]


# --- (c) delete in the browser ------------------------------------------------------------------


def test_delete_in_browser_removes_the_row_live_and_the_retained_message(
    admin_context: BrowserContext,
    admin_page: Page,
    console_server: ServerProcess,
    topic_prefix: str,
) -> None:
    port = console_server.mqtt_port
    topic = f"{topic_prefix}/devices/lock-7/state"
    keep = f"{topic_prefix}/devices/lock-8/state"
    publish_retained(port, topic, b'{"locked": true}')
    publish_retained(port, keep, b'{"locked": false}')

    watching = admin_context.new_page()
    try:
        open_list(watching, console_server.base_url, topic_prefix)
        assert row(watching, topic).count() == 1

        admin_page.goto(console_server.base_url + detail_url(topic))
        with admin_page.expect_navigation():
            admin_page.get_by_role("link", name="Delete", exact=True).click()
        assert admin_page.url == console_server.base_url + delete_url(topic)
        assert admin_page.locator("h1").inner_text() == "Delete retained message"
        watching.wait_for_timeout(200)
        assert row(watching, topic).count() == 1  # nothing happens before confirming

        with admin_page.expect_navigation():
            admin_page.locator("form").get_by_role("button", name="Delete").click()
        assert "Deleted." in admin_page.locator(".flash-messages").inner_text()

        watching.wait_for_selector(
            f"#{row_dom_id(topic)}", state="detached", timeout=LIVE_DEADLINE_MS
        )
        assert row(watching, keep).count() == 1
    finally:
        watching.close()

    with paho_client(port) as later:
        assert later.subscribe(topic, qos=1) == [1]
        assert later.collect(0) == []


# --- (d) a user whose policy allows only listing --------------------------------------------------


def test_list_only_user_sees_the_list_and_403_pages_naming_the_action(
    user_context: Callable[..., BrowserContext],
    console_server: ServerProcess,
    topic_prefix: str,
) -> None:
    base = console_server.base_url
    topic = f"{topic_prefix}/devices/meter-3/reading"
    publish_retained(console_server.mqtt_port, topic, b'{"kwh": 1024.5}')
    page = user_context("iot:ListRetainedMessages").new_page()

    open_list(page, base, topic_prefix)
    link = row(page, topic).locator("td.topic a")
    assert link.inner_text() == topic

    with page.expect_response(lambda r: r.request.is_navigation_request()) as response:
        link.click()
    assert response.value.status == 403
    assert forbidden_actions(page) == ["iot:GetRetainedMessage"]
    assert page.locator("#payload-content").count() == 0

    for url in (edit_url(topic), delete_url(topic)):
        answer = page.goto(base + url)
        assert answer is not None
        assert answer.status == 403
        assert forbidden_actions(page) == ["iot:Publish", "iot:RetainPublish"]

    # The create form refuses on submit, naming what is missing.
    page.goto(base + "/create/retained/")
    page.fill("#id_topic", f"{topic_prefix}/devices/new")
    page.fill("#id_payload", "{}")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Create").click()
    assert posted.value.status == 403
    assert WRITE_TOOLTIP in page.locator(".errorlist").inner_text()


def test_read_only_user_sees_edit_and_delete_disabled_with_tooltips(
    user_context: Callable[..., BrowserContext],
    console_server: ServerProcess,
    topic_prefix: str,
) -> None:
    topic = f"{topic_prefix}/devices/meter-4/reading"
    publish_retained(console_server.mqtt_port, topic, b'{"kwh": 7.25}')
    page = user_context("iot:ListRetainedMessages", "iot:GetRetainedMessage").new_page()

    page.goto(console_server.base_url + detail_url(topic))
    assert json.loads(page.locator("#payload-content").inner_text()) == {"kwh": 7.25}
    actions = page.locator(".page-head .actions")
    for name in ("Edit", "Delete"):
        assert_disabled_with_tooltip(actions.get_by_role("button", name=name), WRITE_TOOLTIP)
    assert actions.get_by_role("link", name="Download").is_visible()


def test_list_only_user_sees_create_disabled_with_a_tooltip(
    user_context: Callable[..., BrowserContext],
    console_server: ServerProcess,
    topic_prefix: str,
) -> None:
    page = user_context("iot:ListRetainedMessages").new_page()
    page.goto(f"{console_server.base_url}/retained/?q={topic_prefix}")
    create = page.locator(".page-head .actions").get_by_text("Create retained message")
    assert_disabled_with_tooltip(create, WRITE_TOOLTIP)


# --- (e) markup in topics, payloads and user properties is text --------------------------------


def test_script_in_topic_payload_and_user_property_renders_as_text(
    admin_page: Page, console_server: ServerProcess, topic_prefix: str
) -> None:
    base = console_server.base_url
    port = console_server.mqtt_port
    topic = f"{topic_prefix}/{XSS}"
    dialogs: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    admin_page.on("dialog", on_dialog)

    # The list, its row arriving live (a fragment over the WebSocket) ...
    open_list(admin_page, base, topic_prefix)
    publish_retained(port, topic, XSS.encode(), user_properties=[(XSS, XSS)])
    admin_page.wait_for_selector(f"#{row_dom_id(topic)}", timeout=LIVE_DEADLINE_MS)
    assert row(admin_page, topic).locator("td.topic a").inner_text() == topic
    no_script_injected(admin_page)
    # ... and rendered by the server, also in a search for the markup itself.
    admin_page.goto(f"{base}/retained/?q={quote(XSS, safe='')}")
    assert admin_page.locator(".search-note code").inner_text() == XSS
    assert row(admin_page, topic).locator("td.topic a").inner_text() == topic
    no_script_injected(admin_page)

    # The detail page, then a live update of it.
    open_detail(admin_page, base, topic)
    assert admin_page.locator("h1.topic-title").inner_text() == topic
    assert admin_page.locator(".breadcrumbs").is_visible()
    assert topic in admin_page.title()
    assert admin_page.locator("#payload-content").inner_text() == XSS
    cells = admin_page.locator(".properties-table tbody td")
    assert cells.all_inner_texts() == [XSS, XSS]
    publish_retained(port, topic, (XSS + IMG).encode(), user_properties=[(XSS, XSS + IMG)])
    admin_page.wait_for_function(
        "text => Array.from(document.querySelectorAll('.properties-table td'))"
        ".some(td => td.innerText === text)",
        arg=XSS + IMG,
        timeout=LIVE_DEADLINE_MS,
    )
    assert admin_page.locator("#payload-content").inner_text() == XSS + IMG
    no_script_injected(admin_page)

    # The edit form shows the same text in its fields.
    admin_page.goto(base + edit_url(topic))
    assert admin_page.locator("h1 .topic-title").inner_text() == topic
    assert admin_page.locator("#id_payload").input_value() == XSS + IMG
    assert admin_page.locator("#id_user_properties").input_value() == f"{XSS}={XSS}{IMG}"
    no_script_injected(admin_page)

    # And the delete confirmation names it.
    admin_page.goto(base + delete_url(topic))
    assert admin_page.locator(".card code").first.inner_text() == topic
    no_script_injected(admin_page)

    assert dialogs == []
