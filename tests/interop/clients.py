"""Small synchronous wrappers around third-party MQTT clients, for the interop tests.

Every client turns what it receives into a `Received` record (one shape for all clients),
so a test can compare deliveries without caring which client library it used.

* `PahoClient`: paho-mqtt 2.x, MQTT 3.1.1 or 5, driven by paho's own network thread.
* `GmqttClient`: gmqtt (asyncio, MQTT 5) on an event loop in a private thread.
* `mosquitto_pub` / `mosquitto_sub`: the Debian mosquitto-clients command line tools.
"""

from __future__ import annotations

import asyncio
import queue
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from gmqtt import Client as GmqttLibClient
from gmqtt import Subscription as GmqttSubscription
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties as PahoProperties
from paho.mqtt.reasoncodes import ReasonCode as PahoReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

HOST = "127.0.0.1"
CONNECT_TIMEOUT = 5.0
ACK_TIMEOUT = 3.0
# How long "nothing arrives" is watched for by default, and how long to keep listening for
# extra copies after the expected ones arrived.
SILENCE_SECONDS = 0.5
GRACE_SECONDS = 0.05


@dataclass(frozen=True)
class Received:
    """One PUBLISH a client received, as the wire carried it."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    user_properties: tuple[tuple[str, str], ...] = ()
    content_type: str | None = None
    payload_format_indicator: int | None = None
    message_expiry_interval: int | None = None
    response_topic: str | None = None
    correlation_data: bytes | None = None

    def key(self) -> tuple[str, bytes, int, bool]:
        return (self.topic, self.payload, self.qos, self.retain)


def unique(prefix: str = "interop") -> str:
    return f"{prefix}/{uuid.uuid4().hex[:12]}"


class MessageInbox:
    """Thread-safe collection of received messages, drained by `collect`."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Received] = queue.Queue()

    def put(self, message: Received) -> None:
        self._queue.put(message)

    def collect(
        self,
        expected: int,
        *,
        timeout: float = 2.0,
        silence: float = SILENCE_SECONDS,
        grace: float = GRACE_SECONDS,
    ) -> list[Received]:
        """Everything received so far and until `expected` messages are in (at most
        `timeout`), then `grace` longer to catch extra copies. With expected == 0 it
        listens for `silence` seconds: a test asserting "nothing arrives" gets a list
        that is empty only if nothing came in that time."""
        got: list[Received] = []
        deadline = time.monotonic() + (timeout if expected > 0 else silence)
        while True:
            if expected > 0 and len(got) >= expected:
                deadline = min(deadline, time.monotonic() + grace)
                expected = 0  # from now on just drain until the grace period ends
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                got.append(self._queue.get(timeout=remaining))
            except queue.Empty:
                break
        while True:  # whatever is already queued
            try:
                got.append(self._queue.get_nowait())
            except queue.Empty:
                return got


# --- paho-mqtt -------------------------------------------------------------------------------


def paho_properties_to_received(message: paho.MQTTMessage) -> Received:
    props = message.properties
    user: tuple[tuple[str, str], ...] = ()
    content_type = None
    pfi = None
    expiry = None
    response_topic = None
    correlation = None
    if props is not None:
        user = tuple((str(k), str(v)) for k, v in getattr(props, "UserProperty", []))
        content_type = getattr(props, "ContentType", None)
        pfi = getattr(props, "PayloadFormatIndicator", None)
        expiry = getattr(props, "MessageExpiryInterval", None)
        response_topic = getattr(props, "ResponseTopic", None)
        correlation = getattr(props, "CorrelationData", None)
    return Received(
        topic=message.topic,
        payload=bytes(message.payload),
        qos=message.qos,
        retain=bool(message.retain),
        user_properties=user,
        content_type=content_type,
        payload_format_indicator=pfi,
        message_expiry_interval=expiry,
        response_topic=response_topic,
        correlation_data=correlation,
    )


