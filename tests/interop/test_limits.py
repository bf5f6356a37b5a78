"""AWS IoT Core limits, as the broker enforces them, seen by real clients.

Each limit is checked on both sides of the line (128 bytes OK, 129 refused; 8 filters OK,
9 refused; ...) and with the reason code each protocol version can carry: MQTT 5 CONNACK,
SUBACK, PUBACK and DISCONNECT reason codes; MQTT 3.1.1 CONNACK return codes, SUBACK 0x80,
or a closed connection where 3.1.1 has no way to say why.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties as PahoProperties

from tests.conftest import Credentials, create_credentials
from tests.interop.test_malformed import (
    QUIET,
    RECEIVE_MAXIMUM,
    TOPIC_ALIAS,
    Clients,
    client_id,
    prop_u16,
    props,
    puback_packet,
    publish_packet,
    unique,
)
from tests.support.server import ServerProcess

KB = 1024
MAX_PAYLOAD = 128 * KB

# MQTT 5 reason codes
CLIENT_ID_NOT_VALID = 0x85
BAD_USER_NAME_OR_PASSWORD = 0x86
NOT_AUTHORIZED = 0x87
KEEP_ALIVE_TIMEOUT = 0x8D
TOPIC_ALIAS_INVALID = 0x94
PACKET_TOO_LARGE = 0x95
QUOTA_EXCEEDED = 0x97
QOS_NOT_SUPPORTED = 0x9B
FAILURE_311 = 0x80  # the one MQTT 3.1.1 SUBACK failure code


@pytest.fixture
def clients(server: ServerProcess) -> Iterator[Clients]:
    pool = Clients(server)
    yield pool
    pool.close_all()


@pytest.fixture(scope="module")
def short_keep_alive_server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_server(RETAINED_KEEP_ALIVE_MIN_SECONDS="1", RETAINED_KEEP_ALIVE_MAX_SECONDS="2")


@pytest.fixture(scope="module")
def no_anonymous_server(
    start_server: Callable[..., ServerProcess],
) -> tuple[ServerProcess, Credentials]:
    server = start_server(RETAINED_ALLOW_ANONYMOUS="false")
    return server, create_credentials(server, "limits-user")


@pytest.fixture(scope="module")
def quota_server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_server(RETAINED_MAX_RETAINED_MESSAGES="2")


def refused(v5: bool) -> int:
    return QUOTA_EXCEEDED if v5 else FAILURE_311


# ---------------------------------------------------------------------------- client id


def _client_id_of(size: int, *, multibyte: bool) -> str:
    """A unique client id of `size` bytes of UTF-8 (with 2-byte characters if asked)."""
    tail = (uuid.uuid4().hex * 5)[:32]
    if multibyte:
        head = "é" * ((size - len(tail)) // 2)
        return head + tail + "x" * ((size - len(tail)) % 2)
    return tail + "x" * (size - len(tail))


CLIENT_ID_CASES = [
    pytest.param(128, False, True, id="128-ascii"),
    pytest.param(129, False, False, id="129-ascii"),
    pytest.param(128, True, True, id="128-bytes-multibyte"),
    pytest.param(129, True, False, id="129-bytes-multibyte"),
]


@pytest.mark.parametrize(("size", "multibyte", "accepted"), CLIENT_ID_CASES)
def test_client_id_length_v5(size: int, multibyte: bool, accepted: bool, clients: Clients) -> None:
    cid = _client_id_of(size, multibyte=multibyte)
    assert len(cid.encode()) == size
    result = clients.paho(cid, v5=True).connect(expect=None)
    assert result.reason_code == (0 if accepted else CLIENT_ID_NOT_VALID)


@pytest.mark.parametrize(("size", "multibyte", "accepted"), CLIENT_ID_CASES)
def test_client_id_length_311(size: int, multibyte: bool, accepted: bool, clients: Clients) -> None:
    cid = _client_id_of(size, multibyte=multibyte)
    raw = clients.raw()
    _, code, _ = raw.connect(cid)
    if accepted:
        assert code == 0
        raw.ping()
    else:
        assert code == 2  # Identifier rejected
        assert raw.read_until_closed() == b""


def test_empty_client_id(clients: Clients) -> None:
    """3.1.1: an empty client id needs clean session; MQTT 5 gets one assigned."""
    persistent = clients.raw()
    assert persistent.connect("", clean=False)[1] == 2
    assert persistent.read_until_closed() == b""
    assert clients.raw().connect("", clean=True)[1] == 0
    result = clients.paho("", v5=True).connect()
    assigned = getattr(result.properties, "AssignedClientIdentifier", "")
    assert 0 < len(assigned.encode()) <= 128


# ---------------------------------------------------------------------------- keep-alive


@pytest.mark.parametrize(
    ("asked", "granted"),
    [(5, 30), (29, 30), (0, 1200), (1201, 1200), (3000, 1200), (30, None), (1200, None)],
)
def test_keep_alive_is_clamped(asked: int, granted: int | None, clients: Clients) -> None:
    """MQTT 5 CONNACK Server Keep Alive: AWS's 30..1200 s (0 -> 1200); absent when the
    client's own value stands."""
    result = clients.paho(v5=True, keep_alive=asked).connect()
    assert getattr(result.properties, "ServerKeepAlive", None) == granted


