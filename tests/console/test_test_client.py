"""The MQTT test client: the /test/ page and its consumer against the real broker.

Each scenario starts the broker in its own event loop on a free port, drives the consumer
with a WebsocketCommunicator as a given user, and stops the broker at the end. Another
MQTT client (console.bridge with its own access key) plays the device.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser, User

from console import bridge
from console.consumers_test_client import (
    KEY_DESCRIPTION,
    OUTBOX_LIMIT,
    MqttTestClientConsumer,
    RequestError,
    parse_publish,
    parse_user_properties,
)
from console.routing import websocket_urlpatterns
from retained import access, runtime, store
from retained.access_keys import create_access_key
from retained.broker.service import start_broker
from retained.models import AccessKey
from tests.console.conftest import client_for, make_user
from tests.interop.clients import PahoClient

PATH = "/ws/test-client/"
TIMEOUT = 5.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def with_broker(scenario: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        await sync_to_async(access.reload)()
        running = await start_broker(bind="127.0.0.1", mqtt_port=free_port())
        try:
            await scenario()
        finally:
            await running.stop()
            runtime.set_mqtt_port(None)

    asyncio.run(main())


async def open_page(user: Any) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), PATH)
    communicator.scope["user"] = user
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected
    await expect(communicator, "state", state="connecting")
    await expect(communicator, "state", state="connected")
    return communicator


async def expect(communicator: WebsocketCommunicator, kind: str, **fields: Any) -> dict[str, Any]:
    """The next message of type `kind` with `fields` (others in between are skipped)."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            message: dict[str, Any] = await communicator.receive_json_from(timeout=TIMEOUT)
            if message["type"] == kind and all(message.get(k) == v for k, v in fields.items()):
                return message


async def device(user: User) -> bridge.BridgeClient:
    key = await sync_to_async(create_access_key)(user=user)
    client = bridge.BridgeClient(
        client_id="device-1",
        username=key.access_key_id,
        password=key.secret_access_key,
        on_event=lambda event: None,
    )
    port = runtime.mqtt_port()
    assert port is not None
    await client.connect("127.0.0.1", port)
    return client


def temporary_keys() -> int:
    return AccessKey.objects.filter(description=KEY_DESCRIPTION).count()


def broker_sessions() -> set[str]:
    broker, _ = runtime.broker_and_loop()
    return set(broker.sessions)


# --- the page ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_page_has_both_panels_and_the_script(reader: User) -> None:
    html = client_for(reader).get("/test/").content.decode()
    for part in (
        'id="subscribe-form"',
        'id="publish-form"',
        'name="retain"',
        "Retain message on this topic",
        'id="connection-badge"',
        'data-ws-path="/ws/test-client/"',
        "/static/console/test_client.js",
        "/static/console/test_client.css",
    ):
        assert part in html, part


@pytest.mark.django_db
def test_page_needs_a_login() -> None:
    from django.test import Client

    response = Client().get("/test/")
    assert response.status_code == 302


# --- request parsing ----------------------------------------------------------------------


@pytest.mark.parametrize("topic", ["a/#", "a/+/b", "#", "+"])
def test_publish_to_a_filter_is_refused(topic: str) -> None:
    with pytest.raises(RequestError, match="wildcards"):
        parse_publish({"topic": topic, "payload": "x"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ()),
        ("a=1", (("a", "1"),)),
        ("a=1\n\nb=x=y\n", (("a", "1"), ("b", "x=y"))),
    ],
)
def test_user_properties(text: str, expected: tuple[tuple[str, str], ...]) -> None:
    assert parse_user_properties(text) == expected


def test_user_property_without_equals_is_refused() -> None:
    with pytest.raises(RequestError, match="line 2"):
        parse_user_properties("a=1\nnope")


