"""Malformed and out-of-protocol input on raw sockets, against a real `manage.py serve`.

Each case of the table sends hand-written bytes and checks, byte for byte, what the broker
answers before it closes the offending connection (MQTT 5: a CONNACK or DISCONNECT with the
reason code the spec asks for; MQTT 3.1.1: nothing, or CONNACK return code 1 for an unknown
protocol level). Every case also checks that the broker is unharmed: a paho subscriber that
connected BEFORE the bad input still gets a message published AFTER it, and /healthz is 200.

This module also holds the small MQTT helpers shared by test_sessions.py and
test_limits.py: a raw-socket client with hand-written packet builders, and a synchronous
wrapper around paho-mqtt (3.1.1 and 5) that exposes what those tests look at (session
present, reason codes, disconnect reasons, DUP/RETAIN flags).
"""

from __future__ import annotations

import contextlib
import queue
import random
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties as PahoProperties

from tests.support.server import ServerProcess

HOST = "127.0.0.1"
WAIT = 3.0  # the longest any expected event is waited for
QUIET = 0.5  # how long "nothing arrives" is watched for

# ---------------------------------------------------------------------------- raw packets


def unique(prefix: str = "interop") -> str:
    return f"{prefix}/{uuid.uuid4().hex[:12]}"


def client_id(prefix: str = "c") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def vbi(value: int) -> bytes:
    """Variable Byte Integer."""
    out = bytearray()
    while True:
        value, digit = divmod(value, 0x80)
        out.append(digit | (0x80 if value else 0))
        if not value:
            return bytes(out)


def utf8(text: str | bytes) -> bytes:
    """A length-prefixed string; bytes are sent as they are (for invalid UTF-8)."""
    data = text.encode() if isinstance(text, str) else text
    return len(data).to_bytes(2, "big") + data


def frame(first_byte: int, body: bytes) -> bytes:
    return bytes((first_byte,)) + vbi(len(body)) + body


def props(*items: bytes) -> bytes:
    """An MQTT 5 property block (length + properties)."""
    block = b"".join(items)
    return vbi(len(block)) + block


def prop_u32(ident: int, value: int) -> bytes:
    return bytes((ident,)) + value.to_bytes(4, "big")


def prop_u16(ident: int, value: int) -> bytes:
    return bytes((ident,)) + value.to_bytes(2, "big")


SESSION_EXPIRY = 0x11
RECEIVE_MAXIMUM = 0x21
TOPIC_ALIAS = 0x23
WILL_DELAY = 0x18

PINGREQ = b"\xc0\x00"
PINGRESP = b"\xd0\x00"
DISCONNECT = b"\xe0\x00"


def connect_packet(
    cid: str | bytes,
    *,
    level: int = 4,
    clean: bool = True,
    keep_alive: int = 60,
    properties: bytes | None = None,
    username: str | None = None,
    password: str | None = None,
    extra_flags: int = 0,
    protocol_name: str = "MQTT",
    will: tuple[str, bytes, int, bool] | None = None,
) -> bytes:
    flags = (0x02 if clean else 0) | extra_flags
    if username is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    if will is not None:
        flags |= 0x04 | (will[2] << 3) | (0x20 if will[3] else 0)
    body = utf8(protocol_name) + bytes((level, flags)) + keep_alive.to_bytes(2, "big")
    if level == 5:
        body += properties if properties is not None else b"\x00"
    body += utf8(cid)
    if will is not None:
        body += (b"\x00" if level == 5 else b"") + utf8(will[0]) + utf8(will[1])
    if username is not None:
        body += utf8(username)
    if password is not None:
        body += utf8(password)
    return frame(0x10, body)


def publish_packet(
    topic: str | bytes,
    payload: bytes = b"x",
    *,
    qos: int = 0,
    retain: bool = False,
    packet_id: int = 1,
    v5: bool = False,
    properties: bytes = b"\x00",
) -> bytes:
    body = utf8(topic)
    if qos:
        body += packet_id.to_bytes(2, "big")
    if v5:
        body += properties
    first = 0x30 | (qos << 1) | (1 if retain else 0)
    return frame(first, body + payload)


def subscribe_packet(
    filters: Sequence[tuple[str | bytes, int]], *, packet_id: int = 1, v5: bool = False
) -> bytes:
    body = packet_id.to_bytes(2, "big") + (b"\x00" if v5 else b"")
    for topic_filter, options in filters:
        body += utf8(topic_filter) + bytes((options,))
    return frame(0x82, body)


