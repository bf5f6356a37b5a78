"""The broker's fast PUBLISH encoder writes exactly what the general encoder writes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from retained.broker._wire import encode_utf8
from retained.broker.codec import (
    Decoder,
    encode,
    encode_plain_publish,
    encode_publish,
    encode_retained_copies,
)
from retained.broker.packets import Publish
from retained.broker.properties import EMPTY_PROPERTIES, Properties

topics = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00+#"),
    min_size=1,
    max_size=40,
)
properties = st.one_of(
    st.just(EMPTY_PROPERTIES),
    st.builds(
        Properties,
        content_type=st.one_of(st.none(), st.text(max_size=10).filter(lambda t: "\x00" not in t)),
        message_expiry_interval=st.one_of(st.none(), st.integers(1, 604_800)),
        user_property=st.lists(
            st.tuples(st.sampled_from(["a", "b", "k"]), st.sampled_from(["1", "", "v"])),
            max_size=3,
        ).map(tuple),
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    topic=topics,
    payload=st.binary(max_size=300),
    qos=st.sampled_from([0, 1]),
    retain=st.booleans(),
    dup=st.booleans(),
    packet_id=st.integers(1, 65_535),
    props=properties,
    level=st.sampled_from([4, 5]),
)
def test_encode_publish_matches_encode(
    topic: str,
    payload: bytes,
    qos: int,
    retain: bool,
    dup: bool,
    packet_id: int,
    props: Properties,
    level: int,
) -> None:
    dup = dup and qos == 1
    packet = Publish(
        topic=topic,
        payload=payload,
        qos=qos,
        retain=retain,
        dup=dup,
        packet_id=packet_id if qos else None,
        properties=props if level == 5 else EMPTY_PROPERTIES,
    )
    fast = encode_publish(
        topic=topic,
        payload=payload,
        qos=qos,
        retain=retain,
        dup=dup,
        packet_id=packet.packet_id,
        properties=packet.properties,
        protocol_level=level,
    )
    assert fast == encode(packet, protocol_level=level)
    assert Decoder(protocol_level=level).feed(fast) == [packet]


@settings(max_examples=300, deadline=None)
@given(
    topic=topics,
    payload=st.one_of(
        st.binary(max_size=300),
        # Remaining Length 127/128 and 16383/16384 lie around these sizes.
        st.integers(100, 140).map(lambda n: b"p" * n),
        st.integers(16_300, 16_400).map(lambda n: b"q" * n),
    ),
    retain=st.booleans(),
    level=st.sampled_from([4, 5]),
)
def test_encode_plain_publish_matches_encode(
    topic: str, payload: bytes, retain: bool, level: int
) -> None:
    packet = Publish(topic=topic, payload=payload, retain=retain)
    plain = encode_plain_publish(encode_utf8(topic), payload, retain=retain, v5=level == 5)
    assert plain == encode(packet, protocol_level=level)
    assert Decoder(protocol_level=level).feed(plain) == [packet]


@settings(max_examples=100, deadline=None)
@given(
    messages=st.lists(
        st.tuples(
            topics,
            st.one_of(st.binary(max_size=300), st.integers(4000, 4200).map(lambda n: b"r" * n)),
        ),
        max_size=20,
    ),
    level=st.sampled_from([4, 5]),
)
def test_encode_retained_copies_matches_encode(
    messages: list[tuple[str, bytes]], level: int
) -> None:
    packets = encode_retained_copies(
        [topic for topic, _ in messages], [payload for _, payload in messages], v5=level == 5
    )
    assert packets == [
        encode(Publish(topic=topic, payload=payload, retain=True), protocol_level=level)
        for topic, payload in messages
    ]
