"""Fuzz targets for the pure parsers, and bounded Hypothesis properties over them (issue #8,
point 2). bench/fuzz.py drives the same targets for minutes (atheris, or Hypothesis).

Each target takes arbitrary bytes, turns them into input for one parser (the first bytes
choose how: raw text, or text assembled from meaningful fragments, or a valid input with
parts replaced) and fails with an AssertionError, or an exception other than the parser's
own error type, when a property breaks:

* codec: the MQTT decoder raises only ProtocolError; bytes fed whole and byte by byte give
  the same packets and the same error; every decoded packet re-encodes to bytes that decode
  to an equal packet;
* topics: validation raises only InvalidTopicError; a valid name is a valid filter that
  matches it; topic_matches agrees with a small recursive reference matcher;
* policy: parse_policy raises only PolicyParseError; every policy it accepts evaluates any
  request without raising;
* sigv4: parse_signature and verify_signature raise only SignatureError;
* page tokens: decode_page_token raises only InvalidPageTokenError, even for bodies signed
  with the right key, and a changed token never decodes to another topic.

Existing properties elsewhere (tests/broker/test_codec.py, tests/test_topics.py,
tests/policy/, tests/test_sigv4.py, tests/test_page_tokens.py) are not repeated here.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from retained.api.sigv4 import HttpRequest, SignatureError, parse_signature, verify_signature
from retained.broker.codec import Decoder, ProtocolError, encode
from retained.broker.packets import Connect, Packet
from retained.page_tokens import InvalidPageTokenError, decode_page_token, encode_page_token
from retained.policy.evaluate import evaluate
from retained.policy.model import Request
from retained.policy.parse import PolicyParseError, parse_policy
from retained.topics import (
    InvalidTopicError,
    split_shared_subscription,
    topic_matches,
    validate_topic_filter,
    validate_topic_name,
)

T = TypeVar("T")

BOUNDED = settings(
    max_examples=200,
    deadline=None,  # a loaded 2-core CI machine: time per example is not what is tested
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class ByteSource:
    """Reads choices out of fuzz bytes; past the end every read is zero (or empty)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def byte(self) -> int:
        if self.position >= len(self.data):
            return 0
        value = self.data[self.position]
        self.position += 1
        return value

    def take(self, size: int) -> bytes:
        chunk = self.data[self.position : self.position + size]
        self.position += len(chunk)
        return chunk

    def pick(self, options: Sequence[T]) -> T:
        return options[self.byte() % len(options)]

    def sized(self, maximum: int) -> bytes:
        return self.take(self.byte() % (maximum + 1))

    def rest(self) -> bytes:
        return self.take(len(self.data))


# --------------------------------------------------------------------------- codec

CONNECT_4 = bytes.fromhex("100c00044d5154540402003c0000")
CONNECT_5 = bytes.fromhex("100d00044d5154540502003c000000")
DECODER_MODES = ("server", "server4", "server5", "client4", "client5")


def _decoder(mode: str) -> Decoder:
    if mode.startswith("client"):
        return Decoder(protocol_level=int(mode[-1]))
    decoder = Decoder()
    if mode != "server":
        decoder.feed(CONNECT_4 if mode == "server4" else CONNECT_5)
    return decoder


def _feed(decoder: Decoder, chunks: list[bytes]) -> tuple[list[Packet], int | None]:
    """Packets decoded and the reason code of the error that stopped it (None: no error)."""
    packets: list[Packet] = []
    for chunk in chunks:
        try:
            packets += decoder.feed(chunk)
        except ProtocolError as error:
            return packets + list(error.packets), int(error.reason_code)
    return packets, None


def _level_of(packet: Packet, decoder: Decoder) -> int:
    if isinstance(packet, Connect):
        return packet.protocol_level
    level = decoder.protocol_level
    assert level is not None
    return level


def codec_target(data: bytes) -> None:
    source = ByteSource(data)
    mode = source.pick(DECODER_MODES)
    stream = source.rest()
    whole = _decoder(mode)
    packets, error = _feed(whole, [stream])
    one_by_one, error_bytewise = _feed(_decoder(mode), [bytes((b,)) for b in stream])
    assert one_by_one == packets, "byte-by-byte decoding gave other packets"
    assert error_bytewise == error, f"byte-by-byte error {error_bytewise}, whole {error}"
    for packet in packets:
        level = _level_of(packet, whole)
        encoded = encode(packet, protocol_level=level)
        again = Decoder() if isinstance(packet, Connect) else Decoder(protocol_level=level)
        assert again.feed(encoded) == [packet], f"{packet!r} did not survive re-encoding"


