"""The MQTT test client's consumer: one browser tab = one MQTT 5 connection as its user.

On connect the consumer creates a temporary access key for the signed-in user (the
credential the broker verifies; it exists only while the tab is open), connects through
console.bridge as `console-<username>-<random>`, and relays: page requests (subscribe,
unsubscribe, publish) to the broker, broker events (messages, acknowledgements, refusals,
connection state) to the page as JSON. The broker applies the user's policies; the consumer
only checks the request's shape (a publish to a filter with + or # is refused here as well
as in the page). Messages toward the page wait in a bounded outbox: when the tab falls
behind, the oldest are dropped and counted, so a slow tab never slows the broker.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import secrets
from collections import deque
from dataclasses import dataclass
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.contrib.auth.models import User

from console import bridge
from retained import runtime
from retained.access_keys import create_access_key
from retained.models import AccessKey
from retained.topics import (
    MULTI_LEVEL_WILDCARD,
    SINGLE_LEVEL_WILDCARD,
    InvalidTopicError,
    topic_matches,
    validate_topic_filter,
    validate_topic_name,
)

logger = logging.getLogger(__name__)

OUTBOX_LIMIT = 500
MAX_SUBSCRIPTIONS = 50
MAX_PAYLOAD_BYTES = 128 * 1024  # AWS IoT Core: a message payload is at most 128 KB
MAX_CORRELATION_BYTES = 0xFFFF  # MQTT 5 binary data: a two-byte length
KEY_DESCRIPTION = "console test client (temporary)"
BROKER_HOST = "127.0.0.1"


class RequestError(ValueError):
    """A page request that is refused before it reaches the broker."""


@dataclass(frozen=True)
class SubscribeRequest:
    topic_filter: str
    qos: int


def _qos(value: Any) -> int:
    if value in (0, 1, "0", "1"):
        return int(value)
    raise RequestError("QoS must be 0 or 1")


def parse_subscribe(data: dict[str, Any]) -> SubscribeRequest:
    topic_filter = str(data.get("topic_filter", ""))
    try:
        validate_topic_filter(topic_filter)
    except InvalidTopicError as error:
        raise RequestError(f"invalid topic filter: {error}") from error
    return SubscribeRequest(topic_filter=topic_filter, qos=_qos(data.get("qos", 0)))


def parse_user_properties(text: str) -> tuple[tuple[str, str], ...]:
    """'name=value' per line; blank lines are skipped, the first '=' splits."""
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, separator, value = line.partition("=")
        if not separator or not name.strip():
            raise RequestError(f"user property on line {number} is not name=value")
        pairs.append((name.strip(), value))
    return tuple(pairs)


def parse_publish(data: dict[str, Any]) -> bridge.PublishRequest:
    topic = str(data.get("topic", ""))
    if SINGLE_LEVEL_WILDCARD in topic or MULTI_LEVEL_WILDCARD in topic:
        raise RequestError(
            f"cannot publish to {topic!r}: + and # are wildcards for subscriptions; "
            "a message is published to one topic name"
        )
    retain = data.get("retain") is True
    try:
        validate_topic_name(topic, for_retain=retain)
    except InvalidTopicError as error:
        raise RequestError(f"invalid topic: {error}") from error
    payload = str(data.get("payload", "")).encode("utf-8")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise RequestError(f"payload is larger than {MAX_PAYLOAD_BYTES} bytes")
    expiry_text = str(data.get("message_expiry_interval") or "").strip()
    expiry: int | None = None
    if expiry_text:
        if not expiry_text.isdigit() or not 0 < int(expiry_text) <= 0xFFFFFFFF:
            raise RequestError("message expiry must be a whole number of seconds above 0")
        expiry = int(expiry_text)
    content_type = str(data.get("content_type") or "").strip() or None
    return bridge.PublishRequest(
        topic=topic,
        payload=payload,
        qos=_qos(data.get("qos", 1)),
        retain=retain,
        content_type=content_type,
        user_properties=parse_user_properties(str(data.get("user_properties") or "")),
        message_expiry_interval=expiry,
        payload_format_indicator=_payload_format(data.get("payload_format_indicator")),
        response_topic=_response_topic(data.get("response_topic")),
        correlation_data=_correlation_data(data.get("correlation_data")),
    )


def _payload_format(value: Any) -> int | None:
    """'' / None: not sent; 0 unspecified bytes; 1 UTF-8 text."""
    if value is None or value == "":
        return None
    if value in (0, 1, "0", "1"):
        return int(value)
    raise RequestError("payload format indicator must be 0 (unspecified) or 1 (UTF-8)")


def _response_topic(value: Any) -> str | None:
    topic = str(value or "")
    if not topic:
        return None
    if SINGLE_LEVEL_WILDCARD in topic or MULTI_LEVEL_WILDCARD in topic:
        raise RequestError(
            f"response topic {topic!r} contains a wildcard: + and # are for subscriptions; "
            "a response topic is one topic name"
        )
    try:
        validate_topic_name(topic)
    except InvalidTopicError as error:
        raise RequestError(f"invalid response topic: {error}") from error
    return topic


def _correlation_data(value: Any) -> bytes | None:
    text = str(value or "")
    if not text:
        return None
    data = text.encode("utf-8")
    if len(data) > MAX_CORRELATION_BYTES:
        raise RequestError(f"correlation data is larger than {MAX_CORRELATION_BYTES} bytes")
    return data


def _text_or_none(data: bytes | None) -> str | None:
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def message_json(event: bridge.Received, subscriptions: list[str]) -> dict[str, Any]:
    try:
        text: str | None = event.payload.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return {
        "type": "message",
        "topic": event.topic,
        "payload": text,
        "payload_b64": base64.b64encode(event.payload).decode("ascii"),
        "qos": event.qos,
        "retain": event.retain,
        "user_properties": [list(pair) for pair in event.user_properties],
        "content_type": event.content_type,
        "message_expiry_interval": event.message_expiry_interval,
        "payload_format_indicator": event.payload_format_indicator,
        "response_topic": event.response_topic,
        "correlation_data": _text_or_none(event.correlation_data),
        "correlation_data_b64": (
            base64.b64encode(event.correlation_data).decode("ascii")
            if event.correlation_data is not None
            else None
        ),
        "received_at": int(event.received_at * 1000),
        "subscriptions": subscriptions,
    }


@database_sync_to_async
def _create_key(user: User) -> AccessKey:
    return create_access_key(user=user, description=KEY_DESCRIPTION)


@database_sync_to_async
def _delete_key(key_id: str) -> None:
    AccessKey.objects.filter(access_key_id=key_id).delete()


class MqttTestClientConsumer(AsyncJsonWebsocketConsumer):
    """/ws/test-client/"""

    async def connect(self) -> None:
        self.outbox: deque[dict[str, Any]] = deque()
        self.dropped = 0
        self.dropped_reported = 0
        self.wakeup = asyncio.Event()
        self.sender: asyncio.Task[None] | None = None
        self.client: bridge.BridgeClient | None = None
        self.key_id: str | None = None
        self.subscriptions: dict[str, int] = {}
        self.retained_seen: dict[str, set[str]] = {}  # topic -> filters given its retained copy
        self.live_turns: dict[str, int] = {}  # topic -> whose turn for the next live copy
        self.reconnected = False
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close()
            return
        await self.accept()
        self.sender = asyncio.create_task(self.send_outbox())
        client_id = f"console-{user.get_username()}-{secrets.token_hex(4)}"
        self.client_id = client_id
        self.push({"type": "state", "state": "connecting", "client_id": client_id})
        port = runtime.mqtt_port()
        if port is None:
            self.push_state("disconnected", "the MQTT broker does not run in this process")
            return
        key = await _create_key(user)
        self.key_id = key.access_key_id
        client = bridge.BridgeClient(
            client_id=client_id,
            username=key.access_key_id,
            password=key.secret_access_key,
            on_event=self.on_bridge_event,
        )
        try:
            await client.connect(BROKER_HOST, port)
        except bridge.BridgeError as error:
            self.push_state("disconnected", str(error))
            await self.forget_key()
            return
        self.client = client

    async def disconnect(self, code: int) -> None:
        client, self.client = getattr(self, "client", None), None
        if client is not None:
            await client.close()
        await self.forget_key()
        sender = getattr(self, "sender", None)
        if sender is not None:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    async def forget_key(self) -> None:
        key_id, self.key_id = getattr(self, "key_id", None), None
        if key_id is not None:
            await _delete_key(key_id)

    # --- page -> broker -------------------------------------------------------------------
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Frames the page did not make (binary, not JSON) are refused, not fatal: the
        consumer stays up, so its clean-up (broker session, temporary key) still runs."""
        if text_data is None:
            self.push_refusal("frame", {}, "frames must be JSON text")
            return
        try:
            content = await self.decode_json(text_data)
        except ValueError:
            self.push_refusal("frame", {}, "frames must be JSON text")
            return
        await self.receive_json(content)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict):
            return
        action = content.get("action")
        try:
            if action == "subscribe":
                self.subscribe(parse_subscribe(content))
            elif action == "unsubscribe":
                self.unsubscribe(str(content.get("topic_filter", "")))
            elif action == "publish":
                self.publish(parse_publish(content))
        except RequestError as error:
            self.push_refusal(str(action), content, str(error))

    def connected_client(self) -> bridge.BridgeClient:
        if self.client is None or not self.client.is_connected:
            raise RequestError("not connected to the broker")
        return self.client

    def subscribe(self, request: SubscribeRequest) -> None:
        client = self.connected_client()
        known = request.topic_filter in self.subscriptions
        if not known and len(self.subscriptions) >= MAX_SUBSCRIPTIONS:
            raise RequestError(f"at most {MAX_SUBSCRIPTIONS} subscriptions per page")
        client.subscribe(request.topic_filter, request.qos)

    def unsubscribe(self, topic_filter: str) -> None:
        self.subscriptions.pop(topic_filter, None)
        if self.client is not None and self.client.is_connected:
            self.client.unsubscribe(topic_filter)
        self.push({"type": "unsubscribed", "topic_filter": topic_filter})

    def publish(self, request: bridge.PublishRequest) -> None:
        self.connected_client().publish(request)
        if request.qos == 0:
            # No acknowledgement for QoS 0: sent is all the page can know.
            self.push(
                {"type": "published", "topic": request.topic, "qos": 0, "retain": request.retain}
            )

    # --- broker -> page -------------------------------------------------------------------
    def on_bridge_event(self, event: bridge.BridgeEvent) -> None:
        if isinstance(event, bridge.Received):
            matching = [f for f in self.subscriptions if topic_matches(f, event.topic)]
            chosen = self.owner_of(event, matching)
            self.push(message_json(event, [chosen] if chosen else matching))
        elif isinstance(event, bridge.SubscribeAcknowledged):
            self.subscribe_acknowledged(event)
        elif isinstance(event, bridge.PublishAcknowledged):
            if event.refused:
                self.push_refusal(
                    "publish", {"topic": event.topic}, bridge.reason_text(event.reason_code)
                )
            else:
                self.push(
                    {
                        "type": "published",
                        "topic": event.topic,
                        "qos": 1,
                        "reason": bridge.reason_text(event.reason_code),
                    }
                )
        elif isinstance(event, bridge.ConnectionChanged):
            self.connection_changed(event)

    def owner_of(self, event: bridge.Received, matching: list[str]) -> str | None:
        """Which subscription a copy belongs to. The broker sends one copy per matching
        subscription (as AWS does) and no subscription identifiers, so: a retained copy
        (sent on subscribe) goes to the exact-topic subscription first, then to the others in
        subscription order, each at most once per topic; live copies of one publish are dealt
        out one per matching subscription, in turn."""
        if not matching:
            return None
        if event.retain:
            seen = self.retained_seen.setdefault(event.topic, set())
            candidates = sorted(matching, key=lambda f: f != event.topic)
            for topic_filter in candidates:
                if topic_filter not in seen:
                    seen.add(topic_filter)
                    return topic_filter
            return candidates[0]
        turn = self.live_turns.get(event.topic, 0)
        self.live_turns[event.topic] = (turn + 1) % len(matching)
        return matching[turn % len(matching)]

    def subscribe_acknowledged(self, event: bridge.SubscribeAcknowledged) -> None:
        if event.refused:
            self.subscriptions.pop(event.topic_filter, None)
            self.push_refusal(
                "subscribe",
                {"topic_filter": event.topic_filter},
                bridge.reason_text(event.reason_code),
            )
            return
        self.subscriptions[event.topic_filter] = event.reason_code
        for seen in self.retained_seen.values():
            seen.discard(event.topic_filter)
        self.push(
            {"type": "subscribed", "topic_filter": event.topic_filter, "qos": event.reason_code}
        )

    def connection_changed(self, event: bridge.ConnectionChanged) -> None:
        if event.state == "reconnecting":
            self.reconnected = True
        elif event.state == "connected" and self.reconnected and self.client is not None:
            # Clean start: the new session has no subscriptions; ask for them again.
            for topic_filter, qos in list(self.subscriptions.items()):
                self.client.subscribe(topic_filter, qos)
        self.push_state(event.state, event.detail)

    def push_state(self, state: str, detail: str = "") -> None:
        self.push({"type": "state", "state": state, "client_id": self.client_id, "detail": detail})

    def push_refusal(self, action: str, request: dict[str, Any], reason: str) -> None:
        refusal: dict[str, Any] = {"type": "refused", "action": action, "reason": reason}
        for field in ("topic", "topic_filter"):
            if field in request:
                refusal[field] = str(request[field])
        self.push(refusal)

    def push(self, message: dict[str, Any]) -> None:
        """Queue for the page; drop the oldest when the page is OUTBOX_LIMIT behind."""
        if len(self.outbox) >= OUTBOX_LIMIT:
            self.outbox.popleft()
            self.dropped += 1
        self.outbox.append(message)
        self.wakeup.set()

    async def send_outbox(self) -> None:
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            while self.outbox:
                if self.dropped != self.dropped_reported:
                    self.dropped_reported = self.dropped
                    await self.send_json({"type": "dropped", "count": self.dropped})
                await self.send_json(self.outbox.popleft())