def puback_packet(packet_id: int) -> bytes:
    return frame(0x40, packet_id.to_bytes(2, "big"))


class ConnectionClosed(Exception):
    """The broker closed the connection; `data` holds what it sent before."""


@dataclass(frozen=True)
class RawPublish:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool
    packet_id: int | None


class RawClient:
    """A blocking MQTT client on a plain socket: sends whatever bytes it is given."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=WAIT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = bytearray()
        self.eof = False
        self.level = 4

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> None:
        """Read once more into the buffer; TimeoutError at the deadline."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("nothing more from the broker")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65_536)
        except TimeoutError:
            raise
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
            raise ConnectionClosed(bytes(self.buffer))
        self.buffer += chunk

    def read_packet(self, timeout: float = WAIT) -> tuple[int, bytes]:
        """(first byte, body) of the next packet; ConnectionClosed or TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            parsed = self._parse()
            if parsed is not None:
                return parsed
            if self.eof:
                raise ConnectionClosed(bytes(self.buffer))
            self._fill(deadline)

    def _parse(self) -> tuple[int, bytes] | None:
        buffer = self.buffer
        if len(buffer) < 2:
            return None
        length, shift, position = 0, 0, 1
        while True:
            if position >= len(buffer):
                return None
            byte = buffer[position]
            position += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        end = position + length
        if len(buffer) < end:
            return None
        first, body = buffer[0], bytes(buffer[position:end])
        del buffer[:end]
        return first, body

    def read_until_closed(self, timeout: float = WAIT) -> bytes:
        """Everything the broker sends until it closes; fails if it does not close."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            try:
                self._fill(deadline)
            except ConnectionClosed:
                break
            except TimeoutError:
                raise AssertionError(
                    f"the broker did not close the connection within {timeout} s "
                    f"(received {bytes(self.buffer)!r})"
                ) from None
        data = bytes(self.buffer)
        self.buffer.clear()
        return data

    def assert_silent(self, seconds: float = QUIET) -> None:
        """Nothing arrives (and the connection stays open) for `seconds`."""
        try:
            packet = self.read_packet(timeout=seconds)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected packet {packet!r}")

    def connect(self, cid: str, *, level: int = 4, **kwargs: Any) -> tuple[bool, int, bytes]:
        """CONNECT and read the CONNACK: (session present, reason code, properties)."""
        self.level = level
        self.send(connect_packet(cid, level=level, **kwargs))
        first, body = self.read_packet()
        assert first == 0x20, f"expected CONNACK, got 0x{first:02X} {body!r}"
        return bool(body[0] & 1), body[1], body[2:]

    def subscribe(self, filters: list[tuple[str, int]], packet_id: int = 1) -> list[int]:
        self.send(subscribe_packet(filters, packet_id=packet_id, v5=self.level == 5))
        first, body = self.read_packet()
        assert first == 0x90, f"expected SUBACK, got 0x{first:02X}"
        assert int.from_bytes(body[:2], "big") == packet_id
        codes = body[2:]
        if self.level == 5:
            codes = codes[1 + codes[0] :]  # properties (short ones only)
        return list(codes)

    def read_publish(self, timeout: float = WAIT) -> RawPublish:
        first, body = self.read_packet(timeout)
        assert first >> 4 == 3, f"expected PUBLISH, got 0x{first:02X} {body!r}"
        qos = (first >> 1) & 3
        size = int.from_bytes(body[:2], "big")
        topic = body[2 : 2 + size].decode()
        position = 2 + size
        packet_id = None
        if qos:
            packet_id = int.from_bytes(body[position : position + 2], "big")
            position += 2
        if self.level == 5:
            length, shift = 0, 0
            while True:
                byte = body[position]
                position += 1
                length |= (byte & 0x7F) << shift
                shift += 7
                if byte < 0x80:
                    break
            position += length
        return RawPublish(
            topic=topic,
            payload=body[position:],
            qos=qos,
            retain=bool(first & 1),
            dup=bool(first & 8),
            packet_id=packet_id,
        )

    def ping(self) -> None:
        """PINGREQ -> PINGRESP: the connection is alive and in sync."""
        self.send(PINGREQ)
        first, body = self.read_packet()
        assert (first, body) == (0xD0, b""), f"expected PINGRESP, got 0x{first:02X}"

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


# ---------------------------------------------------------------------------- paho wrapper


@dataclass(frozen=True)
class ConnackResult:
    reason_code: int
    session_present: bool
    properties: Any