# --------------------------------------------------------------------------- topics

TOPIC_FRAGMENTS = ("a", "b", "/", "/", "+", "#", "$", "$SYS", "$share/", "g", "\x00", "é", "")


def reference_match(topic_filter: str, topic: str) -> bool:
    """MQTT section 4.7 written as plainly as possible: level by level, recursively."""
    if topic.startswith("$") and topic_filter.split("/")[0] in ("+", "#"):
        return False  # [MQTT-4.7.2-1]

    def match(filters: list[str], levels: list[str]) -> bool:
        if not filters:
            return not levels
        if filters[0] == "#":
            return True  # the parent level and everything below
        if not levels:
            return False
        return filters[0] in ("+", levels[0]) and match(filters[1:], levels[1:])

    return match(topic_filter.split("/"), topic.split("/"))


def _topic_text(source: ByteSource) -> str:
    if source.byte() % 2:
        return "".join(source.pick(TOPIC_FRAGMENTS) for _ in range(source.byte() % 24))
    # Lone surrogates come from bytes that are not UTF-8, as a decoder with
    # surrogateescape would pass them on.
    return source.sized(300).decode("utf-8", "surrogateescape")


def _valid(check: Callable[[str], None], text: str) -> bool:
    try:
        check(text)
    except InvalidTopicError:
        return False
    return True


def topics_target(data: bytes) -> None:
    source = ByteSource(data)
    topic_filter, topic = _topic_text(source), _topic_text(source)
    filter_ok = _valid(validate_topic_filter, topic_filter)
    name_ok = _valid(validate_topic_name, topic)
    if name_ok and not topic.startswith("$share/"):  # that one reads as a shared filter
        assert _valid(validate_topic_filter, topic), f"name {topic!r} is not a valid filter"
        assert topic_matches(topic, topic)
    if filter_ok and name_ok:
        _, inner = split_shared_subscription(topic_filter)
        expected = reference_match(inner, topic)
        assert topic_matches(inner, topic) is expected, (inner, topic, expected)


# --------------------------------------------------------------------------- policy

ARN = "arn:aws:iot:us-east-1:123456789012:"
POLICY_FRAGMENTS = (
    "{", "}", "[", "]", ",", ":", '"', " ", "true", "1", "null", "-0.5e3",
    '"Version"', '"2012-10-17"', '"2008-10-17"', '"Statement"', '"Id"', '"Sid"',
    '"Effect"', '"Allow"', '"Deny"', '"Action"', '"NotAction"', '"Resource"', '"NotResource"',
    '"Condition"', '"Principal"', '"iot:*"', '"iot:Publish"', '"iot:Connect"', '"*"', '"?"',
    f'"{ARN}topic/${{iot:ClientId}}/*"', f'"{ARN}client/${{iot:Connection.Thing.ThingName}}"',
    f'"{ARN}topicfilter/a/+/#"', '"arn:aws:iot:*"', '"${"', '"${*}"', '"${aws:username}"',
    '"StringEquals"', '"StringLike"', '"ForAllValues:StringEquals"', '"ForAnyValue:StringLike"',
    '"StringNotEqualsIgnoreCase"', '"ArnLike"', '"Bool"', '"Null"', '"BoolIfExists"',
    '"iot:ClientId"', '"iot:ConnectAttributes"', '"PersistentConnect"', '"aws:SourceIp"',
    "\\u0000", "\\ud800", "é",
)  # fmt: skip
REQUESTS = (
    Request("iot:Publish", f"{ARN}topic/a/b", {"iot:ClientId": "c1"}),
    Request("iot:Connect", f"{ARN}client/c1", {"iot:ConnectAttributes": ["PersistentConnect"]}),
    Request("iot:Subscribe", f"{ARN}topicfilter/a/+/#", {"aws:username": "u", "x": True}),
    Request("iot:Receive", f"{ARN}topic/$aws/x", {}),
)


def _policy_text(source: ByteSource) -> str:
    if source.byte() % 2:
        return "".join(source.pick(POLICY_FRAGMENTS) for _ in range(source.byte() * 2))
    return source.rest().decode("utf-8", "replace")