@pytest.mark.parametrize(("level", "answer"), [(5, b"\xe0\x01\x8d"), (4, b"")], ids=["v5", "311"])
def test_silent_client_is_closed_after_one_and_a_half_keep_alives(
    level: int, answer: bytes, short_keep_alive_server: ServerProcess, clients: Clients
) -> None:
    raw = clients.raw(short_keep_alive_server.mqtt_port)
    _, code, _ = raw.connect(client_id("ka"), level=level, keep_alive=1)
    assert code == 0
    connected = time.monotonic()
    received = raw.read_until_closed(timeout=4.0)
    elapsed = time.monotonic() - connected
    assert received == answer  # MQTT 5: DISCONNECT Keep Alive timeout first
    assert 1.0 <= elapsed <= 2.5, f"closed after {elapsed:.2f} s, expected about 1.5 s"


def test_pings_keep_a_short_keep_alive_connection_open(
    short_keep_alive_server: ServerProcess, clients: Clients
) -> None:
    raw = clients.raw(short_keep_alive_server.mqtt_port)
    raw.connect(client_id("ka-ping"), level=5, keep_alive=1)
    for _ in range(3):  # 2.4 s in all, longer than 1.5 x keep-alive
        time.sleep(0.8)
        raw.ping()
    last = time.monotonic()
    assert raw.read_until_closed(timeout=4.0) == bytes((0xE0, 1, KEEP_ALIVE_TIMEOUT))
    assert 1.0 <= time.monotonic() - last <= 2.5


def test_keep_alive_timeout_fires_the_will(
    short_keep_alive_server: ServerProcess, clients: Clients
) -> None:
    port = short_keep_alive_server.mqtt_port
    topic = unique("limits/ka-will")
    watcher = clients.raw(port)
    watcher.connect(client_id("ka-watch"), level=5, keep_alive=2)
    assert watcher.subscribe([(topic, 1)]) == [1]
    silent = clients.raw(port)
    silent.connect(
        client_id("ka-will"), level=4, keep_alive=1, will=(topic, b"timed-out", 1, False)
    )
    will = watcher.read_publish(timeout=2.5)  # about 1.5 s: before the watcher's own 3 s
    assert (will.topic, will.payload, will.qos) == (topic, b"timed-out", 1)
    assert silent.read_until_closed() == b""


# ---------------------------------------------------------------------------- subscriptions


@pytest.mark.parametrize("v5", [False, True], ids=["311", "v5"])
def test_nine_filters_in_one_subscribe_are_all_refused(v5: bool, clients: Clients) -> None:
    topics = [unique("limits/nine") for _ in range(9)]
    subscriber = clients.connected(v5=v5)
    assert subscriber.subscribe([(topic, 1) for topic in topics]) == [refused(v5)] * 9
    publisher = clients.connected()
    for topic in topics:
        assert publisher.publish(topic, b"none", qos=1) == 0
    subscriber.assert_no_message(QUIET)  # nothing of the refused SUBSCRIBE was applied

    assert subscriber.subscribe([(topic, 1) for topic in topics[:8]]) == [1] * 8
    for topic in topics:
        assert publisher.publish(topic, topic.encode(), qos=1) == 0
    received = subscriber.get_all(8)
    assert sorted(m.topic for m in received) == sorted(topics[:8])
    subscriber.assert_no_message(0.3)


