"""Sessions, wills and QoS 1 redelivery against a real `manage.py serve`, with real clients.

paho-mqtt (3.1.1 and 5) and gmqtt for the ordinary flows; a raw-socket client where the
test needs what a library hides (not acknowledging a QoS 1 PUBLISH, the DUP flag).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gmqtt import Client as GmqttClient
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode as PahoReasonCode

from tests.interop.test_malformed import (
    DISCONNECT,
    HOST,
    QUIET,
    SESSION_EXPIRY,
    WAIT,
    Clients,
    RawClient,
    client_id,
    frame,
    prop_u32,
    props,
    puback_packet,
    unique,
)
from tests.support.server import ServerProcess

SESSION_TAKEN_OVER = 0x8E


@pytest.fixture
def clients(server: ServerProcess) -> Iterator[Clients]:
    pool = Clients(server)
    yield pool
    pool.close_all()


@pytest.fixture(scope="module")
def restartable_server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    """A server of this module's own, which the restart tests stop and start again."""
    return start_server()


@pytest.fixture
def restartable(restartable_server: ServerProcess) -> ServerProcess:
    if restartable_server.process is None:  # a failed test left it stopped
        restartable_server.start()
    return restartable_server


def payloads(messages: list[Any]) -> list[bytes]:
    return [bytes(message.payload) for message in messages]


# ---------------------------------------------------------------------------- persistence


def test_persistent_session_311_gets_queued_qos1(clients: Clients) -> None:
    topic, cid = unique("sessions/p311"), client_id("p311")
    subscriber = clients.paho(cid, clean=False)
    assert subscriber.connect().session_present is False
    assert subscriber.subscribe(topic, 1) == [1]
    subscriber.disconnect()

    publisher = clients.connected()
    sent = [f"queued-{i}".encode() for i in range(3)]
    for payload in sent:
        assert publisher.publish(topic, payload, qos=1) == 0
    # AWS keeps QoS 1 messages for an offline persistent session, not QoS 0 ones.
    publisher.publish(topic, b"qos0-dropped", qos=0)

    again = clients.paho(cid, clean=False)
    assert again.connect().session_present is True
    received = again.get_all(len(sent))
    assert payloads(received) == sent
    assert {(m.topic, m.qos, m.retain) for m in received} == {(topic, 1, False)}
    again.assert_no_message(QUIET)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_persistent_session_survives_restart(
    sig: signal.Signals, restartable: ServerProcess, clients: Clients
) -> None:
    port = restartable.mqtt_port
    topic, cid = unique("sessions/restart"), client_id("restart")
    subscriber = clients.paho(cid, port=port, clean=False)
    subscriber.connect()
    assert subscriber.subscribe(topic, 1) == [1]
    subscriber.disconnect()

    publisher = clients.connected(port=port)
    for payload in (b"before-1", b"before-2"):
        assert publisher.publish(topic, payload, qos=1) == 0
    publisher.disconnect()
    if sig == signal.SIGKILL:
        time.sleep(0.5)  # the PUBACK does not wait for the queued row's group commit
    restartable.stop(sig)
    restartable.start()

    # The subscription survived: a message published after the restart is queued too.
    publisher = clients.connected(port=port)
    assert publisher.publish(topic, b"after-restart", qos=1) == 0
    again = clients.paho(cid, port=port, clean=False)
    assert again.connect().session_present is True
    assert payloads(again.get_all(3)) == [b"before-1", b"before-2", b"after-restart"]
    # ... and it still delivers live.
    assert publisher.publish(topic, b"live", qos=1) == 0
    assert again.get().payload == b"live"
    again.assert_no_message(0.3)


def test_unacknowledged_inflight_message_survives_restart(
    restartable: ServerProcess, clients: Clients
) -> None:
    port = restartable.mqtt_port
    topic, cid = unique("sessions/inflight-restart"), client_id("inflight")
    raw = clients.raw(port)
    raw.connect(cid, clean=False)
    assert raw.subscribe([(topic, 1)]) == [1]
    publisher = clients.connected(port=port)
    assert publisher.publish(topic, b"not-acked", qos=1) == 0
    publisher.disconnect()
    first = raw.read_publish()
    assert (first.payload, first.dup) == (b"not-acked", False)
    raw.send(DISCONNECT)  # without acknowledging it
    raw.read_until_closed()

    restartable.stop(signal.SIGTERM)
    restartable.start()

    back = clients.raw(port)
    present, code, _ = back.connect(cid, clean=False)
    assert (present, code) == (True, 0)
    again = back.read_publish(timeout=1.5)
    assert (again.topic, again.payload, again.qos) == (topic, b"not-acked", 1)