def test_publish_request_fields() -> None:
    request = parse_publish(
        {
            "topic": "users/settings/user01",
            "payload": "{}",
            "qos": "1",
            "retain": True,
            "content_type": "application/json",
            "user_properties": "source=console",
            "message_expiry_interval": "60",
        }
    )
    assert request == bridge.PublishRequest(
        topic="users/settings/user01",
        payload=b"{}",
        qos=1,
        retain=True,
        content_type="application/json",
        user_properties=(("source", "console"),),
        message_expiry_interval=60,
    )


def test_publish_request_mqtt5_properties() -> None:
    request = parse_publish(
        {
            "topic": "users/settings/user01",
            "payload": "{}",
            "payload_format_indicator": "1",
            "response_topic": "users/replies/user01",
            "correlation_data": "request-42",
        }
    )
    assert request.payload_format_indicator == 1
    assert request.response_topic == "users/replies/user01"
    assert request.correlation_data == b"request-42"


def test_publish_request_without_mqtt5_properties_sends_none() -> None:
    request = parse_publish(
        {"topic": "a", "payload_format_indicator": "", "response_topic": "", "correlation_data": ""}
    )
    assert request.payload_format_indicator is None
    assert request.response_topic is None
    assert request.correlation_data is None


@pytest.mark.parametrize("response_topic", ["replies/#", "replies/+/x", "+"])
def test_response_topic_with_a_wildcard_is_refused(response_topic: str) -> None:
    with pytest.raises(RequestError, match=r"response topic .* contains a wildcard"):
        parse_publish({"topic": "a", "response_topic": response_topic})


@pytest.mark.parametrize("value", ["2", "utf-8", -1])
def test_bad_payload_format_indicator_is_refused(value: object) -> None:
    with pytest.raises(RequestError, match="payload format indicator must be 0"):
        parse_publish({"topic": "a", "payload_format_indicator": value})


def test_too_long_correlation_data_is_refused() -> None:
    with pytest.raises(RequestError, match="correlation data is larger"):
        parse_publish({"topic": "a", "correlation_data": "x" * 0x10000})


def test_reason_text() -> None:
    assert bridge.reason_text(0x87) == "Not authorized (0x87)"


# --- the consumer against the broker -------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_anonymous_is_refused() -> None:
    async def scenario() -> None:
        communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), PATH)
        communicator.scope["user"] = AnonymousUser()
        connected, _ = await communicator.connect(timeout=TIMEOUT)
        assert not connected

    with_broker(scenario)


@pytest.mark.django_db(transaction=True)
def test_subscribe_receive_publish_retained_and_disconnect() -> None:
    root = User.objects.create_superuser("root", password="pw-root")

    async def scenario() -> None:
        page = await open_page(root)
        assert await sync_to_async(temporary_keys)() == 1
        client_ids = [c for c in broker_sessions() if c.startswith("console-root-")]
        assert len(client_ids) == 1

        await page.send_json_to({"action": "subscribe", "topic_filter": "users/+/user01"})
        await expect(page, "subscribed", topic_filter="users/+/user01", qos=0)

        thing = await device(root)
        thing.publish(
            bridge.PublishRequest(
                topic="users/settings/user01",
                payload=b'{"account_type": "standard"}',
                qos=1,
                content_type="application/json",
                user_properties=(("source", "device"),),
            )
        )
        message = await expect(page, "message", topic="users/settings/user01")
        assert message["payload"] == '{"account_type": "standard"}'
        assert message["qos"] == 0
        assert message["retain"] is False
        assert message["content_type"] == "application/json"
        assert message["user_properties"] == [["source", "device"]]
        assert message["subscriptions"] == ["users/+/user01"]

        # A retained publish from the page lands in the store...
        await page.send_json_to(
            {
                "action": "publish",
                "topic": "users/settings/user02",
                "payload": "<b>hi</b>",
                "qos": 1,
                "retain": True,
            }
        )
        await expect(page, "published", topic="users/settings/user02")
        stored = await sync_to_async(store.get_retained)("users/settings/user02")
        assert stored is not None
        assert stored.payload == b"<b>hi</b>"

        # ...and a later exact subscribe delivers it with the retain flag.
        await page.send_json_to(
            {"action": "subscribe", "topic_filter": "users/settings/user02", "qos": 1}
        )
        retained = await expect(page, "message", topic="users/settings/user02")
        assert retained["retain"] is True
        assert retained["payload"] == "<b>hi</b>"

        await page.send_json_to({"action": "unsubscribe", "topic_filter": "users/+/user01"})
        await expect(page, "unsubscribed", topic_filter="users/+/user01")

        await thing.close()
        await page.disconnect()
        async with asyncio.timeout(TIMEOUT):
            while client_ids[0] in broker_sessions():
                await asyncio.sleep(0.02)
        assert await sync_to_async(temporary_keys)() == 0

    with_broker(scenario)