def policy_target(data: bytes) -> None:
    source = ByteSource(data)
    text = _policy_text(source)
    try:
        document = parse_policy(text)
    except PolicyParseError as error:
        problems = error.errors
    else:
        for request in REQUESTS:
            evaluate([("fuzzed", document)], request)
        return
    assert problems, "PolicyParseError without a problem"


# --------------------------------------------------------------------------- sigv4

SIGV4_NOW = datetime(2026, 11, 25, 18, 30, 0, tzinfo=UTC)
SIGV4_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SIGNED = HttpRequest(
    method="POST",
    raw_path="/topics/a%2Fb",
    raw_query="qos=1&retain=true",
    headers={
        "host": "localhost:8000",
        "x-amz-date": "20261125T183000Z",
        "authorization": "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261125/us-east-1/iotdata/"
        "aws4_request, SignedHeaders=host;x-amz-date, Signature=" + "0" * 64,
    },
    body=b"payload",
)
PRESIGNED_QUERY = (
    ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
    ("X-Amz-Credential", "AKIDEXAMPLE%2F20261125%2Fus-east-1%2Fiotdata%2Faws4_request"),
    ("X-Amz-Date", "20261125T183000Z"),
    ("X-Amz-Expires", "3600"),
    ("X-Amz-SignedHeaders", "host"),
    ("X-Amz-Security-Token", "token%2B%2F%3D"),
    ("X-Amz-Signature", "a" * 64),
)
HEADER_NAMES = ("host", "x-amz-date", "authorization", "date", "x-amz-content-sha256", "X-Amz-Date")
SIGV4_FRAGMENTS = (
    "AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1", " ", ",", ", ", "=", "/", ";", "Credential=",
    "SignedHeaders=", "Signature=", "AKIDEXAMPLE", "20261125", "20261125T183000Z", "us-east-1",
    "*", "iotdata", "aws4_request", "host", "x-amz-date", "authorization", "0" * 64,
    "UNSIGNED-PAYLOAD", "Wed, 25 Nov 2026 18:30:00 GMT", "-0000", "%", "%2F", "%zz", "+", "&",
    "X-Amz-Signature", "X-Amz-Expires", "604801", "99999999999",
)  # fmt: skip


def _sigv4_text(source: ByteSource, *, ascii_only: bool) -> str:
    """Header values reach the verifier as latin-1 text, the path and query as ASCII."""
    if source.byte() % 2:
        return "".join(source.pick(SIGV4_FRAGMENTS) for _ in range(source.byte() % 12))
    raw = source.sized(80)
    if ascii_only:
        return bytes(b & 0x7F for b in raw).decode("ascii")
    return raw.decode("latin-1")


def _sigv4_request(source: ByteSource) -> HttpRequest:
    headers = dict(SIGNED.headers)
    if source.byte() % 2:  # presigned: the signature in the query
        del headers["authorization"]
        pairs = list(PRESIGNED_QUERY)
        query_edits = source.byte() % 4
        for _ in range(query_edits):
            index = source.byte() % (len(pairs) + 1)
            pair = (source.pick([*dict(pairs), "qos"]), _sigv4_text(source, ascii_only=True))
            pairs[index : index + 1] = [pair]
        raw_query = "&".join(f"{key}={value}" for key, value in pairs)
    else:
        raw_query = SIGNED.raw_query
    for _ in range(source.byte() % 4):
        name = source.pick(HEADER_NAMES)
        if source.byte() % 5 == 0:
            headers.pop(name, None)
        else:
            headers[name] = _sigv4_text(source, ascii_only=False)
    if source.byte() % 4 == 0:
        raw_query = _sigv4_text(source, ascii_only=True)
    raw_path = _sigv4_text(source, ascii_only=True) if source.byte() % 4 == 0 else SIGNED.raw_path
    method = source.pick(("POST", "GET", "", "get", "PØST"))
    return HttpRequest(
        method=method, raw_path=raw_path, raw_query=raw_query, headers=headers, body=source.rest()
    )


def sigv4_target(data: bytes) -> None:
    source = ByteSource(data)
    request = _sigv4_request(source)
    try:
        info = parse_signature(request)
    except SignatureError:
        return
    allowed = None if source.byte() % 2 else frozenset({"us-east-1"})
    for service in ("iotdata", "iotdevicegateway"):
        with contextlib.suppress(SignatureError):
            verify_signature(
                request,
                info,
                secret_access_key=SIGV4_SECRET,
                now=SIGV4_NOW,
                service=service,
                allowed_regions=allowed,
            )