def _gmqtt_session(
    port: int, cid: str, topic: str | None, *, collect: int = 0
) -> tuple[bool, list[bytes]]:
    """gmqtt, MQTT 5, Clean Start 0 and Session Expiry Interval 300: connect, optionally
    subscribe to `topic`, wait for `collect` messages, disconnect cleanly. Returns the
    CONNACK session present flag and the payloads received."""

    async def run() -> tuple[bool, list[bytes]]:
        client = GmqttClient(cid, clean_session=False, session_expiry_interval=300)
        connected: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        subscribed = asyncio.Event()
        received: list[bytes] = []
        got_all = asyncio.Event()

        def on_connect(client: Any, flags: int, rc: int, properties: Any) -> None:
            if not connected.done():
                connected.set_result(bool(flags))

        def on_message(client: Any, topic: str, payload: bytes, qos: int, props: Any) -> int:
            received.append(payload)
            if len(received) >= collect:
                got_all.set()
            return 0

        def on_subscribe(client: Any, mid: int, qos: Any, properties: Any) -> None:
            subscribed.set()

        client.on_connect = on_connect
        client.on_message = on_message
        client.on_subscribe = on_subscribe
        await asyncio.wait_for(client.connect(HOST, port, keepalive=30), WAIT)
        session_present = await asyncio.wait_for(connected, WAIT)
        if topic is not None:
            client.subscribe(topic, qos=1)
            await asyncio.wait_for(subscribed.wait(), WAIT)
        if collect:
            await asyncio.wait_for(got_all.wait(), WAIT)
        await client.disconnect()
        return session_present, received

    return asyncio.run(run())


def test_v5_session_expiry_300_survives_reconnect(clients: Clients, server: ServerProcess) -> None:
    topic, cid = unique("sessions/expiry300"), client_id("gmqtt")
    present, _ = _gmqtt_session(server.mqtt_port, cid, topic)
    assert present is False

    publisher = clients.connected(v5=True)
    for payload in (b"e-1", b"e-2"):
        assert publisher.publish(topic, payload, qos=1) == 0

    present, received = _gmqtt_session(server.mqtt_port, cid, None, collect=2)
    assert present is True
    assert received == [b"e-1", b"e-2"]


def test_v5_session_expiry_0_does_not_survive(clients: Clients) -> None:
    topic, cid = unique("sessions/expiry0"), client_id("exp0")
    subscriber = clients.paho(cid, v5=True, clean=False)  # no Session Expiry Interval: 0
    assert subscriber.connect().session_present is False
    assert subscriber.subscribe(topic, 1) == [1]
    subscriber.disconnect()

    publisher = clients.connected(v5=True)
    publisher.publish(topic, b"lost", qos=1)

    again = clients.paho(cid, v5=True, clean=False, session_expiry=300)
    assert again.connect().session_present is False
    again.assert_no_message(QUIET)
    publisher.publish(topic, b"not-subscribed", qos=1)  # the subscription is gone too
    again.assert_no_message(0.3)


def test_v5_session_ends_when_its_expiry_interval_has_passed(clients: Clients) -> None:
    topic, cid = unique("sessions/expiry1"), client_id("exp1")
    subscriber = clients.paho(cid, v5=True, clean=False, session_expiry=1)
    subscriber.connect()
    assert subscriber.subscribe(topic, 1) == [1]
    subscriber.disconnect()
    publisher = clients.connected(v5=True)
    assert publisher.publish(topic, b"expired-with-the-session", qos=1) == 0
    time.sleep(1.5)
    again = clients.paho(cid, v5=True, clean=False, session_expiry=300)
    assert again.connect().session_present is False
    again.assert_no_message(0.3)


SEVEN_DAYS = 7 * 24 * 3600


@pytest.mark.parametrize(
    ("asked", "granted"),
    [
        (300, None),
        (SEVEN_DAYS, None),
        (SEVEN_DAYS + 1, SEVEN_DAYS),
        (0xFFFFFFFF, SEVEN_DAYS),
    ],
)
def test_connack_reports_a_clamped_session_expiry(
    asked: int, granted: int | None, clients: Clients
) -> None:
    """AWS keeps a persistent session at most 7 days; MQTT 5 CONNACK tells the client the
    Session Expiry Interval the server uses when it is not the one asked for."""
    properties = clients.paho(v5=True, session_expiry=asked).connect().properties
    assert getattr(properties, "SessionExpiryInterval", None) == granted