@pytest.mark.django_db(transaction=True)
def test_publish_to_a_filter_is_refused_by_the_consumer() -> None:
    root = User.objects.create_superuser("root", password="pw-root")

    async def scenario() -> None:
        page = await open_page(root)
        await page.send_json_to({"action": "publish", "topic": "a/#", "payload": "x"})
        refusal = await expect(page, "refused", action="publish")
        assert refusal["topic"] == "a/#"
        assert "wildcards" in refusal["reason"]
        await page.disconnect()

    with_broker(scenario)


@pytest.mark.django_db(transaction=True)
def test_policy_refusals_come_back_with_the_reason() -> None:
    user = make_user("limited", (["iot:Connect", "iot:Receive"], "*"))

    async def scenario() -> None:
        page = await open_page(user)
        await page.send_json_to({"action": "subscribe", "topic_filter": "users/settings/user01"})
        refusal = await expect(page, "refused", action="subscribe")
        assert refusal["topic_filter"] == "users/settings/user01"
        assert refusal["reason"] == "Not authorized (0x87)"

        await page.send_json_to(
            {"action": "publish", "topic": "users/settings/user01", "payload": "x", "qos": 1}
        )
        refusal = await expect(page, "refused", action="publish")
        assert refusal["topic"] == "users/settings/user01"
        assert refusal["reason"] == "Not authorized (0x87)"
        await page.disconnect()
        assert await sync_to_async(temporary_keys)() == 0

    with_broker(scenario)


@pytest.mark.django_db(transaction=True)
def test_connect_refused_by_policy_is_reported_and_the_key_removed() -> None:
    user = make_user("nobody")

    async def scenario() -> None:
        communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), PATH)
        communicator.scope["user"] = user
        connected, _ = await communicator.connect(timeout=TIMEOUT)
        assert connected
        state = await expect(communicator, "state", state="disconnected")
        assert "refused" in state["detail"]
        assert await sync_to_async(temporary_keys)() == 0
        await communicator.disconnect()

    with_broker(scenario)


def test_a_slow_page_loses_the_oldest_messages_and_is_told_how_many() -> None:
    async def scenario() -> None:
        consumer = MqttTestClientConsumer()
        consumer.outbox = deque()
        consumer.dropped = consumer.dropped_reported = 0
        consumer.wakeup = asyncio.Event()
        sent: list[dict[str, Any]] = []

        async def send_json(content: dict[str, Any], close: bool = False) -> None:
            sent.append(content)

        consumer.send_json = send_json
        for number in range(OUTBOX_LIMIT + 20):
            consumer.push({"type": "message", "n": number})
        sender = asyncio.create_task(consumer.send_outbox())
        async with asyncio.timeout(TIMEOUT):
            while len(sent) < OUTBOX_LIMIT + 1:
                await asyncio.sleep(0.01)
        sender.cancel()
        assert sent[0] == {"type": "dropped", "count": 20}
        assert [m["n"] for m in sent[1:]] == list(range(20, OUTBOX_LIMIT + 20))

    asyncio.run(scenario())


