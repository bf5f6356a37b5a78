"""A typed facade over gmqtt: the console's own MQTT client (the only importer of gmqtt).

The MQTT test client page talks to the broker as the signed-in user through one
`BridgeClient` per browser tab. gmqtt is untyped and callback-driven; this module turns its
callbacks into small frozen events handed to one `on_event` callable, and fills the gaps
the console needs: gmqtt neither returns the packet id of a PUBLISH nor reports the reason
code of a PUBACK, so both are taken here (MQTT 5: a refused QoS 1 publish comes back as
PUBACK 0x87, which the page must show).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gmqtt import Client, Message
from gmqtt.mqtt.constants import MQTTv50
from gmqtt.mqtt.handler import MQTTConnectError

from retained.broker.reason_codes import ReasonCode

logger = logging.getLogger(__name__)
# gmqtt logs every packet at INFO; one line per SUBACK is noise in the server's log. Quieted
# unless the deployment configured the "gmqtt" logger itself.
_gmqtt_logger = logging.getLogger("gmqtt")
if _gmqtt_logger.level == logging.NOTSET:
    _gmqtt_logger.setLevel(logging.WARNING)

CONNECT_TIMEOUT_SECONDS = 5.0
KEEPALIVE_SECONDS = 60


def reason_text(code: int) -> str:
    """'Not authorized (0x87)': the MQTT 5 name of a reason code, for people."""
    try:
        name = ReasonCode(code).name.replace("_", " ").capitalize()
    except ValueError:
        name = "Unknown reason code"
    return f"{name} (0x{code:02X})"


@dataclass(frozen=True)
class Received:
    """A PUBLISH from the broker, as delivered (retain is the flag on the wire)."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    user_properties: tuple[tuple[str, str], ...]
    content_type: str | None
    message_expiry_interval: int | None
    received_at: float
    payload_format_indicator: int | None = None
    response_topic: str | None = None
    correlation_data: bytes | None = None


@dataclass(frozen=True)
class SubscribeAcknowledged:
    topic_filter: str
    reason_code: int  # 0x00/0x01: granted QoS; >= 0x80: refused

    @property
    def refused(self) -> bool:
        return self.reason_code >= 0x80


@dataclass(frozen=True)
class PublishAcknowledged:
    topic: str
    reason_code: int  # PUBACK reason (0x10 "no matching subscribers" is a success)

    @property
    def refused(self) -> bool:
        return self.reason_code >= 0x80


@dataclass(frozen=True)
class ConnectionChanged:
    """connected / reconnecting / disconnected, with a reason when there is one."""

    state: str
    detail: str = ""


BridgeEvent = Received | SubscribeAcknowledged | PublishAcknowledged | ConnectionChanged


class BridgeError(Exception):
    """The broker could not be reached or refused the connection."""


@dataclass(frozen=True)
class PublishRequest:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    content_type: str | None = None
    user_properties: tuple[tuple[str, str], ...] = ()
    message_expiry_interval: int | None = None
    payload_format_indicator: int | None = None  # 0 unspecified bytes, 1 UTF-8 text
    response_topic: str | None = None
    correlation_data: bytes | None = None


def _first(properties: dict[str, Any], name: str) -> Any:
    values = properties.get(name)
    if isinstance(values, list):
        return values[0] if values else None
    return values


