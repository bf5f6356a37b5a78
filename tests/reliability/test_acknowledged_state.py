"""What the broker acknowledged about a persistent session survives a SIGKILL right after the
acknowledgement: the session itself (CONNACK), its subscriptions (SUBACK), the messages it was
owed when its client went away, and those in flight to its client while it is connected."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.interop.clients import PahoClient, paho_client
from tests.support.server import ServerProcess

ROUNDS = 3


def session_expiry(seconds: int) -> Properties:
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = seconds
    return properties


def persistent_client(port: int, client_id: str) -> tuple[PahoClient, bool]:
    """Connected with Clean Start 0 and a one-hour session; (client, session present)."""
    client = PahoClient(port, version=5, client_id=client_id)
    flags: dict[str, bool] = {}

    def on_connect(_client: object, _userdata: object, connect_flags: object, *_: object) -> None:
        flags["present"] = bool(getattr(connect_flags, "session_present", False))

    original = client.client.on_connect

    def both(*args: Any) -> None:
        on_connect(*args)
        assert original is not None
        original(*args)

    client.client.on_connect = both
    client.client.connect("127.0.0.1", port, clean_start=False, properties=session_expiry(3600))
    client.client.loop_start()
    assert client._connected.wait(5), "no CONNACK"
    return client, flags.get("present", False)


def assert_session_redelivers(port: int, client_id: str, payloads: list[bytes]) -> None:
    """Reconnect as `client_id`: its session is there and hands back `payloads`."""
    again, present = persistent_client(port, client_id)
    try:
        assert present is True
        received = again.collect(len(payloads))
        assert sorted(message.payload for message in received) == sorted(payloads)
    finally:
        again.disconnect()


@pytest.fixture(scope="module")
def server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_server()


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_subscription_acknowledged_just_before_a_kill_survives(
    server: ServerProcess, round_: int
) -> None:
    if server.process is None:
        server.start()
    port = server.mqtt_port
    client_id = f"suback-{uuid.uuid4().hex[:8]}"
    topic = f"durable/suback/{client_id}"
    subscriber, present = persistent_client(port, client_id)
    assert present is False
    assert subscriber.subscribe(topic, qos=1) == [1]
    server.stop(signal.SIGKILL)  # the moment the SUBACK arrived
    subscriber.disconnect()
    server.start()

    with paho_client(port) as publisher:
        assert publisher.publish(topic, b"after-restart", qos=1) == 0
    again, present = persistent_client(port, client_id)
    try:
        assert present is True, "the acknowledged session was lost"
        (received,) = again.collect(1)
        assert received.payload == b"after-restart", "the acknowledged subscription was lost"
    finally:
        again.disconnect()


def test_messages_owed_to_a_client_that_left_survive_a_kill(server: ServerProcess) -> None:
    """A persistent subscriber that stops acknowledging and disconnects: what was in flight
    or waiting for it was in memory; after its disconnect it must be durable."""
    if server.process is None:
        server.start()
    port = server.mqtt_port
    client_id = f"owed-{uuid.uuid4().hex[:8]}"
    topic = f"durable/owed/{client_id}"
    subscriber, _ = persistent_client(port, client_id)
    assert subscriber.subscribe(topic, qos=1) == [1]
    subscriber.client.loop_stop()  # stops reading: nothing it is sent gets acknowledged
    with paho_client(port) as publisher:
        for index in range(5):
            assert publisher.publish(topic, f"owed-{index}".encode(), qos=1) == 0
    sock = subscriber.client.socket()
    assert sock is not None
    sock.close()  # gone without DISCONNECT
    time.sleep(0.2)  # the broker notices the close (and writes the backlog down) ...
    with paho_client(port) as barrier:  # ... before this retained write, committed in order
        assert barrier.publish(f"{topic}/barrier", b"x", qos=1, retain=True) == 0
    server.stop(signal.SIGKILL)
    server.start()

    assert_session_redelivers(port, client_id, [f"owed-{index}".encode() for index in range(5)])


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_messages_in_flight_to_a_connected_client_survive_a_kill(
    server: ServerProcess, round_: int
) -> None:
    """The subscriber is connected but has not acknowledged yet (it stopped reading) when
    the publisher gets its PUBACKs and the server is killed: the messages must come back."""
    if server.process is None:
        server.start()
    port = server.mqtt_port
    client_id = f"inflight-{uuid.uuid4().hex[:8]}"
    topic = f"durable/inflight/{client_id}"
    subscriber, _ = persistent_client(port, client_id)
    assert subscriber.subscribe(topic, qos=1) == [1]
    subscriber.client.loop_stop()  # connected, but nothing it is sent gets acknowledged
    with paho_client(port) as publisher:
        for index in range(5):
            assert publisher.publish(topic, f"in-flight-{index}".encode(), qos=1) == 0
        server.stop(signal.SIGKILL)  # the moment the last PUBACK arrived
    sock = subscriber.client.socket()
    if sock is not None:
        sock.close()
    server.start()

    payloads = [f"in-flight-{index}".encode() for index in range(5)]
    assert_session_redelivers(port, client_id, payloads)
