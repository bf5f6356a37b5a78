"""Hostile MQTT input on raw sockets, hand-built packets, against a real `manage.py serve`.

Each row connects (at the row's protocol level, or not at all when the hostile bytes are
the first ones), sends the hostile bytes and checks every packet the broker answers with:

* MQTT 5: the exact reason code in the CONNACK, DISCONNECT, SUBACK or PUBACK, and the
  connection closed where the spec asks for it;
* MQTT 3.1.1: the CONNACK return code, the SUBACK failure code 0x80, or a connection closed
  without a word (3.1.1 has no way to say why).

Where the broker must close the connection, a well-formed retained PUBLISH to the row's
marker topic follows the hostile bytes in the same write: a broker that shrugged the hostile
bytes off would store it. Every row then checks that nothing was stored under its marker and
that the broker is healthy (tests/hostile/conftest.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import Credentials
from tests.hostile.conftest import Referee, new_marker
from tests.interop.test_malformed import (
    DISCONNECT,
    PINGREQ,
    RECEIVE_MAXIMUM,
    SESSION_EXPIRY,
    TOPIC_ALIAS,
    RawClient,
    client_id,
    connect_packet,
    frame,
    prop_u16,
    prop_u32,
    props,
    publish_packet,
    subscribe_packet,
    utf8,
    vbi,
)
from tests.support.server import ServerProcess

MESSAGE_EXPIRY = 0x02
SUBSCRIPTION_IDENTIFIER = 0x0B
RESPONSE_TOPIC = 0x08
PAYLOAD_FORMAT_INDICATOR = 0x01
MAX_PAYLOAD = 128 * 1024
OVER_MAX_PACKET = 150_000  # > the 146 KB Maximum Packet Size
PID = b"\x00\x01"

# MQTT 5 reason codes
MALFORMED = 0x81
PROTOCOL_ERROR = 0x82
BAD_AUTHENTICATION_METHOD = 0x8C
CLIENT_ID_NOT_VALID = 0x85
BAD_USER_NAME_OR_PASSWORD = 0x86
KEEP_ALIVE_TIMEOUT = 0x8D
TOPIC_FILTER_INVALID = 0x8F
TOPIC_NAME_INVALID = 0x90
RECEIVE_MAXIMUM_EXCEEDED = 0x93
TOPIC_ALIAS_INVALID = 0x94
PACKET_TOO_LARGE = 0x95
QUOTA_EXCEEDED = 0x97
PAYLOAD_FORMAT_INVALID = 0x99
QOS_NOT_SUPPORTED = 0x9B
SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1
# MQTT 3.1.1
UNACCEPTABLE_PROTOCOL_VERSION = 0x01
IDENTIFIER_REJECTED = 0x02
BAD_CREDENTIALS_311 = 0x04
FAILURE_311 = 0x80

Answer = tuple[Any, ...]  # ("CONNACK", code) ("DISCONNECT", code) ("SUBACK", codes) ...


def connack(code: int) -> Answer:
    return ("CONNACK", code)


def disconnect(code: int) -> Answer:
    return ("DISCONNECT", code)


def suback(*codes: int) -> Answer:
    return ("SUBACK", codes)


def puback(code: int) -> Answer:
    return ("PUBACK", code)


CLOSED: list[Answer] = []  # closed without a word


@dataclass(frozen=True)
class Ctx:
    marker: str  # what the hostile input would have stored; must stay absent
    spare: str  # a second unique prefix, for the legitimate traffic some rows need first
    access_key_id: str


@dataclass(frozen=True)
class Row:
    """`bad` sent after a CONNECT at `level` (None: `bad` holds the first bytes).

    `answer`: every packet the broker sends (in order) before it closes the connection;
    with `closed=False`, what it answers on a connection that stays open (then checked with
    a PINGREQ). `tail_only`: `answer` is the end of what arrives, PUBACKs may come first.
    `quiet`: topics whose publishes the client must not receive afterwards (refused
    subscriptions). `seconds`: how long after `bad` the close must come (keep-alive).
    """

    level: int | None
    bad: Callable[[Ctx], bytes]
    answer: Sequence[Answer]
    closed: bool = True
    follow_up: bool = True
    tail_only: bool = False
    quiet: Callable[[Ctx], list[str]] | None = None
    keep_alive: int = 60
    seconds: tuple[float, float] | None = None


def _v5(level: int | None) -> bool:
    return level == 5


def pub(topic_of: Callable[[Ctx], str | bytes], **kwargs: Any) -> Callable[[Ctx], bytes]:
    """A retained QoS 1 PUBLISH (unless told otherwise) to the topic `topic_of` names."""
    defaults: dict[str, Any] = {"qos": 1, "retain": True}

    def build(ctx: Ctx) -> bytes:
        return publish_packet(topic_of(ctx), b"hostile", **(defaults | kwargs))

    return build


def const(data: bytes) -> Callable[[Ctx], bytes]:
    return lambda ctx: data


def marker(ctx: Ctx) -> str:
    return ctx.marker


def connect_v(level: int, **kwargs: Any) -> Callable[[Ctx], bytes]:
    return lambda ctx: connect_packet(client_id("hostile"), level=level, **kwargs)


def with_will(level: int, topic_suffix: str, qos: int = 1, **kwargs: Any) -> Callable[[Ctx], bytes]:
    """A CONNECT with a retained will to the marker (which must never be stored)."""

    def build(ctx: Ctx) -> bytes:
        will = (ctx.marker + topic_suffix, b"will", qos, True)
        return connect_packet(client_id("will"), level=level, will=will, **kwargs)

    return build


def long_client_id(level: int) -> Callable[[Ctx], bytes]:
    return lambda ctx: connect_packet(uuid.uuid4().hex + "x" * 97, level=level)  # 129 bytes


def wrong_password(level: int) -> Callable[[Ctx], bytes]:
    def build(ctx: Ctx) -> bytes:
        return connect_packet(
            client_id("pw"), level=level, username=ctx.access_key_id, password="not-the-secret"
        )

    return build


def subscriptions_then_51st(level: int) -> Callable[[Ctx], bytes]:
    """Fifty subscriptions (in SUBSCRIBEs of 8), then a 51st to the marker."""

    def build(ctx: Ctx) -> bytes:
        filters = [f"{ctx.spare}/{i}" for i in range(50)]
        packets = [
            subscribe_packet(
                [(f, 1) for f in filters[start : start + 8]],
                packet_id=start + 1,
                v5=_v5(level),
            )
            for start in range(0, 50, 8)
        ]
        packets.append(subscribe_packet([(ctx.marker, 1)], packet_id=99, v5=_v5(level)))
        return b"".join(packets)

    return build


FIFTY_GRANTED = [suback(*[1] * 8)] * 6 + [suback(1, 1)]


def nine_filters(level: int) -> Callable[[Ctx], bytes]:
    return lambda ctx: subscribe_packet([(f"{ctx.marker}/{i}", 1) for i in range(9)], v5=_v5(level))


def receive_maximum_burst(level: int) -> Callable[[Ctx], bytes]:
    """100 retained QoS 1 PUBLISHes (each waits for its commit, so all are unacknowledged),
    then a 101st, to the marker, which exceeds the server's Receive Maximum of 100."""

    def build(ctx: Ctx) -> bytes:
        legit = b"".join(
            publish_packet(
                f"{ctx.spare}/{i}", b"v", qos=1, retain=True, packet_id=i + 1, v5=_v5(level)
            )
            for i in range(100)
        )
        return legit + publish_packet(
            ctx.marker, b"101st", qos=1, retain=True, packet_id=101, v5=_v5(level)
        )

    return build


