"""MQTT control packets (MQTT 5.0 chapter 3; 3.1.1 chapter 3) as immutable values.

One class per packet type, shared by both protocol versions: MQTT 3.1.1 packets simply
carry empty `properties` and default reason codes. Fields are keyword-only so that
packets read the same wherever they are built.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, TypeAlias

from retained.broker.properties import EMPTY_PROPERTIES, Properties


class PacketType(IntEnum):
    """The four high bits of a fixed header's first byte (MQTT 5.0 table 2-1)."""

    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14
    AUTH = 15  # MQTT 5 only; reserved in 3.1.1


class RetainHandling(IntEnum):
    """Subscription option (MQTT 5.0 section 3.8.3.1); 3 is a Protocol Error."""

    SEND_AT_SUBSCRIBE = 0
    SEND_AT_NEW_SUBSCRIBE = 1
    DO_NOT_SEND = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class Will:
    """The Will Message of a CONNECT (MQTT 5.0 section 3.1.3.2-4)."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    properties: Properties = EMPTY_PROPERTIES


@dataclass(frozen=True, slots=True, kw_only=True)
class Connect:
    packet_type: ClassVar[PacketType] = PacketType.CONNECT

    protocol_name: str = "MQTT"
    protocol_level: int
    clean_start: bool = True  # "Clean Session" in 3.1.1
    keep_alive: int = 0
    client_id: str
    will: Will | None = None
    username: str | None = None
    password: bytes | None = None
    properties: Properties = EMPTY_PROPERTIES


@dataclass(frozen=True, slots=True, kw_only=True)
class Connack:
    """`reason_code` is an MQTT 5 reason code or, for 3.1.1, a return code 0..5."""

    packet_type: ClassVar[PacketType] = PacketType.CONNACK

    session_present: bool = False
    reason_code: int = 0
    properties: Properties = EMPTY_PROPERTIES


@dataclass(slots=True, kw_only=True)
class Publish:
    """`packet_id` is None exactly when `qos` is 0 ([MQTT-2.2.1-2]).

    Not frozen, unlike the other packets: one is built for every message received, and a
    frozen dataclass's constructor costs twice as much. Treat it as immutable all the same."""

    packet_type: ClassVar[PacketType] = PacketType.PUBLISH

    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None
    properties: Properties = EMPTY_PROPERTIES


@dataclass(frozen=True, slots=True, kw_only=True)
class Puback:
    packet_type: ClassVar[PacketType] = PacketType.PUBACK

    packet_id: int
    reason_code: int = 0
    properties: Properties = EMPTY_PROPERTIES


@dataclass(frozen=True, slots=True, kw_only=True)
class Pubrec:
    """QoS 2, step 1 (this broker only decodes it, to refuse QoS 2 flows cleanly)."""

    packet_type: ClassVar[PacketType] = PacketType.PUBREC

    packet_id: int
    reason_code: int = 0
    properties: Properties = EMPTY_PROPERTIES


@dataclass(frozen=True, slots=True, kw_only=True)
class Pubrel:
    """QoS 2, step 2 (this broker only decodes it, to refuse QoS 2 flows cleanly)."""

    packet_type: ClassVar[PacketType] = PacketType.PUBREL

    packet_id: int
    reason_code: int = 0
    properties: Properties = EMPTY_PROPERTIES


@dataclass(frozen=True, slots=True, kw_only=True)
class Pubcomp:
    """QoS 2, step 3 (this broker only decodes it, to refuse QoS 2 flows cleanly)."""

    packet_type: ClassVar[PacketType] = PacketType.PUBCOMP

    packet_id: int
    reason_code: int = 0
    properties: Properties = EMPTY_PROPERTIES


@dataclass(frozen=True, slots=True, kw_only=True)
class Subscription:
    """A Topic Filter and its Subscription Options; only `qos` exists in 3.1.1."""

    topic_filter: str
    qos: int = 0
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = RetainHandling.SEND_AT_SUBSCRIBE


@dataclass(frozen=True, slots=True, kw_only=True)
class Subscribe:
    packet_type: ClassVar[PacketType] = PacketType.SUBSCRIBE

    packet_id: int
    subscriptions: tuple[Subscription, ...]
    properties: Properties = EMPTY_PROPERTIES


@dataclass(frozen=True, slots=True, kw_only=True)
class Suback:
    """One reason code (3.1.1: return code) per subscription, in order."""

    packet_type: ClassVar[PacketType] = PacketType.SUBACK

    packet_id: int
    reason_codes: tuple[int, ...]
    properties: Properties = EMPTY_PROPERTIES


@dataclass(frozen=True, slots=True, kw_only=True)
class Unsubscribe:
    packet_type: ClassVar[PacketType] = PacketType.UNSUBSCRIBE

    packet_id: int
    topic_filters: tuple[str, ...]
    properties: Properties = EMPTY_PROPERTIES


@dataclass(frozen=True, slots=True, kw_only=True)
class Unsuback:
    """MQTT 5 has one reason code per topic filter; 3.1.1 has none (empty tuple)."""

    packet_type: ClassVar[PacketType] = PacketType.UNSUBACK

    packet_id: int
    reason_codes: tuple[int, ...] = ()
    properties: Properties = EMPTY_PROPERTIES


@dataclass(frozen=True, slots=True)
class Pingreq:
    packet_type: ClassVar[PacketType] = PacketType.PINGREQ


@dataclass(frozen=True, slots=True)
class Pingresp:
    packet_type: ClassVar[PacketType] = PacketType.PINGRESP


@dataclass(frozen=True, slots=True, kw_only=True)
class Disconnect:
    """3.1.1 DISCONNECT has no reason code or properties (they stay at their defaults)."""

    packet_type: ClassVar[PacketType] = PacketType.DISCONNECT

    reason_code: int = 0
    properties: Properties = EMPTY_PROPERTIES


@dataclass(frozen=True, slots=True, kw_only=True)
class Auth:
    """MQTT 5 only (enhanced authentication, section 4.12)."""

    packet_type: ClassVar[PacketType] = PacketType.AUTH

    reason_code: int = 0
    properties: Properties = EMPTY_PROPERTIES


Packet: TypeAlias = (
    Connect
    | Connack
    | Publish
    | Puback
    | Pubrec
    | Pubrel
    | Pubcomp
    | Subscribe
    | Suback
    | Unsubscribe
    | Unsuback
    | Pingreq
    | Pingresp
    | Disconnect
    | Auth
)