def test_disconnect_with_expiry_0_ends_a_persistent_session(clients: Clients) -> None:
    topic, cid = unique("sessions/disc0"), client_id("disc0")
    raw = clients.raw()
    raw.connect(cid, level=5, clean=False, properties=props(prop_u32(SESSION_EXPIRY, 300)))
    assert raw.subscribe([(topic, 1)]) == [1]
    raw.send(frame(0xE0, b"\x00" + props(prop_u32(SESSION_EXPIRY, 0))))
    assert raw.read_until_closed() == b""
    publisher = clients.connected()
    assert publisher.publish(topic, b"nobody", qos=1) == 0
    again = clients.paho(cid, v5=True, clean=False, session_expiry=300)
    assert again.connect().session_present is False
    again.assert_no_message(0.3)


def test_disconnect_cannot_give_expiry_to_a_session_that_had_none(clients: Clients) -> None:
    topic, cid = unique("sessions/disc-expiry"), client_id("disc-exp")
    raw = clients.raw()
    raw.connect(cid, level=5, clean=False)  # Session Expiry Interval 0
    assert raw.subscribe([(topic, 1)]) == [1]
    raw.send(frame(0xE0, b"\x00" + props(prop_u32(SESSION_EXPIRY, 300))))
    assert raw.read_until_closed() == b"\xe0\x01\x82"  # DISCONNECT Protocol Error
    publisher = clients.connected()
    assert publisher.publish(topic, b"nobody", qos=1) == 0
    again = clients.paho(cid, v5=True, clean=False, session_expiry=300)
    assert again.connect().session_present is False
    again.assert_no_message(0.3)


@pytest.mark.parametrize("v5", [False, True], ids=["311", "v5"])
def test_clean_start_discards_the_old_session(v5: bool, clients: Clients) -> None:
    topic, cid = unique("sessions/clean"), client_id("clean")
    persistent: dict[str, Any] = {"clean": False}
    if v5:
        persistent["session_expiry"] = 300
    subscriber = clients.paho(cid, v5=v5, **persistent)
    subscriber.connect()
    assert subscriber.subscribe(topic, 1) == [1]
    subscriber.disconnect()
    publisher = clients.connected(v5=True)
    assert publisher.publish(topic, b"queued", qos=1) == 0

    fresh = clients.paho(cid, v5=v5, clean=True, **({"session_expiry": 300} if v5 else {}))
    assert fresh.connect().session_present is False
    fresh.assert_no_message(QUIET)
    assert publisher.publish(topic, b"after-clean", qos=1) == 0  # subscription gone
    fresh.assert_no_message(0.3)
    fresh.disconnect()

    if not v5:
        # The clean session ended with its connection: nothing persistent is left.
        last = clients.paho(cid, clean=False)
        assert last.connect().session_present is False
        last.assert_no_message(0.3)


# ---------------------------------------------------------------------------- takeover


@pytest.mark.parametrize("v5", [False, True], ids=["311", "v5"])
def test_client_id_takeover_closes_the_first_connection(v5: bool, clients: Clients) -> None:
    cid, topic = client_id("takeover"), unique("sessions/takeover")
    first = clients.connected(cid, v5=v5)
    second = clients.connected(cid, v5=v5)
    reason = first.wait_disconnected()
    if v5:
        assert reason == SESSION_TAKEN_OVER  # DISCONNECT 0x8E
    # The second connection is the one that works.
    assert second.subscribe(topic, 1) == [1]
    assert second.publish(topic, b"mine", qos=1) == 0
    assert second.get().payload == b"mine"
    assert not second.disconnected.is_set()


def test_takeover_keeps_a_persistent_session(clients: Clients) -> None:
    cid, topic = client_id("takeover-p"), unique("sessions/takeover-p")
    first = clients.paho(cid, v5=True, clean=False, session_expiry=300)
    first.connect()
    assert first.subscribe(topic, 1) == [1]
    second = clients.paho(cid, v5=True, clean=False, session_expiry=300)
    assert second.connect().session_present is True
    assert first.wait_disconnected() == SESSION_TAKEN_OVER
    publisher = clients.connected()
    assert publisher.publish(topic, b"to-second", qos=1) == 0
    assert second.get().payload == b"to-second"


# ---------------------------------------------------------------------------- wills


@pytest.mark.parametrize("v5", [False, True], ids=["311", "v5"])
def test_will_with_retain_fires_on_abrupt_close(v5: bool, clients: Clients) -> None:
    topic = unique("sessions/will")
    live = clients.connected()
    assert live.subscribe(topic, 1) == [1]
    victim = clients.paho(v5=v5, will=(topic, b"gone", 1, True))
    victim.connect()
    live.assert_no_message(0.2)
    victim.kill()  # TCP closed without DISCONNECT

    message = live.get()
    assert (message.topic, message.payload, message.qos) == (topic, b"gone", 1)
    assert message.retain is False  # AWS: live copies do not carry RETAIN
    # The will is now the topic's retained message.
    later = clients.connected(v5=True)
    assert later.subscribe(topic, 1) == [1]
    stored = later.get()
    assert (stored.topic, stored.payload, stored.retain) == (topic, b"gone", True)


