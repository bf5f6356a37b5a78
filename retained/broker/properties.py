"""MQTT 5 properties (MQTT 5.0 section 2.2.2): the model and the property block codec.

A property block is a Variable Byte Integer length followed by (identifier, value)
pairs. Which identifiers may appear depends on the packet (or on the Will, inside
CONNECT), so both directions take a PropertyContext.

Spec ids in comments are MQTT 5.0 ids; MQTT 3.1.1 has no properties.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from enum import Enum, IntEnum
from typing import Any, Final, NamedTuple

from retained.broker._wire import (
    ProtocolError,
    Reader,
    encode_binary,
    encode_four_byte_int,
    encode_two_byte_int,
    encode_utf8,
    encode_variable_byte_int,
    malformed,
    protocol_error,
)
from retained.broker.reason_codes import ReasonCode


class PropertyType(Enum):
    """Wire data types of property values (MQTT 5.0 section 1.5)."""

    BYTE = "Byte"
    TWO_BYTE_INT = "Two Byte Integer"
    FOUR_BYTE_INT = "Four Byte Integer"
    VARIABLE_BYTE_INT = "Variable Byte Integer"
    UTF8_STRING = "UTF-8 Encoded String"
    BINARY_DATA = "Binary Data"
    UTF8_STRING_PAIR = "UTF-8 String Pair"


class PropertyContext(Enum):
    """Where a property block sits: a packet type, or the Will Properties of CONNECT."""

    CONNECT = "CONNECT"
    WILL = "Will Properties"
    CONNACK = "CONNACK"
    PUBLISH = "PUBLISH"
    PUBACK = "PUBACK"
    PUBREC = "PUBREC"
    PUBREL = "PUBREL"
    PUBCOMP = "PUBCOMP"
    SUBSCRIBE = "SUBSCRIBE"
    SUBACK = "SUBACK"
    UNSUBSCRIBE = "UNSUBSCRIBE"
    UNSUBACK = "UNSUBACK"
    DISCONNECT = "DISCONNECT"
    AUTH = "AUTH"


class PropertyId(IntEnum):
    """The 27 property identifiers of MQTT 5.0 table 2-4.

    The lower-cased member name is the name of the matching Properties field.
    """

    PAYLOAD_FORMAT_INDICATOR = 0x01
    MESSAGE_EXPIRY_INTERVAL = 0x02
    CONTENT_TYPE = 0x03
    RESPONSE_TOPIC = 0x08
    CORRELATION_DATA = 0x09
    SUBSCRIPTION_IDENTIFIER = 0x0B
    SESSION_EXPIRY_INTERVAL = 0x11
    ASSIGNED_CLIENT_IDENTIFIER = 0x12
    SERVER_KEEP_ALIVE = 0x13
    AUTHENTICATION_METHOD = 0x15
    AUTHENTICATION_DATA = 0x16
    REQUEST_PROBLEM_INFORMATION = 0x17
    WILL_DELAY_INTERVAL = 0x18
    REQUEST_RESPONSE_INFORMATION = 0x19
    RESPONSE_INFORMATION = 0x1A
    SERVER_REFERENCE = 0x1C
    REASON_STRING = 0x1F
    RECEIVE_MAXIMUM = 0x21
    TOPIC_ALIAS_MAXIMUM = 0x22
    TOPIC_ALIAS = 0x23
    MAXIMUM_QOS = 0x24
    RETAIN_AVAILABLE = 0x25
    USER_PROPERTY = 0x26
    MAXIMUM_PACKET_SIZE = 0x27
    WILDCARD_SUBSCRIPTION_AVAILABLE = 0x28
    SUBSCRIPTION_IDENTIFIER_AVAILABLE = 0x29
    SHARED_SUBSCRIPTION_AVAILABLE = 0x2A

    @property
    def value_type(self) -> PropertyType:
        return _SPECS[self].value_type

    @property
    def contexts(self) -> frozenset[PropertyContext]:
        """The packets (and Will) in which this property may appear."""
        return _SPECS[self].contexts

    @property
    def field_name(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Properties:
    """The properties of one packet (or Will); None / () means absent.

    user_property keeps wire order and duplicates ([MQTT-3.3.2-18] asks a server to
    forward them unaltered and in order). subscription_identifier is a tuple because a
    server's PUBLISH carries one per matching subscription; elsewhere it has at most one.
    The Byte properties whose only legal values are 0 and 1 are bools.
    """

    payload_format_indicator: int | None = None
    message_expiry_interval: int | None = None
    content_type: str | None = None
    response_topic: str | None = None
    correlation_data: bytes | None = None
    subscription_identifier: tuple[int, ...] = ()
    session_expiry_interval: int | None = None
    assigned_client_identifier: str | None = None
    server_keep_alive: int | None = None
    authentication_method: str | None = None
    authentication_data: bytes | None = None
    request_problem_information: bool | None = None
    will_delay_interval: int | None = None
    request_response_information: bool | None = None
    response_information: str | None = None
    server_reference: str | None = None
    reason_string: str | None = None
    receive_maximum: int | None = None
    topic_alias_maximum: int | None = None
    topic_alias: int | None = None
    maximum_qos: int | None = None
    retain_available: bool | None = None
    user_property: tuple[tuple[str, str], ...] = ()
    maximum_packet_size: int | None = None
    wildcard_subscription_available: bool | None = None
    subscription_identifier_available: bool | None = None
    shared_subscription_available: bool | None = None

    def __repr__(self) -> str:
        # Only the properties present: the full 27-field form buries the interesting one.
        present = (
            f"{field.name}={value!r}"
            for field in fields(self)
            if (value := getattr(self, field.name)) is not None and value != ()
        )
        return f"Properties({', '.join(present)})"


EMPTY_PROPERTIES: Final = Properties()


class _PropertySpec(NamedTuple):
    ident: PropertyId
    value_type: PropertyType
    contexts: frozenset[PropertyContext]


def _spec(ident: PropertyId, value_type: PropertyType, *contexts: PropertyContext) -> _PropertySpec:
    return _PropertySpec(ident, value_type, frozenset(contexts))


_P = PropertyId
_T = PropertyType
_C = PropertyContext
_ACKS_WITH_REASON_STRING = (
    _C.CONNACK,
    _C.PUBACK,
    _C.PUBREC,
    _C.PUBREL,
    _C.PUBCOMP,
    _C.SUBACK,
    _C.UNSUBACK,
    _C.DISCONNECT,
    _C.AUTH,
)

# MQTT 5.0 table 2-4: identifier, type, and the packets that may carry it.
_SPECS: Final[dict[PropertyId, _PropertySpec]] = {
    spec.ident: spec
    for spec in (
        _spec(_P.PAYLOAD_FORMAT_INDICATOR, _T.BYTE, _C.PUBLISH, _C.WILL),
        _spec(_P.MESSAGE_EXPIRY_INTERVAL, _T.FOUR_BYTE_INT, _C.PUBLISH, _C.WILL),
        _spec(_P.CONTENT_TYPE, _T.UTF8_STRING, _C.PUBLISH, _C.WILL),
        _spec(_P.RESPONSE_TOPIC, _T.UTF8_STRING, _C.PUBLISH, _C.WILL),
        _spec(_P.CORRELATION_DATA, _T.BINARY_DATA, _C.PUBLISH, _C.WILL),
        _spec(_P.SUBSCRIPTION_IDENTIFIER, _T.VARIABLE_BYTE_INT, _C.PUBLISH, _C.SUBSCRIBE),
        _spec(_P.SESSION_EXPIRY_INTERVAL, _T.FOUR_BYTE_INT, _C.CONNECT, _C.CONNACK, _C.DISCONNECT),
        _spec(_P.ASSIGNED_CLIENT_IDENTIFIER, _T.UTF8_STRING, _C.CONNACK),
        _spec(_P.SERVER_KEEP_ALIVE, _T.TWO_BYTE_INT, _C.CONNACK),
        _spec(_P.AUTHENTICATION_METHOD, _T.UTF8_STRING, _C.CONNECT, _C.CONNACK, _C.AUTH),
        _spec(_P.AUTHENTICATION_DATA, _T.BINARY_DATA, _C.CONNECT, _C.CONNACK, _C.AUTH),
        _spec(_P.REQUEST_PROBLEM_INFORMATION, _T.BYTE, _C.CONNECT),
        _spec(_P.WILL_DELAY_INTERVAL, _T.FOUR_BYTE_INT, _C.WILL),
        _spec(_P.REQUEST_RESPONSE_INFORMATION, _T.BYTE, _C.CONNECT),
        _spec(_P.RESPONSE_INFORMATION, _T.UTF8_STRING, _C.CONNACK),
        _spec(_P.SERVER_REFERENCE, _T.UTF8_STRING, _C.CONNACK, _C.DISCONNECT),
        _spec(_P.REASON_STRING, _T.UTF8_STRING, *_ACKS_WITH_REASON_STRING),
        _spec(_P.RECEIVE_MAXIMUM, _T.TWO_BYTE_INT, _C.CONNECT, _C.CONNACK),
        _spec(_P.TOPIC_ALIAS_MAXIMUM, _T.TWO_BYTE_INT, _C.CONNECT, _C.CONNACK),
        _spec(_P.TOPIC_ALIAS, _T.TWO_BYTE_INT, _C.PUBLISH),
        _spec(_P.MAXIMUM_QOS, _T.BYTE, _C.CONNACK),
        _spec(_P.RETAIN_AVAILABLE, _T.BYTE, _C.CONNACK),
        _spec(_P.USER_PROPERTY, _T.UTF8_STRING_PAIR, *PropertyContext),
        _spec(_P.MAXIMUM_PACKET_SIZE, _T.FOUR_BYTE_INT, _C.CONNECT, _C.CONNACK),
        _spec(_P.WILDCARD_SUBSCRIPTION_AVAILABLE, _T.BYTE, _C.CONNACK),
        _spec(_P.SUBSCRIPTION_IDENTIFIER_AVAILABLE, _T.BYTE, _C.CONNACK),
        _spec(_P.SHARED_SUBSCRIPTION_AVAILABLE, _T.BYTE, _C.CONNACK),
    )
}

_ALLOWED: Final[dict[PropertyContext, frozenset[int]]] = {
    context: frozenset(spec.ident for spec in _SPECS.values() if context in spec.contexts)
    for context in PropertyContext
}

# "It is a Protocol Error to include <property> more than once, or to have a value other
# than 0 or 1" (sections 3.1.2.11.6-7, 3.2.2.3.4-5, 3.2.2.3.11-13). Decoded as bool.
_ZERO_OR_ONE: Final = frozenset(
    {
        _P.REQUEST_PROBLEM_INFORMATION,
        _P.REQUEST_RESPONSE_INFORMATION,
        _P.RETAIN_AVAILABLE,
        _P.WILDCARD_SUBSCRIPTION_AVAILABLE,
        _P.SUBSCRIPTION_IDENTIFIER_AVAILABLE,
        _P.SHARED_SUBSCRIPTION_AVAILABLE,
    }
)


def allowed_properties(context: PropertyContext) -> frozenset[PropertyId]:
    """The properties a block in `context` may contain (MQTT 5.0 table 2-4)."""
    return frozenset(PropertyId(ident) for ident in _ALLOWED[context])


def _may_repeat(ident: int, context: PropertyContext) -> bool:
    # User Property may appear any number of times everywhere (section 2.2.2.2); a
    # Subscription Identifier more than once only in a PUBLISH (3.3.2.3.8), never in a
    # SUBSCRIBE (3.8.2.1.2).
    return ident == _P.USER_PROPERTY or (
        ident == _P.SUBSCRIPTION_IDENTIFIER and context is _C.PUBLISH
    )


# --------------------------------------------------------------------------- decoding


def _read_string_pair(reader: Reader, what: str) -> tuple[str, str]:
    return reader.utf8(what), reader.utf8(what)


_VALUE_READERS: Final[dict[PropertyType, Callable[[Reader, str], Any]]] = {
    _T.BYTE: Reader.byte,
    _T.TWO_BYTE_INT: Reader.two_byte_int,
    _T.FOUR_BYTE_INT: Reader.four_byte_int,
    _T.VARIABLE_BYTE_INT: Reader.variable_byte_int,
    _T.UTF8_STRING: Reader.utf8,
    _T.BINARY_DATA: Reader.binary,
    _T.UTF8_STRING_PAIR: _read_string_pair,
}


def _zero_or_one(ident: PropertyId) -> Callable[[int], int]:
    def check(value: int) -> int:
        if value > 1:
            raise protocol_error(f"{ident.name} must be 0 or 1, not {value}")
        return value

    return check


def _as_bool(ident: PropertyId) -> Callable[[int], bool]:
    zero_or_one = _zero_or_one(ident)
    return lambda value: bool(zero_or_one(value))


def _not_zero(ident: PropertyId) -> Callable[[int], int]:
    def check(value: int) -> int:
        if not value:
            raise protocol_error(f"{ident.name} must not be 0")
        return value

    return check


def _topic_alias_not_zero(value: int) -> int:
    if not value:
        # [MQTT-3.3.2-8]; section 3.3.2.3.4 names the reason code.
        raise ProtocolError(ReasonCode.TOPIC_ALIAS_INVALID, "Topic Alias must not be 0")
    return value


# The values the spec calls errors; everything else is taken as read. Receive Maximum,
# Maximum Packet Size and Subscription Identifier of 0: sections 3.1.2.11.3-4, 3.2.2.3.3,
# 3.2.2.3.6, 3.8.2.1.2. Maximum QoS other than 0 or 1: section 3.2.2.3.4.
_VALUE_CHECKS: Final[dict[PropertyId, Callable[[Any], Any]]] = {
    **{ident: _as_bool(ident) for ident in _ZERO_OR_ONE},
    _P.MAXIMUM_QOS: _zero_or_one(_P.MAXIMUM_QOS),
    # Section 3.3.2.3.2 defines 0 (unspecified bytes) and 1 (UTF-8) only.
    _P.PAYLOAD_FORMAT_INDICATOR: _zero_or_one(_P.PAYLOAD_FORMAT_INDICATOR),
    _P.RECEIVE_MAXIMUM: _not_zero(_P.RECEIVE_MAXIMUM),
    _P.MAXIMUM_PACKET_SIZE: _not_zero(_P.MAXIMUM_PACKET_SIZE),
    _P.SUBSCRIPTION_IDENTIFIER: _not_zero(_P.SUBSCRIPTION_IDENTIFIER),
    _P.TOPIC_ALIAS: _topic_alias_not_zero,
}


class _PropertyDecoding(NamedTuple):
    ident: PropertyId
    field_name: str
    read: Callable[[Reader, str], Any]
    check: Callable[[Any], Any] | None


# Looked up once per property on the hot path, so everything is resolved here.
_DECODING: Final[dict[int, _PropertyDecoding]] = {
    int(ident): _PropertyDecoding(
        ident, ident.field_name, _VALUE_READERS[spec.value_type], _VALUE_CHECKS.get(ident)
    )
    for ident, spec in _SPECS.items()
}
_REPEATABLE: Final[dict[PropertyContext, frozenset[int]]] = {
    context: frozenset(ident for ident in _ALLOWED[context] if _may_repeat(ident, context))
    for context in PropertyContext
}


def decode_properties(reader: Reader, context: PropertyContext) -> Properties:
    """Read a property block (its length, then its properties) at the reader's position."""
    length = reader.variable_byte_int("property length")
    if not length:
        return EMPTY_PROPERTIES
    block = Reader(reader.take(length, "properties"))
    allowed = _ALLOWED[context]
    repeatable = _REPEATABLE[context]
    fields: dict[str, Any] = {}
    repeated: dict[str, list[Any]] = {}
    while block.remaining:
        ident = block.variable_byte_int("property identifier")
        if ident not in allowed:
            # Section 2.2.2.2: "A Control Packet which contains an Identifier which is not
            # valid for its packet type ... is a Malformed Packet."
            raise malformed(f"property 0x{ident:02X} is not allowed in {context.value}")
        decoding = _DECODING[ident]
        name = decoding.field_name
        value = decoding.read(block, name)
        if decoding.check is not None:
            value = decoding.check(value)
        if ident in repeatable:
            repeated.setdefault(name, []).append(value)
        elif name in fields:
            # Every property but these two: "It is a Protocol Error to include <it> more
            # than once" (section 2.2.2.2 and each property's description).
            raise protocol_error(f"{decoding.ident.name} appears more than once")
        elif ident == _P.SUBSCRIPTION_IDENTIFIER:
            fields[name] = (value,)  # the field is a tuple even where it may not repeat
        else:
            fields[name] = value
    for name, values in repeated.items():
        fields[name] = tuple(values)
    _check_authentication(fields)
    return Properties(**fields)