@pytest.mark.django_db(transaction=True)
def test_a_burst_arrives_complete_and_in_order() -> None:
    root = User.objects.create_superuser("root", password="pw-root")

    async def scenario() -> None:
        page = await open_page(root)
        await page.send_json_to({"action": "subscribe", "topic_filter": "flood/#"})
        await expect(page, "subscribed", topic_filter="flood/#")
        thing = await device(root)
        total = OUTBOX_LIMIT
        for number in range(total):
            thing.publish(bridge.PublishRequest(topic="flood/x", payload=str(number).encode()))
        # Read nothing until the last message reached the consumer's outbox.
        received: list[dict[str, Any]] = []
        dropped = 0
        async with asyncio.timeout(TIMEOUT * 2):
            while not received or received[-1].get("payload") != str(total - 1):
                message = await page.receive_json_from(timeout=TIMEOUT)
                if message["type"] == "dropped":
                    dropped = message["count"]
                elif message["type"] == "message":
                    received.append(message)
        payloads = [int(m["payload"]) for m in received]
        assert payloads == sorted(payloads)
        assert len(received) + dropped == total
        await thing.close()
        await page.disconnect()

    with_broker(scenario)


@pytest.mark.django_db(transaction=True)
def test_publish_with_mqtt5_properties_reaches_a_paho_v5_subscriber() -> None:
    root = User.objects.create_superuser("root", password="pw-root")

    async def scenario() -> None:
        page = await open_page(root)
        key = await sync_to_async(create_access_key)(user=root)
        port = runtime.mqtt_port()
        assert port is not None
        subscriber = PahoClient(port)
        subscriber.client.username_pw_set(key.access_key_id, key.secret_access_key)
        await asyncio.to_thread(subscriber.connect)
        try:
            granted = await asyncio.to_thread(subscriber.subscribe, "rpc/request", 1)
            assert granted == [1]
            await page.send_json_to({"action": "subscribe", "topic_filter": "rpc/request"})
            await expect(page, "subscribed", topic_filter="rpc/request")
            await page.send_json_to(
                {
                    "action": "publish",
                    "topic": "rpc/request",
                    "payload": "ping",
                    "qos": 1,
                    "payload_format_indicator": "1",
                    "response_topic": "rpc/reply/42",
                    "correlation_data": "request-42",
                    "content_type": "text/plain",
                }
            )
            # The page's own subscription gets the message too, before or after the PUBACK.
            seen: dict[str, dict[str, Any]] = {}
            async with asyncio.timeout(TIMEOUT):
                while not {"published", "message"} <= seen.keys():
                    reply = await page.receive_json_from(timeout=TIMEOUT)
                    seen.setdefault(reply["type"], reply)
            message = seen["message"]
            assert message["topic"] == "rpc/request"
            assert message["payload_format_indicator"] == 1
            assert message["response_topic"] == "rpc/reply/42"
            assert message["correlation_data"] == "request-42"

            got = await asyncio.to_thread(subscriber.collect, 1)
            assert len(got) == 1
            assert got[0].payload == b"ping"
            assert got[0].payload_format_indicator == 1
            assert got[0].response_topic == "rpc/reply/42"
            assert got[0].correlation_data == b"request-42"
            assert got[0].content_type == "text/plain"
        finally:
            await asyncio.to_thread(subscriber.disconnect)
        await page.disconnect()

    with_broker(scenario)


@pytest.mark.django_db(transaction=True)
def test_response_topic_with_a_wildcard_is_refused_by_the_consumer() -> None:
    root = User.objects.create_superuser("root", password="pw-root")

    async def scenario() -> None:
        page = await open_page(root)
        await page.send_json_to(
            {"action": "publish", "topic": "rpc/request", "response_topic": "rpc/reply/#"}
        )
        refusal = await expect(page, "refused", action="publish")
        assert refusal["topic"] == "rpc/request"
        assert "response topic 'rpc/reply/#' contains a wildcard" in refusal["reason"]
        await page.disconnect()

    with_broker(scenario)
