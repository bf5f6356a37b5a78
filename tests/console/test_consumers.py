"""Live pages: list and detail consumers push htmx out-of-band fragments on retained changes.

Each test writes through retained.store (as the broker does) and watches what the consumer
sends. The store emits after commit, hence transaction=True.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser, User
from django.utils import timezone

from console import live
from console.routing import websocket_urlpatterns
from console.views.links import row_dom_id
from retained import store
from retained.models import Policy, SetByKind
from retained.policies import detach_policy
from tests.console.conftest import XSS, make_user, put

pytestmark = pytest.mark.django_db(transaction=True)

ACTOR = store.Actor(kind=SetByKind.MQTT, name="device-1")
PUSH_DEADLINE = 1.0  # a device's retained publish shows within a second


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        undo = live.install(asyncio.get_running_loop())
        try:
            await scenario()
        finally:
            undo()

    asyncio.run(main())


async def connect(path: str, user: Any) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
    communicator.scope["user"] = user
    connected, _ = await communicator.connect(timeout=3)
    assert connected, path
    return communicator


async def receive_all(communicator: WebsocketCommunicator, quiet: float = 0.4) -> list[str]:
    """Every message until none came for `quiet` seconds."""
    received: list[str] = []
    # receive_from() cancels the application when it times out; receive_nothing() does not.
    while not await communicator.receive_nothing(timeout=quiet, interval=0.02):
        received.append(await communicator.receive_from())
    return received


async def write(topic: str, payload: bytes | str = b"x", **kwargs: Any) -> None:
    await sync_to_async(put)(topic, payload, **kwargs)


async def clear(topic: str) -> None:
    await sync_to_async(store.clear_retained)(topic, actor=ACTOR)


def swaps(messages: list[str]) -> list[tuple[str, str]]:
    """(hx-swap-oob value, id of the element or of the row inside) of each message."""
    found = []
    for message in messages:
        match = re.match(r'\s*<(\w+)(?: id="([^"]+)")?[^>]*?hx-swap-oob="([^"]+)"', message)
        assert match, message
        tag, element_id, swap = match.groups()
        if tag == "tbody":
            inner = re.search(r'<tr id="([^"]+)"', message)
            assert inner
            element_id = inner.group(1)
        found.append((swap, element_id or ""))
    return found


@pytest.fixture
def reader(db: None) -> User:
    return make_user("reader", (["iot:ListRetainedMessages", "iot:GetRetainedMessage"], "*"))


def test_list_consumer_inserts_replaces_and_removes_rows(reader: User) -> None:
    put("a/1")
    put("c/1")

    async def scenario() -> None:
        communicator = await connect("/ws/retained/?size=10", reader)
        synced = await receive_all(communicator)
        assert [swap for swap, _ in swaps(synced)] == ["true"] * 4
        assert 'id="results-body"' in synced[0]
        assert row_dom_id("a/1") in synced[0]

        started = time.monotonic()
        await write("b/1", "hello")
        pushed = await receive_all(communicator)
        assert time.monotonic() - started < PUSH_DEADLINE + 0.4
        assert ("true", "retained-total") in swaps(pushed)
        assert '<span id="retained-total" class="total" hx-swap-oob="true">3</span>' in pushed
        insert = [m for m in pushed if m.startswith("<tbody")]
        assert len(insert) == 1
        assert f'hx-swap-oob="afterend:#{row_dom_id("a/1")}"' in insert[0]
        assert '<td class="topic"><a href="/retained/b/1">b/1</a></td>' in insert[0]
        assert "5 B" in insert[0]

        await write("b/1", "hello, world")
        pushed = await receive_all(communicator)
        assert swaps(pushed) == [("true", row_dom_id("b/1"))]  # same count: only the row
        assert "12 B" in pushed[0]
        assert pushed[0].startswith(f'<tr id="{row_dom_id("b/1")}" hx-swap-oob="true"')

        await clear("b/1")
        pushed = await receive_all(communicator)
        assert ("delete", row_dom_id("b/1")) in swaps(pushed)
        assert ("true", "retained-total") in swaps(pushed)

        await write("0/first")
        pushed = await receive_all(communicator)
        assert any('hx-swap-oob="afterbegin:#retained-rows"' in m for m in pushed)
        await communicator.disconnect()

    run(scenario)


def test_pushed_row_is_the_page_row(reader: User) -> None:
    from django.test import Client

    async def scenario() -> None:
        communicator = await connect("/ws/retained/", reader)
        await receive_all(communicator)
        await write("same/row", "abc", qos=1)
        pushed = "".join(await receive_all(communicator))
        client = Client()
        await sync_to_async(client.force_login)(reader)
        page = (await sync_to_async(client.get)("/retained/")).content.decode()

        def cells(html: str) -> str:
            row = re.search(rf'<tr id="{row_dom_id("same/row")}"[^>]*>(.*?)</tr>', html, re.S)
            assert row, html
            return re.sub(r">[^<]*ago<|>just now<", "><", row.group(1))

        assert cells(pushed) == cells(page)
        await communicator.disconnect()

    run(scenario)


def test_first_event_on_an_empty_list_replaces_the_empty_state(reader: User) -> None:
    async def scenario() -> None:
        communicator = await connect("/ws/retained/", reader)
        synced = await receive_all(communicator)
        assert "No retained messages yet" in synced[0]
        await write("now/there")
        pushed = await receive_all(communicator)
        body = [m for m in pushed if 'id="results-body"' in m]
        assert len(body) == 1
        assert row_dom_id("now/there") in body[0]
        await communicator.disconnect()

    run(scenario)


def test_list_respects_the_search(reader: User) -> None:
    put("sensors/a/temp")

    async def scenario() -> None:
        communicator = await connect("/ws/retained/?q=sensors/%2B/temp", reader)
        await receive_all(communicator)
        await write("other/thing")
        pushed = await receive_all(communicator)
        assert swaps(pushed) == [("true", "retained-total")]
        await write("sensors/b/temp")
        pushed = await receive_all(communicator)
        assert ("afterend:#" + row_dom_id("sensors/a/temp"), row_dom_id("sensors/b/temp")) in swaps(
            pushed
        )
        await write("sensors/b/humidity")
        assert swaps(await receive_all(communicator)) == [("true", "retained-total")]
        await communicator.disconnect()

    run(scenario)


def test_changes_outside_the_page_are_counted(reader: User) -> None:
    for index in range(12):
        put(f"p/{index:02d}")

    async def scenario() -> None:
        communicator = await connect("/ws/retained/?size=10", reader)
        await receive_all(communicator)
        await write("p/50")  # sorts after the first page
        pushed = await receive_all(communicator)
        bars = [m for m in pushed if 'id="changes-bar"' in m]
        assert len(bars) == 1
        assert "1 change outside this page" in bars[0]
        assert 'href="/retained/?size=10"' in bars[0]
        await clear("p/11")
        pushed = await receive_all(communicator)
        assert "2 changes outside this page" in "".join(pushed)
        # A change on the page itself moves the rows, not the bar.
        await write("p/00a")
        pushed = await receive_all(communicator)
        assert ("delete", row_dom_id("p/09")) in swaps(pushed)
        assert ("afterend:#" + row_dom_id("p/00"), row_dom_id("p/00a")) in swaps(pushed)
        # The last row changed, so did the Next cursor.
        assert ("true", "pager") in swaps(pushed)
        assert row_dom_id("p/09") not in "".join(m for m in pushed if 'id="pager"' in m)
        await communicator.disconnect()

    run(scenario)


def test_newest_first_moves_an_updated_row_to_the_top(reader: User) -> None:
    now = timezone.now()
    put("x/old", now=now - timedelta(seconds=30))
    put("x/mid", now=now - timedelta(seconds=20))
    put("x/new", now=now - timedelta(seconds=10))

    async def scenario() -> None:
        communicator = await connect("/ws/retained/?sort=-updated", reader)
        await receive_all(communicator)
        await write("x/old", "again")
        pushed = swaps(await receive_all(communicator))
        assert pushed == [
            ("delete", row_dom_id("x/old")),
            ("afterbegin:#retained-rows", row_dom_id("x/old")),
        ]
        await communicator.disconnect()

    run(scenario)


def test_pushed_fragments_are_escaped(reader: User) -> None:
    async def scenario() -> None:
        communicator = await connect("/ws/retained/", reader)
        await receive_all(communicator)
        await write("x/" + XSS.replace("/", "|"), XSS)
        pushed = "".join(await receive_all(communicator))
        assert "<script>" not in pushed
        assert "x/&lt;script&gt;alert(1)&lt;|script&gt;" in pushed
        await communicator.disconnect()

    run(scenario)


def test_list_consumer_refuses_anonymous_and_users_without_policies(db: None) -> None:
    nobody = make_user("nobody")

    async def scenario() -> None:
        for user in (AnonymousUser(), nobody):
            communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), "/ws/retained/")
            communicator.scope["user"] = user
            connected, _ = await communicator.connect(timeout=3)
            assert not connected
        # Nothing reaches them: they were never in the group.
        await write("secret/topic")

    run(scenario)


def test_a_user_whose_policy_is_detached_stops_getting_events(reader: User) -> None:
    async def scenario() -> None:
        communicator = await connect("/ws/retained/", reader)
        await receive_all(communicator)
        policy = await sync_to_async(Policy.objects.get)(name="reader-policy")
        await sync_to_async(detach_policy)(policy, user=reader)
        await write("after/detach")
        output = await communicator.receive_output(timeout=2)
        assert output == {"type": "websocket.close", "code": 4403}

    run(scenario)


def test_detail_consumer_updates_and_flags_deletion(reader: User) -> None:
    put("dev/1/state", '{"on": false}', qos=0)

    async def scenario() -> None:
        communicator = await connect("/ws/retained/detail/?topic=dev%2F1%2Fstate&view=json", reader)
        synced = await receive_all(communicator)
        assert swaps(synced) == [("true", "detail-body")]
        assert 'class="flash"' not in synced[0]

        await write("dev/1/state", '{"on": true}', qos=1)
        pushed = await receive_all(communicator)
        assert swaps(pushed) == [("true", "detail-body")]
        assert "&quot;on&quot;: true" in pushed[0]
        assert "<dt>QoS</dt><dd>1</dd>" in pushed[0]

        await write("dev/2/state")  # another topic: nothing
        assert await receive_all(communicator) == []

        await clear("dev/1/state")
        pushed = await receive_all(communicator)
        assert swaps(pushed) == [("true", "deleted-banner")]
        assert "This retained message was deleted elsewhere" in pushed[0]

        await write("dev/1/state", "back")
        pushed = await receive_all(communicator)
        assert swaps(pushed) == [("true", "deleted-banner"), ("true", "detail-body")]
        assert " hidden" in pushed[0]
        assert "back" in pushed[1]
        await communicator.disconnect()

    run(scenario)


def test_detail_consumer_of_a_missing_message_shows_the_banner(reader: User) -> None:
    async def scenario() -> None:
        communicator = await connect("/ws/retained/detail/?topic=gone", reader)
        synced = await receive_all(communicator)
        assert swaps(synced) == [("true", "deleted-banner")]
        await communicator.disconnect()

    run(scenario)


def test_detail_consumer_needs_get_retained_message_on_the_topic(db: None) -> None:
    user = make_user(
        "partial",
        ("iot:ListRetainedMessages", "*"),
        ("iot:GetRetainedMessage", "arn:aws:iot:us-east-1:123456789012:topic/public/*"),
    )

    async def scenario() -> None:
        communicator = await connect("/ws/retained/detail/?topic=public/a", user)
        await communicator.disconnect()
        refused = WebsocketCommunicator(
            URLRouter(websocket_urlpatterns), "/ws/retained/detail/?topic=private/a"
        )
        refused.scope["user"] = user
        connected, _ = await refused.connect(timeout=3)
        assert not connected

    run(scenario)


def test_a_burst_is_coalesced(reader: User) -> None:
    async def scenario() -> None:
        communicator = await connect("/ws/retained/?size=100", reader)
        await receive_all(communicator)
        await sync_to_async(store.set_retained_many)(
            [
                store.RetainedWrite(topic=f"burst/{i:02d}", payload=b"x", qos=0, actor=ACTOR)
                for i in range(30)
            ]
        )
        pushed = await receive_all(communicator)
        assert len(body := [m for m in pushed if 'id="results-body"' in m]) == 1
        assert body[0].count("<tr id=") == 30
        await communicator.disconnect()

    run(scenario)


def test_detail_consumer_refuses_an_invalid_topic(reader: User) -> None:
    async def scenario() -> None:
        for path in ("/ws/retained/detail/?topic=a/%23", "/ws/retained/detail/"):
            communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
            communicator.scope["user"] = reader
            connected, _ = await communicator.connect(timeout=3)
            assert not connected

    run(scenario)


def test_a_consumer_that_falls_behind_resyncs(
    reader: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    from console import consumers

    monkeypatch.setattr(consumers, "MAX_PENDING_EVENTS", 3)

    async def scenario() -> None:
        communicator = await connect("/ws/retained/", reader)
        await receive_all(communicator)
        await sync_to_async(store.set_retained_many)(
            [
                store.RetainedWrite(topic=f"many/{i:02d}", payload=b"x", qos=0, actor=ACTOR)
                for i in range(10)
            ]
        )
        pushed = await receive_all(communicator)
        body = [m for m in pushed if 'id="results-body"' in m]
        assert len(body) == 1
        assert body[0].count("<tr id=") == 10
        await communicator.disconnect()

    run(scenario)