# --------------------------------------------------------------------------- page tokens

PAGE_KEY = b"k" * 32


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def signed_token(body: bytes, key: bytes = PAGE_KEY) -> str:
    """A token with a valid MAC over any body: what only the key's holder can make."""
    return f"{_b64(body)}.{_b64(hmac.new(key, body, hashlib.sha256).digest()[:16])}"


def page_token_target(data: bytes) -> None:
    source = ByteSource(data)
    mode = source.byte() % 3
    if mode == 0:  # anything a client may send
        with contextlib.suppress(InvalidPageTokenError):
            decode_page_token(source.rest().decode("utf-8", "surrogateescape"), key=PAGE_KEY)
        return
    if mode == 1:  # a body only we could have signed: still only our error, or its topic
        body = source.rest()
        try:
            after = decode_page_token(signed_token(body), key=PAGE_KEY)
        except InvalidPageTokenError:
            return
        assert json.loads(body)["after"] == after
        return
    topic = source.sized(200).decode("utf-8", "replace")
    token = list(encode_page_token(topic, key=PAGE_KEY))
    for _ in range(1 + source.byte() % 3):  # a client edits its token
        index = source.byte() % len(token)
        token[index] = chr(source.byte())
    with contextlib.suppress(InvalidPageTokenError):
        assert decode_page_token("".join(token), key=PAGE_KEY) == topic


TARGETS: dict[str, Callable[[bytes], None]] = {
    "codec": codec_target,
    "topics": topics_target,
    "policy": policy_target,
    "sigv4": sigv4_target,
    "page_tokens": page_token_target,
}


# --------------------------------------------------------------------------- inputs

# Inputs that reach past the first checks: valid packet streams, policy-shaped documents.
# The properties below draw from these; bench/fuzz.py (Hypothesis engine) draws from them
# for minutes, and its atheris engine starts from SEEDS.


@st.composite
def mutated(draw: st.DrawFn, inputs: st.SearchStrategy[bytes]) -> bytes:
    """`inputs` with up to four bytes flipped, inserted or deleted (the first byte, which
    chooses the target's mode, is left alone)."""
    data = bytearray(draw(inputs))
    for _ in range(draw(st.integers(0, 4))):
        position = draw(st.integers(1, max(1, len(data))))
        action = draw(st.sampled_from(["flip", "insert", "delete"]))
        if action == "insert" or position >= len(data):
            data[position:position] = bytes((draw(st.integers(0, 255)),))
        elif action == "flip":
            data[position] ^= 1 << draw(st.integers(0, 7))
        else:
            del data[position]
    return bytes(data)


def _packet_streams() -> st.SearchStrategy[bytes]:
    from tests.broker.test_codec import packets  # the codec tests' packet strategy

    def stream(level: int) -> st.SearchStrategy[bytes]:
        mode = DECODER_MODES.index(f"client{level}")
        return st.lists(packets(level), min_size=1, max_size=4).map(
            lambda sent: bytes((mode,)) + b"".join(encode(p, protocol_level=level) for p in sent)
        )

    return st.sampled_from([4, 5]).flatmap(stream)


POLICY_WORDS = st.sampled_from(
    [fragment.strip('"') for fragment in POLICY_FRAGMENTS if fragment.startswith('"')]
) | st.text(max_size=12)
ARN_LIKE = st.builds(
    "{}{}/{}".format,
    st.sampled_from([ARN, "arn:aws:iot:*:*:", "arn:aws:iot:us-east-1:123456789012", ""]),
    st.sampled_from(["topic", "topicfilter", "client", "thing", "*", ""]),
    st.text(alphabet="ab/+#*?${}:.", max_size=16),
)
STRINGS = POLICY_WORDS | ARN_LIKE
STATEMENTS = st.fixed_dictionaries(
    {"Effect": st.sampled_from(["Allow", "Deny"]) | POLICY_WORDS},
    optional={
        key: STRINGS | st.lists(STRINGS, max_size=3)
        for key in ("Sid", "Action", "NotAction", "Resource", "NotResource")
    }
    | {
        "Condition": st.dictionaries(
            POLICY_WORDS,
            st.dictionaries(POLICY_WORDS, STRINGS | st.lists(STRINGS, max_size=3), max_size=2),
            max_size=2,
        )
    },
)
POLICY_DOCUMENTS = st.fixed_dictionaries(
    {
        "Version": st.sampled_from(["2012-10-17", "2008-10-17"]) | POLICY_WORDS,
        "Statement": STATEMENTS | st.lists(STATEMENTS, min_size=1, max_size=3),
    }
).map(lambda document: b"\x00" + json.dumps(document).encode())