@pytest.mark.parametrize("v5", [False, True], ids=["311", "v5"])
def test_fifty_one_subscriptions_per_connection(v5: bool, clients: Clients) -> None:
    base = unique("limits/fifty")
    filters = [f"{base}/{i}" for i in range(52)]
    subscriber = clients.connected(v5=v5)
    for start in range(0, 50, 8):
        chunk = filters[start : min(start + 8, 50)]
        assert subscriber.subscribe([(f, 1) for f in chunk]) == [1] * len(chunk)
    assert subscriber.subscribe(filters[50], 1) == [refused(v5)]
    assert subscriber.subscribe([(filters[50], 1), (filters[51], 1)]) == [refused(v5)] * 2
    # Subscribing again to a filter it has is a replacement, not a 51st subscription.
    assert subscriber.subscribe(filters[0], 0) == [0]

    publisher = clients.connected()
    assert publisher.publish(filters[50], b"refused", qos=1) == 0
    assert publisher.publish(filters[49], b"fiftieth", qos=1) == 0
    message = subscriber.get()
    assert (message.topic, message.payload) == (filters[49], b"fiftieth")
    subscriber.assert_no_message(0.3)

    # Room for one more once one is gone.
    subscriber.client.unsubscribe(filters[1])
    assert subscriber.subscribe(filters[50], 1) == [1]


@pytest.mark.parametrize("v5", [False, True], ids=["311", "v5"])
def test_subscribe_qos2_is_granted_qos1(v5: bool, clients: Clients) -> None:
    topic = unique("limits/qos2")
    subscriber = clients.connected(v5=v5)
    assert subscriber.subscribe(topic, 2) == [1]
    publisher = clients.connected()
    assert publisher.publish(topic, b"q", qos=1) == 0
    assert subscriber.get().qos == 1


# ---------------------------------------------------------------------------- publishing


def test_publish_qos2_v5_is_disconnected_with_0x9b(clients: Clients) -> None:
    topic = unique("limits/pub-qos2")
    subscriber = clients.connected()
    subscriber.subscribe(topic, 1)
    publisher = clients.connected(v5=True)
    publisher.client.publish(topic, b"two", qos=2)
    assert publisher.wait_disconnected() == QOS_NOT_SUPPORTED
    subscriber.assert_no_message(0.3)


@pytest.mark.parametrize(("level", "answer"), [(5, b"\xe0\x01\x9b"), (4, b"")], ids=["v5", "311"])
def test_publish_qos2_raw(level: int, answer: bytes, clients: Clients) -> None:
    raw = clients.raw()
    raw.connect(client_id("qos2"), level=level)
    raw.send(publish_packet(unique("limits/pub-qos2"), b"two", qos=2, v5=level == 5))
    assert raw.read_until_closed() == answer


def test_topic_alias_is_resolved(clients: Clients) -> None:
    topic = unique("limits/alias")
    subscriber = clients.connected()
    subscriber.subscribe(topic, 1)
    publisher = clients.connected(v5=True)
    alias = PahoProperties(PacketTypes.PUBLISH)
    alias.TopicAlias = 1
    assert publisher.publish(topic, b"with-topic", qos=1, properties=alias) == 0
    assert publisher.publish("", b"alias-only", qos=1, properties=alias) == 0
    received = subscriber.get_all(2)
    assert [(m.topic, m.payload) for m in received] == [
        (topic, b"with-topic"),
        (topic, b"alias-only"),
    ]


@pytest.mark.parametrize("alias", [0, 9, 65535])
def test_topic_alias_out_of_range_is_disconnected(alias: int, clients: Clients) -> None:
    raw = clients.raw()
    raw.connect(client_id("alias"), level=5)
    raw.send(
        publish_packet(
            unique("limits/alias"), v5=True, properties=props(prop_u16(TOPIC_ALIAS, alias))
        )
    )
    assert raw.read_until_closed() == bytes((0xE0, 1, TOPIC_ALIAS_INVALID))


