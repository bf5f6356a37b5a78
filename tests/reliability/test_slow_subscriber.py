"""Slow clients (issue #8, point 5) against a real `manage.py serve`.

A subscriber that never reads must not slow the others nor grow the server without bound:
QoS 0 beyond the client's write buffer high-water mark is dropped, QoS 1 is queued up to the
session's backlog limit (RETAINED_MAX_QUEUED_MESSAGES, small here), and then the client is
disconnected (MQTT 5: DISCONNECT 0x97); a persistent session keeps its backlog for the
client's return. The never-reading clients are raw sockets; a burst of big messages first
fills the kernel's socket buffers (a few MiB), so what follows would have to stay in the
broker if it were not dropped.

The long run with 2,000 connections is bench/load.py.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.interop.test_malformed import (
    DISCONNECT,
    PINGREQ,
    SESSION_EXPIRY,
    ConnectionClosed,
    Paho,
    RawClient,
    client_id,
    prop_u32,
    props,
    puback_packet,
    publish_packet,
    unique,
)
from tests.interop.test_websocket import WebSocketRawClient
from tests.support.server import ServerProcess

LIMIT = 300  # RETAINED_MAX_QUEUED_MESSAGES of this module's server
MIB = 1 << 20
BIG = b"f" * (64 * 1024)
FLOOD_MESSAGES = 2_000  # x 64 KiB = 125 MiB pushed at one client that never reads
RSS_GROWTH_LIMIT = 100 * MIB
DISCONNECT_QUOTA_EXCEEDED = (0xE0, b"\x97")

# The throughput measurement: one publisher at a fixed rate, healthy QoS 0 subscribers.
HEALTHY = 3
RATE = 2_000  # messages/s offered
WARMUP = 0.5
WINDOW = 3.0
MIN_RATIO = 0.7


@pytest.fixture(scope="module")
def slow_server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_server(RETAINED_MAX_QUEUED_MESSAGES=str(LIMIT))


@pytest.fixture
def server(slow_server: ServerProcess) -> ServerProcess:
    if slow_server.process is None:  # a failed restart test left it stopped
        slow_server.start()
    return slow_server


@pytest.fixture
def opened() -> Iterator[list[Any]]:
    """Clients a test opens, closed at the end whatever happened."""
    clients: list[Any] = []
    yield clients
    for client in reversed(clients):
        with contextlib.suppress(Exception):
            client.close()


def memory(server: ServerProcess) -> dict[str, int]:
    """VmRSS and VmHWM of the server process, in bytes."""
    assert server.process is not None
    values = {}
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return values


def raw(server: ServerProcess, opened: list[Any], *, level: int = 4, **connect: Any) -> RawClient:
    client = RawClient(server.mqtt_port)
    opened.append(client)
    client.connect(connect.pop("cid", None) or client_id("raw"), level=level, **connect)
    return client


def paho(server: ServerProcess, opened: list[Any], **kwargs: Any) -> Paho:
    client = Paho(server.mqtt_port, **kwargs)
    opened.append(client)
    client.connect()
    return client


def read_until_pingresp(client: RawClient, timeout: float = 10.0) -> int:
    """PINGREQ, then read what the broker kept for the client up to the PINGRESP: proof
    that the connection stayed open. Returns how many PUBLISH packets came first."""
    client.send(PINGREQ)
    deadline = time.monotonic() + timeout
    publishes = 0
    while True:
        first, _ = client.read_packet(max(0.01, deadline - time.monotonic()))
        if first == 0xD0:
            return publishes
        publishes += first >> 4 == 3


def read_to_the_end(client: RawClient) -> list[tuple[int, bytes]]:
    """Every packet until the broker closes the connection (TimeoutError if it does not)."""
    packets = []
    while True:
        try:
            packets.append(client.read_packet())
        except ConnectionClosed:
            return packets


def flood(publisher: RawClient, topic: str, count: int) -> None:
    packet = publish_packet(topic, BIG)
    for start in range(0, count, 50):
        publisher.send(packet * min(50, count - start))


def assert_bounded(server: ServerProcess, before: dict[str, int], pushed: int) -> None:
    after = memory(server)
    grew = after["VmRSS"] - before["VmRSS"]
    peak = after["VmHWM"] - before["VmHWM"]
    print(
        f"pushed {pushed / MIB:.0f} MiB at a client that does not read: server RSS "
        f"{before['VmRSS'] / MIB:.0f} -> {after['VmRSS'] / MIB:.0f} MiB, "
        f"peak +{peak / MIB:.0f} MiB"
    )
    assert grew < RSS_GROWTH_LIMIT
    assert peak < RSS_GROWTH_LIMIT
    assert server.health() == 200


# ---------------------------------------------------------------------------- QoS 0


class Counting:
    """A healthy paho subscriber that only counts what it receives."""

    def __init__(self, client: Paho) -> None:
        self.client = client
        self.received = 0
        client.client.on_message = self._on_message

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        self.received += 1


def publish_paced(
    publisher: RawClient, topic: str, counters: list[Counting]
) -> tuple[float, float]:
    """RATE QoS 0 messages/s for WARMUP + WINDOW seconds; the healthy subscribers' mean
    rate over the window, and the rate actually offered."""
    packet = publish_packet(topic, b"p" * 200)
    ticks_per_second = 100
    batch = packet * (RATE // ticks_per_second)
    started = time.monotonic()
    sent_ticks = 0
    begin: tuple[float, int] | None = None
    while True:
        now = time.monotonic()
        elapsed = now - started
        if begin is None and elapsed >= WARMUP:
            begin = (now, sum(c.received for c in counters))
        if elapsed >= WARMUP + WINDOW:
            break
        while sent_ticks < int(elapsed * ticks_per_second) + 1:
            publisher.send(batch)
            sent_ticks += 1
        time.sleep(0.004)
    assert begin is not None
    received = sum(c.received for c in counters) - begin[1]
    seconds = now - begin[0]
    offered = sent_ticks * (RATE // ticks_per_second) / elapsed
    return received / len(counters) / seconds, offered


def test_a_qos0_subscriber_that_never_reads_neither_slows_the_others_nor_grows_the_server(
    server: ServerProcess, opened: list[Any]
) -> None:
    busy, fill, floodgate, after = (
        unique(f"slow/{name}") for name in ("busy", "fill", "flood", "after")
    )
    counters = [Counting(paho(server, opened)) for _ in range(HEALTHY)]
    for counter in counters:
        assert counter.client.subscribe(busy, 0) == [0]
    publisher = raw(server, opened)

    alone, offered = publish_paced(publisher, busy, counters)

    laggard = raw(server, opened)
    assert laggard.subscribe([(busy, 0), (fill, 0), (floodgate, 0)]) == [0, 0, 0]
    flood(publisher, fill, 200)  # 12.5 MiB: past the kernel buffers and the high-water mark
    with_laggard, offered_again = publish_paced(publisher, busy, counters)

    print(
        f"\nhealthy subscribers ({HEALTHY}, QoS 0, {offered:.0f} and {offered_again:.0f} msg/s "
        f"offered): {alone:.0f} msg/s each alone, {with_laggard:.0f} msg/s each with a "
        f"subscriber that never reads (ratio {with_laggard / alone:.2f})"
    )
    assert alone > 0.8 * RATE
    assert with_laggard >= MIN_RATIO * alone

    # Far more than any buffer, at the client that does not read: dropped, not held.
    watcher = paho(server, opened)
    assert watcher.subscribe(after, 0) == [0]
    before = memory(server)
    flood(publisher, floodgate, FLOOD_MESSAGES)
    publisher.send(publish_packet(after, b"flood done"))
    assert watcher.get(timeout=30).payload == b"flood done"  # the broker read it all
    assert_bounded(server, before, FLOOD_MESSAGES * len(BIG))
    # The laggard was never disconnected; reading now, it gets what was kept for it.
    kept = read_until_pingresp(laggard)
    assert kept < 200 + RATE * (WARMUP + WINDOW)


def test_a_websocket_subscriber_that_never_reads_does_not_grow_the_server(
    server: ServerProcess, opened: list[Any]
) -> None:
    """daphne buffers without limit below the ASGI app: the broker must see that buffer."""
    floodgate, after = unique("slow/ws-flood"), unique("slow/ws-after")
    laggard = WebSocketRawClient(server.http_port)
    opened.append(laggard)
    assert laggard.status == 101
    laggard.connect(client_id("ws-laggard"))
    assert laggard.subscribe([(floodgate, 0)]) == [0]
    watcher = paho(server, opened)
    assert watcher.subscribe(after, 0) == [0]
    publisher = raw(server, opened)

    before = memory(server)
    flood(publisher, floodgate, FLOOD_MESSAGES)
    publisher.send(publish_packet(after, b"flood done"))
    assert watcher.get(timeout=30).payload == b"flood done"
    assert_bounded(server, before, FLOOD_MESSAGES * len(BIG))
    assert read_until_pingresp(laggard) < FLOOD_MESSAGES


# ---------------------------------------------------------------------------- QoS 1


def publish_qos1(
    server: ServerProcess, opened: list[Any], topic: str, count: int, prefix: str = "m"
) -> None:
    """`count` QoS 1 messages m0, m1, ... each acknowledged (PUBACK 0) before the next."""
    publisher = paho(server, opened)
    for index in range(count):
        assert publisher.publish(topic, f"{prefix}{index}".encode(), qos=1) == 0


@pytest.mark.parametrize("level", [4, 5], ids=["311", "v5"])
def test_a_qos1_subscriber_that_does_not_acknowledge_is_disconnected_at_the_limit(
    level: int, server: ServerProcess, opened: list[Any]
) -> None:
    topic = unique("slow/qos1")
    healthy = paho(server, opened, v5=True)
    assert healthy.subscribe(topic, 1) == [1]
    laggard = raw(server, opened, level=level)
    assert laggard.subscribe([(topic, 1)]) == [1]

    publish_qos1(server, opened, topic, LIMIT + 100)

    # 100 in flight (never acknowledged), 200 queued behind: the next one is one too many.
    received = read_to_the_end(laggard)
    publishes = [body for first, body in received if first >> 4 == 3]
    assert len(publishes) == 100
    if level == 5:
        assert received[-1] == DISCONNECT_QUOTA_EXCEEDED
    else:
        assert len(received) == 100  # 3.1.1 has no DISCONNECT from the server: just closed
    assert [m.payload for m in healthy.get_all(LIMIT + 100)] == [
        f"m{i}".encode() for i in range(LIMIT + 100)
    ]
    assert "does not keep up" in server.log()
    assert server.health() == 200


def test_a_persistent_session_disconnected_at_the_limit_keeps_its_backlog(
    server: ServerProcess, opened: list[Any]
) -> None:
    """Disconnected for its backlog, the session keeps it (written to the database, so a
    SIGKILL loses nothing acknowledged); what comes while it is full is dropped."""
    topic, cid = unique("slow/kept"), client_id("kept")
    expiry = props(prop_u32(SESSION_EXPIRY, 300))
    laggard = raw(server, opened, level=5, cid=cid, clean=False, properties=expiry)
    assert laggard.subscribe([(topic, 1)]) == [1]
    publish_qos1(server, opened, topic, LIMIT + 50)
    assert read_to_the_end(laggard)[-1] == DISCONNECT_QUOTA_EXCEEDED
    laggard.close()

    server.stop(signal.SIGKILL)  # every PUBACK above came after the backlog's commit
    server.start()

    back = Paho(server.mqtt_port, cid, v5=True, clean=False, session_expiry=300)
    opened.append(back)
    assert back.connect().session_present is True
    payloads = [m.payload for m in back.get_all(LIMIT, timeout=10)]
    assert payloads == [f"m{i}".encode() for i in range(LIMIT)]
    back.assert_no_message(0.5)


def test_an_offline_persistent_session_queues_up_to_the_limit(
    server: ServerProcess, opened: list[Any]
) -> None:
    topic, cid = unique("slow/offline"), client_id("offline")
    subscriber = Paho(server.mqtt_port, cid, clean=False)
    opened.append(subscriber)
    subscriber.connect()
    assert subscriber.subscribe(topic, 1) == [1]
    subscriber.disconnect()

    publish_qos1(server, opened, topic, LIMIT + 50)  # the last 50 are dropped, counted

    again = Paho(server.mqtt_port, cid, clean=False)
    opened.append(again)
    assert again.connect().session_present is True
    payloads = [m.payload for m in again.get_all(LIMIT, timeout=10)]
    assert payloads == [f"m{i}".encode() for i in range(LIMIT)]
    again.assert_no_message(0.5)
    # Caught up, it is an ordinary subscriber again.
    publish_qos1(server, opened, topic, 1)
    assert again.get().payload == b"m0"


def test_a_client_returning_to_a_full_queue_gets_to_catch_up(
    server: ServerProcess, opened: list[Any]
) -> None:
    """Its backlog is at the limit before it has had a chance to acknowledge anything: what
    arrives meanwhile is dropped as for an offline session, and the client stays."""
    topic, cid = unique("slow/catch-up"), client_id("catch-up")
    expiry = props(prop_u32(SESSION_EXPIRY, 300))
    subscriber = raw(server, opened, level=5, cid=cid, clean=False, properties=expiry)
    assert subscriber.subscribe([(topic, 1)]) == [1]
    subscriber.send(DISCONNECT)
    subscriber.read_until_closed()
    publish_qos1(server, opened, topic, LIMIT)  # the queue is full

    back = RawClient(server.mqtt_port)
    opened.append(back)
    assert back.connect(cid, level=5, clean=False, properties=expiry)[:2] == (True, 0)
    window = [back.read_publish() for _ in range(100)]
    publish_qos1(server, opened, topic, 1, prefix="late")  # nothing acknowledged yet
    back.assert_silent(0.3)  # no DISCONNECT: the late one was dropped instead
    received: list[bytes] = []
    while window:
        received.extend(p.payload for p in window)
        back.send(b"".join(puback_packet(p.packet_id or 0) for p in window))
        window = [back.read_publish() for _ in range(min(100, LIMIT - len(received)))]
    assert received == [f"m{i}".encode() for i in range(LIMIT)]
    back.assert_silent(0.3)
    # Caught up, it is an ordinary subscriber again.
    publish_qos1(server, opened, topic, 1, prefix="live")
    assert back.read_publish().payload == b"live0"


def test_a_client_closed_while_it_does_not_read_is_cut_off_after_a_grace_period(
    server: ServerProcess, opened: list[Any]
) -> None:
    """A close waits for the socket buffer to drain, which a client that does not read
    never lets happen: the broker cuts the connection after a while, so the session ends
    (here: its will is published) and the buffer is freed."""
    topic, fill, will_topic = (unique(f"slow/{name}") for name in ("cut", "cut-fill", "cut-will"))
    watcher = paho(server, opened)
    assert watcher.subscribe(will_topic, 1) == [1]
    laggard = raw(server, opened, will=(will_topic, b"gone", 1, False))
    assert laggard.subscribe([(fill, 0), (topic, 1)]) == [0, 1]
    flood(raw(server, opened), fill, 200)  # the broker now holds bytes the client won't take
    publish_qos1(server, opened, topic, LIMIT + 1)  # the last one disconnects the laggard
    closed_at = time.monotonic()
    assert watcher.get(timeout=20).payload == b"gone"
    print(f"\nwill published {time.monotonic() - closed_at:.1f} s after the disconnect")