class Paho:
    """paho-mqtt 2.x (CallbackAPIVersion.VERSION2) driven by its own network thread, with
    blocking helpers. It never reconnects on its own (a reconnect would hide takeovers)."""

    def __init__(
        self,
        port: int,
        cid: str | None = None,
        *,
        v5: bool = False,
        clean: bool = True,
        keep_alive: int = 30,
        session_expiry: int | None = None,
        receive_maximum: int | None = None,
        will: tuple[str, bytes, int, bool] | None = None,
        will_delay: int | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.port = port
        self.client_id = cid if cid is not None else client_id("paho")
        self.v5 = v5
        self.clean = clean
        self.keep_alive = keep_alive
        self.session_expiry = session_expiry
        self.receive_maximum = receive_maximum
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            clean_session=None if v5 else clean,
            reconnect_on_failure=False,
        )
        if will is not None:
            topic, payload, qos, retain = will
            will_properties = None
            if will_delay is not None:
                will_properties = PahoProperties(PacketTypes.WILLMESSAGE)
                will_properties.WillDelayInterval = will_delay
            self.client.will_set(topic, payload, qos, retain, properties=will_properties)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self.connack: ConnackResult | None = None
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.disconnect_reason: int | None = None
        self.subacks: dict[int, list[int]] = {}
        self.pubacks: dict[int, int] = {}
        self._acked = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish

    # callbacks (paho's network thread)
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connack = ConnackResult(int(reason.value), bool(flags.session_present), props)
        self.connected.set()

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self.disconnect_reason = int(reason.value)
        self.disconnected.set()

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        self.messages.put(message)

    def _on_subscribe(
        self, client: Any, userdata: Any, mid: int, reason_codes: Any, props: Any
    ) -> None:
        with self._acked:
            self.subacks[mid] = [int(code.value) for code in reason_codes]
            self._acked.notify_all()

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._acked:
            self.pubacks[mid] = int(reason.value)
            self._acked.notify_all()

    # blocking API
    def connect(self, *, expect: int | None = 0) -> ConnackResult:
        """Connect and wait for the CONNACK; `expect` is the reason code it must carry
        (MQTT 5 reason codes; paho maps 3.1.1 return codes onto them), None: any."""
        properties = None
        if self.v5:
            properties = PahoProperties(PacketTypes.CONNECT)
            if self.session_expiry is not None:
                properties.SessionExpiryInterval = self.session_expiry
            if self.receive_maximum is not None:
                properties.ReceiveMaximum = self.receive_maximum
            self.client.connect(
                HOST, self.port, self.keep_alive, clean_start=self.clean, properties=properties
            )
        else:
            self.client.connect(HOST, self.port, self.keep_alive)
        self.client.loop_start()
        assert self.connected.wait(WAIT), f"{self.client_id}: no CONNACK"
        assert self.connack is not None
        if expect is not None:
            assert self.connack.reason_code == expect, (
                f"{self.client_id}: CONNACK reason {self.connack.reason_code}, expected {expect}"
            )
        return self.connack

    def _wait(self, table: dict[int, Any], mid: int) -> Any:
        deadline = time.monotonic() + WAIT
        with self._acked:
            while mid not in table:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.disconnected.is_set():
                    raise AssertionError(f"{self.client_id}: no acknowledgement for mid {mid}")
                self._acked.wait(min(remaining, 0.05))
            return table.pop(mid)

    def subscribe(self, topic_filter: str | list[tuple[str, int]], qos: int = 1) -> list[int]:
        """SUBSCRIBE and wait for the SUBACK: its reason codes."""
        if isinstance(topic_filter, list):
            result, mid = self.client.subscribe(topic_filter)
        else:
            result, mid = self.client.subscribe(topic_filter, qos)
        assert result == paho.MQTT_ERR_SUCCESS, f"subscribe failed: {result}"
        assert mid is not None
        codes: list[int] = self._wait(self.subacks, mid)
        return codes

    def publish(
        self,
        topic: str,
        payload: bytes | str,
        *,
        qos: int = 1,
        retain: bool = False,
        properties: PahoProperties | None = None,
    ) -> int | None:
        """PUBLISH; for QoS 1 wait for the PUBACK and return its reason code."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        assert info.rc == paho.MQTT_ERR_SUCCESS, f"publish failed: {info.rc}"
        if qos == 0:
            info.wait_for_publish(WAIT)
            return None
        code: int = self._wait(self.pubacks, info.mid)
        return code

    def get(self, timeout: float = WAIT) -> paho.MQTTMessage:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.client_id}: no message within {timeout} s") from None

    def get_all(self, count: int, timeout: float = WAIT) -> list[paho.MQTTMessage]:
        deadline = time.monotonic() + timeout
        return [self.get(max(0.01, deadline - time.monotonic())) for _ in range(count)]

    def assert_no_message(self, seconds: float = QUIET) -> None:
        try:
            message = self.messages.get(timeout=seconds)
        except queue.Empty:
            return
        raise AssertionError(
            f"{self.client_id}: unexpected message on {message.topic!r}: {message.payload!r}"
        )

    def wait_disconnected(self, timeout: float = WAIT) -> int:
        assert self.disconnected.wait(timeout), f"{self.client_id}: still connected"
        self.client.loop_stop()
        assert self.disconnect_reason is not None
        return self.disconnect_reason

    def disconnect(self) -> None:
        """A clean DISCONNECT."""
        if not self.disconnected.is_set():
            self.client.disconnect()
            self.disconnected.wait(WAIT)
        self.client.loop_stop()

    def kill(self) -> None:
        """Drop the TCP connection without DISCONNECT (what a crash or network loss does)."""
        sock = self.client.socket()
        assert isinstance(sock, socket.socket)
        sock.shutdown(socket.SHUT_RDWR)
        self.wait_disconnected()

    def close(self) -> None:
        """Best-effort cleanup (fixtures)."""
        try:
            if not self.disconnected.is_set() and self.connected.is_set():
                self.client.disconnect()
        finally:
            self.client.loop_stop()


class Clients:
    """Every client a test opens, closed at the end of the test whatever happened."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self._open: list[Paho | RawClient] = []

    def paho(self, cid: str | None = None, *, port: int | None = None, **kwargs: Any) -> Paho:
        client = Paho(port or self.server.mqtt_port, cid, **kwargs)
        self._open.append(client)
        return client

    def connected(self, cid: str | None = None, **kwargs: Any) -> Paho:
        client = self.paho(cid, **kwargs)
        client.connect()
        return client

    def raw(self, port: int | None = None) -> RawClient:
        client = RawClient(port or self.server.mqtt_port)
        self._open.append(client)
        return client

    def close_all(self) -> None:
        for client in reversed(self._open):
            with contextlib.suppress(Exception):  # cleanup must go on
                client.close()


