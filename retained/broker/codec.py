"""Sans-IO MQTT 3.1.1 (protocol level 4) and MQTT 5 (level 5) codec.

    decoder = Decoder()                    # server side: expects CONNECT first
    for packet in decoder.feed(received_bytes):
        ...
    writer.write(encode(Connack(), protocol_level=decoder.protocol_level))

The codec checks the wire format only: lengths, fixed-header flags, UTF-8, field
presence, reserved bits, property placement. What a topic name or filter may contain,
whether a packet identifier is in use, topic alias mappings and the like belong to the
session layer.

Spec ids in comments are MQTT 5.0 ids unless marked "3.1.1".
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, Final

from retained.broker._wire import (
    MAX_VARIABLE_BYTE_INTEGER,
    ProtocolError,
    Reader,
    decode_utf8,
    encode_binary,
    encode_two_byte_int,
    encode_utf8,
    encode_variable_byte_int,
    malformed,
    protocol_error,
)
from retained.broker.packets import (
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    PacketType,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Subscription,
    Unsuback,
    Unsubscribe,
    Will,
)
from retained.broker.properties import (
    EMPTY_PROPERTIES,
    Properties,
    PropertyContext,
    decode_properties,
    encode_properties,
)
from retained.broker.reason_codes import (
    AUTH_REASON_CODES,
    CONNACK_REASON_CODES,
    CONNACK_RETURN_CODES_311,
    DISCONNECT_REASON_CODES,
    PUBACK_REASON_CODES,
    PUBCOMP_REASON_CODES,
    PUBREC_REASON_CODES,
    PUBREL_REASON_CODES,
    SUBACK_REASON_CODES,
    SUBACK_RETURN_CODES_311,
    UNSUBACK_REASON_CODES,
    ReasonCode,
    connack_return_code_311,
)

__all__ = ["MQTT_3_1_1", "MQTT_5", "Decoder", "ProtocolError", "encode", "encode_publish"]

MQTT_3_1_1: Final = 4
MQTT_5: Final = 5
SUPPORTED_PROTOCOL_LEVELS: Final = frozenset({MQTT_3_1_1, MQTT_5})

# Fixed header: type in the high nibble, flags in the low nibble. Every type but PUBLISH
# has fixed flags: [MQTT-2.1.3-1] (3.1.1 [MQTT-2.2.2-1], [MQTT-2.2.2-2]).
_REQUIRED_FLAGS: Final[dict[int, int]] = {
    PacketType.CONNECT: 0b0000,
    PacketType.CONNACK: 0b0000,
    PacketType.PUBACK: 0b0000,
    PacketType.PUBREC: 0b0000,
    PacketType.PUBREL: 0b0010,  # [MQTT-3.6.1-1]
    PacketType.PUBCOMP: 0b0000,
    PacketType.SUBSCRIBE: 0b0010,  # [MQTT-3.8.1-1]
    PacketType.SUBACK: 0b0000,
    PacketType.UNSUBSCRIBE: 0b0010,  # [MQTT-3.10.1-1]
    PacketType.UNSUBACK: 0b0000,
    PacketType.PINGREQ: 0b0000,
    PacketType.PINGRESP: 0b0000,
    PacketType.DISCONNECT: 0b0000,  # [MQTT-3.14.1-1]
    PacketType.AUTH: 0b0000,  # [MQTT-3.15.1-1]
}
# Plain ints for the per-packet checks (enum attribute lookups cost more).
_PUBLISH: Final = int(PacketType.PUBLISH)
_AUTH: Final = int(PacketType.AUTH)
_CONNECT: Final = int(PacketType.CONNECT)
_PUBLISH_FIRST_NIBBLE: Final = _PUBLISH << 4
_CONNECT_FIRST_BYTE: Final = _CONNECT << 4

# Packets only a server sends; a server receiving one faces a broken or confused client.
_SERVER_TO_CLIENT_ONLY: Final = frozenset(
    {PacketType.CONNACK, PacketType.SUBACK, PacketType.UNSUBACK, PacketType.PINGRESP}
)


class Decoder:
    """Turns a byte stream into packets; keeps partial packets between feeds.

    Server side (`protocol_level=None`, the default): the first packet must be CONNECT
    and its protocol level decides how every later packet is read; packets only a server
    sends are refused.

    Client side / tests (`protocol_level=4` or `5`): any packet of that version is
    decoded, in any order.

    Once `feed` has raised ProtocolError the stream is unusable (there is no way to
    find the next packet boundary) and every later `feed` raises the same error.
    """

    __slots__ = ("_buffer", "_error", "_is_server", "_max_packet_size", "_protocol_level")

    def __init__(
        self,
        *,
        max_packet_size: int = MAX_VARIABLE_BYTE_INTEGER,
        protocol_level: int | None = None,
    ) -> None:
        if protocol_level is not None and protocol_level not in SUPPORTED_PROTOCOL_LEVELS:
            raise ValueError(f"unsupported protocol level {protocol_level}")
        if max_packet_size < 2:
            raise ValueError("max_packet_size must allow at least a 2-byte packet")
        self._buffer = bytearray()
        self._error: ProtocolError | None = None
        self._is_server = protocol_level is None
        self._max_packet_size = max_packet_size
        self._protocol_level = protocol_level

    @property
    def protocol_level(self) -> int | None:
        """4 or 5 once known (from the CONNECT, or as given); None before."""
        return self._protocol_level

    def feed(self, data: bytes) -> list[Packet]:
        """Buffer `data` and return every packet it completes, in order.

        Raises ProtocolError (and only that) for input that is not valid MQTT; its
        `packets` attribute holds the packets completed before the bad one.
        """
        if self._error is not None:
            raise self._error
        buffer = self._buffer
        buffer += data
        packets: list[Packet] = []
        try:
            consumed = self._decode_frames(buffer, packets)
        except ProtocolError as error:
            error.packets = tuple(packets)
            self._error = error
            buffer.clear()
            raise
        del buffer[:consumed]
        return packets

    def _decode_frames(self, buffer: bytearray, packets: list[Packet]) -> int:
        """Append every complete packet in `buffer` to `packets`; return bytes used."""
        consumed = 0
        with memoryview(buffer) as view:  # slicing the view copies a body once, not twice
            while (frame := self._next_frame(buffer, consumed)) is not None:
                first_byte, body_start, end = frame
                packets.append(self._decode(first_byte, view[body_start:end].tobytes()))
                consumed = end
        return consumed

    def _next_frame(self, buffer: bytearray, start: int) -> tuple[int, int, int] | None:
        """(first byte, body start, body end) of the packet at `start`, or None if the
        buffer does not hold all of it yet. Checks come as early as the bytes allow: the
        first byte alone, then the size before waiting for (and buffering) the body."""
        available = len(buffer)
        if start >= available:
            return None
        first_byte = buffer[start]
        self._check_first_byte(first_byte)
        remaining_length = 0
        position = start + 1
        for shift in (0, 7, 14, 21):
            if position >= available:
                return None
            byte = buffer[position]
            position += 1
            remaining_length |= (byte & 0x7F) << shift
            if byte < 0x80:
                if byte == 0 and shift:
                    raise malformed("Remaining Length is not minimally encoded")  # [MQTT-1.5.5-1]
                break
        else:
            raise malformed("Remaining Length is longer than 4 bytes")
        end = position + remaining_length
        if end - start > self._max_packet_size:
            raise ProtocolError(
                ReasonCode.PACKET_TOO_LARGE,
                f"packet of {end - start} bytes exceeds the maximum of {self._max_packet_size}",
            )
        if end > available:
            return None
        return first_byte, position, end

    def _check_first_byte(self, first_byte: int) -> None:
        packet_type = first_byte >> 4
        flags = first_byte & 0x0F
        if self._is_server:
            self._check_server_receives(packet_type)
        if packet_type == _PUBLISH:
            if flags & 0b0110 == 0b0110:
                raise malformed("PUBLISH with QoS 3")  # [MQTT-3.3.1-4]
            if flags & 0b1110 == 0b1000:
                raise malformed("PUBLISH with DUP set at QoS 0")  # [MQTT-3.3.1-2]
            return
        required = _REQUIRED_FLAGS.get(packet_type)
        if required is None or (packet_type == _AUTH and self._protocol_level == MQTT_3_1_1):
            raise malformed(f"reserved packet type {packet_type}")
        if flags != required:
            raise malformed(
                f"{PacketType(packet_type).name} fixed header flags 0b{flags:04b}, "
                f"expected 0b{required:04b}"
            )

    def _check_server_receives(self, packet_type: int) -> None:
        if self._protocol_level is None:
            if packet_type != _CONNECT:
                raise protocol_error("the first packet must be CONNECT")  # [MQTT-3.1.0-1]
        elif packet_type == _CONNECT:
            raise protocol_error("second CONNECT on the connection")  # [MQTT-3.1.0-2]
        elif packet_type in _SERVER_TO_CLIENT_ONLY:
            raise protocol_error(f"a client may not send {PacketType(packet_type).name}")

    def _decode(self, first_byte: int, body: bytes) -> Packet:
        if first_byte == _CONNECT_FIRST_BYTE:
            return self._accept_connect(_decode_connect(body))
        level = self._protocol_level
        assert level is not None  # guaranteed by _check_server_receives
        packet = _BODY_DECODERS[first_byte >> 4](first_byte & 0x0F, body, level == MQTT_5)
        if (
            self._is_server
            and type(packet) is Publish
            and packet.properties.subscription_identifier
        ):
            # [MQTT-3.3.4-6]
            raise protocol_error("a client's PUBLISH may not carry a Subscription Identifier")
        return packet

    def _accept_connect(self, connect: Connect) -> Connect:
        if self._protocol_level is None:
            self._protocol_level = connect.protocol_level
        elif connect.protocol_level != self._protocol_level:
            raise protocol_error(
                f"CONNECT for protocol level {connect.protocol_level} on a decoder "
                f"for level {self._protocol_level}"
            )
        return connect


# ---------------------------------------------------------------------------- decoding


def _read_packet_id(reader: Reader) -> int:
    packet_id = reader.two_byte_int("Packet Identifier")
    if not packet_id:
        # [MQTT-2.2.1-3] (3.1.1 [MQTT-2.3.1-1]); acknowledgements echo a non-zero id.
        raise malformed("Packet Identifier 0")
    return packet_id


def _read_reason_code(reader: Reader, allowed: Collection[int], packet: str) -> int:
    code = reader.byte("Reason Code")
    if code not in allowed:
        # The sender "MUST use one of the <packet> Reason Codes" ([MQTT-3.2.2-8],
        # [MQTT-3.4.2-1], [MQTT-3.14.2-1], ...).
        raise malformed(f"0x{code:02X} is not a {packet} reason code")
    return code


def _decode_connect(body: bytes) -> Connect:
    reader = Reader(body)
    protocol_name = reader.utf8("Protocol Name")
    level = reader.byte("Protocol Level")
    if protocol_name != "MQTT" or level not in SUPPORTED_PROTOCOL_LEVELS:
        # [MQTT-3.1.2-1], [MQTT-3.1.2-2] (3.1.1 [MQTT-3.1.2-2]: CONNACK return code 1).
        # This covers MQTT 3.1 ("MQIsdp", level 3).
        raise ProtocolError(
            ReasonCode.UNSUPPORTED_PROTOCOL_VERSION,
            f"protocol {protocol_name!r} level {level} is not MQTT 3.1.1 or 5",
        )
    v5 = level == MQTT_5
    flags = reader.byte("Connect Flags")
    _check_connect_flags(flags, v5)
    keep_alive = reader.two_byte_int("Keep Alive")
    properties = decode_properties(reader, PropertyContext.CONNECT) if v5 else EMPTY_PROPERTIES
    # Payload order: [MQTT-3.1.3-1]; the client identifier comes first [MQTT-3.1.3-3].
    client_id = reader.utf8("Client Identifier")  # [MQTT-3.1.3-4]
    will = _read_will(reader, flags, v5) if flags & 0x04 else None
    username = reader.utf8("User Name") if flags & 0x80 else None  # [MQTT-3.1.3-12]
    password = reader.binary("Password") if flags & 0x40 else None
    reader.expect_end("CONNECT payload")  # [MQTT-3.1.4-1]
    return Connect(
        protocol_name=protocol_name,
        protocol_level=level,
        clean_start=bool(flags & 0x02),
        keep_alive=keep_alive,
        client_id=client_id,
        will=will,
        username=username,
        password=password,
        properties=properties,
    )


def _check_connect_flags(flags: int, v5: bool) -> None:
    """Connect Flags: user name, password, will retain, will QoS (2 bits), will, clean
    start, reserved (MQTT 5.0 section 3.1.2.3)."""
    if flags & 0x01:
        raise malformed("CONNECT reserved flag is set")  # [MQTT-3.1.2-3]
    will_qos = (flags >> 3) & 0b11
    if flags & 0x04:
        if will_qos == 3:
            raise malformed("Will QoS 3")  # [MQTT-3.1.2-12] (3.1.1 [MQTT-3.1.2-14])
    elif will_qos or flags & 0x20:
        # [MQTT-3.1.2-11], [MQTT-3.1.2-13] (3.1.1 [MQTT-3.1.2-13], [MQTT-3.1.2-15])
        raise malformed("Will QoS or Will Retain set without the Will Flag")
    if not v5 and flags & 0x40 and not flags & 0x80:
        # 3.1.1 [MQTT-3.1.2-22]; MQTT 5 allows a password alone (section 3.1.2.9).
        raise malformed("Password Flag set without the User Name Flag")


def _read_will(reader: Reader, flags: int, v5: bool) -> Will:
    # [MQTT-3.1.2-9]: Will Properties (MQTT 5), Will Topic and Will Payload follow.
    properties = decode_properties(reader, PropertyContext.WILL) if v5 else EMPTY_PROPERTIES
    topic = reader.utf8("Will Topic")  # [MQTT-3.1.3-11] (3.1.1 [MQTT-3.1.3-10])
    payload = reader.binary("Will Payload")
    return Will(
        topic=topic,
        payload=payload,
        qos=(flags >> 3) & 0b11,
        retain=bool(flags & 0x20),
        properties=properties,
    )


def _decode_connack(flags: int, body: bytes, v5: bool) -> Connack:
    reader = Reader(body)
    acknowledge_flags = reader.byte("Connect Acknowledge Flags")
    if acknowledge_flags & 0xFE:
        raise malformed("CONNACK reserved flags are set")  # [MQTT-3.2.2-1]
    if v5:
        reason_code = _read_reason_code(reader, CONNACK_REASON_CODES, "CONNACK")
        properties = decode_properties(reader, PropertyContext.CONNACK)
    else:
        reason_code = _read_reason_code(reader, CONNACK_RETURN_CODES_311, "CONNACK")
        properties = EMPTY_PROPERTIES
    reader.expect_end("CONNACK")
    return Connack(
        session_present=bool(acknowledge_flags), reason_code=reason_code, properties=properties
    )


# Topic Names already decoded (and found to be well-formed UTF-8 without U+0000), by their
# bytes: devices publish to the same few topics over and over. A memo of a pure function.
_known_topics: dict[bytes, str] = {}
_KNOWN_TOPICS_MAX = 4096


def _remember_topic(raw_topic: bytes, topic: str) -> None:
    if len(_known_topics) >= _KNOWN_TOPICS_MAX:
        _known_topics.clear()
    _known_topics[raw_topic] = topic


def _decode_publish(flags: int, body: bytes, v5: bool) -> Publish:
    """The common case the short way: (MQTT 5) no properties, a well-formed topic, a
    non-zero Packet Identifier at QoS 1. Anything else, errors included, the long way."""
    size = len(body)
    if size >= 2:
        qos = (flags >> 1) & 0b11  # 3 and DUP-at-QoS-0 were refused with the fixed header
        topic_end = 2 + ((body[0] << 8) | body[1])
        properties_at = topic_end + 2 if qos else topic_end
        payload_start = properties_at + 1 if v5 else properties_at
        if payload_start <= size and (not v5 or body[properties_at] == 0):
            raw_topic = body[2:topic_end]
            topic = _known_topics.get(raw_topic)
            if topic is None and b"\x00" not in raw_topic:
                try:
                    topic = raw_topic.decode("utf-8")
                except UnicodeDecodeError:
                    pass
                else:
                    _remember_topic(raw_topic, topic)
            packet_id = ((body[topic_end] << 8) | body[topic_end + 1]) if qos else None
            if topic is not None and packet_id != 0:
                return Publish(
                    topic=topic,
                    payload=body[payload_start:],
                    qos=qos,
                    retain=bool(flags & 0b0001),
                    dup=bool(flags & 0b1000),
                    packet_id=packet_id,
                )
    return _decode_publish_checked(flags, body, v5)


def _decode_publish_checked(flags: int, body: bytes, v5: bool) -> Publish:
    qos = (flags >> 1) & 0b11  # 3 and DUP-at-QoS-0 were refused with the fixed header
    reader = Reader(body)
    raw_topic = reader.binary("Topic Name")
    topic = _known_topics.get(raw_topic)
    if topic is None:
        topic = decode_utf8(raw_topic, "Topic Name")  # [MQTT-3.3.2-1]
        _remember_topic(raw_topic, topic)
    # [MQTT-2.2.1-2] (3.1.1 [MQTT-2.3.1-5]): a Packet Identifier only when QoS > 0.
    packet_id = _read_packet_id(reader) if qos else None
    properties = decode_properties(reader, PropertyContext.PUBLISH) if v5 else EMPTY_PROPERTIES
    return Publish(
        topic=topic,
        payload=reader.rest(),
        qos=qos,
        retain=bool(flags & 0b0001),
        dup=bool(flags & 0b1000),
        packet_id=packet_id,
        properties=properties,
    )


def _read_ack_tail(
    reader: Reader, v5: bool, allowed: Collection[int], context: PropertyContext
) -> tuple[int, Properties]:
    """Reason code and properties after a Packet Identifier (PUBACK..PUBCOMP).

    MQTT 5 omits the properties when empty, and both when the reason is Success and
    there are no properties (sections 3.4.2.1, 3.4.2.2.1); 3.1.1 has neither.
    """
    if not v5 or not reader.remaining:
        return 0, EMPTY_PROPERTIES
    reason_code = _read_reason_code(reader, allowed, context.value)
    if not reader.remaining:
        return reason_code, EMPTY_PROPERTIES
    return reason_code, decode_properties(reader, context)


def _make_ack_decoder(
    cls: type[Puback | Pubrec | Pubrel | Pubcomp],
    allowed: Collection[int],
    context: PropertyContext,
) -> Callable[[int, bytes, bool], Packet]:
    def decode(flags: int, body: bytes, v5: bool) -> Packet:
        reader = Reader(body)
        packet_id = _read_packet_id(reader)
        reason_code, properties = _read_ack_tail(reader, v5, allowed, context)
        reader.expect_end(context.value)
        return cls(packet_id=packet_id, reason_code=reason_code, properties=properties)

    return decode


def _decode_subscribe(flags: int, body: bytes, v5: bool) -> Subscribe:
    reader = Reader(body)
    packet_id = _read_packet_id(reader)
    properties = decode_properties(reader, PropertyContext.SUBSCRIBE) if v5 else EMPTY_PROPERTIES
    subscriptions: list[Subscription] = []
    while reader.remaining:
        topic_filter = reader.utf8("Topic Filter")  # [MQTT-3.8.3-1]
        options = reader.byte("Subscription Options")
        subscriptions.append(_subscription(topic_filter, options, v5))
    if not subscriptions:
        # [MQTT-3.8.3-2] "A SUBSCRIBE packet with no Payload is a Protocol Error"
        # (3.1.1 [MQTT-3.8.3-3]).
        raise protocol_error("SUBSCRIBE without any Topic Filter")
    return Subscribe(packet_id=packet_id, subscriptions=tuple(subscriptions), properties=properties)


def _subscription(topic_filter: str, options: int, v5: bool) -> Subscription:
    qos = options & 0b11
    if not v5:
        if options & 0b1111_1100 or qos == 3:
            # 3.1.1 [MQTT-3-8.3-4] (sic): reserved bits must be 0, QoS must be 0, 1 or 2.
            raise malformed(f"Requested QoS byte 0x{options:02X}")
        return Subscription(topic_filter=topic_filter, qos=qos)
    if options & 0b1100_0000:
        raise malformed("Subscription Options reserved bits are set")  # [MQTT-3.8.3-5]
    if qos == 3:
        # Section 3.8.3.1: "It is a Protocol Error if the Maximum QoS field has the value 3."
        raise protocol_error("Subscription Options Maximum QoS 3")
    retain_handling = (options >> 4) & 0b11
    if retain_handling == 3:
        # Section 3.8.3.1: "It is a Protocol Error to send a Retain Handling value of 3."
        raise protocol_error("Subscription Options Retain Handling 3")
    return Subscription(
        topic_filter=topic_filter,
        qos=qos,
        no_local=bool(options & 0b0100),
        retain_as_published=bool(options & 0b1000),
        retain_handling=retain_handling,
    )


def _read_reason_codes(reader: Reader, allowed: Collection[int], packet: str) -> tuple[int, ...]:
    codes = tuple(reader.rest())
    if not codes:
        # One per Topic Filter of the request, which had at least one ([MQTT-3.8.4-6],
        # [MQTT-3.11.3-1]).
        raise malformed(f"{packet} without any reason code")
    for code in codes:
        if code not in allowed:
            # [MQTT-3.9.3-2] (3.1.1 [MQTT-3.9.3-2]), [MQTT-3.11.3-2].
            raise malformed(f"0x{code:02X} is not a {packet} reason code")
    return codes


def _decode_suback(flags: int, body: bytes, v5: bool) -> Suback:
    reader = Reader(body)
    packet_id = _read_packet_id(reader)
    if v5:
        properties = decode_properties(reader, PropertyContext.SUBACK)
        reason_codes = _read_reason_codes(reader, SUBACK_REASON_CODES, "SUBACK")
    else:
        properties = EMPTY_PROPERTIES
        reason_codes = _read_reason_codes(reader, SUBACK_RETURN_CODES_311, "SUBACK")
    return Suback(packet_id=packet_id, reason_codes=reason_codes, properties=properties)


def _decode_unsubscribe(flags: int, body: bytes, v5: bool) -> Unsubscribe:
    reader = Reader(body)
    packet_id = _read_packet_id(reader)
    properties = decode_properties(reader, PropertyContext.UNSUBSCRIBE) if v5 else EMPTY_PROPERTIES
    topic_filters: list[str] = []
    while reader.remaining:
        topic_filters.append(reader.utf8("Topic Filter"))  # [MQTT-3.10.3-1]
    if not topic_filters:
        # [MQTT-3.10.3-2] "An UNSUBSCRIBE packet with no Payload is a Protocol Error".
        raise protocol_error("UNSUBSCRIBE without any Topic Filter")
    return Unsubscribe(
        packet_id=packet_id, topic_filters=tuple(topic_filters), properties=properties
    )


def _decode_unsuback(flags: int, body: bytes, v5: bool) -> Unsuback:
    reader = Reader(body)
    packet_id = _read_packet_id(reader)
    if not v5:
        reader.expect_end("UNSUBACK")  # 3.1.1 UNSUBACK is just the Packet Identifier
        return Unsuback(packet_id=packet_id)
    properties = decode_properties(reader, PropertyContext.UNSUBACK)
    reason_codes = _read_reason_codes(reader, UNSUBACK_REASON_CODES, "UNSUBACK")
    return Unsuback(packet_id=packet_id, reason_codes=reason_codes, properties=properties)


def _expect_empty(body: bytes, packet: str) -> None:
    if body:
        raise malformed(f"{packet} must have a Remaining Length of 0")


def _decode_pingreq(flags: int, body: bytes, v5: bool) -> Pingreq:
    _expect_empty(body, "PINGREQ")
    return Pingreq()


def _decode_pingresp(flags: int, body: bytes, v5: bool) -> Pingresp:
    _expect_empty(body, "PINGRESP")
    return Pingresp()


def _read_optional_reason(
    body: bytes, allowed: Collection[int], context: PropertyContext
) -> tuple[int, Properties]:
    """DISCONNECT and AUTH: an empty body means Success/Normal and no properties
    (sections 3.14.2.1, 3.15.2.1); properties may be left out after the reason code."""
    if not body:
        return 0, EMPTY_PROPERTIES
    reader = Reader(body)
    reason_code = _read_reason_code(reader, allowed, context.value)
    properties = decode_properties(reader, context) if reader.remaining else EMPTY_PROPERTIES
    reader.expect_end(context.value)
    return reason_code, properties


def _decode_disconnect(flags: int, body: bytes, v5: bool) -> Disconnect:
    if not v5:
        _expect_empty(body, "3.1.1 DISCONNECT")
        return Disconnect()
    reason_code, properties = _read_optional_reason(
        body, DISCONNECT_REASON_CODES, PropertyContext.DISCONNECT
    )
    return Disconnect(reason_code=reason_code, properties=properties)


def _decode_auth(flags: int, body: bytes, v5: bool) -> Auth:
    # The fixed-header check has already refused AUTH on a 3.1.1 connection.
    reason_code, properties = _read_optional_reason(body, AUTH_REASON_CODES, PropertyContext.AUTH)
    return Auth(reason_code=reason_code, properties=properties)


# Every decoder takes (fixed header flags, body, is MQTT 5); CONNECT is handled apart
# because it is what sets the protocol level.
_BODY_DECODERS: Final[dict[int, Callable[[int, bytes, bool], Packet]]] = {
    PacketType.CONNACK: _decode_connack,
    PacketType.PUBLISH: _decode_publish,
    PacketType.PUBACK: _make_ack_decoder(Puback, PUBACK_REASON_CODES, PropertyContext.PUBACK),
    PacketType.PUBREC: _make_ack_decoder(Pubrec, PUBREC_REASON_CODES, PropertyContext.PUBREC),
    PacketType.PUBREL: _make_ack_decoder(Pubrel, PUBREL_REASON_CODES, PropertyContext.PUBREL),
    PacketType.PUBCOMP: _make_ack_decoder(Pubcomp, PUBCOMP_REASON_CODES, PropertyContext.PUBCOMP),
    PacketType.SUBSCRIBE: _decode_subscribe,
    PacketType.SUBACK: _decode_suback,
    PacketType.UNSUBSCRIBE: _decode_unsubscribe,
    PacketType.UNSUBACK: _decode_unsuback,
    PacketType.PINGREQ: _decode_pingreq,
    PacketType.PINGRESP: _decode_pingresp,
    PacketType.DISCONNECT: _decode_disconnect,
    PacketType.AUTH: _decode_auth,
}


# ---------------------------------------------------------------------------- encoding

# An encoder returns the first byte of the fixed header and the body as a list of parts,
# so that a large payload is copied once, into the final packet.
_Encoded = tuple[int, list[bytes]]


def encode(packet: Packet, *, protocol_level: int) -> bytes:
    """The wire form of `packet` for a connection at `protocol_level` (4 or 5).

    For 3.1.1, properties and other MQTT 5-only fields are not written; MQTT 5 failure
    reason codes (0x80 and above) in CONNACK and SUBACK are mapped to their nearest
    3.1.1 return code, so the broker can think in MQTT 5 reason codes throughout.

    Raises ValueError for a packet that cannot be represented (a QoS 1 PUBLISH without
    a packet identifier, a string longer than 65535 bytes, AUTH for 3.1.1, ...).
    """
    if protocol_level not in SUPPORTED_PROTOCOL_LEVELS:
        raise ValueError(f"unsupported protocol level {protocol_level}")
    encoder = _ENCODERS.get(type(packet))
    if encoder is None:
        raise TypeError(f"not an MQTT packet: {packet!r}")
    try:
        first_byte, parts = encoder(packet, protocol_level == MQTT_5)
    except OverflowError as error:  # int.to_bytes on an out-of-range field
        raise ValueError(f"field out of range in {packet!r}") from error
    remaining_length = sum(map(len, parts))
    return b"".join((bytes((first_byte,)), encode_variable_byte_int(remaining_length), *parts))


def _packet_id_bytes(packet_id: int | None) -> bytes:
    if packet_id is None or not 0 < packet_id <= 0xFFFF:
        raise ValueError(f"Packet Identifier must be 1..65535, not {packet_id}")
    return encode_two_byte_int(packet_id)


def _check_qos(qos: int) -> None:
    if qos not in (0, 1, 2):
        raise ValueError(f"QoS must be 0, 1 or 2, not {qos}")


def _encode_connect(packet: Connect, v5: bool) -> _Encoded:
    expected_level = MQTT_5 if v5 else MQTT_3_1_1
    if packet.protocol_level in SUPPORTED_PROTOCOL_LEVELS and packet.protocol_level != (
        expected_level
    ):
        raise ValueError(
            f"CONNECT says protocol level {packet.protocol_level}, encoding for {expected_level}"
        )
    flags = 0x02 if packet.clean_start else 0
    will = packet.will
    if will is not None:
        _check_qos(will.qos)
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
    if packet.username is not None:
        flags |= 0x80
    if packet.password is not None:
        if packet.username is None and not v5:
            raise ValueError("MQTT 3.1.1 does not allow a password without a user name")
        flags |= 0x40
    parts = [
        encode_utf8(packet.protocol_name),
        bytes((packet.protocol_level, flags)),
        encode_two_byte_int(packet.keep_alive),
    ]
    if v5:
        parts.append(encode_properties(packet.properties, PropertyContext.CONNECT))
    parts.append(encode_utf8(packet.client_id))
    if will is not None:
        if v5:
            parts.append(encode_properties(will.properties, PropertyContext.WILL))
        parts += (encode_utf8(will.topic), encode_binary(will.payload))
    if packet.username is not None:
        parts.append(encode_utf8(packet.username))
    if packet.password is not None:
        parts.append(encode_binary(packet.password))
    return PacketType.CONNECT << 4, parts


def _encode_connack(packet: Connack, v5: bool) -> _Encoded:
    reason_code = packet.reason_code
    parts = [b"\x01" if packet.session_present else b"\x00"]
    if v5:
        parts.append(bytes((reason_code,)))
        parts.append(encode_properties(packet.properties, PropertyContext.CONNACK))
    else:
        if reason_code >= ReasonCode.UNSPECIFIED_ERROR:
            reason_code = connack_return_code_311(reason_code)
        parts.append(bytes((reason_code,)))
    return PacketType.CONNACK << 4, parts


def _encode_publish(packet: Publish, v5: bool) -> _Encoded:
    qos = packet.qos
    _check_qos(qos)
    parts = [encode_utf8(packet.topic)]
    if qos:
        parts.append(_packet_id_bytes(packet.packet_id))
    elif packet.packet_id is not None:
        raise ValueError("a QoS 0 PUBLISH has no Packet Identifier")  # [MQTT-2.2.1-2]
    elif packet.dup:
        raise ValueError("a QoS 0 PUBLISH cannot be a duplicate")  # [MQTT-3.3.1-2]
    if v5:
        parts.append(encode_properties(packet.properties, PropertyContext.PUBLISH))
    parts.append(packet.payload)
    first_byte = _PUBLISH_FIRST_NIBBLE | (qos << 1)
    if packet.dup:
        first_byte |= 0b1000
    if packet.retain:
        first_byte |= 0b0001
    return first_byte, parts


def encode_publish(
    *,
    topic: str,
    payload: bytes,
    qos: int,
    retain: bool,
    dup: bool,
    packet_id: int | None,
    properties: Properties,
    protocol_level: int,
) -> bytes:
    """A PUBLISH without building a Publish object first: the broker's fan-out hot path.
    Same bytes as ``encode(Publish(...))`` (a test checks it)."""
    topic_bytes = topic.encode("utf-8")
    head = bytearray(len(topic_bytes).to_bytes(2, "big"))
    head += topic_bytes
    if qos:
        if not packet_id:
            raise ValueError("a QoS 1 PUBLISH needs a Packet Identifier")
        head += packet_id.to_bytes(2, "big")
    if protocol_level == MQTT_5:
        if properties is EMPTY_PROPERTIES:
            head.append(0)
        else:
            head += encode_properties(properties, PropertyContext.PUBLISH)
    first_byte = _PUBLISH_FIRST_NIBBLE | (qos << 1) | (0b1000 if dup else 0) | (1 if retain else 0)
    length = len(head) + len(payload)
    return b"".join((bytes((first_byte,)), encode_variable_byte_int(length), head, payload))


def encode_plain_publish(topic_field: bytes, payload: bytes, *, retain: bool, v5: bool) -> bytes:
    """A QoS 0 PUBLISH without properties, the bulk of what a broker sends (same bytes as
    `encode_publish`; a test checks it). `topic_field` is the Topic Name as a UTF-8 Encoded
    String, its two-byte length first, so that a caller sending many copies encodes it once."""
    length = len(topic_field) + len(payload) + (1 if v5 else 0)
    return b"".join(
        (
            _PLAIN_FIRST_BYTES[retain],
            encode_variable_byte_int(length),
            topic_field,
            b"\x00" if v5 else b"",  # MQTT 5: an empty property block
            payload,
        )
    )


def encode_retained_copies(topics: list[str], payloads: list[bytes], *, v5: bool) -> list[bytes]:
    """`encode_plain_publish(..., retain=True)` for many messages at once: the retained
    copies a new subscription gets, thousands at a time (same bytes; a test checks it)."""
    heads = _RETAINED_HEADS
    common = len(heads)
    fixed = 3 if v5 else 2  # topic length prefix (+ MQTT 5 property length)
    properties = b"\x00" if v5 else b""
    packets: list[bytes] = []
    append = packets.append
    for topic, payload in zip(topics, payloads, strict=True):
        raw = topic.encode("utf-8")
        length = fixed + len(raw) + len(payload)
        head = heads[length] if length < common else b"\x31" + encode_variable_byte_int(length)
        append(b"".join((head, len(raw).to_bytes(2, "big"), raw, properties, payload)))
    return packets


# First byte and Remaining Length of a retained QoS 0 PUBLISH for the common lengths: a list
# index instead of encoding them again for every copy.
_RETAINED_HEADS = [
    bytes((_PUBLISH_FIRST_NIBBLE | 0b0001,)) + encode_variable_byte_int(n) for n in range(4096)
]


_PLAIN_FIRST_BYTES = {
    False: bytes((_PUBLISH_FIRST_NIBBLE,)),
    True: bytes((_PUBLISH_FIRST_NIBBLE | 1,)),
}


def _make_ack_encoder(
    packet_type: PacketType, context: PropertyContext
) -> Callable[[Puback | Pubrec | Pubrel | Pubcomp, bool], _Encoded]:
    first_byte = (packet_type << 4) | _REQUIRED_FLAGS[packet_type]

    def encode_ack(packet: Puback | Pubrec | Pubrel | Pubcomp, v5: bool) -> _Encoded:
        parts = [_packet_id_bytes(packet.packet_id)]
        if v5:
            # Shortest form: drop empty properties, then a Success reason (3.4.2.1).
            properties = encode_properties(packet.properties, context)
            if properties != b"\x00":
                parts += (bytes((packet.reason_code,)), properties)
            elif packet.reason_code:
                parts.append(bytes((packet.reason_code,)))
        return first_byte, parts

    return encode_ack


def _encode_subscribe(packet: Subscribe, v5: bool) -> _Encoded:
    if not packet.subscriptions:
        raise ValueError("SUBSCRIBE needs at least one subscription")
    parts = [_packet_id_bytes(packet.packet_id)]
    if v5:
        parts.append(encode_properties(packet.properties, PropertyContext.SUBSCRIBE))
    for subscription in packet.subscriptions:
        parts += (encode_utf8(subscription.topic_filter), _subscription_options(subscription, v5))
    return (PacketType.SUBSCRIBE << 4) | 0b0010, parts


def _subscription_options(subscription: Subscription, v5: bool) -> bytes:
    _check_qos(subscription.qos)
    options = subscription.qos
    if v5:
        if subscription.retain_handling not in (0, 1, 2):
            raise ValueError(f"Retain Handling must be 0, 1 or 2: {subscription!r}")
        options |= subscription.retain_handling << 4
        if subscription.no_local:
            options |= 0b0100
        if subscription.retain_as_published:
            options |= 0b1000
    return bytes((options,))


def _encode_suback(packet: Suback, v5: bool) -> _Encoded:
    parts = [_packet_id_bytes(packet.packet_id)]
    if v5:
        parts += (encode_properties(packet.properties, PropertyContext.SUBACK),)
        codes = bytes(packet.reason_codes)
    else:
        # 3.1.1 has a single failure code, 0x80 [MQTT-3.9.3-2].
        codes = bytes(min(code, ReasonCode.UNSPECIFIED_ERROR) for code in packet.reason_codes)
    parts.append(codes)
    return PacketType.SUBACK << 4, parts


def _encode_unsubscribe(packet: Unsubscribe, v5: bool) -> _Encoded:
    if not packet.topic_filters:
        raise ValueError("UNSUBSCRIBE needs at least one topic filter")
    parts = [_packet_id_bytes(packet.packet_id)]
    if v5:
        parts.append(encode_properties(packet.properties, PropertyContext.UNSUBSCRIBE))
    parts += map(encode_utf8, packet.topic_filters)
    return (PacketType.UNSUBSCRIBE << 4) | 0b0010, parts


def _encode_unsuback(packet: Unsuback, v5: bool) -> _Encoded:
    parts = [_packet_id_bytes(packet.packet_id)]
    if v5:
        parts += (
            encode_properties(packet.properties, PropertyContext.UNSUBACK),
            bytes(packet.reason_codes),
        )
    return PacketType.UNSUBACK << 4, parts


def _encode_pingreq(packet: Pingreq, v5: bool) -> _Encoded:
    return PacketType.PINGREQ << 4, []


def _encode_pingresp(packet: Pingresp, v5: bool) -> _Encoded:
    return PacketType.PINGRESP << 4, []


def _optional_reason_parts(
    reason_code: int, properties: Properties, context: PropertyContext
) -> list[bytes]:
    """DISCONNECT and AUTH bodies in their shortest form (sections 3.14.2.1, 3.15.2.1)."""
    encoded_properties = encode_properties(properties, context)
    if encoded_properties != b"\x00":
        return [bytes((reason_code,)), encoded_properties]
    return [bytes((reason_code,))] if reason_code else []


def _encode_disconnect(packet: Disconnect, v5: bool) -> _Encoded:
    parts = (
        _optional_reason_parts(packet.reason_code, packet.properties, PropertyContext.DISCONNECT)
        if v5
        else []
    )
    return PacketType.DISCONNECT << 4, parts


def _encode_auth(packet: Auth, v5: bool) -> _Encoded:
    if not v5:
        raise ValueError("AUTH does not exist in MQTT 3.1.1")
    parts = _optional_reason_parts(packet.reason_code, packet.properties, PropertyContext.AUTH)
    return PacketType.AUTH << 4, parts


_ENCODERS: Final[dict[type, Callable[[Any, bool], _Encoded]]] = {
    Publish: _encode_publish,
    Puback: _make_ack_encoder(PacketType.PUBACK, PropertyContext.PUBACK),
    Pingreq: _encode_pingreq,
    Pingresp: _encode_pingresp,
    Subscribe: _encode_subscribe,
    Suback: _encode_suback,
    Unsubscribe: _encode_unsubscribe,
    Unsuback: _encode_unsuback,
    Connect: _encode_connect,
    Connack: _encode_connack,
    Disconnect: _encode_disconnect,
    Pubrec: _make_ack_encoder(PacketType.PUBREC, PropertyContext.PUBREC),
    Pubrel: _make_ack_encoder(PacketType.PUBREL, PropertyContext.PUBREL),
    Pubcomp: _make_ack_encoder(PacketType.PUBCOMP, PropertyContext.PUBCOMP),
    Auth: _encode_auth,
}
