"""MQTT data representations (MQTT 5.0 section 1.5, 3.1.1 section 1.5): reading and writing.

Shared by the property block codec and the packet codec. Every read is bounds-checked
and turns bad input into ProtocolError, so that the decoder never lets IndexError,
UnicodeDecodeError or struct.error escape from arbitrary bytes.

Spec ids in comments are MQTT 5.0 ids unless marked "3.1.1".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from retained.broker.reason_codes import ReasonCode

if TYPE_CHECKING:
    from retained.broker.packets import Packet

MAX_VARIABLE_BYTE_INTEGER: Final = 268_435_455  # 0xFF 0xFF 0xFF 0x7F
MAX_TWO_BYTE_LENGTH: Final = 65_535


class ProtocolError(Exception):
    """Input that breaks the MQTT wire format; the connection must be closed.

    `reason_code` is what an MQTT 5 server puts in its CONNACK or DISCONNECT before
    closing (an MQTT 3.1.1 server just closes, except for UNSUPPORTED_PROTOCOL_VERSION
    which it answers with CONNACK return code 1).

    `packets` holds the complete, valid packets the failing `Decoder.feed` call had
    already decoded before reaching the bad one; the caller may still act on them.
    """

    def __init__(self, reason_code: ReasonCode, message: str) -> None:
        super().__init__(f"{reason_code.name} (0x{reason_code:02X}): {message}")
        self.reason_code: ReasonCode = reason_code
        self.message: str = message
        self.packets: tuple[Packet, ...] = ()


def malformed(message: str) -> ProtocolError:
    return ProtocolError(ReasonCode.MALFORMED_PACKET, message)


def protocol_error(message: str) -> ProtocolError:
    return ProtocolError(ReasonCode.PROTOCOL_ERROR, message)


class Reader:
    """A cursor over one packet's bytes (the part after the fixed header)."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def _advance(self, size: int, what: str) -> int:
        """Reserve `size` bytes and return where they start."""
        start = self._pos
        end = start + size
        if end > len(self._data):
            raise malformed(f"packet ends inside {what}")
        self._pos = end
        return start

    def byte(self, what: str) -> int:
        return self._data[self._advance(1, what)]

    def two_byte_int(self, what: str) -> int:
        start = self._advance(2, what)
        return (self._data[start] << 8) | self._data[start + 1]

    def four_byte_int(self, what: str) -> int:
        start = self._advance(4, what)
        return int.from_bytes(self._data[start : start + 4], "big")

    def variable_byte_int(self, what: str) -> int:
        """MQTT 5.0 section 1.5.5; the one place where a per-byte loop is inherent."""
        value = 0
        for shift in (0, 7, 14, 21):
            byte = self.byte(what)
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                # [MQTT-1.5.5-1] the minimum number of bytes: a trailing 0x00 after a
                # continuation byte would be an over-long encoding.
                if byte == 0 and shift:
                    raise malformed(f"{what} is not minimally encoded")
                return value
        raise malformed(f"{what} is longer than 4 bytes")

    def binary(self, what: str) -> bytes:
        """Binary Data: a two byte length then that many bytes (section 1.5.6)."""
        size = self.two_byte_int(what)
        start = self._advance(size, what)
        return self._data[start : start + size]

    def utf8(self, what: str) -> str:
        """UTF-8 Encoded String (section 1.5.4)."""
        return decode_utf8(self.binary(what), what)

    def take(self, size: int, what: str) -> bytes:
        start = self._advance(size, what)
        return self._data[start : start + size]

    def rest(self) -> bytes:
        start = self._pos
        self._pos = len(self._data)
        return self._data[start:] if start else self._data

    def expect_end(self, what: str) -> None:
        if self._pos != len(self._data):
            raise malformed(f"{self.remaining} unexpected byte(s) after {what}")


def decode_utf8(raw: bytes, what: str) -> str:
    """The text of a UTF-8 Encoded String's bytes (after the length prefix)."""
    if b"\x00" in raw:
        # [MQTT-1.5.4-2] / 3.1.1 [MQTT-1.5.3-2]: no U+0000 (0x00 only ever encodes it).
        raise malformed(f"{what} contains U+0000")
    try:
        # Python's strict UTF-8 codec rejects surrogates (U+D800..U+DFFF) and over-long
        # forms, as [MQTT-1.5.4-1] / 3.1.1 [MQTT-1.5.3-1] require, and keeps a leading
        # BOM as U+FEFF as [MQTT-1.5.4-3] requires.
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise malformed(f"{what} is not well-formed UTF-8") from None


def encode_variable_byte_int(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))  # the common case: short packets, small properties
    if value > MAX_VARIABLE_BYTE_INTEGER:
        raise ValueError(f"{value} does not fit in a Variable Byte Integer")
    out = bytearray()
    while True:
        value, digit = divmod(value, 0x80)
        if value:
            out.append(digit | 0x80)
        else:
            out.append(digit)
            return bytes(out)


def encode_binary(data: bytes) -> bytes:
    if len(data) > MAX_TWO_BYTE_LENGTH:
        raise ValueError(f"{len(data)} bytes do not fit in a two byte length prefix")
    return len(data).to_bytes(2, "big") + data


def encode_utf8(text: str) -> bytes:
    return encode_binary(text.encode("utf-8"))


def encode_two_byte_int(value: int) -> bytes:
    return value.to_bytes(2, "big")


def encode_four_byte_int(value: int) -> bytes:
    return value.to_bytes(4, "big")