# ---------------------------------------------------------------------------- the table


@pytest.fixture
def clients(server: ServerProcess) -> Iterator[Clients]:
    pool = Clients(server)
    yield pool
    pool.close_all()


def _pid() -> bytes:
    return b"\x00\x01"


def _garbage(seed: int, size: int) -> bytes:
    data = bytearray(random.Random(seed).randbytes(size))
    data[0] = 0x47  # not CONNECT (0x1?), so the first byte alone is a protocol error
    return bytes(data)


V5_MALFORMED = b"\xe0\x01\x81"  # DISCONNECT Malformed Packet
V5_PROTOCOL_ERROR = b"\xe0\x01\x82"  # DISCONNECT Protocol Error
CLOSED = b""  # closed without a word (MQTT 3.1.1, or nothing is due)
UNSUPPORTED_LEVEL_311 = b"\x20\x02\x00\x01"  # CONNACK return code 1


@dataclass(frozen=True)
class Case:
    """Bad input sent `after` a CONNECT of that protocol level (None: as the first bytes),
    and the exact bytes the broker answers with before it closes (`closed`), or the
    exact answer on a connection that stays open (`closed=False`)."""

    after: int | None
    data: bytes
    expected: bytes | tuple[bytes, ...]
    closed: bool = True


TOO_LARGE = 150_000  # > 146 KB maximum packet size (148 KB+)