def test_topic_alias_is_not_carried_to_a_new_connection(clients: Clients) -> None:
    topic, cid = unique("limits/alias-conn"), client_id("alias-conn")
    raw = clients.raw()
    raw.connect(cid, level=5)
    alias = props(prop_u16(TOPIC_ALIAS, 1))
    raw.send(publish_packet(topic, b"set", qos=1, v5=True, properties=alias))
    assert raw.read_packet()[0] == 0x40  # PUBACK
    raw.send(b"\xe0\x00")
    raw.read_until_closed()
    again = clients.raw()
    again.connect(cid, level=5)
    again.send(publish_packet("", b"unknown", v5=True, properties=alias))
    assert again.read_until_closed() == b"\xe0\x01\x82"  # Protocol Error: alias not set


@pytest.mark.parametrize(
    ("topic", "accepted"),
    [
        pytest.param("a/" * 7 + "b", True, id="7-slashes"),
        pytest.param("a/" * 8 + "b", False, id="8-slashes"),
        pytest.param("x" * 256, True, id="256-bytes"),
        pytest.param("x" * 257, False, id="257-bytes"),
        pytest.param("é" * 128, True, id="256-bytes-multibyte"),
        pytest.param("é" * 128 + "x", False, id="257-bytes-multibyte"),
    ],
)
def test_topic_name_limits(topic: str, accepted: bool, clients: Clients) -> None:
    """AWS: a topic is at most 256 bytes of UTF-8 with at most 7 '/'."""
    raw = clients.raw()
    raw.connect(client_id("topic"), level=5)
    raw.send(publish_packet(topic, b"t", qos=1, packet_id=3, v5=True))
    if accepted:
        assert raw.read_packet() == (0x40, b"\x00\x03")
    else:
        assert raw.read_until_closed() == b"\xe0\x01\x90"  # Topic Name invalid


@pytest.mark.parametrize("v5", [False, True], ids=["311", "v5"])
def test_topic_filter_limits(v5: bool, clients: Clients) -> None:
    """The same limits for filters; `$share/<name>/` does not count."""
    subscriber = clients.connected(v5=v5)
    codes = subscriber.subscribe(
        [
            ("a/" * 7 + "#", 1),
            ("a/" * 8 + "#", 1),
            ("$share/g/" + "a/" * 7 + "+", 1),
            ("$share/g/" + "a/" * 8 + "+", 1),
            ("x" * 256, 1),
            ("x" * 257, 1),
        ]
    )
    bad = 0x8F if v5 else FAILURE_311
    assert codes == [1, bad, 1, bad, 1, bad]


def test_client_maximum_packet_size_is_respected(clients: Clients) -> None:
    topic = unique("limits/client-max")
    raw = clients.raw()
    raw.connect(
        client_id("cmax"), level=5, properties=props(bytes((0x27,)) + (200).to_bytes(4, "big"))
    )
    assert raw.subscribe([(topic, 1)]) == [1]
    publisher = clients.connected()
    assert publisher.publish(topic, b"z" * 1000, qos=1) == 0  # too big for this client
    assert publisher.publish(topic, b"small", qos=1) == 0
    assert raw.read_publish().payload == b"small"