FUZZ_INPUTS: dict[str, st.SearchStrategy[bytes]] = {
    "codec": st.binary(max_size=300) | mutated(_packet_streams()),
    "topics": st.binary(max_size=300),
    "policy": st.binary(max_size=400) | mutated(POLICY_DOCUMENTS),
    "sigv4": st.binary(max_size=300),
    "page_tokens": st.binary(max_size=300),
}

_POLICY_SEED = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["iot:Publish", "iot:Receive"],
            "Resource": f"{ARN}topic/${{iot:ClientId}}/*",
            "Condition": {"StringLike": {"iot:ClientId": "c?*"}},
        },
        {"Effect": "Deny", "NotAction": "iot:Connect", "NotResource": f"{ARN}client/x"},
    ],
}
SEEDS: dict[str, list[bytes]] = {
    "codec": [
        # server: CONNECT, PUBLISH QoS 1 "a/b"; CONNECT (MQTT 5), SUBSCRIBE "a/+/#"
        bytes((0,)) + CONNECT_4 + bytes.fromhex("32 08 0003 612f62 0001 78"),
        bytes((0,)) + CONNECT_5 + bytes.fromhex("82 0b 0001 00 0005 612f2b2f23 01"),
        # client5: DISCONNECT, PINGREQ, PUBACK
        bytes((4,)) + bytes.fromhex("e0 00 c0 00 40 03 0001 00"),
    ],
    # "a/+/#" and "a/b"; "sport/#" and "sports"
    "topics": [
        b"\x01\x05\x00\x02\x04\x02\x05\x01\x03\x00\x02\x01",
        b"\x00\x07sport/#\x00\x06sports",
    ],
    "policy": [b"\x00" + json.dumps(_POLICY_SEED).encode()],
    "sigv4": [b"", b"\x00\x01", b"\x01\x02"],
    "page_tokens": [b"\x00" + encode_page_token("a/b", key=PAGE_KEY).encode(), b"\x01{}", b"\x02"],
}


# --------------------------------------------------------------------------- properties


@BOUNDED
@given(FUZZ_INPUTS["codec"])
def test_codec(data: bytes) -> None:
    codec_target(data)


@BOUNDED
@given(FUZZ_INPUTS["topics"])
def test_topics(data: bytes) -> None:
    topics_target(data)


TOPIC_LEVELS = st.sampled_from(["a", "b", "", "+", "#", "$SYS", "$x"])


@BOUNDED
@given(st.lists(TOPIC_LEVELS, min_size=1, max_size=6), st.lists(TOPIC_LEVELS, max_size=6))
def test_topic_matches_agrees_with_the_reference(
    filter_levels: list[str], topic_levels: list[str]
) -> None:
    topic_filter = "/".join(filter_levels)
    topic = "/".join(level for level in topic_levels if level not in ("+", "#")) or "a"
    if not _valid(validate_topic_filter, topic_filter):
        return
    validate_topic_name(topic)
    assert topic_matches(topic_filter, topic) is reference_match(topic_filter, topic)


@BOUNDED
@given(FUZZ_INPUTS["policy"])
def test_policy(data: bytes) -> None:
    policy_target(data)


@BOUNDED
@given(FUZZ_INPUTS["sigv4"])
def test_sigv4(data: bytes) -> None:
    sigv4_target(data)


@BOUNDED
@given(FUZZ_INPUTS["page_tokens"])
@example(b"\x01" + b"[" * 2500)  # nested past the recursion limit, yet correctly signed
def test_page_tokens(data: bytes) -> None:
    page_token_target(data)


@pytest.mark.parametrize("target", sorted(SEEDS))
def test_seeds_pass(target: str) -> None:
    for seed in SEEDS[target]:
        TARGETS[target](seed)


def test_reference_matcher_table() -> None:
    """The reference itself, on the edge cases of the style guide's table."""
    assert reference_match("sport/+", "sport/")
    assert reference_match("a/#", "a")
    assert not reference_match("sport/#", "sports")
    assert not reference_match("#", "$SYS/x")
    assert reference_match("$SYS/#", "$SYS/x")
    assert not reference_match("+/x", "$a/x")