def topic_257_bytes(ctx: Ctx) -> str:
    return ctx.marker + "/" + "x" * (256 - len(ctx.marker))


def topic_8_slashes(ctx: Ctx) -> str:
    return ctx.marker + "/a" * 7  # the marker has one '/'


def v5_publish_with(
    *properties: bytes, topic: Callable[[Ctx], str] = marker
) -> Callable[[Ctx], bytes]:
    return pub(topic, v5=True, properties=props(*properties))


def connect_v5_with(*properties: bytes) -> Callable[[Ctx], bytes]:
    return connect_v(5, properties=props(*properties))


def raw_v5_connect_body(client_id_field: bytes) -> bytes:
    """A CONNECT (level 5, clean start, keep-alive 60, no properties) whose client id field
    is given as raw bytes (its length prefix included)."""
    return frame(0x10, utf8("MQTT") + b"\x05\x02\x00\x3c\x00" + client_id_field)


def garbage_after_connect() -> bytes:
    """PUBACK with flags 0b0111 (always malformed), then random bytes."""
    return b"\x47" + uuid.uuid4().bytes * 16


TLS_CLIENT_HELLO = bytes.fromhex("160301002d0100002903035a") + b"\x00" * 40

ROWS: list[Any] = [
    # --- CONNECT: protocol name and level --------------------------------------------------
    pytest.param(Row(None, connect_v(6), [connack(UNACCEPTABLE_PROTOCOL_VERSION)]), id="level-6"),
    pytest.param(
        Row(None, connect_v(255), [connack(UNACCEPTABLE_PROTOCOL_VERSION)]), id="level-255"
    ),
    pytest.param(
        Row(None, connect_v(3, protocol_name="MQIsdp"), [connack(UNACCEPTABLE_PROTOCOL_VERSION)]),
        id="level-3-mqisdp",
    ),
    pytest.param(
        Row(None, connect_v(4, protocol_name="MQTX"), [connack(UNACCEPTABLE_PROTOCOL_VERSION)]),
        id="protocol-name-wrong",
    ),
    # --- CONNECT: reserved flags, will flags -----------------------------------------------
    pytest.param(Row(None, connect_v(4, extra_flags=0x01), CLOSED), id="connect-reserved-flag-311"),
    pytest.param(
        Row(None, connect_v(5, extra_flags=0x01), [connack(MALFORMED)]),
        id="connect-reserved-flag-v5",
    ),
    pytest.param(Row(None, with_will(4, "", qos=3), CLOSED), id="will-qos3-311"),
    pytest.param(Row(None, with_will(5, "", qos=3), [connack(MALFORMED)]), id="will-qos3-v5"),
    pytest.param(
        Row(None, connect_v(4, extra_flags=0x20), CLOSED), id="will-retain-without-will-311"
    ),
    pytest.param(
        Row(None, connect_v(5, extra_flags=0x20), [connack(MALFORMED)]),
        id="will-retain-without-will-v5",
    ),
    pytest.param(
        Row(None, connect_v(4, password="secret"), CLOSED), id="password-without-username-311"
    ),
    pytest.param(
        Row(None, with_will(5, "/#"), [connack(TOPIC_NAME_INVALID)]), id="will-topic-wildcard-v5"
    ),
    pytest.param(
        Row(None, with_will(4, "/#"), CLOSED),
        id="will-topic-wildcard-311",
        # 3.1.1 [MQTT-3.1.4-1]: a CONNECT that does not conform is closed without a CONNACK;
        # return code 3 (Server unavailable) tells the client to come back later.
    ),
    # --- CONNECT: client id, credentials ---------------------------------------------------
    pytest.param(
        Row(None, long_client_id(4), [connack(IDENTIFIER_REJECTED)]), id="client-id-129-bytes-311"
    ),
    pytest.param(
        Row(None, long_client_id(5), [connack(CLIENT_ID_NOT_VALID)]), id="client-id-129-bytes-v5"
    ),
    pytest.param(
        Row(None, const(raw_v5_connect_body(b"\x00\x02\xff\xfe")), [connack(MALFORMED)]),
        id="client-id-invalid-utf8-v5",
    ),
    pytest.param(
        Row(None, const(raw_v5_connect_body(b"\x00\x03a\x00b")), [connack(MALFORMED)]),
        id="client-id-nul-v5",
    ),
    pytest.param(
        Row(None, const(connect_packet("", level=4, clean=False)), [connack(IDENTIFIER_REJECTED)]),
        id="empty-client-id-persistent-311",
    ),
    pytest.param(
        Row(None, wrong_password(4), [connack(BAD_CREDENTIALS_311)]), id="wrong-password-311"
    ),
    pytest.param(
        Row(None, wrong_password(5), [connack(BAD_USER_NAME_OR_PASSWORD)]),
        id="wrong-password-v5",
    ),
    # --- CONNECT: properties ---------------------------------------------------------------
    pytest.param(
        Row(
            None,
            connect_v5_with(prop_u32(SESSION_EXPIRY, 10), prop_u32(SESSION_EXPIRY, 20)),
            [connack(PROTOCOL_ERROR)],
        ),
        id="connect-duplicate-property-v5",
    ),
    pytest.param(
        Row(None, connect_v5_with(b"\x7f\x00"), [connack(MALFORMED)]),
        id="connect-unknown-property-v5",
    ),
    pytest.param(
        Row(None, connect_v5_with(prop_u16(TOPIC_ALIAS, 1)), [connack(MALFORMED)]),
        id="connect-property-not-for-connect-v5",
    ),
    pytest.param(
        Row(None, connect_v5_with(prop_u16(RECEIVE_MAXIMUM, 0)), [connack(PROTOCOL_ERROR)]),
        id="connect-receive-maximum-0-v5",
    ),
    # --- CONNECT: framing --------------------------------------------------------------------
    pytest.param(
        Row(None, const(raw_v5_connect_body(b"\x00\x20ab")), [connack(MALFORMED)]),
        id="connect-truncated-string-v5",
    ),
    pytest.param(
        Row(
            None,
            const(b"\x10" + vbi(OVER_MAX_PACKET) + utf8("MQTT") + b"\x05\x02\x00\x3c\x00"),
            [connack(PACKET_TOO_LARGE)],
            follow_up=False,
        ),
        id="connect-oversize-v5",
    ),
    pytest.param(
        Row(None, const(b"\x10\xff\xff\xff\xff\x01"), CLOSED), id="remaining-length-5-bytes-first"
    ),
    # --- anything before CONNECT -----------------------------------------------------------
    pytest.param(Row(None, pub(marker), CLOSED), id="publish-before-connect"),
    pytest.param(
        Row(None, const(subscribe_packet([("a/b", 1)])), CLOSED), id="subscribe-before-connect"
    ),
    pytest.param(Row(None, const(PINGREQ), CLOSED), id="pingreq-before-connect"),
    pytest.param(
        Row(None, const(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"), CLOSED), id="http-request"
    ),
    pytest.param(Row(None, const(TLS_CLIENT_HELLO), CLOSED), id="tls-client-hello"),
    # --- a second CONNECT ------------------------------------------------------------------
    pytest.param(Row(4, connect_v(4), CLOSED), id="second-connect-311"),
    pytest.param(Row(5, connect_v(5), [disconnect(PROTOCOL_ERROR)]), id="second-connect-v5"),
    # --- Remaining Length ------------------------------------------------------------------
    pytest.param(
        Row(4, const(b"\x30\xff\xff\xff\xff\x01"), CLOSED), id="remaining-length-5-bytes-311"
    ),
    pytest.param(
        Row(5, const(b"\x30\xff\xff\xff\xff\x01"), [disconnect(MALFORMED)]),
        id="remaining-length-5-bytes-v5",
    ),
    pytest.param(
        Row(5, const(b"\xc0\x80\x00"), [disconnect(MALFORMED)]),
        id="remaining-length-not-minimal-v5",
    ),
    # --- oversize --------------------------------------------------------------------------
    pytest.param(
        Row(
            4,
            lambda ctx: b"\x30" + vbi(OVER_MAX_PACKET) + utf8(ctx.marker) + b"x" * 1000,
            CLOSED,
            follow_up=False,
        ),
        id="packet-over-146KB-311",
    ),
    pytest.param(
        Row(
            5,
            lambda ctx: b"\x31" + vbi(OVER_MAX_PACKET) + utf8(ctx.marker) + b"\x00" + b"x" * 1000,
            [disconnect(PACKET_TOO_LARGE)],
            follow_up=False,
        ),
        id="packet-over-146KB-v5",
    ),
    pytest.param(
        Row(
            4,
            lambda ctx: publish_packet(ctx.marker, b"y" * (MAX_PAYLOAD + 1), qos=1, retain=True),
            CLOSED,
            follow_up=False,
        ),
        id="payload-128KB+1-311",
    ),
    pytest.param(
        Row(
            5,
            lambda ctx: publish_packet(
                ctx.marker, b"y" * (MAX_PAYLOAD + 1), qos=1, retain=True, v5=True
            ),
            [disconnect(PACKET_TOO_LARGE)],
            follow_up=False,
        ),
        id="payload-128KB+1-v5",
    ),
    # --- topic names: UTF-8, NUL, wildcards, limits ---------------------------------------
    pytest.param(
        Row(4, pub(lambda ctx: ctx.marker.encode() + b"/\xc3\x28"), CLOSED),
        id="topic-invalid-utf8-311",
    ),
    pytest.param(
        Row(
            5, pub(lambda ctx: ctx.marker.encode() + b"/\xc3\x28", v5=True), [disconnect(MALFORMED)]
        ),
        id="topic-invalid-utf8-v5",
    ),
    pytest.param(
        Row(
            5, pub(lambda ctx: ctx.marker.encode() + b"\xc0\xafx", v5=True), [disconnect(MALFORMED)]
        ),
        id="topic-overlong-utf8-slash-v5",
    ),
    pytest.param(
        Row(
            5,
            pub(lambda ctx: ctx.marker.encode() + b"/\xed\xa0\x80", v5=True),
            [disconnect(MALFORMED)],
        ),
        id="topic-utf16-surrogate-v5",
    ),
    pytest.param(
        Row(4, pub(lambda ctx: ctx.marker.encode() + b"/\x00"), CLOSED), id="topic-nul-311"
    ),
    pytest.param(
        Row(5, pub(lambda ctx: ctx.marker.encode() + b"/\x00", v5=True), [disconnect(MALFORMED)]),
        id="topic-nul-v5",
    ),
    pytest.param(
        Row(4, pub(lambda ctx: ctx.marker + "/+"), CLOSED), id="publish-wildcard-plus-311"
    ),
    pytest.param(
        Row(5, pub(lambda ctx: ctx.marker + "/+", v5=True), [disconnect(TOPIC_NAME_INVALID)]),
        id="publish-wildcard-plus-v5",
    ),
    pytest.param(
        Row(4, pub(lambda ctx: ctx.marker + "/#"), CLOSED), id="publish-wildcard-hash-311"
    ),
    pytest.param(
        Row(5, pub(lambda ctx: ctx.marker + "/#", v5=True), [disconnect(TOPIC_NAME_INVALID)]),
        id="publish-wildcard-hash-v5",
    ),
    pytest.param(Row(4, pub(topic_257_bytes), CLOSED), id="topic-257-bytes-311"),
    pytest.param(
        Row(5, pub(topic_257_bytes, v5=True), [disconnect(TOPIC_NAME_INVALID)]),
        id="topic-257-bytes-v5",
    ),
    pytest.param(Row(4, pub(topic_8_slashes), CLOSED), id="topic-8-slashes-311"),
    pytest.param(
        Row(5, pub(topic_8_slashes, v5=True), [disconnect(TOPIC_NAME_INVALID)]),
        id="topic-8-slashes-v5",
    ),
    pytest.param(Row(4, pub(lambda ctx: ""), CLOSED), id="topic-empty-311"),
    pytest.param(
        Row(5, pub(lambda ctx: "", v5=True), [disconnect(PROTOCOL_ERROR)]),
        id="topic-empty-without-alias-v5",
        # MQTT 5.0 section 3.3.2.1: "It is a Protocol Error if the Topic Name is zero length
        # and there is no Topic Alias."
    ),
    # --- PUBLISH fixed header: QoS 3, QoS 2, DUP at QoS 0, packet id 0 ---------------------
    pytest.param(
        Row(4, lambda ctx: frame(0x37, utf8(ctx.marker) + PID + b"x"), CLOSED),
        id="publish-qos3-311",
    ),
    pytest.param(
        Row(
            5,
            lambda ctx: frame(0x37, utf8(ctx.marker) + PID + b"\x00x"),
            [disconnect(MALFORMED)],
        ),
        id="publish-qos3-v5",
    ),
    pytest.param(Row(4, pub(marker, qos=2), CLOSED), id="publish-qos2-311"),
    pytest.param(
        Row(5, pub(marker, qos=2, v5=True), [disconnect(QOS_NOT_SUPPORTED)]), id="publish-qos2-v5"
    ),
    pytest.param(
        Row(5, lambda ctx: frame(0x39, utf8(ctx.marker) + b"\x00x"), [disconnect(MALFORMED)]),
        id="publish-dup-at-qos0-v5",
    ),
    pytest.param(Row(4, pub(marker, packet_id=0), CLOSED), id="publish-packet-id-0-311"),
    pytest.param(
        Row(5, pub(marker, packet_id=0, v5=True), [disconnect(MALFORMED)]),
        id="publish-packet-id-0-v5",
    ),
    # --- PUBLISH properties: duplicate, unknown, misplaced, topic aliases -----------------
    pytest.param(
        Row(
            5,
            v5_publish_with(prop_u32(MESSAGE_EXPIRY, 10), prop_u32(MESSAGE_EXPIRY, 20)),
            [disconnect(PROTOCOL_ERROR)],
        ),
        id="publish-duplicate-property-v5",
    ),
    pytest.param(
        Row(5, v5_publish_with(b"\x7f\x00"), [disconnect(MALFORMED)]),
        id="publish-unknown-property-v5",
    ),
    pytest.param(
        Row(5, v5_publish_with(prop_u32(SESSION_EXPIRY, 10)), [disconnect(MALFORMED)]),
        id="publish-property-not-for-publish-v5",
    ),
    pytest.param(
        Row(5, v5_publish_with(bytes((SUBSCRIPTION_IDENTIFIER, 1))), [disconnect(PROTOCOL_ERROR)]),
        id="publish-subscription-identifier-v5",
    ),
    pytest.param(
        Row(5, v5_publish_with(prop_u16(TOPIC_ALIAS, 0)), [disconnect(TOPIC_ALIAS_INVALID)]),
        id="topic-alias-0-v5",
    ),
    pytest.param(
        Row(5, v5_publish_with(prop_u16(TOPIC_ALIAS, 9)), [disconnect(TOPIC_ALIAS_INVALID)]),
        id="topic-alias-above-maximum-v5",
    ),
    pytest.param(
        Row(
            5,
            v5_publish_with(prop_u16(TOPIC_ALIAS, 3), topic=lambda ctx: ""),
            [disconnect(PROTOCOL_ERROR)],
        ),
        id="topic-alias-unknown-v5",
    ),
    pytest.param(
        Row(5, v5_publish_with(bytes((PAYLOAD_FORMAT_INDICATOR, 2))), [disconnect(PROTOCOL_ERROR)]),
        id="payload-format-indicator-2-v5",
        # Section 3.3.2.3.2 defines the values 0 and 1 only; 2 is stored and forwarded.
    ),
    pytest.param(
        Row(
            5,
            v5_publish_with(bytes((RESPONSE_TOPIC,)) + utf8("reply/#")),
            [disconnect(PROTOCOL_ERROR)],
        ),
        id="response-topic-wildcard-v5",
        # [MQTT-3.3.2-14] "The Response Topic MUST NOT contain wildcard characters".
    ),
    # --- PUBLISH refused with a PUBACK reason code (the connection stays open) ------------
    pytest.param(Row(4, pub(lambda ctx: "$aws/" + ctx.marker), CLOSED), id="retain-to-$aws-311"),
    pytest.param(
        Row(
            5,
            pub(lambda ctx: "$aws/" + ctx.marker, v5=True),
            [puback(TOPIC_NAME_INVALID)],
            closed=False,
        ),
        id="retain-to-$aws-v5",
    ),
    pytest.param(
        Row(
            5,
            lambda ctx: publish_packet(
                ctx.marker,
                b"\xff\xfe",
                qos=1,
                retain=True,
                v5=True,
                properties=props(bytes((PAYLOAD_FORMAT_INDICATOR, 1))),
            ),
            [puback(PAYLOAD_FORMAT_INVALID)],
            closed=False,
        ),
        id="payload-format-utf8-but-binary-v5",
    ),
    # --- Receive Maximum -------------------------------------------------------------------
    pytest.param(
        Row(4, receive_maximum_burst(4), CLOSED, tail_only=True, follow_up=False),
        id="receive-maximum-exceeded-311",
    ),
    pytest.param(
        Row(
            5,
            receive_maximum_burst(5),
            [disconnect(RECEIVE_MAXIMUM_EXCEEDED)],
            tail_only=True,
            follow_up=False,
        ),
        id="receive-maximum-exceeded-v5",
    ),
    # --- other packets: reserved flags and types, server-only packets ----------------------
    pytest.param(
        Row(4, lambda ctx: frame(0x83, PID + utf8(ctx.marker) + b"\x01"), CLOSED),
        id="subscribe-reserved-flags-311",
    ),
    pytest.param(
        Row(
            5,
            lambda ctx: frame(0x80, PID + b"\x00" + utf8(ctx.marker) + b"\x01"),
            [disconnect(MALFORMED)],
        ),
        id="subscribe-reserved-flags-v5",
    ),
    pytest.param(
        Row(5, const(b"\xc1\x00"), [disconnect(MALFORMED)]), id="pingreq-reserved-flags-v5"
    ),
    pytest.param(Row(4, const(b"\xe1\x00"), CLOSED), id="disconnect-reserved-flags-311"),
    pytest.param(Row(4, const(b"\x00\x00"), CLOSED), id="reserved-packet-type-0-311"),
    pytest.param(
        Row(5, const(b"\x00\x00"), [disconnect(MALFORMED)]), id="reserved-packet-type-0-v5"
    ),
    pytest.param(Row(4, const(b"\xf0\x00"), CLOSED), id="auth-packet-311"),
    pytest.param(
        Row(5, const(b"\xf0\x00"), [disconnect(BAD_AUTHENTICATION_METHOD)]), id="auth-packet-v5"
    ),
    pytest.param(
        Row(5, const(b"\x20\x03\x00\x00\x00"), [disconnect(PROTOCOL_ERROR)]),
        id="connack-from-client-v5",
    ),
    pytest.param(Row(5, const(b"\x62\x02" + PID), [disconnect(PROTOCOL_ERROR)]), id="pubrel-v5"),
    pytest.param(Row(4, const(garbage_after_connect()), CLOSED), id="garbage-after-connect-311"),
    pytest.param(
        Row(5, const(garbage_after_connect()), [disconnect(MALFORMED)]),
        id="garbage-after-connect-v5",
    ),
    # --- SUBSCRIBE: QoS 3, options, empty ----------------------------------------------------
    pytest.param(
        Row(4, lambda ctx: subscribe_packet([(ctx.marker, 3)]), CLOSED), id="subscribe-qos3-311"
    ),
    pytest.param(
        Row(
            5,
            lambda ctx: subscribe_packet([(ctx.marker, 3)], v5=True),
            [disconnect(PROTOCOL_ERROR)],
        ),
        id="subscribe-qos3-v5",
    ),
    pytest.param(
        Row(
            5,
            lambda ctx: frame(
                0x82, PID + props(bytes((SUBSCRIPTION_IDENTIFIER, 1))) + utf8(ctx.marker) + b"\x01"
            ),
            [disconnect(SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED)],
        ),
        id="subscription-identifier-not-supported-v5",
        # Section 3.2.2.3.12: the CONNACK says Subscription Identifier Available 0, so a
        # SUBSCRIBE with one is a Protocol Error: DISCONNECT 0xA1.
    ),
    pytest.param(
        Row(
            5, lambda ctx: subscribe_packet([(ctx.marker, 0xC1)], v5=True), [disconnect(MALFORMED)]
        ),
        id="subscribe-options-reserved-bits-v5",
    ),
    pytest.param(
        Row(
            5,
            lambda ctx: subscribe_packet([(ctx.marker, 0x31)], v5=True),
            [disconnect(PROTOCOL_ERROR)],
        ),
        id="subscribe-retain-handling-3-v5",
    ),
    pytest.param(Row(4, const(frame(0x82, PID)), CLOSED), id="subscribe-without-filters-311"),
    pytest.param(
        Row(5, const(frame(0x82, PID + b"\x00")), [disconnect(PROTOCOL_ERROR)]),
        id="subscribe-without-filters-v5",
    ),
    pytest.param(
        Row(5, const(frame(0xA2, PID + b"\x00")), [disconnect(PROTOCOL_ERROR)]),
        id="unsubscribe-without-filters-v5",
    ),
    # --- SUBSCRIBE: filters refused in the SUBACK (the connection stays open) -------------
    pytest.param(
        Row(4, const(subscribe_packet([("", 1)])), [suback(FAILURE_311)], closed=False),
        id="filter-empty-311",
    ),
    pytest.param(
        Row(
            5,
            const(subscribe_packet([("", 1)], v5=True)),
            [suback(TOPIC_FILTER_INVALID)],
            closed=False,
        ),
        id="filter-empty-v5",
    ),
    pytest.param(
        Row(
            4,
            lambda ctx: subscribe_packet([(ctx.marker + "/#/x", 1)]),
            [suback(FAILURE_311)],
            closed=False,
        ),
        id="filter-hash-not-last-311",
    ),
    pytest.param(
        Row(
            5,
            lambda ctx: subscribe_packet([(ctx.marker + "/#/x", 1)], v5=True),
            [suback(TOPIC_FILTER_INVALID)],
            closed=False,
        ),
        id="filter-hash-not-last-v5",
    ),
    pytest.param(
        Row(
            4,
            lambda ctx: subscribe_packet([(ctx.marker + "/a+", 1)]),
            [suback(FAILURE_311)],
            closed=False,
        ),
        id="filter-a+-311",
    ),
    pytest.param(
        Row(
            5,
            lambda ctx: subscribe_packet([(ctx.marker + "/a+", 1)], v5=True),
            [suback(TOPIC_FILTER_INVALID)],
            closed=False,
        ),
        id="filter-a+-v5",
    ),
    pytest.param(
        Row(
            5,
            lambda ctx: subscribe_packet([(ctx.marker + "/a#", 1)], v5=True),
            [suback(TOPIC_FILTER_INVALID)],
            closed=False,
        ),
        id="filter-a#-v5",
    ),
    pytest.param(
        Row(
            5,
            lambda ctx: subscribe_packet([("$share//" + ctx.marker, 1)], v5=True),
            [suback(TOPIC_FILTER_INVALID)],
            closed=False,
        ),
        id="filter-share-without-name-v5",
    ),
    pytest.param(
        Row(
            5,
            lambda ctx: subscribe_packet([("$share/g/" + ctx.marker, 0x05)], v5=True),
            [disconnect(PROTOCOL_ERROR)],
        ),
        id="no-local-on-shared-subscription-v5",
        # [MQTT-3.8.3-4] "It is a Protocol Error to set the No Local bit to 1 on a Shared
        # Subscription"; 0x82 is not even a SUBACK reason code.
    ),
    pytest.param(
        Row(
            5,
            lambda ctx: subscribe_packet([(ctx.marker + "/a" * 8, 1)], v5=True),
            [suback(TOPIC_FILTER_INVALID)],
            closed=False,
        ),
        id="filter-9-slashes-v5",
    ),
    pytest.param(
        Row(
            4,
            nine_filters(4),
            [suback(*[FAILURE_311] * 9)],
            closed=False,
            quiet=lambda ctx: [f"{ctx.marker}/{i}" for i in range(9)],
        ),
        id="nine-filters-311",
    ),
    pytest.param(
        Row(
            5,
            nine_filters(5),
            [suback(*[QUOTA_EXCEEDED] * 9)],
            closed=False,
            quiet=lambda ctx: [f"{ctx.marker}/{i}" for i in range(9)],
        ),
        id="nine-filters-v5",
    ),
    pytest.param(
        Row(
            4,
            subscriptions_then_51st(4),
            [*FIFTY_GRANTED, suback(FAILURE_311)],
            closed=False,
            quiet=lambda ctx: [ctx.marker],
        ),
        id="51st-subscription-311",
    ),
    pytest.param(
        Row(
            5,
            subscriptions_then_51st(5),
            [*FIFTY_GRANTED, suback(QUOTA_EXCEEDED)],
            closed=False,
            quiet=lambda ctx: [ctx.marker],
        ),
        id="51st-subscription-v5",
    ),
    # --- DISCONNECT ----------------------------------------------------------------------------
    pytest.param(
        Row(5, const(frame(0xE0, b"\x05")), [disconnect(MALFORMED)]),
        id="disconnect-unknown-reason-v5",
    ),
    pytest.param(
        Row(
            5,
            const(frame(0xE0, b"\x00" + props(prop_u32(SESSION_EXPIRY, 60)))),
            [disconnect(PROTOCOL_ERROR)],
        ),
        id="disconnect-sets-session-expiry-v5",
    ),
    # --- keep-alive silence (this server's minimum keep-alive is 1 s) ----------------------
    pytest.param(
        Row(4, const(b""), CLOSED, follow_up=False, keep_alive=1, seconds=(1.0, 2.5)),
        id="keep-alive-silence-311",
    ),
    pytest.param(
        Row(
            5,
            const(b""),
            [disconnect(KEEP_ALIVE_TIMEOUT)],
            follow_up=False,
            keep_alive=1,
            seconds=(1.0, 2.5),
        ),
        id="keep-alive-silence-v5",
    ),
]


def summarize(data: bytes, level: int | None) -> list[Answer]:
    """What the broker sent, packet by packet, as ("CONNACK", code) and so on."""
    packets: list[Answer] = []
    position = 0
    while position < len(data):
        first = data[position]
        length, shift, position = 0, 0, position + 1
        while True:
            byte = data[position]
            position += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        body = data[position : position + length]
        position += length
        packets.append(_summary(first, body, level))
    return packets


def _summary(first: int, body: bytes, level: int | None) -> Answer:
    kind = first >> 4
    if first == 0x20:
        return connack(body[1])
    if first == 0xE0:
        return disconnect(body[0] if body else 0)
    if first == 0x40:
        return puback(body[2] if len(body) > 2 else 0)
    if first == 0x90:
        codes = body[2:]
        if level == 5:
            codes = codes[1 + codes[0] :]  # short properties only
        return suback(*codes)
    return (f"packet type {kind} flags 0x{first & 0x0F:X}", body)


def follow_up(ctx: Ctx, level: int | None) -> bytes:
    """A well-formed retained PUBLISH to the marker: stored if the hostile bytes before it
    were shrugged off."""
    if level is None:
        return connect_packet(client_id("follow"), level=5) + publish_packet(
            ctx.marker, b"follow-up", qos=1, retain=True, packet_id=7, v5=True
        )
    return publish_packet(ctx.marker, b"follow-up", qos=1, retain=True, packet_id=7, v5=level == 5)


def read_packets(client: RawClient, count: int, level: int | None) -> list[Answer]:
    answers = []
    for _ in range(count):
        first, body = client.read_packet()
        answers.append(_summary(first, body, level))
    return answers


def assert_quiet(port: int, client: RawClient, topics: list[str]) -> None:
    """Publishes to `topics` (by another client) do not reach `client`."""
    publisher = RawClient(port)
    try:
        assert publisher.connect(client_id("quiet"), level=5)[1] == 0
        for number, topic in enumerate(topics, start=1):
            publisher.send(
                publish_packet(topic, b"must not arrive", qos=1, packet_id=number, v5=True)
            )
            assert publisher.read_packet()[0] == 0x40
        client.assert_silent(0.3)
    finally:
        publisher.close()


@pytest.mark.parametrize("row", ROWS)
def test_hostile_mqtt_input(
    row: Row,
    hostile_server: ServerProcess,
    hostile_credentials: Credentials,
    referee: Referee,
) -> None:
    ctx = Ctx(
        marker=new_marker(),
        spare=new_marker(),
        access_key_id=hostile_credentials.access_key_id,
    )
    port = hostile_server.mqtt_port
    client = RawClient(port)
    try:
        if row.level is not None:
            _, code, _ = client.connect(
                client_id("hostile"), level=row.level, keep_alive=row.keep_alive
            )
            assert code == 0
        data = row.bad(ctx)
        if row.closed and row.follow_up:
            data += follow_up(ctx, row.level)
        started = time.monotonic()
        client.send(data)
        if row.closed:
            wait = row.seconds[1] + 1.0 if row.seconds else 2.0
            received = summarize(client.read_until_closed(timeout=wait), row.level)
            elapsed = time.monotonic() - started
            if row.tail_only:
                head = received[: len(received) - len(row.answer)]
                assert all(packet[0] == "PUBACK" for packet in head), received
                received = received[len(head) :]
            assert received == list(row.answer)
            if row.seconds is not None:
                low, high = row.seconds
                assert low <= elapsed <= high, f"closed after {elapsed:.2f} s"
        else:
            assert read_packets(client, len(row.answer), row.level) == list(row.answer)
            client.ping()  # still open and in step
            if row.quiet is not None:
                assert_quiet(port, client, row.quiet(ctx))
            client.send(DISCONNECT)
            assert client.read_until_closed() == b""
    finally:
        client.close()
    # Healthy first: the probe's retained write commits after any write the hostile input
    # might have queued, so that the check for it cannot run ahead of it.
    referee.assert_healthy()
    referee.assert_nothing_stored(ctx.marker)