def _user_properties(properties: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    pairs = properties.get("user_property") or []
    return tuple((str(name), str(value)) for name, value in pairs)


class BridgeClient:
    """One MQTT 5 connection with a clean start; events go to `on_event` on the loop."""

    def __init__(
        self,
        *,
        client_id: str,
        username: str,
        password: str,
        on_event: Callable[[BridgeEvent], None],
    ) -> None:
        self.client_id = client_id
        self._on_event = on_event
        self._pending_subscribes: dict[int, list[str]] = {}
        self._pending_publishes: dict[int, str] = {}
        self._closing = False
        self._connected_once = False
        # session_expiry_interval 0: the broker forgets this client the moment it goes.
        self._client: Any = Client(client_id, clean_session=True, session_expiry_interval=0)
        self._client.set_auth_credentials(username, password)
        self._client.on_connect = self._connected
        self._client.on_disconnect = self._disconnected
        self._client.on_message = self._message
        self._client.on_subscribe = self._subscribed
        # gmqtt drops the PUBACK reason code; take the packet first (handlers are looked up
        # by name on the instance, so this attribute wins).
        handler = self._client._package_handler
        original_puback = handler._handle_puback_packet

        def puback(cmd: int, packet: bytes) -> None:
            self._puback(packet)
            original_puback(cmd, packet)

        handler._handle_puback_packet = puback

    async def connect(self, host: str, port: int) -> None:
        """Connect or raise BridgeError (refused, unreachable, or no CONNACK in time)."""
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
                await self._client.connect(host, port, keepalive=KEEPALIVE_SECONDS, version=MQTTv50)
        except MQTTConnectError as error:
            await self._stop_quietly()
            raise BridgeError(f"the broker refused the connection: {error}") from error
        except (OSError, TimeoutError) as error:
            await self._stop_quietly()
            raise BridgeError(f"cannot reach the broker at {host}:{port}: {error}") from error

    async def _stop_quietly(self) -> None:
        self._closing = True
        with contextlib.suppress(Exception):
            self._client.stop_reconnect()
            await self._client.disconnect()

    @property
    def is_connected(self) -> bool:
        return bool(self._client.is_connected)

    def subscribe(self, topic_filter: str, qos: int) -> None:
        mid = self._client.subscribe(topic_filter, qos=qos)
        self._pending_subscribes[mid] = [topic_filter]

    def unsubscribe(self, topic_filter: str) -> None:
        self._client.unsubscribe(topic_filter)

    def publish(self, request: PublishRequest) -> None:
        """QoS 1 publishes are answered by a PublishAcknowledged event."""
        properties: dict[str, Any] = {}
        if request.content_type:
            properties["content_type"] = request.content_type
        if request.user_properties:
            properties["user_property"] = list(request.user_properties)
        if request.message_expiry_interval is not None:
            properties["message_expiry_interval"] = request.message_expiry_interval
        if request.payload_format_indicator is not None:
            # gmqtt's name for the Payload Format Indicator property (0x01).
            properties["payload_format_id"] = request.payload_format_indicator
        if request.response_topic:
            properties["response_topic"] = request.response_topic
        if request.correlation_data is not None:
            properties["correlation_data"] = request.correlation_data
        message = Message(
            request.topic, request.payload, qos=request.qos, retain=request.retain, **properties
        )
        # Client.publish() keeps the packet id to itself; this is its body with the id kept.
        mid, package = self._client._connection.publish(message)
        if request.qos > 0:
            self._client._persistent_storage.push_message(mid, package)
            self._pending_publishes[mid] = request.topic

    async def close(self) -> None:
        """DISCONNECT (normal) and close; no reconnect afterwards."""
        if self._closing:
            return
        self._closing = True
        with contextlib.suppress(Exception):
            self._client.stop_reconnect()
            async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
                await self._client.disconnect()

    # --- gmqtt callbacks (called on the loop) ---------------------------------------------
    def _connected(self, client: Any, flags: int, rc: int, properties: Any) -> None:
        self._connected_once = True
        self._on_event(ConnectionChanged("connected"))

    def _disconnected(self, client: Any, packet: Any, exc: Any = None) -> None:
        if self._closing:
            self._on_event(ConnectionChanged("disconnected"))
            return
        # Subscriptions die with the session (clean start); the page resubscribes.
        self._pending_subscribes.clear()
        self._pending_publishes.clear()
        self._on_event(ConnectionChanged("reconnecting", "connection to the broker lost"))

    def _message(self, client: Any, topic: str, payload: bytes, qos: int, properties: Any) -> int:
        props: dict[str, Any] = dict(properties or {})
        expiry = _first(props, "message_expiry_interval")
        content_type = _first(props, "content_type")
        payload_format = _first(props, "payload_format_id")
        response_topic = _first(props, "response_topic")
        correlation = _first(props, "correlation_data")
        self._on_event(
            Received(
                topic=topic if isinstance(topic, str) else bytes(topic).decode("utf-8", "replace"),
                payload=bytes(payload),
                qos=qos,
                retain=bool(props.get("retain")),
                user_properties=_user_properties(props),
                content_type=str(content_type) if content_type is not None else None,
                message_expiry_interval=int(expiry) if expiry is not None else None,
                received_at=time.time(),
                payload_format_indicator=int(payload_format)
                if payload_format is not None
                else None,
                response_topic=str(response_topic) if response_topic is not None else None,
                correlation_data=bytes(correlation) if correlation is not None else None,
            )
        )
        return 0  # PUBACK success

    def _subscribed(self, client: Any, mid: int, codes: Any, properties: Any) -> None:
        filters = self._pending_subscribes.pop(mid, [])
        for topic_filter, code in zip(filters, codes, strict=False):
            self._on_event(SubscribeAcknowledged(topic_filter, int(code)))

    def _puback(self, packet: bytes) -> None:
        if len(packet) < 2:
            return
        (mid,) = struct.unpack("!H", packet[:2])
        topic = self._pending_publishes.pop(mid, None)
        if topic is None:
            return
        # [MQTT-3.4.2.1] no reason code byte means 0x00 Success.
        code = packet[2] if len(packet) > 2 else 0
        self._on_event(PublishAcknowledged(topic, code))
