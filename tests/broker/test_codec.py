"""Tests for the sans-IO MQTT codec (retained.broker.codec).

The byte vectors below are written by hand from the wire format in the MQTT 3.1.1 and
MQTT 5.0 specifications (chapters 1-3), one commented line per field; they are not
captured from the encoder. Each one drives encode and decode, whole and byte by byte.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any, get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt import client as paho_client
from paho.mqtt import packettypes as paho_packettypes
from paho.mqtt import properties as paho_properties
from paho.mqtt import reasoncodes as paho_reasoncodes
from paho.mqtt import subscribeoptions as paho_subscribeoptions

from retained.broker._wire import Reader
from retained.broker.codec import Decoder, ProtocolError, encode
from retained.broker.packets import (
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
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
    PropertyId,
    PropertyType,
    allowed_properties,
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
    ConnackReturnCode311,
    ReasonCode,
    connack_return_code_311,
)

BOUNDED = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def wire(spec: str) -> bytes:
    """Hex bytes; whitespace is ignored and '#' starts a comment."""
    return bytes.fromhex("".join(line.split("#", 1)[0] for line in spec.splitlines()))


def decoder_for(packet: Packet, level: int) -> Decoder:
    # A CONNECT goes to a server-side decoder, as in real life; everything else to a
    # decoder that already knows the protocol level.
    return Decoder() if isinstance(packet, Connect) else Decoder(protocol_level=level)


# =============================================================================== vectors

CONNECT_311_MINIMAL = """
10 0c                 # CONNECT, Remaining Length 12
00 04 4d 51 54 54     # Protocol Name "MQTT"
04                    # Protocol Level 4
02                    # Connect Flags: Clean Session
00 3c                 # Keep Alive 60
00 00                 # Client Identifier ""
"""

CONNECT_5_MINIMAL = """
10 0f                 # CONNECT, Remaining Length 15
00 04 4d 51 54 54     # Protocol Name "MQTT"
05                    # Protocol Level 5
02                    # Connect Flags: Clean Start
00 00                 # Keep Alive 0
00                    # Property Length 0
00 02 69 64           # Client Identifier "id"
"""

CONNECT_5_FULL_PROPERTIES = Properties(
    session_expiry_interval=3600,
    authentication_method="SCRAM",
    authentication_data=b"\x01\x02",
    request_problem_information=False,
    request_response_information=True,
    receive_maximum=20,
    topic_alias_maximum=10,
    user_property=(("k", "v"), ("k", "v"), ("a", "")),
    maximum_packet_size=65536,
)
WILL_5_FULL_PROPERTIES = Properties(
    payload_format_indicator=1,
    message_expiry_interval=60,
    content_type="text/plain",
    response_topic="r",
    correlation_data=b"\xca\xfe",
    will_delay_interval=5,
    user_property=(("x", "1"),),
)
CONNACK_5_FULL_PROPERTIES = Properties(
    session_expiry_interval=0,
    assigned_client_identifier="auto-1",
    server_keep_alive=30,
    authentication_method="M",
    authentication_data=b"",
    response_information="ri",
    server_reference="s2",
    reason_string="ok",
    receive_maximum=100,
    topic_alias_maximum=0,
    maximum_qos=1,
    retain_available=True,
    user_property=(("a", "b"),),
    maximum_packet_size=268_435_455,
    wildcard_subscription_available=False,
    subscription_identifier_available=True,
    shared_subscription_available=False,
)
PUBLISH_5_FULL_PROPERTIES = Properties(
    payload_format_indicator=0,
    message_expiry_interval=0xFFFFFFFF,
    content_type="json",
    response_topic="re/sp",
    correlation_data=b"\x00",
    subscription_identifier=(1, 268_435_455),
    topic_alias=0xFFFF,
    user_property=(("k", "1"), ("k", "2"), ("k", "1")),
)


def big_publish(level: int, remaining_length: int) -> Publish:
    """A QoS 0 PUBLISH to "t" whose Remaining Length is exactly `remaining_length`."""
    overhead = 3 if level == 4 else 4  # topic "t" (2 + 1), plus Property Length in MQTT 5
    return Publish(topic="t", payload=b"\xab" * (remaining_length - overhead))


def big_publish_wire(level: int, remaining_length: int, header: str) -> str:
    overhead = 3 if level == 4 else 4
    properties = "" if level == 4 else "00  # Property Length 0\n"
    return (
        f"{header}  # PUBLISH, Remaining Length {remaining_length}\n"
        "00 01 74  # Topic Name 't'\n"
        f"{properties}" + "ab" * (remaining_length - overhead) + "  # payload\n"
    )


VECTORS = [
    # ------------------------------------------------------------------ MQTT 3.1.1
    pytest.param(
        4,
        Connect(protocol_level=4, clean_start=True, keep_alive=60, client_id=""),
        CONNECT_311_MINIMAL,
        id="311-connect-minimal",
    ),
    pytest.param(
        4,
        Connect(
            protocol_level=4,
            clean_start=False,
            keep_alive=10,
            client_id="c1",
            will=Will(topic="w/t", payload=b"bye", qos=1, retain=True),
            username="user",
            password=b"pw",
        ),
        """
        10 22                 # CONNECT, Remaining Length 34
        00 04 4d 51 54 54     # Protocol Name "MQTT"
        04                    # Protocol Level 4
        ec                    # User Name, Password, Will Retain, Will QoS 1, Will Flag
        00 0a                 # Keep Alive 10
        00 02 63 31           # Client Identifier "c1"
        00 03 77 2f 74        # Will Topic "w/t"
        00 03 62 79 65        # Will Message "bye"
        00 04 75 73 65 72     # User Name "user"
        00 02 70 77           # Password "pw"
        """,
        id="311-connect-will-credentials",
    ),
    pytest.param(
        4,
        Connack(session_present=True, reason_code=0),
        "20 02  01  00  # CONNACK, Session Present, Connection Accepted",
        id="311-connack-accepted",
    ),
    pytest.param(
        4,
        Connack(reason_code=ConnackReturnCode311.NOT_AUTHORIZED),
        "20 02  00  05  # CONNACK, no session, return code 5 Not authorized",
        id="311-connack-refused",
    ),
    pytest.param(
        4,
        Publish(topic="a/b", payload=b"hello"),
        """
        30 0a                 # PUBLISH QoS 0, Remaining Length 10
        00 03 61 2f 62        # Topic Name "a/b"
        68 65 6c 6c 6f        # payload "hello"
        """,
        id="311-publish-qos0",
    ),
    pytest.param(
        4,
        Publish(topic="t", payload=b"\x00\xff", qos=1, retain=True, dup=True, packet_id=0x1234),
        """
        3b 07                 # PUBLISH DUP, QoS 1, RETAIN; Remaining Length 7
        00 01 74              # Topic Name "t"
        12 34                 # Packet Identifier 0x1234
        00 ff                 # payload
        """,
        id="311-publish-qos1-dup-retain",
    ),
    pytest.param(
        4,
        Publish(topic="t", qos=2, packet_id=1),
        "34 05  00 01 74  00 01  # PUBLISH QoS 2, topic 't', id 1, empty payload",
        id="311-publish-qos2-empty-payload",
    ),
    pytest.param(4, Puback(packet_id=1), "40 02  00 01  # PUBACK id 1", id="311-puback"),
    pytest.param(4, Pubrec(packet_id=2), "50 02  00 02  # PUBREC id 2", id="311-pubrec"),
    pytest.param(4, Pubrel(packet_id=3), "62 02  00 03  # PUBREL (flags 0010)", id="311-pubrel"),
    pytest.param(4, Pubcomp(packet_id=4), "70 02  00 04  # PUBCOMP id 4", id="311-pubcomp"),
    pytest.param(
        4,
        Subscribe(
            packet_id=10,
            subscriptions=(
                Subscription(topic_filter="a/+", qos=0),
                Subscription(topic_filter="#", qos=2),
            ),
        ),
        """
        82 0c                 # SUBSCRIBE (flags 0010), Remaining Length 12
        00 0a                 # Packet Identifier 10
        00 03 61 2f 2b  00    # "a/+" Requested QoS 0
        00 01 23  02          # "#" Requested QoS 2
        """,
        id="311-subscribe",
    ),
    pytest.param(
        4,
        Suback(packet_id=10, reason_codes=(0, 2, 0x80)),
        "90 05  00 0a  00 02 80  # SUBACK id 10: QoS 0, QoS 2, Failure",
        id="311-suback",
    ),
    pytest.param(
        4,
        Unsubscribe(packet_id=11, topic_filters=("a/+", "#")),
        """
        a2 0a                 # UNSUBSCRIBE (flags 0010), Remaining Length 10
        00 0b                 # Packet Identifier 11
        00 03 61 2f 2b        # "a/+"
        00 01 23              # "#"
        """,
        id="311-unsubscribe",
    ),
    pytest.param(4, Unsuback(packet_id=11), "b0 02  00 0b  # UNSUBACK id 11", id="311-unsuback"),
    pytest.param(4, Pingreq(), "c0 00  # PINGREQ", id="311-pingreq"),
    pytest.param(4, Pingresp(), "d0 00  # PINGRESP", id="311-pingresp"),
    pytest.param(4, Disconnect(), "e0 00  # DISCONNECT", id="311-disconnect"),
    pytest.param(4, big_publish(4, 127), big_publish_wire(4, 127, "30 7f"), id="311-rl-127"),
    pytest.param(4, big_publish(4, 128), big_publish_wire(4, 128, "30 80 01"), id="311-rl-128"),
    pytest.param(
        4, big_publish(4, 16383), big_publish_wire(4, 16383, "30 ff 7f"), id="311-rl-16383"
    ),
    pytest.param(
        4, big_publish(4, 16384), big_publish_wire(4, 16384, "30 80 80 01"), id="311-rl-16384"
    ),
    # -------------------------------------------------------------------- MQTT 5
    pytest.param(
        5,
        Connect(protocol_level=5, client_id="id"),
        CONNECT_5_MINIMAL,
        id="5-connect-minimal",
    ),
    pytest.param(
        5,
        Connect(
            protocol_level=5,
            clean_start=False,
            keep_alive=300,
            client_id="cid",
            will=Will(
                topic="will/t",
                payload=b"gone",
                qos=2,
                retain=False,
                properties=WILL_5_FULL_PROPERTIES,
            ),
            username="u",
            password=b"",
            properties=CONNECT_5_FULL_PROPERTIES,
        ),
        """
        10 82 01              # CONNECT, Remaining Length 130 (two-byte encoding)
        00 04 4d 51 54 54     # Protocol Name "MQTT"
        05                    # Protocol Level 5
        d4                    # User Name, Password, Will QoS 2, Will Flag
        01 2c                 # Keep Alive 300
        35                    # Property Length 53
        11 00 00 0e 10        #   Session Expiry Interval 3600
        15 00 05 53 43 52 41 4d  # Authentication Method "SCRAM"
        16 00 02 01 02        #   Authentication Data 01 02
        17 00                 #   Request Problem Information 0
        19 01                 #   Request Response Information 1
        21 00 14              #   Receive Maximum 20
        22 00 0a              #   Topic Alias Maximum 10
        26 00 01 6b 00 01 76  #   User Property ("k", "v")
        26 00 01 6b 00 01 76  #   User Property ("k", "v") again: duplicates are kept
        26 00 01 61 00 00     #   User Property ("a", "")
        27 00 01 00 00        #   Maximum Packet Size 65536
        00 03 63 69 64        # Client Identifier "cid"
        29                    # Will Property Length 41
        01 01                 #   Payload Format Indicator 1
        02 00 00 00 3c        #   Message Expiry Interval 60
        03 00 0a 74 65 78 74 2f 70 6c 61 69 6e  # Content Type "text/plain"
        08 00 01 72           #   Response Topic "r"
        09 00 02 ca fe        #   Correlation Data ca fe
        18 00 00 00 05        #   Will Delay Interval 5
        26 00 01 78 00 01 31  #   User Property ("x", "1")
        00 06 77 69 6c 6c 2f 74  # Will Topic "will/t"
        00 04 67 6f 6e 65     # Will Payload "gone"
        00 01 75              # User Name "u"
        00 00                 # Password (empty)
        """,
        id="5-connect-every-property-and-will",
    ),
    pytest.param(
        5,
        Connect(protocol_level=5, client_id="p", password=b"secret"),
        """
        10 16                 # CONNECT, Remaining Length 22
        00 04 4d 51 54 54     # Protocol Name "MQTT"
        05                    # Protocol Level 5
        42                    # Password, Clean Start (no User Name: allowed in MQTT 5)
        00 00                 # Keep Alive 0
        00                    # Property Length 0
        00 01 70              # Client Identifier "p"
        00 06 73 65 63 72 65 74  # Password "secret"
        """,
        id="5-connect-password-without-username",
    ),
    pytest.param(
        5,
        Connack(),
        "20 03  00  00  00  # CONNACK, no session, Success, Property Length 0",
        id="5-connack-minimal",
    ),
    pytest.param(
        5,
        Connack(session_present=True, properties=CONNACK_5_FULL_PROPERTIES),
        """
        20 46                 # CONNACK, Remaining Length 70
        01                    # Session Present
        00                    # Success
        43                    # Property Length 67
        11 00 00 00 00        #   Session Expiry Interval 0
        12 00 06 61 75 74 6f 2d 31  # Assigned Client Identifier "auto-1"
        13 00 1e              #   Server Keep Alive 30
        15 00 01 4d           #   Authentication Method "M"
        16 00 00              #   Authentication Data (empty)
        1a 00 02 72 69        #   Response Information "ri"
        1c 00 02 73 32        #   Server Reference "s2"
        1f 00 02 6f 6b        #   Reason String "ok"
        21 00 64              #   Receive Maximum 100
        22 00 00              #   Topic Alias Maximum 0
        24 01                 #   Maximum QoS 1
        25 01                 #   Retain Available 1
        26 00 01 61 00 01 62  #   User Property ("a", "b")
        27 0f ff ff ff        #   Maximum Packet Size 268435455
        28 00                 #   Wildcard Subscription Available 0
        29 01                 #   Subscription Identifiers Available 1
        2a 00                 #   Shared Subscription Available 0
        """,
        id="5-connack-every-property",
    ),
    pytest.param(
        5,
        Connack(reason_code=ReasonCode.NOT_AUTHORIZED, properties=Properties(reason_string="no")),
        "20 08  00  87  05 1f 00 02 6e 6f  # CONNACK Not authorized, Reason String 'no'",
        id="5-connack-refused",
    ),
    pytest.param(
        5,
        Publish(topic="a/b", payload=b"hi"),
        """
        30 08                 # PUBLISH QoS 0, Remaining Length 8
        00 03 61 2f 62        # Topic Name "a/b"
        00                    # Property Length 0
        68 69                 # payload "hi"
        """,
        id="5-publish-qos0",
    ),
    pytest.param(
        5,
        Publish(
            topic="t/1",
            payload=b"{}",
            qos=1,
            retain=True,
            packet_id=0x0102,
            properties=PUBLISH_5_FULL_PROPERTIES,
        ),
        """
        33 43                 # PUBLISH QoS 1, RETAIN; Remaining Length 67
        00 03 74 2f 31        # Topic Name "t/1"
        01 02                 # Packet Identifier 258
        39                    # Property Length 57
        01 00                 #   Payload Format Indicator 0
        02 ff ff ff ff        #   Message Expiry Interval 4294967295
        03 00 04 6a 73 6f 6e  #   Content Type "json"
        08 00 05 72 65 2f 73 70  # Response Topic "re/sp"
        09 00 01 00           #   Correlation Data 00
        0b 01                 #   Subscription Identifier 1
        0b ff ff ff 7f        #   Subscription Identifier 268435455 (4-byte VBI)
        23 ff ff              #   Topic Alias 65535
        26 00 01 6b 00 01 31  #   User Property ("k", "1")
        26 00 01 6b 00 01 32  #   User Property ("k", "2")
        26 00 01 6b 00 01 31  #   User Property ("k", "1") again
        7b 7d                 # payload "{}"
        """,
        id="5-publish-every-property",
    ),
    pytest.param(
        5,
        Publish(topic="x", qos=2, dup=True, packet_id=0xFFFF),
        "3c 06  00 01 78  ff ff  00  # PUBLISH DUP QoS 2, 'x', id 65535, no properties",
        id="5-publish-qos2-dup",
    ),
    pytest.param(
        5, Puback(packet_id=1), "40 02  00 01  # PUBACK, Success implied", id="5-puback-short"
    ),
    pytest.param(
        5,
        Puback(packet_id=1, reason_code=ReasonCode.NO_MATCHING_SUBSCRIBERS),
        "40 03  00 01  10  # PUBACK, No matching subscribers, no Property Length",
        id="5-puback-reason-only",
    ),
    pytest.param(
        5,
        Puback(
            packet_id=2,
            reason_code=ReasonCode.PAYLOAD_FORMAT_INVALID,
            properties=Properties(reason_string="bad", user_property=(("a", "b"),)),
        ),
        """
        40 11                 # PUBACK, Remaining Length 17
        00 02                 # Packet Identifier 2
        99                    # Payload format invalid
        0d                    # Property Length 13
        1f 00 03 62 61 64     #   Reason String "bad"
        26 00 01 61 00 01 62  #   User Property ("a", "b")
        """,
        id="5-puback-properties",
    ),
    pytest.param(
        5,
        Puback(packet_id=3, properties=Properties(reason_string="x")),
        "40 08  00 03  00  04 1f 00 01 78  # PUBACK Success with a Reason String",
        id="5-puback-success-with-properties",
    ),
    pytest.param(
        5,
        Pubrec(packet_id=5, reason_code=ReasonCode.UNSPECIFIED_ERROR),
        "50 03  00 05  80  # PUBREC Unspecified error",
        id="5-pubrec",
    ),
    pytest.param(
        5,
        Pubrel(
            packet_id=6,
            reason_code=ReasonCode.PACKET_IDENTIFIER_NOT_FOUND,
            properties=Properties(reason_string="nf"),
        ),
        "62 09  00 06  92  05 1f 00 02 6e 66  # PUBREL id 6, not found, Reason String 'nf'",
        id="5-pubrel",
    ),
    pytest.param(5, Pubcomp(packet_id=7), "70 02  00 07  # PUBCOMP id 7", id="5-pubcomp"),
    pytest.param(
        5,
        Subscribe(
            packet_id=1,
            subscriptions=(
                Subscription(
                    topic_filter="a/#",
                    qos=1,
                    no_local=True,
                    retain_as_published=True,
                    retain_handling=2,
                ),
                Subscription(topic_filter="$share/g/x", qos=0, retain_handling=1),
            ),
            properties=Properties(subscription_identifier=(128,), user_property=(("s", "t"),)),
        ),
        """
        82 20                 # SUBSCRIBE (flags 0010), Remaining Length 32
        00 01                 # Packet Identifier 1
        0a                    # Property Length 10
        0b 80 01              #   Subscription Identifier 128 (2-byte VBI)
        26 00 01 73 00 01 74  #   User Property ("s", "t")
        00 03 61 2f 23        # "a/#"
        2d                    #   Retain Handling 2, RAP, No Local, QoS 1
        00 0a 24 73 68 61 72 65 2f 67 2f 78  # "$share/g/x"
        10                    #   Retain Handling 1, QoS 0
        """,
        id="5-subscribe-options-and-properties",
    ),
    pytest.param(
        5,
        Suback(
            packet_id=1,
            reason_codes=(1, 0x8F, 0xA2, 0),
            properties=Properties(reason_string="r"),
        ),
        """
        90 0b                 # SUBACK, Remaining Length 11
        00 01                 # Packet Identifier 1
        04 1f 00 01 72        # Property Length 4: Reason String "r"
        01 8f a2 00           # Granted QoS 1, Topic Filter invalid, Wildcards unsupported, QoS 0
        """,
        id="5-suback",
    ),
    pytest.param(
        5,
        Suback(packet_id=2, reason_codes=(2,)),
        "90 04  00 02  00  02  # SUBACK id 2, no properties, Granted QoS 2",
        id="5-suback-minimal",
    ),
    pytest.param(
        5,
        Unsubscribe(
            packet_id=0x0203,
            topic_filters=("a", "b/c"),
            properties=Properties(user_property=(("u", "v"),)),
        ),
        """
        a2 12                 # UNSUBSCRIBE (flags 0010), Remaining Length 18
        02 03                 # Packet Identifier 515
        07 26 00 01 75 00 01 76  # Property Length 7: User Property ("u", "v")
        00 01 61              # "a"
        00 03 62 2f 63        # "b/c"
        """,
        id="5-unsubscribe",
    ),
    pytest.param(
        5,
        Unsuback(packet_id=0x0203, reason_codes=(0, 0x11)),
        "b0 05  02 03  00  00 11  # UNSUBACK: Success, No subscription existed",
        id="5-unsuback",
    ),
    pytest.param(5, Pingreq(), "c0 00  # PINGREQ", id="5-pingreq"),
    pytest.param(5, Pingresp(), "d0 00  # PINGRESP", id="5-pingresp"),
    pytest.param(
        5, Disconnect(), "e0 00  # DISCONNECT, Normal disconnection implied", id="5-disconnect"
    ),
    pytest.param(
        5,
        Disconnect(reason_code=ReasonCode.DISCONNECT_WITH_WILL_MESSAGE),
        "e0 01  04  # DISCONNECT with Will Message, no Property Length",
        id="5-disconnect-reason-only",
    ),
    pytest.param(
        5,
        Disconnect(properties=Properties(reason_string="x")),
        "e0 06  00  04 1f 00 01 78  # DISCONNECT Normal, Reason String 'x'",
        id="5-disconnect-normal-with-properties",
    ),
    pytest.param(
        5,
        Disconnect(
            reason_code=ReasonCode.USE_ANOTHER_SERVER,
            properties=Properties(
                session_expiry_interval=0,
                server_reference="other",
                reason_string="bye",
                user_property=(("a", "b"),),
            ),
        ),
        """
        e0 1c                 # DISCONNECT, Remaining Length 28
        9c                    # Use another server
        1a                    # Property Length 26
        11 00 00 00 00        #   Session Expiry Interval 0
        1c 00 05 6f 74 68 65 72  # Server Reference "other"
        1f 00 03 62 79 65     #   Reason String "bye"
        26 00 01 61 00 01 62  #   User Property ("a", "b")
        """,
        id="5-disconnect-every-property",
    ),
    pytest.param(5, Auth(), "f0 00  # AUTH, Success implied", id="5-auth-minimal"),
    pytest.param(
        5,
        Auth(
            reason_code=ReasonCode.CONTINUE_AUTHENTICATION,
            properties=Properties(
                authentication_method="SCRAM",
                authentication_data=b"\x01",
                reason_string="r",
                user_property=(("a", "b"),),
            ),
        ),
        """
        f0 19                 # AUTH, Remaining Length 25
        18                    # Continue authentication
        17                    # Property Length 23
        15 00 05 53 43 52 41 4d  # Authentication Method "SCRAM"
        16 00 01 01           #   Authentication Data 01
        1f 00 01 72           #   Reason String "r"
        26 00 01 61 00 01 62  #   User Property ("a", "b")
        """,
        id="5-auth-every-property",
    ),
    pytest.param(5, big_publish(5, 127), big_publish_wire(5, 127, "30 7f"), id="5-rl-127"),
    pytest.param(5, big_publish(5, 128), big_publish_wire(5, 128, "30 80 01"), id="5-rl-128"),
    pytest.param(5, big_publish(5, 16383), big_publish_wire(5, 16383, "30 ff 7f"), id="5-rl-16383"),
    pytest.param(
        5, big_publish(5, 16384), big_publish_wire(5, 16384, "30 80 80 01"), id="5-rl-16384"
    ),
]


@pytest.mark.parametrize(("level", "packet", "hex_wire"), VECTORS)
def test_encode_matches_spec_vector(level: int, packet: Packet, hex_wire: str) -> None:
    assert encode(packet, protocol_level=level) == wire(hex_wire)


@pytest.mark.parametrize(("level", "packet", "hex_wire"), VECTORS)
def test_decode_matches_spec_vector(level: int, packet: Packet, hex_wire: str) -> None:
    decoder = decoder_for(packet, level)
    assert decoder.feed(wire(hex_wire)) == [packet]
    assert decoder.protocol_level == level


@pytest.mark.parametrize(("level", "packet", "hex_wire"), VECTORS)
def test_decode_one_byte_at_a_time(level: int, packet: Packet, hex_wire: str) -> None:
    data = wire(hex_wire)
    decoder = decoder_for(packet, level)
    for index in range(len(data) - 1):
        assert decoder.feed(data[index : index + 1]) == [], f"packet before byte {index + 1}"
    assert decoder.feed(data[-1:]) == [packet]


PUBLISH_VECTORS = [vector for vector in VECTORS if isinstance(vector.values[1], Publish)]


@pytest.mark.parametrize(("level", "packet", "hex_wire"), PUBLISH_VECTORS)
def test_decode_again_with_the_topic_known(level: int, packet: Packet, hex_wire: str) -> None:
    # The decoder keeps the topics it decoded; a second PUBLISH to one of them may take the
    # short way (QoS 0 without properties) and must give the same packet.
    decoder = decoder_for(packet, level)
    data = wire(hex_wire)
    assert decoder.feed(data + data) == [packet, packet]


def test_vectors_cover_every_packet_type_in_both_versions() -> None:
    every_type = set(get_args(Packet))
    assert len(every_type) == 15
    for level, expected in ((4, every_type - {Auth}), (5, every_type)):
        assert {type(p.values[1]) for p in VECTORS if p.values[0] == level} == expected


def test_vectors_use_every_property() -> None:
    used = {
        name
        for properties in (
            CONNECT_5_FULL_PROPERTIES,
            WILL_5_FULL_PROPERTIES,
            CONNACK_5_FULL_PROPERTIES,
            PUBLISH_5_FULL_PROPERTIES,
        )
        for name in (f.name for f in dataclasses.fields(properties))
        if getattr(properties, name) not in (None, ())
    }
    assert used == {ident.field_name for ident in PropertyId}


@pytest.mark.parametrize(
    ("header", "remaining_length"),
    [
        ("30 ff ff 7f", 2_097_151),  # largest 3-byte Remaining Length
        ("30 80 80 80 01", 2_097_152),  # smallest 4-byte Remaining Length
    ],
)
def test_three_and_four_byte_remaining_length(header: str, remaining_length: int) -> None:
    packet = big_publish(4, remaining_length)
    data = wire(big_publish_wire(4, remaining_length, header))
    assert encode(packet, protocol_level=4) == data
    decoder = Decoder(protocol_level=4)
    chunks = [data[i : i + 65536] for i in range(0, len(data), 65536)]
    assert [p for chunk in chunks for p in decoder.feed(chunk)] == [packet]


def test_largest_remaining_length_waits_for_its_body() -> None:
    # 268,435,455 = ff ff ff 7f, the largest Variable Byte Integer (section 1.5.5).
    decoder = Decoder(protocol_level=4, max_packet_size=268_435_455 + 5)
    assert decoder.feed(wire("30 ff ff ff 7f 00 01 74")) == []


# ============================================================================= malformed

CONNECT_4 = "10 0c 00 04 4d 51 54 54 04 02 00 3c 00 00"
CONNECT_5 = "10 0d 00 04 4d 51 54 54 05 02 00 3c 00 00 00"
CONNECT_5_HEAD = "00 04 4d 51 54 54 05 02 00 3c"  # name, level 5, Clean Start, Keep Alive 60
MALFORMED = ReasonCode.MALFORMED_PACKET
PROTOCOL = ReasonCode.PROTOCOL_ERROR


def malformed_case(mode: str, hex_wire: str, code: ReasonCode, case_id: str) -> Any:
    return pytest.param(mode, hex_wire, code, id=case_id)


BAD_INPUTS = [
    # ---- framing and fixed header -------------------------------------------------
    malformed_case("client5", "30 ff ff ff ff 01", MALFORMED, "remaining-length-5-bytes"),
    malformed_case("client5", "c0 80 00", MALFORMED, "remaining-length-over-long-0"),
    malformed_case("client4", "30 80 80 00", MALFORMED, "remaining-length-over-long-3-bytes"),
    malformed_case("client5", "00 00", MALFORMED, "reserved-packet-type-0"),
    malformed_case("client4", "f0 00", MALFORMED, "auth-does-not-exist-in-311"),
    malformed_case("server", "11" + CONNECT_4[2:], MALFORMED, "connect-flags"),
    malformed_case("client4", "60 02 00 01", MALFORMED, "pubrel-flags-0000"),
    malformed_case("client5", "80 06 00 01 00 01 61 00", MALFORMED, "subscribe-flags-0000"),
    malformed_case("client4", "a0 05 00 01 00 01 61", MALFORMED, "unsubscribe-flags-0000"),
    malformed_case("client4", "41 02 00 01", MALFORMED, "puback-flags-0001"),
    malformed_case("client4", "c8 00", MALFORMED, "pingreq-flags-1000"),
    malformed_case("client5", "e2 00", MALFORMED, "disconnect-flags-0010"),
    malformed_case("client5", "f1 00", MALFORMED, "auth-flags-0001"),
    malformed_case("client4", "36 05 00 01 74 00 01", MALFORMED, "publish-qos-3"),
    malformed_case("client4", "38 03 00 01 74", MALFORMED, "publish-dup-at-qos-0"),
    # ---- what a server may receive, and when --------------------------------------
    malformed_case("server", "47 45 54 20 2f", PROTOCOL, "http-request-instead-of-connect"),
    malformed_case("server", "c0 00", PROTOCOL, "pingreq-before-connect"),
    malformed_case("server4", CONNECT_4, PROTOCOL, "second-connect"),
    malformed_case("server5", "20 03 00 00 00", PROTOCOL, "client-sends-connack"),
    malformed_case("server4", "90 03 00 01 00", PROTOCOL, "client-sends-suback"),
    malformed_case("server4", "b0 02 00 01", PROTOCOL, "client-sends-unsuback"),
    malformed_case("server4", "d0 00", PROTOCOL, "client-sends-pingresp"),
    malformed_case(
        "server5", "30 06 00 01 74 02 0b 01", PROTOCOL, "client-publish-with-subscription-id"
    ),
    malformed_case("client4", CONNECT_5, PROTOCOL, "connect-level-differs-from-decoder"),
    # ---- CONNECT ------------------------------------------------------------------
    malformed_case(
        "server",
        "10 0f 00 06 4d 51 49 73 64 70 03 02 00 3c 00 01 61",
        ReasonCode.UNSUPPORTED_PROTOCOL_VERSION,
        "connect-mqtt-3.1-MQIsdp",
    ),
    malformed_case(
        "server",
        "10 0c 00 04 4d 51 54 54 03 02 00 3c 00 00",
        ReasonCode.UNSUPPORTED_PROTOCOL_VERSION,
        "connect-level-3",
    ),
    malformed_case(
        "server",
        "10 0c 00 04 4d 51 54 54 06 02 00 3c 00 00",
        ReasonCode.UNSUPPORTED_PROTOCOL_VERSION,
        "connect-level-6",
    ),
    malformed_case(
        "server",
        "10 0c 00 04 48 54 54 50 04 02 00 3c 00 00",
        ReasonCode.UNSUPPORTED_PROTOCOL_VERSION,
        "connect-protocol-name-HTTP",
    ),
    malformed_case(
        "server", "10 0c 00 04 4d 51 54 54 04 03 00 3c 00 00", MALFORMED, "connect-reserved-flag"
    ),
    malformed_case(
        "server", "10 0c 00 04 4d 51 54 54 04 1e 00 3c 00 00", MALFORMED, "connect-will-qos-3"
    ),
    malformed_case(
        "server",
        "10 0c 00 04 4d 51 54 54 04 0a 00 3c 00 00",
        MALFORMED,
        "connect-will-qos-without-will",
    ),
    malformed_case(
        "server",
        "10 0c 00 04 4d 51 54 54 04 22 00 3c 00 00",
        MALFORMED,
        "connect-will-retain-without-will",
    ),
    malformed_case(
        "server",
        "10 0e 00 04 4d 51 54 54 04 42 00 3c 00 00 00 00",
        MALFORMED,
        "connect-311-password-without-username",
    ),
    malformed_case(
        "server",
        "10 0c 00 04 4d 51 54 54 04 82 00 3c 00 00",
        MALFORMED,
        "connect-username-flag-without-username",
    ),
    malformed_case(
        "server",
        "10 0c 00 04 4d 51 54 54 04 06 00 3c 00 00",
        MALFORMED,
        "connect-will-flag-without-will",
    ),
    malformed_case(
        "server",
        "10 0d 00 04 4d 51 54 54 04 02 00 3c 00 05 61",
        MALFORMED,
        "connect-client-id-truncated",
    ),
    malformed_case(
        "server",
        "10 0d 00 04 4d 51 54 54 04 02 00 3c 00 00 ff",
        MALFORMED,
        "connect-trailing-byte",
    ),
    malformed_case(
        "server", "10 0b 00 04 4d 51 54 54 04 02 00 3c 00", MALFORMED, "connect-no-client-id"
    ),
    malformed_case(
        "server",
        "10 0e 00 04 4d 51 54 54 04 02 00 3c 00 02 c3 28",
        MALFORMED,
        "utf8-invalid-continuation",
    ),
    malformed_case(
        "server",
        "10 0f 00 04 4d 51 54 54 04 02 00 3c 00 03 ed a0 80",
        MALFORMED,
        "utf8-surrogate-d800",
    ),
    malformed_case(
        "server",
        "10 0e 00 04 4d 51 54 54 04 02 00 3c 00 02 c0 af",
        MALFORMED,
        "utf8-over-long-slash",
    ),
    malformed_case(
        "server", "10 0d 00 04 4d 51 54 54 04 02 00 3c 00 01 00", MALFORMED, "utf8-u0000"
    ),
    # ---- MQTT 5 property blocks (in CONNECT unless said otherwise) -------------------
    malformed_case(
        "server", f"10 10 {CONNECT_5_HEAD} 03 23 00 01 00 00", MALFORMED, "property-not-allowed"
    ),
    malformed_case(
        "server",
        f"10 17 {CONNECT_5_HEAD} 0a 11 00 00 00 01 11 00 00 00 02 00 00",
        PROTOCOL,
        "property-duplicate-session-expiry",
    ),
    malformed_case(
        "server", f"10 10 {CONNECT_5_HEAD} 03 21 00 00 00 00", PROTOCOL, "receive-maximum-0"
    ),
    malformed_case(
        "server",
        f"10 12 {CONNECT_5_HEAD} 05 27 00 00 00 00 00 00",
        PROTOCOL,
        "maximum-packet-size-0",
    ),
    malformed_case(
        "server", f"10 0f {CONNECT_5_HEAD} 02 17 02 00 00", PROTOCOL, "request-problem-info-2"
    ),
    malformed_case(
        "server", f"10 0f {CONNECT_5_HEAD} 02 19 02 00 00", PROTOCOL, "request-response-info-2"
    ),
    malformed_case(
        "server",
        f"10 11 {CONNECT_5_HEAD} 04 16 00 01 aa 00 00",
        PROTOCOL,
        "authentication-data-without-method",
    ),
    malformed_case("server", f"10 0e {CONNECT_5_HEAD} 01 7f 00 00", MALFORMED, "property-id-7f"),
    malformed_case("server", f"10 0e {CONNECT_5_HEAD} 01 00 00 00", MALFORMED, "property-id-00"),
    malformed_case(
        "server", f"10 0f {CONNECT_5_HEAD} 02 80 01 00 00", MALFORMED, "property-id-two-byte-vbi"
    ),
    malformed_case(
        "server", f"10 0d {CONNECT_5_HEAD} 05 00 00", MALFORMED, "property-length-too-long"
    ),
    malformed_case(
        "server", f"10 0e {CONNECT_5_HEAD} 80 00 00 00", MALFORMED, "property-length-over-long"
    ),
    malformed_case(
        "server", f"10 10 {CONNECT_5_HEAD} 03 11 00 00 00 00", MALFORMED, "property-truncated"
    ),
    malformed_case(
        "server",
        f"10 11 {CONNECT_5_HEAD} 04 26 00 01 61 00 00",
        MALFORMED,
        "user-property-without-value",
    ),
    malformed_case(
        "server",
        "10 18 00 04 4d 51 54 54 05 06 00 3c 00 00 00 05 11 00 00 00 01 00 01 77 00 00",
        MALFORMED,
        "will-property-not-allowed",
    ),
    malformed_case("client5", "30 03 00 01 74", MALFORMED, "publish-without-property-length"),
    malformed_case(
        "client5", "30 07 00 01 74 03 23 00 00", ReasonCode.TOPIC_ALIAS_INVALID, "topic-alias-0"
    ),
    malformed_case("client5", "30 06 00 01 74 02 0b 00", PROTOCOL, "subscription-id-0"),
    malformed_case(
        "client5", "30 09 00 01 74 05 11 00 00 00 00", MALFORMED, "publish-session-expiry"
    ),
    malformed_case(
        "client5", "30 0a 00 01 74 06 23 00 01 23 00 02", PROTOCOL, "publish-two-topic-aliases"
    ),
    malformed_case("client5", "20 05 00 00 02 24 02", PROTOCOL, "connack-maximum-qos-2"),
    malformed_case("client5", "20 05 00 00 02 25 02", PROTOCOL, "connack-retain-available-2"),
    malformed_case("client5", "20 06 00 00 03 21 00 00", PROTOCOL, "connack-receive-maximum-0"),
    malformed_case(
        "client5", "20 08 00 00 05 18 00 00 00 01", MALFORMED, "connack-will-delay-interval"
    ),
    # ---- CONNACK ------------------------------------------------------------------
    malformed_case("client4", "20 02 02 00", MALFORMED, "connack-reserved-flags"),
    malformed_case("client4", "20 02 00 06", MALFORMED, "connack-311-return-code-6"),
    malformed_case("client4", "20 03 00 00 00", MALFORMED, "connack-311-extra-byte"),
    malformed_case("client5", "20 02 00 00", MALFORMED, "connack-5-without-properties"),
    malformed_case("client5", "20 03 00 01 00", MALFORMED, "connack-5-reason-01"),
    # ---- PUBLISH ------------------------------------------------------------------
    malformed_case("client4", "32 05 00 01 74 00 00", MALFORMED, "publish-packet-id-0"),
    malformed_case("client4", "32 04 00 01 74 00", MALFORMED, "publish-packet-id-truncated"),
    malformed_case("client4", "30 03 00 05 74", MALFORMED, "publish-topic-truncated"),
    malformed_case("client4", "30 01 00", MALFORMED, "publish-topic-length-truncated"),
    malformed_case("client4", "30 00", MALFORMED, "publish-empty"),
    # ---- PUBACK, PUBREC, PUBREL, PUBCOMP --------------------------------------------
    malformed_case("client4", "40 03 00 01 00", MALFORMED, "puback-311-extra-byte"),
    malformed_case("client4", "40 01 00", MALFORMED, "puback-truncated-id"),
    malformed_case("client5", "40 02 00 00", MALFORMED, "puback-packet-id-0"),
    malformed_case("client5", "40 03 00 01 01", MALFORMED, "puback-reason-01"),
    malformed_case("client5", "50 03 00 01 92", MALFORMED, "pubrec-reason-92"),
    malformed_case("client5", "62 03 00 01 10", MALFORMED, "pubrel-reason-10"),
    malformed_case("client5", "70 03 00 01 80", MALFORMED, "pubcomp-reason-80"),
    malformed_case(
        "client5", "40 07 00 01 00 03 23 00 01", MALFORMED, "puback-topic-alias-property"
    ),
    malformed_case("client5", "40 05 00 01 00 00 ff", MALFORMED, "puback-trailing-byte"),
    # ---- SUBSCRIBE ----------------------------------------------------------------
    malformed_case("client4", "82 02 00 01", PROTOCOL, "subscribe-311-no-filter"),
    malformed_case("client5", "82 03 00 01 00", PROTOCOL, "subscribe-5-no-filter"),
    malformed_case("client4", "82 06 00 00 00 01 61 00", MALFORMED, "subscribe-packet-id-0"),
    malformed_case("client4", "82 06 00 01 00 01 61 04", MALFORMED, "subscribe-311-no-local-bit"),
    malformed_case("client4", "82 06 00 01 00 01 61 03", MALFORMED, "subscribe-311-qos-3"),
    malformed_case("client5", "82 07 00 01 00 00 01 61 40", MALFORMED, "subscribe-reserved-bit"),
    malformed_case("client5", "82 07 00 01 00 00 01 61 03", PROTOCOL, "subscribe-5-qos-3"),
    malformed_case("client5", "82 07 00 01 00 00 01 61 30", PROTOCOL, "retain-handling-3"),
    malformed_case("client5", "82 06 00 01 00 00 01 61", MALFORMED, "subscribe-options-missing"),
    malformed_case(
        "client5",
        "82 0b 00 01 04 0b 01 0b 02 00 01 61 00",
        PROTOCOL,
        "subscribe-two-subscription-ids",
    ),
    malformed_case(
        "client5", "82 09 00 01 02 0b 00 00 01 61 00", PROTOCOL, "subscribe-subscription-id-0"
    ),
    malformed_case(
        "client5",
        "82 0d 00 01 06 0b ff ff ff ff 01 00 01 61 00",
        MALFORMED,
        "subscription-id-5-byte-vbi",
    ),
    malformed_case(
        "client5", "82 0a 00 01 03 1f 00 00 00 01 61 00", MALFORMED, "subscribe-reason-string"
    ),
    # ---- SUBACK -------------------------------------------------------------------
    malformed_case("client4", "90 03 00 01 03", MALFORMED, "suback-311-code-03"),
    malformed_case("client4", "90 03 00 01 87", MALFORMED, "suback-311-code-87"),
    malformed_case("client5", "90 04 00 01 00 05", MALFORMED, "suback-5-code-05"),
    malformed_case("client5", "90 03 00 01 00", MALFORMED, "suback-without-codes"),
    # ---- UNSUBSCRIBE, UNSUBACK ----------------------------------------------------
    malformed_case("client4", "a2 02 00 01", PROTOCOL, "unsubscribe-311-no-filter"),
    malformed_case("client5", "a2 03 00 01 00", PROTOCOL, "unsubscribe-5-no-filter"),
    malformed_case("client5", "a2 07 00 01 00 00 02 c3 28", MALFORMED, "unsubscribe-bad-utf8"),
    malformed_case("client4", "b0 03 00 01 00", MALFORMED, "unsuback-311-extra-byte"),
    malformed_case("client5", "b0 04 00 01 00 01", MALFORMED, "unsuback-5-code-01"),
    malformed_case("client5", "b0 03 00 01 00", MALFORMED, "unsuback-5-without-codes"),
    # ---- PINGREQ, PINGRESP, DISCONNECT, AUTH ----------------------------------------
    malformed_case("client4", "c0 01 00", MALFORMED, "pingreq-with-body"),
    malformed_case("client5", "d0 01 00", MALFORMED, "pingresp-with-body"),
    malformed_case("client4", "e0 01 00", MALFORMED, "disconnect-311-with-body"),
    malformed_case("client5", "e0 01 01", MALFORMED, "disconnect-reason-01"),
    malformed_case("client5", "e0 05 00 03 23 00 01", MALFORMED, "disconnect-topic-alias"),
    malformed_case("client5", "e0 03 00 05 11", MALFORMED, "disconnect-properties-truncated"),
    malformed_case("client5", "f0 01 04", MALFORMED, "auth-reason-04"),
    malformed_case("client5", "f0 06 18 04 16 00 01 aa", PROTOCOL, "auth-data-without-method"),
]


def decoder_in_mode(mode: str) -> Decoder:
    """server: fresh server side; server4/server5: server side after a CONNECT;
    client4/client5: a decoder fixed to that level."""
    if mode.startswith("client"):
        return Decoder(protocol_level=int(mode[-1]))
    decoder = Decoder()
    if mode != "server":
        connect = CONNECT_4 if mode == "server4" else CONNECT_5
        assert len(decoder.feed(wire(connect))) == 1
    return decoder


@pytest.mark.parametrize(("mode", "hex_wire", "reason_code"), BAD_INPUTS)
def test_bad_input_is_refused(mode: str, hex_wire: str, reason_code: ReasonCode) -> None:
    with pytest.raises(ProtocolError) as raised:
        decoder_in_mode(mode).feed(wire(hex_wire))
    assert raised.value.reason_code == reason_code, raised.value.message


@pytest.mark.parametrize(("mode", "hex_wire", "reason_code"), BAD_INPUTS)
def test_bad_input_is_refused_when_its_topic_is_known(
    mode: str, hex_wire: str, reason_code: ReasonCode
) -> None:
    # Most bad PUBLISH rows use the topic "t": with it decoded before, the short way for
    # known topics must refuse them just the same.
    for level, good in ((4, "30 04 00 01 74 78"), (5, "30 05 00 01 74 00 78")):
        assert Decoder(protocol_level=level).feed(wire(good)) == [Publish(topic="t", payload=b"x")]
    with pytest.raises(ProtocolError) as raised:
        decoder_in_mode(mode).feed(wire(hex_wire))
    assert raised.value.reason_code == reason_code, raised.value.message


@pytest.mark.parametrize(("mode", "hex_wire", "reason_code"), BAD_INPUTS)
def test_bad_input_is_refused_one_byte_at_a_time(
    mode: str, hex_wire: str, reason_code: ReasonCode
) -> None:
    def feed_byte_by_byte(decoder: Decoder, data: bytes) -> None:
        for byte in data:
            assert decoder.feed(bytes((byte,))) == []

    with pytest.raises(ProtocolError) as raised:
        feed_byte_by_byte(decoder_in_mode(mode), wire(hex_wire))
    assert raised.value.reason_code == reason_code


def test_first_byte_of_a_non_mqtt_client_is_enough_to_refuse_it() -> None:
    with pytest.raises(ProtocolError) as raised:
        Decoder().feed(b"G")
    assert raised.value.reason_code == ReasonCode.PROTOCOL_ERROR


def test_too_large_packet_is_refused_from_its_header_alone() -> None:
    decoder = Decoder(max_packet_size=130, protocol_level=4)
    with pytest.raises(ProtocolError) as raised:
        decoder.feed(wire("30 80 01"))  # Remaining Length 128: 131 bytes in all
    assert raised.value.reason_code == ReasonCode.PACKET_TOO_LARGE


def test_packet_of_exactly_max_packet_size_is_accepted() -> None:
    packet = big_publish(4, 128)
    decoder = Decoder(max_packet_size=131, protocol_level=4)
    assert decoder.feed(encode(packet, protocol_level=4)) == [packet]


def test_default_max_packet_size_is_268435455_bytes_in_all() -> None:
    with pytest.raises(ProtocolError) as raised:
        Decoder(protocol_level=4).feed(wire("30 ff ff ff 7f"))
    assert raised.value.reason_code == ReasonCode.PACKET_TOO_LARGE


def test_error_keeps_earlier_packets_and_sticks() -> None:
    decoder = Decoder(protocol_level=4)
    with pytest.raises(ProtocolError) as raised:
        decoder.feed(wire("c0 00  d0 00  c0 01 00"))  # PINGREQ, PINGRESP, bad PINGREQ
    assert raised.value.packets == (Pingreq(), Pingresp())
    with pytest.raises(ProtocolError) as again:
        decoder.feed(wire("c0 00"))
    assert again.value is raised.value


def test_server_decoder_learns_protocol_level_from_connect() -> None:
    decoder = Decoder()
    assert decoder.protocol_level is None
    assert decoder.feed(wire(CONNECT_5 + " c0 00")) == [
        Connect(protocol_level=5, keep_alive=60, client_id=""),
        Pingreq(),
    ]
    assert decoder.protocol_level == 5


def test_unsupported_version_leaves_protocol_level_unknown() -> None:
    decoder = Decoder()
    with pytest.raises(ProtocolError):
        decoder.feed(wire("10 0c 00 04 4d 51 54 54 03 02 00 3c 00 00"))
    assert decoder.protocol_level is None


def test_bom_is_kept_as_zero_width_no_break_space() -> None:
    # [MQTT-1.5.4-3]: EF BB BF is U+FEFF and must not be stripped.
    packet = Decoder(protocol_level=4).feed(wire("30 06 00 04 ef bb bf 61"))[0]
    assert packet == Publish(topic="\ufeffa")


@pytest.mark.parametrize("level", [0, 3, 6])
def test_decoder_rejects_unsupported_fixed_level(level: int) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        Decoder(protocol_level=level)


def test_decoder_rejects_max_packet_size_below_two() -> None:
    with pytest.raises(ValueError, match="max_packet_size"):
        Decoder(max_packet_size=1)


def test_protocol_error_names_its_reason() -> None:
    with pytest.raises(ProtocolError, match=r"MALFORMED_PACKET \(0x81\)") as raised:
        Decoder(protocol_level=4).feed(wire("c0 01 00"))
    assert "PINGREQ" in raised.value.message


def test_reason_code_is_error_from_0x80() -> None:
    assert not ReasonCode.GRANTED_QOS_2.is_error
    assert not ReasonCode.RE_AUTHENTICATE.is_error
    assert ReasonCode.UNSPECIFIED_ERROR.is_error
    assert ReasonCode.NORMAL_DISCONNECTION is ReasonCode.SUCCESS  # one value, three names


# ================================================================ encoding special cases


def test_311_encoding_ignores_mqtt5_only_fields() -> None:
    pairs: list[tuple[Packet, Packet]] = [
        (
            Publish(topic="t", properties=Properties(content_type="x")),
            Publish(topic="t"),
        ),
        (
            Puback(packet_id=1, reason_code=0x80, properties=Properties(reason_string="r")),
            Puback(packet_id=1),
        ),
        (
            Subscribe(
                packet_id=1,
                subscriptions=(
                    Subscription(topic_filter="a", qos=1, no_local=True, retain_handling=2),
                ),
                properties=Properties(subscription_identifier=(5,)),
            ),
            Subscribe(packet_id=1, subscriptions=(Subscription(topic_filter="a", qos=1),)),
        ),
        (Unsuback(packet_id=1, reason_codes=(0x11,)), Unsuback(packet_id=1)),
        (Disconnect(reason_code=0x04), Disconnect()),
    ]
    for with_v5_fields, plain in pairs:
        assert encode(with_v5_fields, protocol_level=4) == encode(plain, protocol_level=4)


@pytest.mark.parametrize(
    ("reason", "return_code"),
    [
        (ReasonCode.SUCCESS, 0),
        (ReasonCode.UNSUPPORTED_PROTOCOL_VERSION, 1),
        (ReasonCode.CLIENT_IDENTIFIER_NOT_VALID, 2),
        (ReasonCode.SERVER_UNAVAILABLE, 3),
        (ReasonCode.SERVER_BUSY, 3),
        (ReasonCode.USE_ANOTHER_SERVER, 3),
        (ReasonCode.UNSPECIFIED_ERROR, 3),
        (ReasonCode.BAD_USER_NAME_OR_PASSWORD, 4),
        (ReasonCode.BAD_AUTHENTICATION_METHOD, 4),
        (ReasonCode.NOT_AUTHORIZED, 5),
        (ReasonCode.BANNED, 5),
    ],
)
def test_connack_reason_maps_to_311_return_code(reason: ReasonCode, return_code: int) -> None:
    assert connack_return_code_311(reason) == return_code
    connack = Connack(reason_code=reason)
    assert encode(connack, protocol_level=4) == bytes((0x20, 0x02, 0x00, return_code))


def test_suback_311_reports_every_failure_as_0x80() -> None:
    suback = Suback(packet_id=1, reason_codes=(1, ReasonCode.NOT_AUTHORIZED, 0xA2))
    assert encode(suback, protocol_level=4) == wire("90 05  00 01  01 80 80")


@pytest.mark.parametrize(
    ("packet", "level"),
    [
        (Publish(topic="t", qos=1), 5),
        (Publish(topic="t", qos=1, packet_id=0), 5),
        (Publish(topic="t", qos=1, packet_id=65536), 5),
        (Publish(topic="t", packet_id=1), 5),
        (Publish(topic="t", dup=True), 5),
        (Publish(topic="t", qos=3, packet_id=1), 5),
        (Publish(topic="t" * 65536), 4),
        (Publish(topic="\ud800"), 4),
        (Publish(topic="t", properties=Properties(session_expiry_interval=1)), 5),
        (Publish(topic="t", properties=Properties(topic_alias=65536)), 5),
        (Publish(topic="t", properties=Properties(subscription_identifier=(268_435_456,))), 5),
        (Auth(), 4),
        (Connect(protocol_level=4, client_id="c", password=b"p"), 4),
        (Connect(protocol_level=4, client_id="c"), 5),
        (Connect(protocol_level=4, client_id="c", keep_alive=65536), 4),
        (Subscribe(packet_id=1, subscriptions=()), 4),
        (
            Subscribe(
                packet_id=1,
                subscriptions=(Subscription(topic_filter="a"),),
                properties=Properties(subscription_identifier=(1, 2)),
            ),
            5,
        ),
        (Subscribe(packet_id=1, subscriptions=(Subscription(topic_filter="a", qos=3),)), 4),
        (
            Subscribe(
                packet_id=1, subscriptions=(Subscription(topic_filter="a", retain_handling=3),)
            ),
            5,
        ),
        (Unsubscribe(packet_id=1, topic_filters=()), 4),
        (Connack(reason_code=256), 5),
    ],
    ids=repr,
)
def test_unrepresentable_packet_raises_value_error(packet: Packet, level: int) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by field
        encode(packet, protocol_level=level)


def test_encode_refuses_non_packets_and_unknown_levels() -> None:
    with pytest.raises(TypeError):
        encode("PINGREQ", protocol_level=4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unsupported"):
        encode(Pingreq(), protocol_level=3)


# =============================================================== reason codes and paho

PahoTypes = paho_packettypes.PacketTypes


def test_reason_codes_match_paho_table() -> None:
    paho_names: dict[int, dict[str, list[int]]] = dict(paho_reasoncodes.ReasonCode.names)
    assert {int(code) for code in ReasonCode} == set(paho_names)
    spelled_differently = {
        name
        for name, member in ReasonCode.__members__.items()
        if name.lower()
        not in {
            spelling.lower().replace(" ", "_").replace("-", "_") for spelling in paho_names[member]
        }
    }
    # Paho's own wording; these three follow MQTT 5.0 table 2-6 ("No subscription existed",
    # "Shared Subscriptions not supported", "Wildcard Subscriptions not supported").
    assert spelled_differently == {
        "NO_SUBSCRIPTION_EXISTED",
        "SHARED_SUBSCRIPTIONS_NOT_SUPPORTED",
        "WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED",
    }


@pytest.mark.parametrize(
    ("paho_type", "ours", "spec_only"),
    [
        # Paho leaves 0x99 out of CONNACK; MQTT 5.0 table 3-1 has it (bad Will payload).
        (PahoTypes.CONNACK, CONNACK_REASON_CODES, {0x99}),
        (PahoTypes.PUBACK, PUBACK_REASON_CODES, set()),
        (PahoTypes.PUBREC, PUBREC_REASON_CODES, set()),
        (PahoTypes.PUBREL, PUBREL_REASON_CODES, set()),
        (PahoTypes.PUBCOMP, PUBCOMP_REASON_CODES, set()),
        (PahoTypes.SUBACK, SUBACK_REASON_CODES, set()),
        (PahoTypes.UNSUBACK, UNSUBACK_REASON_CODES, set()),
        (PahoTypes.DISCONNECT, DISCONNECT_REASON_CODES, set()),
        (PahoTypes.AUTH, AUTH_REASON_CODES, set()),
    ],
)
def test_per_packet_reason_codes_match_paho(
    paho_type: int, ours: frozenset[int], spec_only: set[int]
) -> None:
    paho_names: dict[int, dict[str, list[int]]] = dict(paho_reasoncodes.ReasonCode.names)
    theirs = {
        code
        for code, names in paho_names.items()
        for packets in names.values()
        if paho_type in packets
    }
    assert set(ours) == theirs | spec_only


PAHO_CONTEXTS = {
    PropertyContext.CONNECT: PahoTypes.CONNECT,
    PropertyContext.WILL: PahoTypes.WILLMESSAGE,
    PropertyContext.CONNACK: PahoTypes.CONNACK,
    PropertyContext.PUBLISH: PahoTypes.PUBLISH,
    PropertyContext.PUBACK: PahoTypes.PUBACK,
    PropertyContext.PUBREC: PahoTypes.PUBREC,
    PropertyContext.PUBREL: PahoTypes.PUBREL,
    PropertyContext.PUBCOMP: PahoTypes.PUBCOMP,
    PropertyContext.SUBSCRIBE: PahoTypes.SUBSCRIBE,
    PropertyContext.SUBACK: PahoTypes.SUBACK,
    PropertyContext.UNSUBSCRIBE: PahoTypes.UNSUBSCRIBE,
    PropertyContext.UNSUBACK: PahoTypes.UNSUBACK,
    PropertyContext.DISCONNECT: PahoTypes.DISCONNECT,
    PropertyContext.AUTH: PahoTypes.AUTH,
}
PAHO_TYPE_NAMES = {
    PropertyType.BYTE: "Byte",
    PropertyType.TWO_BYTE_INT: "Two Byte Integer",
    PropertyType.FOUR_BYTE_INT: "Four Byte Integer",
    PropertyType.VARIABLE_BYTE_INT: "Variable Byte Integer",
    PropertyType.UTF8_STRING: "UTF-8 Encoded String",
    PropertyType.BINARY_DATA: "Binary Data",
    PropertyType.UTF8_STRING_PAIR: "UTF-8 String Pair",
}


def paho_name(ident: PropertyId) -> str:
    return "MaximumQoS" if ident == PropertyId.MAXIMUM_QOS else ident.name.title().replace("_", "")


def test_property_table_matches_paho() -> None:
    table = paho_properties.Properties(PahoTypes.CONNECT)
    assert {int(ident) for ident in PropertyId} == set(table.properties)
    for ident in PropertyId:
        type_index, packet_types = table.properties[ident]
        assert table.types[type_index] == PAHO_TYPE_NAMES[ident.value_type]
        assert {PAHO_CONTEXTS[context] for context in ident.contexts} == set(packet_types)
        assert table.getIdentFromName(paho_name(ident)) == ident


def to_paho(properties: Properties, context: PropertyContext) -> Any:
    result = paho_properties.Properties(PAHO_CONTEXTS[context])
    for ident in PropertyId:
        value = getattr(properties, ident.field_name)
        if value is None or value == ():
            continue
        if isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, bool):
            value = int(value)
        setattr(result, paho_name(ident), value)
    return result


@pytest.mark.parametrize(
    ("properties", "context"),
    [
        (CONNECT_5_FULL_PROPERTIES, PropertyContext.CONNECT),
        (WILL_5_FULL_PROPERTIES, PropertyContext.WILL),
        (CONNACK_5_FULL_PROPERTIES, PropertyContext.CONNACK),
        (PUBLISH_5_FULL_PROPERTIES, PropertyContext.PUBLISH),
    ],
    ids=["connect", "will", "connack", "publish"],
)
def test_property_blocks_match_paho_pack(properties: Properties, context: PropertyContext) -> None:
    packed = to_paho(properties, context).pack()
    assert encode_properties(properties, context) == packed
    assert decode_properties(Reader(packed), context) == properties


class CapturingPahoClient(paho_client.Client):
    """A paho client whose outgoing packets land in a list instead of a socket."""

    def __init__(self, protocol: int, client_id: str) -> None:
        super().__init__(
            paho_client.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho_client.MQTTProtocolVersion(protocol),
        )
        self.sent: list[bytes] = []
        self._sock = object()  # type: ignore[assignment]  # _send_publish checks one exists

    def _packet_queue(  # type: ignore[override]
        self, command: int, packet: bytes, *args: Any, **kwargs: Any
    ) -> int:
        self.sent.append(bytes(packet))
        return 0


def paho_packets(protocol: int, client_id: str, send: Callable[[Any], object]) -> Iterator[bytes]:
    client = CapturingPahoClient(protocol, client_id)
    send(client)
    client._sock = None  # nothing to close
    return iter(client.sent)


def test_paho_connect_311_with_will_and_credentials() -> None:
    def send(client: Any) -> None:
        client.will_set("will/t", b"gone", qos=1, retain=True)
        client.username_pw_set("user", "pw")
        client._send_connect(30)

    (data,) = paho_packets(paho_client.MQTTv311, "paho-c", send)
    expected = Connect(
        protocol_level=4,
        keep_alive=30,
        client_id="paho-c",
        will=Will(topic="will/t", payload=b"gone", qos=1, retain=True),
        username="user",
        password=b"pw",
    )
    assert Decoder().feed(data) == [expected]
    assert encode(expected, protocol_level=4) == data


def test_paho_connect_5_with_properties() -> None:
    connect_properties = Properties(
        session_expiry_interval=120,
        receive_maximum=5,
        user_property=(("k", "v"), ("k", "v")),
    )
    will_properties = Properties(will_delay_interval=3, content_type="text/plain")

    def send(client: Any) -> None:
        client.will_set("w", b"x", qos=2, properties=to_paho(will_properties, PropertyContext.WILL))
        client.username_pw_set("u", "p")
        client._connect_properties = to_paho(connect_properties, PropertyContext.CONNECT)
        client._send_connect(0)

    (data,) = paho_packets(paho_client.MQTTv5, "paho-5", send)
    expected = Connect(
        protocol_level=5,
        client_id="paho-5",
        will=Will(topic="w", payload=b"x", qos=2, properties=will_properties),
        username="u",
        password=b"p",
        properties=connect_properties,
    )
    assert Decoder().feed(data) == [expected]
    assert encode(expected, protocol_level=5) == data


@pytest.mark.parametrize("protocol", ["MQTTv311", "MQTTv5"])
def test_paho_publish_subscribe_unsubscribe_ping_disconnect(protocol: str) -> None:
    level = 5 if protocol == "MQTTv5" else 4
    v5 = level == 5
    publish_properties = (
        Properties(message_expiry_interval=9, user_property=(("a", "1"), ("a", "1")))
        if v5
        else EMPTY_PROPERTIES
    )
    options = paho_subscribeoptions.SubscribeOptions(
        qos=1, noLocal=True, retainAsPublished=True, retainHandling=2
    )

    def send(client: Any) -> None:
        client._send_publish(
            7,
            b"a/b",
            b"payload",
            qos=1,
            retain=True,
            properties=to_paho(publish_properties, PropertyContext.PUBLISH) if v5 else None,
        )
        client._send_subscribe(0, [(b"x/#", options if v5 else 1)])
        client._send_unsubscribe(0, [b"x/#", b"y"])
        client._send_simple_command(paho_client.PINGREQ)
        client._send_command_with_mid(paho_client.PUBACK, 9, False)
        client._send_disconnect()

    sent = list(paho_packets(getattr(paho_client, protocol), "c", send))
    expected: list[Packet] = [
        Publish(
            topic="a/b",
            payload=b"payload",
            qos=1,
            retain=True,
            packet_id=7,
            properties=publish_properties,
        ),
        Subscribe(
            packet_id=1,
            subscriptions=(
                Subscription(
                    topic_filter="x/#",
                    qos=1,
                    no_local=True,
                    retain_as_published=True,
                    retain_handling=2,
                )
                if v5
                else Subscription(topic_filter="x/#", qos=1),
            ),
        ),
        Unsubscribe(packet_id=2, topic_filters=("x/#", "y")),
        Pingreq(),
        Puback(packet_id=9),
        Disconnect(),
    ]
    decoder = Decoder(protocol_level=level)
    assert [packet for data in sent for packet in decoder.feed(data)] == expected
    assert [encode(packet, protocol_level=level) for packet in expected] == sent


# ============================================================================ hypothesis

ZERO_OR_ONE_PROPERTIES = {
    PropertyId.REQUEST_PROBLEM_INFORMATION,
    PropertyId.REQUEST_RESPONSE_INFORMATION,
    PropertyId.RETAIN_AVAILABLE,
    PropertyId.WILDCARD_SUBSCRIPTION_AVAILABLE,
    PropertyId.SUBSCRIPTION_IDENTIFIER_AVAILABLE,
    PropertyId.SHARED_SUBSCRIPTION_AVAILABLE,
}
NON_ZERO_PROPERTIES = {
    PropertyId.RECEIVE_MAXIMUM,
    PropertyId.MAXIMUM_PACKET_SIZE,
    PropertyId.TOPIC_ALIAS,
}

texts = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    max_size=12,
)
binaries = st.binary(max_size=24)
packet_ids = st.integers(1, 0xFFFF)
qos_levels = st.integers(0, 2)
VALUE_STRATEGIES: dict[PropertyType, st.SearchStrategy[Any]] = {
    PropertyType.BYTE: st.integers(0, 0xFF),
    PropertyType.TWO_BYTE_INT: st.integers(0, 0xFFFF),
    PropertyType.FOUR_BYTE_INT: st.integers(0, 0xFFFF_FFFF),
    PropertyType.VARIABLE_BYTE_INT: st.integers(1, 268_435_455),
    PropertyType.UTF8_STRING: texts,
    PropertyType.BINARY_DATA: binaries,
    PropertyType.UTF8_STRING_PAIR: st.tuples(texts, texts),
}


def property_value(ident: PropertyId, context: PropertyContext) -> st.SearchStrategy[Any]:
    if ident in ZERO_OR_ONE_PROPERTIES:
        return st.booleans()
    if ident in (PropertyId.MAXIMUM_QOS, PropertyId.PAYLOAD_FORMAT_INDICATOR):
        return st.integers(0, 1)
    value = VALUE_STRATEGIES[ident.value_type]
    if ident in NON_ZERO_PROPERTIES:
        value = value.filter(bool)
    if ident == PropertyId.USER_PROPERTY:
        return st.lists(value, max_size=4).map(tuple)
    if ident == PropertyId.SUBSCRIPTION_IDENTIFIER:
        most = 3 if context is PropertyContext.PUBLISH else 1
        return st.lists(value, max_size=most).map(tuple)
    return value


def without_orphan_authentication_data(fields: dict[str, Any]) -> Properties:
    if "authentication_method" not in fields:
        fields.pop("authentication_data", None)
    return Properties(**fields)


def properties_for(context: PropertyContext, level: int) -> st.SearchStrategy[Properties]:
    if level == 4:
        return st.just(EMPTY_PROPERTIES)
    optional = {
        ident.field_name: property_value(ident, context) for ident in allowed_properties(context)
    }
    return st.fixed_dictionaries({}, optional=optional).map(without_orphan_authentication_data)


def reason_codes_in(codes: frozenset[Any]) -> st.SearchStrategy[int]:
    return st.sampled_from(sorted(int(code) for code in codes))


@st.composite
def connects(draw: st.DrawFn, level: int) -> Connect:
    will = draw(
        st.none()
        | st.builds(
            Will,
            topic=texts,
            payload=binaries,
            qos=qos_levels,
            retain=st.booleans(),
            properties=properties_for(PropertyContext.WILL, level),
        )
    )
    username = draw(st.none() | texts)
    password = draw(st.none() | binaries)
    if level == 4 and username is None:
        password = None  # 3.1.1 [MQTT-3.1.2-22]
    return Connect(
        protocol_level=level,
        clean_start=draw(st.booleans()),
        keep_alive=draw(st.integers(0, 0xFFFF)),
        client_id=draw(texts),
        will=will,
        username=username,
        password=password,
        properties=draw(properties_for(PropertyContext.CONNECT, level)),
    )


@st.composite
def publishes(draw: st.DrawFn, level: int) -> Publish:
    qos = draw(qos_levels)
    return Publish(
        topic=draw(texts),
        payload=draw(binaries),
        qos=qos,
        retain=draw(st.booleans()),
        dup=draw(st.booleans()) if qos else False,
        packet_id=draw(packet_ids) if qos else None,
        properties=draw(properties_for(PropertyContext.PUBLISH, level)),
    )


def acks(
    cls: type[Puback | Pubrec | Pubrel | Pubcomp],
    codes: frozenset[Any],
    context: PropertyContext,
    level: int,
) -> st.SearchStrategy[Packet]:
    return st.builds(
        cls,
        packet_id=packet_ids,
        reason_code=reason_codes_in(codes) if level == 5 else st.just(0),
        properties=properties_for(context, level),
    )


def subscriptions(level: int) -> st.SearchStrategy[Subscription]:
    if level == 4:
        return st.builds(Subscription, topic_filter=texts, qos=qos_levels)
    return st.builds(
        Subscription,
        topic_filter=texts,
        qos=qos_levels,
        no_local=st.booleans(),
        retain_as_published=st.booleans(),
        retain_handling=st.integers(0, 2),
    )


def packets(level: int) -> st.SearchStrategy[Packet]:
    v5 = level == 5
    strategies: list[st.SearchStrategy[Packet]] = [
        connects(level),
        st.builds(
            Connack,
            session_present=st.booleans(),
            reason_code=reason_codes_in(CONNACK_REASON_CODES if v5 else CONNACK_RETURN_CODES_311),
            properties=properties_for(PropertyContext.CONNACK, level),
        ),
        publishes(level),
        acks(Puback, PUBACK_REASON_CODES, PropertyContext.PUBACK, level),
        acks(Pubrec, PUBREC_REASON_CODES, PropertyContext.PUBREC, level),
        acks(Pubrel, PUBREL_REASON_CODES, PropertyContext.PUBREL, level),
        acks(Pubcomp, PUBCOMP_REASON_CODES, PropertyContext.PUBCOMP, level),
        st.builds(
            Subscribe,
            packet_id=packet_ids,
            subscriptions=st.lists(subscriptions(level), min_size=1, max_size=4).map(tuple),
            properties=properties_for(PropertyContext.SUBSCRIBE, level),
        ),
        st.builds(
            Suback,
            packet_id=packet_ids,
            reason_codes=st.lists(
                reason_codes_in(SUBACK_REASON_CODES if v5 else SUBACK_RETURN_CODES_311),
                min_size=1,
                max_size=4,
            ).map(tuple),
            properties=properties_for(PropertyContext.SUBACK, level),
        ),
        st.builds(
            Unsubscribe,
            packet_id=packet_ids,
            topic_filters=st.lists(texts, min_size=1, max_size=4).map(tuple),
            properties=properties_for(PropertyContext.UNSUBSCRIBE, level),
        ),
        st.builds(
            Unsuback,
            packet_id=packet_ids,
            reason_codes=(
                st.lists(reason_codes_in(UNSUBACK_REASON_CODES), min_size=1, max_size=4).map(tuple)
                if v5
                else st.just(())
            ),
            properties=properties_for(PropertyContext.UNSUBACK, level),
        ),
        st.just(Pingreq()),
        st.just(Pingresp()),
        st.builds(
            Disconnect,
            reason_code=reason_codes_in(DISCONNECT_REASON_CODES) if v5 else st.just(0),
            properties=properties_for(PropertyContext.DISCONNECT, level),
        ),
    ]
    if v5:
        strategies.append(
            st.builds(
                Auth,
                reason_code=reason_codes_in(AUTH_REASON_CODES),
                properties=properties_for(PropertyContext.AUTH, level),
            )
        )
    return st.one_of(strategies)


levels = st.sampled_from([4, 5])


@BOUNDED
@given(st.data())
def test_round_trip(data: st.DataObject) -> None:
    level = data.draw(levels)
    packet = data.draw(packets(level))
    encoded = encode(packet, protocol_level=level)
    assert Decoder(protocol_level=level).feed(encoded) == [packet]


@BOUNDED
@given(st.data())
def test_any_split_of_a_stream_decodes_the_same(data: st.DataObject) -> None:
    level = data.draw(levels)
    sent = data.draw(st.lists(packets(level), min_size=1, max_size=5))
    stream = b"".join(encode(packet, protocol_level=level) for packet in sent)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    chunks = [
        stream[start:end] for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True)
    ]
    decoder = Decoder(protocol_level=level)
    assert [packet for chunk in chunks for packet in decoder.feed(chunk)] == sent


def feed_only_protocol_errors(decoder: Decoder, chunks: list[bytes]) -> None:
    try:
        for chunk in chunks:
            decoder.feed(chunk)
    except ProtocolError:
        pass  # anything else escapes and fails the test


fuzz_decoders = st.sampled_from(["server", "server4", "server5", "client4", "client5"])


@BOUNDED
@given(mode=fuzz_decoders, chunks=st.lists(st.binary(max_size=64), max_size=6))
def test_arbitrary_bytes_raise_only_protocol_error(mode: str, chunks: list[bytes]) -> None:
    feed_only_protocol_errors(decoder_in_mode(mode), chunks)


@BOUNDED
@given(st.data())
def test_mutated_packets_raise_only_protocol_error(data: st.DataObject) -> None:
    level = data.draw(levels)
    encoded = bytearray(encode(data.draw(packets(level)), protocol_level=level))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(encoded)))
        action = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        if action == "insert" or position == len(encoded):
            encoded[position:position] = bytes((data.draw(st.integers(0, 255)),))
        elif action == "flip":
            encoded[position] ^= 1 << data.draw(st.integers(0, 7))
        else:
            del encoded[position]
    feed_only_protocol_errors(Decoder(protocol_level=level), [bytes(encoded)])
    feed_only_protocol_errors(Decoder(), [bytes(encoded)])