def _check_authentication(fields: dict[str, Any]) -> None:
    # Sections 3.1.2.11.10, 3.2.2.3.18, 3.15.2.2.3: "It is a Protocol Error to include
    # Authentication Data if there is no Authentication Method."
    if "authentication_data" in fields and "authentication_method" not in fields:
        raise protocol_error("Authentication Data without Authentication Method")


# --------------------------------------------------------------------------- encoding


def _encode_byte(value: int) -> bytes:
    return bytes((int(value),))


def _encode_string_pair(pair: tuple[str, str]) -> bytes:
    return encode_utf8(pair[0]) + encode_utf8(pair[1])


_VALUE_WRITERS: Final[dict[PropertyType, Callable[[Any], bytes]]] = {
    _T.BYTE: _encode_byte,
    _T.TWO_BYTE_INT: encode_two_byte_int,
    _T.FOUR_BYTE_INT: encode_four_byte_int,
    _T.VARIABLE_BYTE_INT: encode_variable_byte_int,
    _T.UTF8_STRING: encode_utf8,
    _T.BINARY_DATA: encode_binary,
    _T.UTF8_STRING_PAIR: _encode_string_pair,
}

# Written in identifier order; all identifiers are below 0x80, so one byte each.
_WRITE_ORDER: Final = tuple(
    (spec.ident, spec.ident.field_name, bytes((spec.ident,)), _VALUE_WRITERS[spec.value_type])
    for spec in sorted(_SPECS.values(), key=lambda spec: spec.ident)
)


def encode_properties(properties: Properties, context: PropertyContext) -> bytes:
    """The property block (length included) for `properties` in `context`.

    Raises ValueError for a property that `context` does not allow, since the peer would
    reject the packet as malformed.
    """
    if properties is EMPTY_PROPERTIES:
        return b"\x00"
    allowed = _ALLOWED[context]
    out = bytearray()
    for ident, name, ident_byte, write in _WRITE_ORDER:
        value = getattr(properties, name)
        if value is None or value == ():
            continue
        if ident not in allowed:
            raise ValueError(f"{ident.name} is not allowed in {context.value}")
        if ident in (_P.USER_PROPERTY, _P.SUBSCRIPTION_IDENTIFIER):
            if len(value) > 1 and not _may_repeat(ident, context):
                raise ValueError(f"{ident.name} may appear only once in {context.value}")
            for item in value:
                out += ident_byte
                out += write(item)
        else:
            out += ident_byte
            out += write(value)
    return encode_variable_byte_int(len(out)) + bytes(out)
