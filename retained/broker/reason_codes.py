"""MQTT reason codes (MQTT 5.0 section 2.4) and MQTT 3.1.1 CONNACK return codes.

MQTT 5 gives one byte-sized vocabulary of reason codes shared by every acknowledgement
packet; some values have a different name depending on the packet (0x00 is "Success",
"Normal disconnection" or "Granted QoS 0"), which the enum expresses with aliases.

MQTT 3.1.1 has a much smaller CONNACK vocabulary (0..5) and SUBACK return codes that
coincide with the MQTT 5 values 0x00, 0x01, 0x02 and 0x80.

The per-packet sets below are the spec's tables of which reason codes a sender may use
in which packet; the decoder refuses anything else as a Malformed Packet.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final


class ReasonCode(IntEnum):
    """Every MQTT 5 reason code, named as in MQTT 5.0 table 2-6."""

    SUCCESS = 0x00
    NORMAL_DISCONNECTION = 0x00
    GRANTED_QOS_0 = 0x00
    GRANTED_QOS_1 = 0x01
    GRANTED_QOS_2 = 0x02
    DISCONNECT_WITH_WILL_MESSAGE = 0x04
    NO_MATCHING_SUBSCRIBERS = 0x10
    NO_SUBSCRIPTION_EXISTED = 0x11
    CONTINUE_AUTHENTICATION = 0x18
    RE_AUTHENTICATE = 0x19
    UNSPECIFIED_ERROR = 0x80
    MALFORMED_PACKET = 0x81
    PROTOCOL_ERROR = 0x82
    IMPLEMENTATION_SPECIFIC_ERROR = 0x83
    UNSUPPORTED_PROTOCOL_VERSION = 0x84
    CLIENT_IDENTIFIER_NOT_VALID = 0x85
    BAD_USER_NAME_OR_PASSWORD = 0x86
    NOT_AUTHORIZED = 0x87
    SERVER_UNAVAILABLE = 0x88
    SERVER_BUSY = 0x89
    BANNED = 0x8A
    SERVER_SHUTTING_DOWN = 0x8B
    BAD_AUTHENTICATION_METHOD = 0x8C
    KEEP_ALIVE_TIMEOUT = 0x8D
    SESSION_TAKEN_OVER = 0x8E
    TOPIC_FILTER_INVALID = 0x8F
    TOPIC_NAME_INVALID = 0x90
    PACKET_IDENTIFIER_IN_USE = 0x91
    PACKET_IDENTIFIER_NOT_FOUND = 0x92
    RECEIVE_MAXIMUM_EXCEEDED = 0x93
    TOPIC_ALIAS_INVALID = 0x94
    PACKET_TOO_LARGE = 0x95
    MESSAGE_RATE_TOO_HIGH = 0x96
    QUOTA_EXCEEDED = 0x97
    ADMINISTRATIVE_ACTION = 0x98
    PAYLOAD_FORMAT_INVALID = 0x99
    RETAIN_NOT_SUPPORTED = 0x9A
    QOS_NOT_SUPPORTED = 0x9B
    USE_ANOTHER_SERVER = 0x9C
    SERVER_MOVED = 0x9D
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E
    CONNECTION_RATE_EXCEEDED = 0x9F
    MAXIMUM_CONNECT_TIME = 0xA0
    SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1
    WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2

    @property
    def is_error(self) -> bool:
        """Values of 0x80 and above report failure (MQTT 5.0 section 2.4)."""
        return self >= 0x80


class ConnackReturnCode311(IntEnum):
    """MQTT 3.1.1 CONNACK return codes (MQTT 3.1.1 table 3.1); 6..255 are reserved."""

    ACCEPTED = 0
    UNACCEPTABLE_PROTOCOL_VERSION = 1
    IDENTIFIER_REJECTED = 2
    SERVER_UNAVAILABLE = 3
    BAD_USER_NAME_OR_PASSWORD = 4
    NOT_AUTHORIZED = 5


_RC = ReasonCode

# MQTT 5.0 table 3-1 (CONNACK), 3-4 (PUBACK), 3-5 (PUBREC), 3-6 (PUBREL),
# 3-7 (PUBCOMP), 3-8 (SUBACK), 3-9 (UNSUBACK), 3-10 (DISCONNECT), 3-11 (AUTH).
CONNACK_REASON_CODES: Final = frozenset(
    {
        _RC.SUCCESS,
        _RC.UNSPECIFIED_ERROR,
        _RC.MALFORMED_PACKET,
        _RC.PROTOCOL_ERROR,
        _RC.IMPLEMENTATION_SPECIFIC_ERROR,
        _RC.UNSUPPORTED_PROTOCOL_VERSION,
        _RC.CLIENT_IDENTIFIER_NOT_VALID,
        _RC.BAD_USER_NAME_OR_PASSWORD,
        _RC.NOT_AUTHORIZED,
        _RC.SERVER_UNAVAILABLE,
        _RC.SERVER_BUSY,
        _RC.BANNED,
        _RC.BAD_AUTHENTICATION_METHOD,
        _RC.TOPIC_NAME_INVALID,
        _RC.PACKET_TOO_LARGE,
        _RC.QUOTA_EXCEEDED,
        _RC.PAYLOAD_FORMAT_INVALID,
        _RC.RETAIN_NOT_SUPPORTED,
        _RC.QOS_NOT_SUPPORTED,
        _RC.USE_ANOTHER_SERVER,
        _RC.SERVER_MOVED,
        _RC.CONNECTION_RATE_EXCEEDED,
    }
)
PUBACK_REASON_CODES: Final = frozenset(
    {
        _RC.SUCCESS,
        _RC.NO_MATCHING_SUBSCRIBERS,
        _RC.UNSPECIFIED_ERROR,
        _RC.IMPLEMENTATION_SPECIFIC_ERROR,
        _RC.NOT_AUTHORIZED,
        _RC.TOPIC_NAME_INVALID,
        _RC.PACKET_IDENTIFIER_IN_USE,
        _RC.QUOTA_EXCEEDED,
        _RC.PAYLOAD_FORMAT_INVALID,
    }
)
PUBREC_REASON_CODES: Final = PUBACK_REASON_CODES
PUBREL_REASON_CODES: Final = frozenset({_RC.SUCCESS, _RC.PACKET_IDENTIFIER_NOT_FOUND})
PUBCOMP_REASON_CODES: Final = PUBREL_REASON_CODES
SUBACK_REASON_CODES: Final = frozenset(
    {
        _RC.GRANTED_QOS_0,
        _RC.GRANTED_QOS_1,
        _RC.GRANTED_QOS_2,
        _RC.UNSPECIFIED_ERROR,
        _RC.IMPLEMENTATION_SPECIFIC_ERROR,
        _RC.NOT_AUTHORIZED,
        _RC.TOPIC_FILTER_INVALID,
        _RC.PACKET_IDENTIFIER_IN_USE,
        _RC.QUOTA_EXCEEDED,
        _RC.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED,
        _RC.SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
        _RC.WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED,
    }
)
UNSUBACK_REASON_CODES: Final = frozenset(
    {
        _RC.SUCCESS,
        _RC.NO_SUBSCRIPTION_EXISTED,
        _RC.UNSPECIFIED_ERROR,
        _RC.IMPLEMENTATION_SPECIFIC_ERROR,
        _RC.NOT_AUTHORIZED,
        _RC.TOPIC_FILTER_INVALID,
        _RC.PACKET_IDENTIFIER_IN_USE,
    }
)
DISCONNECT_REASON_CODES: Final = frozenset(
    {
        _RC.NORMAL_DISCONNECTION,
        _RC.DISCONNECT_WITH_WILL_MESSAGE,
        _RC.UNSPECIFIED_ERROR,
        _RC.MALFORMED_PACKET,
        _RC.PROTOCOL_ERROR,
        _RC.IMPLEMENTATION_SPECIFIC_ERROR,
        _RC.NOT_AUTHORIZED,
        _RC.SERVER_BUSY,
        _RC.SERVER_SHUTTING_DOWN,
        # Table 2-6 lists 0x8C for DISCONNECT (a failed re-authentication) though table
        # 3-10 leaves it out; a receiver should accept it.
        _RC.BAD_AUTHENTICATION_METHOD,
        _RC.KEEP_ALIVE_TIMEOUT,
        _RC.SESSION_TAKEN_OVER,
        _RC.TOPIC_FILTER_INVALID,
        _RC.TOPIC_NAME_INVALID,
        _RC.RECEIVE_MAXIMUM_EXCEEDED,
        _RC.TOPIC_ALIAS_INVALID,
        _RC.PACKET_TOO_LARGE,
        _RC.MESSAGE_RATE_TOO_HIGH,
        _RC.QUOTA_EXCEEDED,
        _RC.ADMINISTRATIVE_ACTION,
        _RC.PAYLOAD_FORMAT_INVALID,
        _RC.RETAIN_NOT_SUPPORTED,
        _RC.QOS_NOT_SUPPORTED,
        _RC.USE_ANOTHER_SERVER,
        _RC.SERVER_MOVED,
        _RC.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED,
        _RC.CONNECTION_RATE_EXCEEDED,
        _RC.MAXIMUM_CONNECT_TIME,
        _RC.SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
        _RC.WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED,
    }
)
AUTH_REASON_CODES: Final = frozenset(
    {_RC.SUCCESS, _RC.CONTINUE_AUTHENTICATION, _RC.RE_AUTHENTICATE}
)

# MQTT 3.1.1: 6..255 are reserved for CONNACK; SUBACK return codes other than
# 0x00, 0x01, 0x02 and 0x80 are reserved and MUST NOT be used [MQTT-3.9.3-2].
CONNACK_RETURN_CODES_311: Final = frozenset(ConnackReturnCode311)
SUBACK_RETURN_CODES_311: Final = frozenset(
    {_RC.GRANTED_QOS_0, _RC.GRANTED_QOS_1, _RC.GRANTED_QOS_2, _RC.UNSPECIFIED_ERROR}
)

_V5_TO_311: Final[dict[int, ConnackReturnCode311]] = {
    _RC.SUCCESS: ConnackReturnCode311.ACCEPTED,
    _RC.UNSUPPORTED_PROTOCOL_VERSION: ConnackReturnCode311.UNACCEPTABLE_PROTOCOL_VERSION,
    _RC.CLIENT_IDENTIFIER_NOT_VALID: ConnackReturnCode311.IDENTIFIER_REJECTED,
    _RC.BAD_USER_NAME_OR_PASSWORD: ConnackReturnCode311.BAD_USER_NAME_OR_PASSWORD,
    _RC.BAD_AUTHENTICATION_METHOD: ConnackReturnCode311.BAD_USER_NAME_OR_PASSWORD,
    _RC.NOT_AUTHORIZED: ConnackReturnCode311.NOT_AUTHORIZED,
    _RC.BANNED: ConnackReturnCode311.NOT_AUTHORIZED,
}


def connack_return_code_311(reason: int) -> ConnackReturnCode311:
    """The MQTT 3.1.1 CONNACK return code closest to an MQTT 5 CONNACK reason code.

    3.1.1 can only say "accepted", "bad protocol version", "identifier rejected", "bad
    credentials", "not authorized" or "server unavailable"; every other failure (busy,
    quota, moved, malformed...) is reported as Server unavailable, the one code that
    tells a 3.1.1 client "not your fault, try again later".
    """
    return _V5_TO_311.get(reason, ConnackReturnCode311.SERVER_UNAVAILABLE)