def publish_properties(
    *,
    user_properties: Sequence[tuple[str, str]] = (),
    content_type: str | None = None,
    payload_format_indicator: int | None = None,
    message_expiry_interval: int | None = None,
    response_topic: str | None = None,
    correlation_data: bytes | None = None,
) -> PahoProperties:
    props = PahoProperties(PacketTypes.PUBLISH)
    if user_properties:
        props.UserProperty = list(user_properties)
    if content_type is not None:
        props.ContentType = content_type
    if payload_format_indicator is not None:
        props.PayloadFormatIndicator = payload_format_indicator
    if message_expiry_interval is not None:
        props.MessageExpiryInterval = message_expiry_interval
    if response_topic is not None:
        props.ResponseTopic = response_topic
    if correlation_data is not None:
        props.CorrelationData = correlation_data
    return props


class PahoClient:
    """A connected paho client that records what it receives and waits for its acks."""

    def __init__(self, port: int, *, version: int = 5, client_id: str | None = None) -> None:
        self.version = version
        self.inbox = MessageInbox()
        protocol = paho.MQTTv5 if version == 5 else paho.MQTTv311
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"interop-{uuid.uuid4().hex[:10]}",
            protocol=protocol,
        )
        self.port = port
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._disconnected = threading.Event()
        self._connack_reason: PahoReasonCode | None = None
        self._subacks: dict[int, list[PahoReasonCode]] = {}
        self._puback_reasons: dict[int, PahoReasonCode] = {}
        self._acked = threading.Condition(self._lock)
        self.disconnect_reason: PahoReasonCode | None = None
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish

    # callbacks (paho's network thread)
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._connack_reason = reason
        self._connected.set()

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self.disconnect_reason = reason
        self._disconnected.set()
        # No automatic reconnect: a connection the broker closed stays closed (and the
        # network thread ends now instead of sleeping before a reconnect attempt).
        client.loop_stop()
        with self._acked:
            self._acked.notify_all()

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        self.inbox.put(paho_properties_to_received(message))

    def _on_subscribe(
        self, client: Any, userdata: Any, mid: int, reasons: list[PahoReasonCode], props: Any
    ) -> None:
        with self._acked:
            self._subacks[mid] = list(reasons)
            self._acked.notify_all()

    def _on_publish(
        self, client: Any, userdata: Any, mid: int, reason: PahoReasonCode, props: Any
    ) -> None:
        with self._acked:
            self._puback_reasons[mid] = reason
            self._acked.notify_all()

    # API
    def connect(self) -> PahoClient:
        self.client.connect(HOST, self.port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(CONNECT_TIMEOUT):
            raise TimeoutError("no CONNACK")
        if self._connack_reason is not None and self._connack_reason.is_failure:
            raise ConnectionError(f"CONNACK refused: {self._connack_reason}")
        return self

    def disconnect(self) -> None:
        try:
            if self.client.is_connected():
                self.client.disconnect()
                self._disconnected.wait(2.0)
        finally:
            self.client.loop_stop()

    @property
    def connected(self) -> bool:
        return bool(self.client.is_connected())

    def wait_disconnected(self, timeout: float = 2.0) -> bool:
        return self._disconnected.wait(timeout)

    def _wait_for(self, table: dict[int, Any], mid: int, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        with self._acked:
            while mid not in table:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._disconnected.is_set():
                    return None
                self._acked.wait(remaining)
            return table.pop(mid)

    def subscribe(
        self,
        topic_filter: str,
        qos: int = 0,
        *,
        retain_as_published: bool = False,
        retain_handling: int = 0,
        timeout: float = ACK_TIMEOUT,
    ) -> list[int]:
        """SUBSCRIBE one filter; the SUBACK's reason codes (granted QoS)."""
        if self.version == 5:
            options = SubscribeOptions(
                qos=qos, retainAsPublished=retain_as_published, retainHandling=retain_handling
            )
            result, mid = self.client.subscribe(topic_filter, options=options)
        else:
            assert not retain_as_published
            assert retain_handling == 0
            result, mid = self.client.subscribe(topic_filter, qos)
        assert result == paho.MQTT_ERR_SUCCESS, result
        assert mid is not None
        reasons = self._wait_for(self._subacks, mid, timeout)
        if reasons is None:
            raise TimeoutError(f"no SUBACK for {topic_filter!r}")
        return [reason.value for reason in reasons]

    def publish(
        self,
        topic: str,
        payload: bytes | str,
        qos: int = 0,
        retain: bool = False,
        *,
        properties: PahoProperties | None = None,
        wait: bool = True,
        timeout: float = ACK_TIMEOUT,
    ) -> int | None:
        """PUBLISH; for QoS 1 with `wait`, the PUBACK reason code (None: no PUBACK)."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        if qos == 0 or not wait:
            return None
        reason = self._wait_for(self._puback_reasons, info.mid, timeout)
        return None if reason is None else int(reason.value)

    def barrier(self, topic: str) -> None:
        """A QoS 1 publish whose PUBACK proves the broker finished the earlier publishes of
        this connection (they are processed and acknowledged in order)."""
        reason = self.publish(topic, b"barrier", qos=1)
        assert reason == 0, f"barrier publish not acknowledged: {reason}"

    def collect(self, expected: int, **kwargs: Any) -> list[Received]:
        return self.inbox.collect(expected, **kwargs)


@contextmanager
def paho_client(
    port: int, *, version: int = 5, client_id: str | None = None
) -> Iterator[PahoClient]:
    client = PahoClient(port, version=version, client_id=client_id)
    try:
        client.connect()
        yield client
    finally:
        client.disconnect()


# --- gmqtt ------------------------------------------------------------------------------------


def gmqtt_to_received(topic: str, payload: bytes, qos: int, properties: dict[str, Any]) -> Received:
    def first(name: str) -> Any:
        value = properties.get(name)
        if isinstance(value, list):
            return value[0] if value else None
        return value

    return Received(
        topic=topic,
        payload=bytes(payload),
        qos=qos,
        retain=bool(properties.get("retain")),
        user_properties=tuple((str(k), str(v)) for k, v in properties.get("user_property", [])),
        content_type=first("content_type"),
        payload_format_indicator=first("payload_format_id"),
        message_expiry_interval=first("message_expiry_interval"),
        response_topic=first("response_topic"),
        correlation_data=first("correlation_data"),
    )


class AsyncGmqtt:
    """A gmqtt client for `async` code (asyncio.run in a test)."""

    def __init__(self, client_id: str | None = None) -> None:
        self.client = GmqttLibClient(client_id or f"interop-g-{uuid.uuid4().hex[:10]}")
        self.received: asyncio.Queue[Received] = asyncio.Queue()
        self.subacks: asyncio.Queue[tuple[int, list[int]]] = asyncio.Queue()
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe

    def _on_message(
        self, client: Any, topic: str, payload: bytes, qos: int, properties: dict[str, Any]
    ) -> int:
        self.received.put_nowait(gmqtt_to_received(topic, payload, qos, properties))
        return 0

    def _on_subscribe(self, client: Any, mid: int, qos: Any, properties: Any) -> None:
        self.subacks.put_nowait((mid, list(qos)))

    async def connect(self, port: int) -> None:
        await asyncio.wait_for(self.client.connect(HOST, port, keepalive=30), CONNECT_TIMEOUT)

    async def subscribe(
        self,
        topic_filter: str,
        qos: int = 0,
        *,
        retain_as_published: bool = False,
        retain_handling: int = 0,
    ) -> list[int]:
        mid = self.client.subscribe(
            GmqttSubscription(
                topic_filter,
                qos=qos,
                retain_as_published=retain_as_published,
                retain_handling_options=retain_handling,
            )
        )
        while True:
            got_mid, codes = await asyncio.wait_for(self.subacks.get(), ACK_TIMEOUT)
            if got_mid == mid:
                return codes

    async def publish_and_wait(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False, **props: Any
    ) -> None:
        """PUBLISH (QoS 1) and wait until gmqtt got the PUBACK (its QoS queue drains)."""
        self.client.publish(topic, payload, qos=qos, retain=retain, **props)
        if qos:
            await asyncio.wait_for(self.client._persistent_storage.wait_empty(), ACK_TIMEOUT)

    async def collect(
        self, expected: int, *, timeout: float = 2.0, silence: float = SILENCE_SECONDS
    ) -> list[Received]:
        got: list[Received] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (timeout if expected > 0 else silence)
        while True:
            if expected > 0 and len(got) >= expected:
                deadline = min(deadline, loop.time() + GRACE_SECONDS)
                expected = 0
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                got.append(await asyncio.wait_for(self.received.get(), remaining))
            except TimeoutError:
                break
        while not self.received.empty():
            got.append(self.received.get_nowait())
        return got

    async def disconnect(self) -> None:
        await asyncio.wait_for(self.client.disconnect(), ACK_TIMEOUT)


class GmqttClient:
    """`AsyncGmqtt` behind a synchronous face: its loop runs in a private thread, so the
    table-driven tests can mix it with paho clients step by step."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.inbox = MessageInbox()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._client: AsyncGmqtt | None = None

    def _run(self, coroutine: Any, timeout: float = CONNECT_TIMEOUT) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout)

    def connect(self) -> GmqttClient:
        async def make() -> AsyncGmqtt:
            client = AsyncGmqtt()
            inbox = self.inbox

            def on_message(
                _: Any, topic: str, payload: bytes, qos: int, properties: dict[str, Any]
            ) -> int:
                inbox.put(gmqtt_to_received(topic, payload, qos, properties))
                return 0

            client.client.on_message = on_message
            await client.connect(self.port)
            return client

        self._client = self._run(make())
        return self

    def subscribe(
        self,
        topic_filter: str,
        qos: int = 0,
        *,
        retain_as_published: bool = False,
        retain_handling: int = 0,
    ) -> list[int]:
        assert self._client is not None
        codes: list[int] = self._run(
            self._client.subscribe(
                topic_filter,
                qos,
                retain_as_published=retain_as_published,
                retain_handling=retain_handling,
            )
        )
        return codes

    def collect(self, expected: int, **kwargs: Any) -> list[Received]:
        return self.inbox.collect(expected, **kwargs)

    def disconnect(self) -> None:
        try:
            if self._client is not None:
                self._run(self._client.disconnect())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(2.0)
            self._loop.close()


# --- mosquitto command line clients -----------------------------------------------------------


def mosquitto_pub(
    port: int, topic: str, message: str, *, qos: int = 1, retain: bool = True, version: str
) -> subprocess.CompletedProcess[str]:
    args = ["mosquitto_pub", "-h", HOST, "-p", str(port), "-V", version, "-t", topic]
    args += ["-m", message, "-q", str(qos)]
    if retain:
        args.append("-r")
    return subprocess.run(args, capture_output=True, text=True, timeout=10, check=False)


def mosquitto_sub(
    port: int, topic_filter: str, *, count: int, wait_seconds: int, version: str, qos: int = 1
) -> subprocess.CompletedProcess[str]:
    """mosquitto_sub -C count -W seconds; each line of stdout is 'topic|payload|retain|qos'."""
    args = ["mosquitto_sub", "-h", HOST, "-p", str(port), "-V", version, "-t", topic_filter]
    args += ["-q", str(qos), "-C", str(count), "-W", str(wait_seconds), "-F", "%t|%p|%r|%q"]
    return subprocess.run(args, capture_output=True, text=True, timeout=wait_seconds + 10)