@pytest.mark.parametrize("v5", [False, True], ids=["311", "v5"])
def test_payload_of_128_kb_is_accepted(v5: bool, clients: Clients) -> None:
    topic = unique("limits/payload")
    subscriber = clients.connected(v5=True)
    subscriber.subscribe(topic, 1)
    publisher = clients.connected(v5=v5)
    payload = bytes(range(256)) * (MAX_PAYLOAD // 256)
    assert publisher.publish(topic, payload, qos=1) == 0
    assert subscriber.get().payload == payload


def test_payload_over_128_kb_v5_is_disconnected_with_0x95(clients: Clients) -> None:
    topic = unique("limits/payload")
    subscriber = clients.connected()
    subscriber.subscribe(topic, 1)
    publisher = clients.connected(v5=True)
    publisher.client.publish(topic, b"x" * (MAX_PAYLOAD + 1), qos=1)
    assert publisher.wait_disconnected() == PACKET_TOO_LARGE
    subscriber.assert_no_message(0.3)


@pytest.mark.parametrize(
    ("level", "answer"), [(5, bytes((0xE0, 1, PACKET_TOO_LARGE))), (4, b"")], ids=["v5", "311"]
)
def test_payload_over_128_kb_raw(level: int, answer: bytes, clients: Clients) -> None:
    raw = clients.raw()
    raw.connect(client_id("big"), level=level)
    raw.send(publish_packet(unique("limits/big"), b"y" * (MAX_PAYLOAD + 1), v5=level == 5))
    assert raw.read_until_closed() == answer


# ---------------------------------------------------------------------------- credentials


def test_wrong_password_v5(clients: Clients, credentials: Credentials) -> None:
    result = clients.paho(
        v5=True, username=credentials.access_key_id, password="not-the-secret"
    ).connect(expect=None)
    assert result.reason_code == BAD_USER_NAME_OR_PASSWORD


def test_unknown_access_key_v5(clients: Clients) -> None:
    result = clients.paho(v5=True, username="AKIANOSUCHKEY0000000", password="x").connect(
        expect=None
    )
    assert result.reason_code == BAD_USER_NAME_OR_PASSWORD


def test_wrong_password_311(clients: Clients, credentials: Credentials) -> None:
    raw = clients.raw()
    _, code, _ = raw.connect(
        client_id("pw"), username=credentials.access_key_id, password="not-the-secret"
    )
    assert code == 4  # Bad user name or password
    assert raw.read_until_closed() == b""


@pytest.mark.parametrize("v5", [False, True], ids=["311", "v5"])
def test_right_access_key_is_accepted(v5: bool, clients: Clients, credentials: Credentials) -> None:
    client = clients.paho(
        v5=v5, username=credentials.access_key_id, password=credentials.secret_access_key
    )
    assert client.connect().reason_code == 0


def test_anonymous_refused_when_not_allowed(
    no_anonymous_server: tuple[ServerProcess, Credentials], clients: Clients
) -> None:
    server, credentials = no_anonymous_server
    port = server.mqtt_port
    assert clients.paho(v5=True, port=port).connect(expect=None).reason_code == NOT_AUTHORIZED
    raw = clients.raw(port)
    _, code, _ = raw.connect(client_id("anon"))
    assert code == 5  # Not authorized
    assert raw.read_until_closed() == b""
    # The access key still gets in, with either protocol version.
    for v5 in (False, True):
        keyed = clients.paho(
            v5=v5,
            port=port,
            username=credentials.access_key_id,
            password=credentials.secret_access_key,
        )
        assert keyed.connect().reason_code == 0
    wrong = clients.raw(port)
    assert wrong.connect(client_id("w"), username=credentials.access_key_id, password="no")[1] == 4


# ---------------------------------------------------------------------------- CONNACK, flow


def test_connack_advertises_the_limits(clients: Clients) -> None:
    properties = clients.paho(v5=True).connect().properties
    advertised = {
        name: getattr(properties, name, None)
        for name in (
            "ReceiveMaximum",
            "MaximumQoS",
            "RetainAvailable",
            "TopicAliasMaximum",
            "MaximumPacketSize",
            "WildcardSubscriptionAvailable",
            "SubscriptionIdentifierAvailable",
        )
    }
    assert advertised == {
        "ReceiveMaximum": 100,
        "MaximumQoS": 1,
        "RetainAvailable": 1,
        "TopicAliasMaximum": 8,
        "MaximumPacketSize": 146 * KB,
        "WildcardSubscriptionAvailable": 1,
        "SubscriptionIdentifierAvailable": 0,
    }


def test_client_receive_maximum_bounds_messages_in_flight(clients: Clients) -> None:
    topic = unique("limits/recv-max")
    raw = clients.raw()
    raw.connect(client_id("rm"), level=5, properties=props(prop_u16(RECEIVE_MAXIMUM, 2)))
    assert raw.subscribe([(topic, 1)]) == [1]
    publisher = clients.connected()
    for i in range(5):
        assert publisher.publish(topic, f"m{i}".encode(), qos=1) == 0
    first = [raw.read_publish() for _ in range(2)]
    assert [p.payload for p in first] == [b"m0", b"m1"]
    raw.assert_silent(QUIET)  # two in flight: the broker waits for a PUBACK
    raw.send(puback_packet(first[0].packet_id or 0))
    assert raw.read_publish().payload == b"m2"
    raw.assert_silent(0.3)
    raw.send(puback_packet(first[1].packet_id or 0))
    assert raw.read_publish().payload == b"m3"


def test_default_in_flight_window_is_100(clients: Clients) -> None:
    topic = unique("limits/inflight")
    raw = clients.raw()
    raw.connect(client_id("inflight"))
    assert raw.subscribe([(topic, 1)]) == [1]
    publisher = clients.connected()
    for i in range(101):
        assert publisher.publish(topic, str(i).encode(), qos=1) == 0
    window = [raw.read_publish() for _ in range(100)]
    assert [p.payload for p in window] == [str(i).encode() for i in range(100)]
    raw.assert_silent(QUIET)
    raw.send(puback_packet(window[0].packet_id or 0))
    assert raw.read_publish().payload == b"100"


def _retained_burst(base: str, count: int, *, qos: int) -> bytes:
    """`count` retained PUBLISHes in one write: each waits for its group commit before it
    is acknowledged, so all of them are in flight at once."""
    return b"".join(
        publish_packet(f"{base}/{i}", b"v", qos=qos, retain=True, packet_id=i + 1, v5=True)
        for i in range(count)
    )


def test_inbound_in_flight_window_is_100(clients: Clients) -> None:
    base = unique("limits/inbound")
    raw = clients.raw()
    raw.connect(client_id("in100"), level=5)
    raw.send(_retained_burst(base, 100, qos=1))
    acked = sorted(int.from_bytes(raw.read_packet()[1][:2], "big") for _ in range(100))
    assert acked == list(range(1, 101))

    over = clients.raw()
    over.connect(client_id("in101"), level=5)
    over.send(_retained_burst(unique("limits/inbound"), 101, qos=1))
    # 101 unacknowledged QoS 1 PUBLISHes: Receive Maximum exceeded.
    assert over.read_until_closed().endswith(b"\xe0\x01\x93")


def test_qos0_publishes_do_not_count_against_receive_maximum(clients: Clients) -> None:
    base = unique("limits/qos0-burst")
    raw = clients.raw()
    raw.connect(client_id("q0burst"), level=5)
    raw.send(
        _retained_burst(base, 150, qos=0)
        + publish_packet(f"{base}/q1", b"q", qos=1, packet_id=9, v5=True)
    )
    assert raw.read_packet() == (0x40, b"\x00\x09")  # the one QoS 1 PUBLISH is acknowledged


# ---------------------------------------------------------------------------- count quota


def test_retained_count_quota(quota_server: ServerProcess, clients: Clients) -> None:
    port = quota_server.mqtt_port
    base = unique("limits/quota")
    t1, t2, t3, t4 = (f"{base}/{i}" for i in range(1, 5))
    watcher = clients.connected(port=port)
    watcher.subscribe(t3, 1)
    publisher = clients.connected(port=port, v5=True)

    assert publisher.publish(t1, b"one", retain=True) == 0
    assert publisher.publish(t2, b"two", retain=True) == 0
    assert publisher.publish(t3, b"three", retain=True) == QUOTA_EXCEEDED
    watcher.assert_no_message(0.3)  # a refused publish is not delivered either
    assert publisher.publish(t1, b"one-v2", retain=True) == 0  # replacing one: fine
    assert publisher.publish(t2, b"", retain=True) == 0  # deleting one: fine
    assert publisher.publish(t3, b"three", retain=True) == 0  # room again
    assert watcher.get().payload == b"three"
    assert publisher.publish(t4, b"not-retained") == 0  # plain publishes are not counted
    assert publisher.publish(t4, b"four", retain=True) == QUOTA_EXCEEDED

    # MQTT 3.1.1 has no PUBACK reason codes: the refused publish closes the connection ...
    raw = clients.raw(port)
    raw.connect(client_id("quota311"))
    raw.send(publish_packet(t4, b"four", qos=1, retain=True))
    assert raw.read_until_closed() == b""
    # ... while replacing and deleting still work.
    raw = clients.raw(port)
    raw.connect(client_id("quota311"))
    raw.send(publish_packet(t1, b"one-v3", qos=1, retain=True, packet_id=7))
    assert raw.read_packet() == (0x40, b"\x00\x07")
    raw.send(publish_packet(t3, b"", qos=1, retain=True, packet_id=8))
    assert raw.read_packet() == (0x40, b"\x00\x08")

    # What is stored: t1 replaced twice; t2 and t3 deleted; t4 refused.
    reader = clients.connected(port=port)
    reader.subscribe([(t1, 1), (t2, 1), (t3, 1), (t4, 1)])
    stored = reader.get()
    assert (stored.topic, stored.payload, stored.retain) == (t1, b"one-v3", True)
    reader.assert_no_message(0.3)