CASES: dict[str, Case] = {
    # Remaining Length with 5 continuation bytes (at most 4 are allowed).
    "remaining-length-5-bytes-v5": Case(5, b"\x30\xff\xff\xff\xff\x01", V5_MALFORMED),
    "remaining-length-5-bytes-311": Case(4, b"\x30\xff\xff\xff\xff\x01", CLOSED),
    "remaining-length-5-bytes-first": Case(None, b"\x10\xff\xff\xff\xff\x01", CLOSED),
    # SUBSCRIBE must have fixed-header flags 0b0010.
    "subscribe-reserved-flags-v5": Case(
        5, frame(0x80, _pid() + b"\x00" + utf8("a/b") + b"\x01"), V5_MALFORMED
    ),
    "subscribe-reserved-flags-311": Case(4, frame(0x83, _pid() + utf8("a/b") + b"\x01"), CLOSED),
    # PUBLISH QoS 3.
    "publish-qos3-v5": Case(5, frame(0x36, utf8("a/b") + _pid() + b"\x00" + b"x"), V5_MALFORMED),
    "publish-qos3-311": Case(4, frame(0x36, utf8("a/b") + _pid() + b"x"), CLOSED),
    # Ill-formed UTF-8 in a topic: bad continuation, over-long '/', UTF-16 surrogate.
    "topic-invalid-utf8-v5": Case(5, publish_packet(b"a/\xc3\x28", v5=True), V5_MALFORMED),
    "topic-overlong-utf8-v5": Case(5, publish_packet(b"a\xc0\xafb", v5=True), V5_MALFORMED),
    "topic-surrogate-v5": Case(5, publish_packet(b"a/\xed\xa0\x80", v5=True), V5_MALFORMED),
    "topic-invalid-utf8-311": Case(4, publish_packet(b"a/\xc3\x28"), CLOSED),
    # U+0000 in a topic.
    "topic-nul-v5": Case(5, publish_packet(b"a/\x00b", v5=True), V5_MALFORMED),
    "topic-nul-311": Case(4, publish_packet(b"a/\x00b"), CLOSED),
    # Wildcards in a PUBLISH topic: Topic Name invalid.
    "publish-wildcard-plus-v5": Case(5, publish_packet("a/+/b", v5=True), b"\xe0\x01\x90"),
    "publish-wildcard-hash-v5": Case(5, publish_packet("a/#", qos=1, v5=True), b"\xe0\x01\x90"),
    "publish-wildcard-311": Case(4, publish_packet("a/+"), CLOSED),
    # Anything but CONNECT first.
    "publish-before-connect": Case(None, publish_packet("a/b"), CLOSED),
    "pingreq-before-connect": Case(None, PINGREQ, CLOSED),
    "subscribe-before-connect": Case(None, subscribe_packet([("a/b", 1)]), CLOSED),
    # A second CONNECT.
    "second-connect-v5": Case(5, connect_packet("again", level=5), V5_PROTOCOL_ERROR),
    "second-connect-311": Case(4, connect_packet("again"), CLOSED),
    # Unknown protocol level / name: 3.1.1-style CONNACK return code 1.
    "protocol-level-6": Case(None, connect_packet("lvl6", level=6), UNSUPPORTED_LEVEL_311),
    "protocol-level-3-mqisdp": Case(
        None, connect_packet("lvl3", level=3, protocol_name="MQIsdp"), UNSUPPORTED_LEVEL_311
    ),
    "protocol-name-wrong": Case(
        None, connect_packet("name", level=4, protocol_name="MQTX"), UNSUPPORTED_LEVEL_311
    ),
    # CONNECT with the reserved flag (bit 0) set.
    "connect-reserved-flag-311": Case(None, connect_packet("rsv", extra_flags=0x01), CLOSED),
    # SUBSCRIBE filters the broker refuses in its SUBACK (the connection stays open).
    "subscribe-empty-filter-v5": Case(
        5, subscribe_packet([("", 1)], v5=True), b"\x90\x04\x00\x01\x00\x8f", closed=False
    ),
    "subscribe-empty-filter-311": Case(
        4, subscribe_packet([("", 1)]), b"\x90\x03\x00\x01\x80", closed=False
    ),
    "subscribe-hash-not-last-v5": Case(
        5, subscribe_packet([("a/#/b", 1)], v5=True), b"\x90\x04\x00\x01\x00\x8f", closed=False
    ),
    "subscribe-plus-in-level-v5": Case(
        5, subscribe_packet([("a+", 1)], v5=True), b"\x90\x04\x00\x01\x00\x8f", closed=False
    ),
    "subscribe-bad-filters-311": Case(
        4,
        subscribe_packet([("a/#/b", 1), ("a+", 0), ("ok/+", 1)]),
        b"\x90\x05\x00\x01\x80\x80\x01",
        closed=False,
    ),
    "subscribe-mixed-v5": Case(
        5,
        subscribe_packet([("ok/#", 1), ("a+", 1), ("ok/+/x", 0)], v5=True),
        b"\x90\x06\x00\x01\x00\x01\x8f\x00",
        closed=False,
    ),
    # Larger than the Maximum Packet Size (146 KB): refused from the fixed header alone.
    "packet-too-large-v5": Case(
        5, b"\x30" + vbi(TOO_LARGE) + utf8("a/b") + b"\x00" + b"x" * 1000, b"\xe0\x01\x95"
    ),
    "packet-too-large-311": Case(4, b"\x30" + vbi(TOO_LARGE) + utf8("a/b") + b"x" * 1000, CLOSED),
    # Garbage: an HTTP request, random bytes, random bytes after a good CONNECT.
    "garbage-http": Case(None, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", CLOSED),
    "garbage-random": Case(None, _garbage(1, 512), CLOSED),
    # 0x47 = PUBACK with flags 0b0111: Malformed (flags) or Protocol Error, both are right.
    "garbage-random-after-connect-v5": Case(5, _garbage(2, 512), (V5_MALFORMED, V5_PROTOCOL_ERROR)),
    "garbage-random-after-connect-311": Case(4, _garbage(3, 512), CLOSED),
    # Malformed MQTT 5 CONNECTs: closed (the CONNACK that should come first is checked,
    # as an expected failure, by test_malformed_v5_connect below).
    "connect-reserved-flag-v5": Case(
        None, connect_packet("rsv5", level=5, extra_flags=0x01), (CLOSED, b"\x20\x03\x00\x81\x00")
    ),
    "connect-duplicate-property-v5": Case(
        None,
        connect_packet(
            "dup5",
            level=5,
            properties=props(prop_u32(SESSION_EXPIRY, 10), prop_u32(SESSION_EXPIRY, 20)),
        ),
        (CLOSED, b"\x20\x03\x00\x82\x00"),
    ),
}

# An MQTT 5 client whose CONNECT is malformed still gets a CONNACK with the reason code
# (MQTT 5.0 sections 3.1.4 and 4.13.1) before the connection closes.
V5_CONNECT_CASES: dict[str, Case] = {
    "connack-reserved-flag-v5": Case(
        None, connect_packet("rsv5", level=5, extra_flags=0x01), b"\x20\x03\x00\x81\x00"
    ),
    "connack-duplicate-property-v5": Case(
        None,
        connect_packet(
            "dup5",
            level=5,
            properties=props(prop_u32(SESSION_EXPIRY, 10), prop_u32(SESSION_EXPIRY, 20)),
        ),
        b"\x20\x03\x00\x82\x00",
    ),
}


def _run_case(case: Case, clients: Clients, server: ServerProcess) -> None:
    # A healthy client, connected BEFORE the bad input.
    topic = unique("malformed/healthy")
    healthy = clients.connected()
    assert healthy.subscribe(topic) == [1]

    bad = clients.raw()
    if case.after is not None:
        _, code, _ = bad.connect(client_id("bad"), level=case.after)
        assert code == 0
    bad.send(case.data)
    expected = case.expected if isinstance(case.expected, tuple) else (case.expected,)
    if case.closed:
        answer = bad.read_until_closed()
        assert answer in expected, f"broker answered {answer!r}, expected {expected!r}"
    else:
        first, body = bad.read_packet()
        answer = frame(first, body)
        assert answer in expected, f"broker answered {answer!r}, expected {expected!r}"
        bad.ping()  # still open and in sync
        bad.send(DISCONNECT)
        assert bad.read_until_closed() == b""

    # The broker is unharmed: the healthy subscriber gets a message published afterwards.
    publisher = clients.connected(v5=True)
    payload = uuid.uuid4().bytes
    assert publisher.publish(topic, payload) == 0
    message = healthy.get()
    assert (message.topic, message.payload) == (topic, payload)
    assert server.health() == 200


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_malformed_input(case: Case, clients: Clients, server: ServerProcess) -> None:
    _run_case(case, clients, server)


@pytest.mark.parametrize("case", list(V5_CONNECT_CASES.values()), ids=list(V5_CONNECT_CASES))
def test_malformed_v5_connect(case: Case, clients: Clients, server: ServerProcess) -> None:
    _run_case(case, clients, server)


def test_malformed_input_in_one_write_with_connect(clients: Clients, server: ServerProcess) -> None:
    """CONNECT and a bad packet in the same TCP segment: CONNACK first, then DISCONNECT."""
    bad = clients.raw()
    bad.send(connect_packet(client_id("burst"), level=5) + publish_packet("a/#", v5=True))
    answer = bad.read_until_closed()
    assert answer[0] == 0x20, answer
    assert answer[3] == 0, answer  # CONNACK Success (flags, reason code, properties)
    assert answer.endswith(b"\xe0\x01\x90")
    assert server.health() == 200