@pytest.mark.parametrize("v5", [False, True], ids=["311", "v5"])
def test_clean_disconnect_does_not_fire_the_will(v5: bool, clients: Clients) -> None:
    topic = unique("sessions/no-will")
    live = clients.connected()
    assert live.subscribe(topic, 1) == [1]
    leaver = clients.paho(v5=v5, will=(topic, b"must-not-fire", 1, True))
    leaver.connect()
    leaver.disconnect()
    live.assert_no_message(QUIET)
    later = clients.connected()
    assert later.subscribe(topic, 1) == [1]
    later.assert_no_message(0.3)  # nothing retained either


def test_disconnect_with_will_message_fires_the_will(clients: Clients) -> None:
    """MQTT 5 DISCONNECT reason 0x04 asks for the will although it is a DISCONNECT."""
    topic = unique("sessions/will-04")
    live = clients.connected()
    assert live.subscribe(topic, 1) == [1]
    leaver = clients.paho(v5=True, will=(topic, b"asked-for", 1, False))
    leaver.connect()
    leaver.client.disconnect(reasoncode=PahoReasonCode(PacketTypes.DISCONNECT, identifier=0x04))
    assert live.get().payload == b"asked-for"


def test_will_qos2_is_refused_v5(clients: Clients) -> None:
    """Maximum QoS is 1: a will asking QoS 2 is refused with CONNACK 0x9B."""
    client = clients.paho(v5=True, will=(unique("sessions/will-q2"), b"w", 2, False))
    assert client.connect(expect=None).reason_code == 0x9B


def test_will_delay_interval(clients: Clients) -> None:
    topic = unique("sessions/will-delay")
    live = clients.connected()
    assert live.subscribe(topic, 1) == [1]
    victim = clients.paho(v5=True, session_expiry=10, will=(topic, b"late", 1, False), will_delay=2)
    victim.connect()
    killed = time.monotonic()
    victim.kill()
    live.assert_no_message(1.5)  # not before the delay
    message = live.get(timeout=2.5)
    elapsed = time.monotonic() - killed
    assert message.payload == b"late"
    assert 1.8 <= elapsed <= 3.5, elapsed


def test_reconnect_within_will_delay_cancels_the_will(clients: Clients) -> None:
    topic, cid = unique("sessions/will-cancel"), client_id("will-cancel")
    live = clients.connected()
    assert live.subscribe(topic, 1) == [1]
    victim = clients.paho(
        cid, v5=True, session_expiry=10, will=(topic, b"cancelled", 1, False), will_delay=2
    )
    victim.connect()
    victim.kill()
    time.sleep(0.5)
    back = clients.paho(cid, v5=True, clean=False, session_expiry=10)
    assert back.connect().session_present is True
    live.assert_no_message(2.3)  # past the 2 s delay
    back.disconnect()  # a clean DISCONNECT: the cancelled will stays cancelled
    live.assert_no_message(0.3)


# ---------------------------------------------------------------------------- redelivery


@pytest.mark.parametrize("level", [4, 5], ids=["311", "v5"])
def test_unacknowledged_qos1_is_redelivered_with_dup(level: int, clients: Clients) -> None:
    topic, cid = unique("sessions/dup"), client_id("dup")
    expiry = props(prop_u32(SESSION_EXPIRY, 300)) if level == 5 else None

    def connect() -> tuple[RawClient, bool]:
        raw = clients.raw()
        present, code, _ = raw.connect(cid, level=level, clean=False, properties=expiry)
        assert code == 0
        return raw, present

    raw, present = connect()
    assert present is False
    assert raw.subscribe([(topic, 1)]) == [1]
    publisher = clients.connected()
    assert publisher.publish(topic, b"ack-me", qos=1) == 0
    first = raw.read_publish()
    assert (first.topic, first.payload, first.qos, first.dup) == (topic, b"ack-me", 1, False)
    raw.send(DISCONNECT)  # leave without PUBACK
    assert raw.read_until_closed() == b""

    raw, present = connect()
    assert present is True
    again = raw.read_publish()
    assert (again.topic, again.payload, again.qos) == (topic, b"ack-me", 1)
    assert again.dup is True
    assert again.packet_id == first.packet_id
    raw.send(puback_packet(again.packet_id or 0))
    raw.ping()
    raw.send(DISCONNECT)
    raw.read_until_closed()

    # Acknowledged now: not sent a third time.
    raw, present = connect()
    assert present is True
    raw.assert_silent(QUIET)
