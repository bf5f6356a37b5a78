"""Acknowledged writes survive SIGKILL (issue #8, point 1). The long run is bench/crash.py."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import create_credentials
from tests.interop.test_malformed import (
    DISCONNECT,
    ConnectionClosed,
    RawClient,
    client_id,
    puback_packet,
    publish_packet,
)
from tests.reliability.crash_harness import ZERO_RATE_LIMITS, CrashHarness, iot_data
from tests.support.server import ServerProcess, make_server

SHORT_RUN_KILLS = 20


@pytest.fixture
def crash_server(tmp_path: Path) -> Iterator[ServerProcess]:
    server = make_server(tmp_path / "data", **ZERO_RATE_LIMITS)
    server.start()
    yield server
    server.stop()


def kill_and_restart(server: ServerProcess) -> None:
    process = server.process
    assert process is not None
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    server.process = None
    server.start()


@pytest.mark.slow
def test_acknowledged_writes_survive_sigkill(crash_server: ServerProcess) -> None:
    """MQTT, HTTP and console writers; distinct and hot topics; two offline persistent
    sessions: 20 SIGKILLs at random moments, and nothing acknowledged is lost."""
    harness = CrashHarness(
        crash_server,
        mqtt_writers=2,
        http_writers=1,
        console_writers=1,
        min_delay=0.1,
        max_delay=0.6,
    )
    report = harness.run(SHORT_RUN_KILLS)
    print("\n".join(report.lines()))
    assert report.kills == SHORT_RUN_KILLS
    assert not report.problems, "\n".join(report.problems[:20])
    assert report.total_lost == 0
    for kind in ("mqtt", "http", "console"):
        assert report.acknowledged[kind] > 0, f"no {kind} write was acknowledged"
    assert all(count > 0 for count in report.queued_expected.values())


@pytest.mark.slow
def test_queued_message_survives_a_kill_right_after_its_acknowledgement(
    crash_server: ServerProcess,
) -> None:
    """The window the random kills rarely hit: SIGKILL the moment the publisher has its
    PUBACK (or HTTP 200). The copy queued for the offline persistent session must have been
    committed before that acknowledgement went out."""
    subscriber_id = client_id("offline")
    topic_filter = f"{client_id('crash')}/#"
    prefix = topic_filter[:-2]
    subscriber = RawClient(crash_server.mqtt_port)
    subscriber.connect(subscriber_id, clean=False)
    assert subscriber.subscribe([(topic_filter, 1)]) == [1]
    go_offline(subscriber)
    iot = iot_data(crash_server, create_credentials(crash_server, "crash-http"))
    # A retained publish's PUBACK follows the commit of the subscription queued before it.
    sync = RawClient(crash_server.mqtt_port)
    sync.connect(client_id("sync"))
    sync.send(publish_packet(f"{prefix}/sync", qos=1, retain=True))
    assert sync.read_packet()[0] == 0x40
    sync.close()
    subscriber_drain(crash_server, subscriber_id)

    ways = ("mqtt", "mqtt-retained", "http", "http-retained")
    lost = []
    for index, way in enumerate(ways):
        payload = f"{way}-{index}".encode()
        topic = f"{prefix}/{way}/{index}"
        if way.startswith("mqtt"):
            publisher = RawClient(crash_server.mqtt_port)
            publisher.connect(client_id("pub"))
            retain = way.endswith("retained")
            publisher.send(publish_packet(topic, payload, qos=1, retain=retain))
            first, body = publisher.read_packet()
            assert (first, body[:2]) == (0x40, b"\x00\x01")
        else:
            iot.publish(topic=topic, qos=1, retain=way.endswith("retained"), payload=payload)
        kill_and_restart(crash_server)
        if payload not in subscriber_drain(crash_server, subscriber_id, expected=payload):
            lost.append(topic)
    assert lost == []


def subscriber_drain(
    server: ServerProcess, subscriber_id: str, *, expected: bytes | None = None
) -> list[bytes]:
    """Resume the persistent session, take (and acknowledge) what it queued until
    `expected` is in and a short silence follows, go offline."""
    subscriber = RawClient(server.mqtt_port)
    session_present, code, _ = subscriber.connect(subscriber_id, clean=False)
    assert (session_present, code) == (True, 0)
    payloads = []
    try:
        while True:
            message = subscriber.read_publish(timeout=0.1 if expected in payloads else 1.0)
            payloads.append(message.payload)
            if message.packet_id is not None:
                subscriber.send(puback_packet(message.packet_id))
    except (TimeoutError, ConnectionClosed):
        pass
    go_offline(subscriber)
    return payloads


def go_offline(subscriber: RawClient) -> None:
    """DISCONNECT and wait for the close: the broker knows the session is offline, so what
    is published next is queued (not sent to a socket that is going away)."""
    subscriber.send(DISCONNECT)
    subscriber.read_until_closed()
    subscriber.close()
