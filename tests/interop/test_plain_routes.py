"""Repeated QoS 0 messages to one topic: the broker keeps their route per connection
(`PlainRoute` in retained/broker/broker.py) and must notice every change that moves it.

Each test publishes several plain messages (QoS 0, no RETAIN, no properties) to the same
topic from one connection, so that all but the first go the short way, and changes the
routing in between: new and removed subscriptions, subscribers leaving and coming back,
no-local, shared subscriptions. Real paho clients (3.1.1 and 5) against a real server.
"""

from __future__ import annotations

from collections.abc import Iterator

import paho.mqtt.client as paho
import pytest
from paho.mqtt.subscribeoptions import SubscribeOptions

from tests.interop.test_malformed import Clients, Paho, client_id, unique
from tests.support.server import ServerProcess


@pytest.fixture
def clients(server: ServerProcess) -> Iterator[Clients]:
    pool = Clients(server)
    yield pool
    pool.close_all()


def send(publisher: Paho, topic: str, payloads: list[bytes]) -> None:
    """QoS 0 publishes, then a QoS 1 one whose PUBACK shows the broker routed them all
    (it handles a connection's packets in order)."""
    for payload in payloads:
        publisher.publish(topic, payload, qos=0)
    assert publisher.publish(unique("barrier"), b"", qos=1) == 0


def received(client: Paho, count: int) -> list[tuple[str, bytes, int, bool]]:
    return [
        (message.topic, bytes(message.payload), message.qos, bool(message.retain))
        for message in client.get_all(count)
    ]


def batch(name: str, count: int = 3) -> list[bytes]:
    return [f"{name}-{index}".encode() for index in range(count)]


@pytest.mark.parametrize("publisher_v5", [False, True], ids=["pub-311", "pub-5"])
def test_v4_and_v5_subscribers_get_the_same_messages(clients: Clients, publisher_v5: bool) -> None:
    topic = unique("plain")
    v4 = clients.connected(v5=False)
    v5 = clients.connected(v5=True)
    assert v4.subscribe(topic, qos=1) == [1]
    assert v5.subscribe(topic, qos=1) == [1]
    assert v5.subscribe(f"{topic.split('/')[0]}/#", qos=0) == [0]  # overlapping: 2 copies
    publisher = clients.connected(v5=publisher_v5)
    payloads = [*batch("m", 5), b"", bytes(range(256)) * 400]  # empty, 100 KiB
    send(publisher, topic, payloads)
    expected = [(topic, payload, 0, False) for payload in payloads]
    assert received(v4, len(payloads)) == expected
    got = received(v5, 2 * len(payloads))
    assert sorted(got) == sorted(expected + expected)
    v4.assert_no_message()
    v5.assert_no_message()


def test_subscriptions_made_and_removed_between_messages(clients: Clients) -> None:
    topic = unique("plain")
    first = clients.connected(v5=True)
    assert first.subscribe(topic, qos=0) == [0]
    publisher = clients.connected(v5=False)
    send(publisher, topic, batch("a"))
    assert received(first, 3) == [(topic, p, 0, False) for p in batch("a")]

    late = clients.connected(v5=False)
    assert late.subscribe(topic, qos=0) == [0]
    send(publisher, topic, batch("b"))
    assert received(late, 3) == [(topic, p, 0, False) for p in batch("b")]

    result, _ = late.client.unsubscribe(topic)
    assert result == paho.MQTT_ERR_SUCCESS
    assert late.publish(unique("barrier"), b"", qos=1) == 0  # the UNSUBSCRIBE was handled
    send(publisher, topic, batch("c"))
    assert received(first, 6) == [(topic, p, 0, False) for p in batch("b") + batch("c")]
    late.assert_no_message()


def test_a_subscriber_that_comes_back_gets_the_messages_on_its_new_connection(
    clients: Clients,
) -> None:
    topic = unique("plain")
    subscriber_id = client_id("back")
    away = clients.paho(subscriber_id, v5=True, clean=False, session_expiry=300)
    away.connect()
    assert away.subscribe(topic, qos=0) == [0]
    publisher = clients.connected(v5=True)
    send(publisher, topic, batch("before"))
    assert len(received(away, 3)) == 3
    away.kill()
    send(publisher, topic, batch("gone"))  # QoS 0 is not kept for an offline session

    back = clients.paho(subscriber_id, v5=True, clean=False, session_expiry=300)
    assert back.connect().session_present
    send(publisher, topic, batch("after"))
    assert received(back, 3) == [(topic, p, 0, False) for p in batch("after")]
    back.assert_no_message()


def test_a_taken_over_client_id_gets_the_messages_on_the_new_connection(
    clients: Clients,
) -> None:
    topic = unique("plain")
    subscriber_id = client_id("takeover")
    old = clients.paho(subscriber_id, v5=False, clean=False)
    old.connect()
    assert old.subscribe(topic, qos=0) == [0]
    publisher = clients.connected(v5=False)
    send(publisher, topic, batch("old"))
    assert len(received(old, 3)) == 3
    new = clients.paho(subscriber_id, v5=False, clean=False)
    new.connect()
    old.wait_disconnected()
    send(publisher, topic, batch("new"))
    assert received(new, 3) == [(topic, p, 0, False) for p in batch("new")]


def test_no_local_holds_for_repeated_messages(clients: Clients) -> None:
    topic = unique("plain")
    device = clients.connected(v5=True)
    result, mid = device.client.subscribe(topic, options=SubscribeOptions(qos=0, noLocal=True))
    assert result == paho.MQTT_ERR_SUCCESS
    assert mid is not None
    assert device._wait(device.subacks, mid) == [0]
    other = clients.connected(v5=True)
    assert other.subscribe(topic, qos=0) == [0]
    send(device, topic, batch("own"))
    assert len(received(other, 3)) == 3
    device.assert_no_message()
    send(other, topic, batch("theirs"))
    assert received(device, 3) == [(topic, p, 0, False) for p in batch("theirs")]


def test_shared_subscription_members_still_take_turns(clients: Clients) -> None:
    topic = unique("plain")
    group = f"$share/g{client_id('')[-6:]}/{topic}"
    members = [clients.connected(v5=True) for _ in range(2)]
    for member in members:
        assert member.subscribe(group, qos=0) == [0]
    plain = clients.connected(v5=False)
    assert plain.subscribe(topic, qos=0) == [0]
    publisher = clients.connected(v5=True)
    send(publisher, topic, batch("s", 6))
    assert len(received(plain, 6)) == 6
    counts = [len(received(member, 3)) for member in members]
    assert counts == [3, 3]
    for member in members:
        member.assert_no_message()
