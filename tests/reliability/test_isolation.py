"""A malformed packet closes only its own connection, under traffic (issue #8, point 2).

tests/interop/test_malformed.py checks each bad input's exact answer, and that a subscriber
connected before it still gets a message published after it. Here the healthy clients are
busy the whole time: a publisher streams QoS 1 publishes and a subscriber takes them while
every malformed case of that table runs on its own connection, one after another. Each bad
connection gets its own reason code and is closed; the publisher gets every PUBACK, the
subscriber every message in order, and neither of them is disconnected or reconnects.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest

from tests.interop.test_malformed import (
    CASES,
    V5_CONNECT_CASES,
    Case,
    Clients,
    Paho,
    client_id,
    unique,
)
from tests.support.server import ServerProcess

CLOSING_CASES = {name: case for name, case in {**CASES, **V5_CONNECT_CASES}.items() if case.closed}


class Stream(threading.Thread):
    """Publishes numbered QoS 1 messages until told to stop; keeps every PUBACK code."""

    def __init__(self, publisher: Paho, topic: str) -> None:
        super().__init__(daemon=True)
        self.publisher = publisher
        self.topic = topic
        self.stop = threading.Event()
        self.sent: list[bytes] = []
        self.codes: list[int | None] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                payload = f"{len(self.sent)}:{uuid.uuid4().hex[:6]}".encode()
                self.codes.append(self.publisher.publish(self.topic, payload))
                self.sent.append(payload)
        except BaseException as error:
            self.error = error


@pytest.fixture
def clients(server: ServerProcess) -> Iterator[Clients]:
    pool = Clients(server)
    yield pool
    pool.close_all()


def answer_of_bad_connection(clients: Clients, case: Case) -> bytes:
    bad = clients.raw()
    if case.after is not None:
        _, code, _ = bad.connect(client_id("bad"), level=case.after)
        assert code == 0
    bad.send(case.data)
    return bad.read_until_closed()


def test_malformed_packets_leave_busy_clients_alone(
    clients: Clients, server: ServerProcess
) -> None:
    topic = unique("isolation")
    subscriber = clients.connected(v5=True)
    assert subscriber.subscribe(topic) == [1]
    publisher = clients.connected(v5=True)
    stream = Stream(publisher, topic)
    stream.start()
    try:
        for name, case in CLOSING_CASES.items():
            answer = answer_of_bad_connection(clients, case)
            expected = case.expected if isinstance(case.expected, tuple) else (case.expected,)
            assert answer in expected, f"{name}: answered {answer!r}, expected {expected!r}"
    finally:
        stream.stop.set()
        stream.join(timeout=10)
    assert stream.error is None, repr(stream.error)
    print(f"{len(stream.sent)} publishes streamed across {len(CLOSING_CASES)} bad connections")
    assert len(stream.sent) >= len(CLOSING_CASES), "the publisher hardly published"
    assert set(stream.codes) == {0}

    received = [message.payload for message in subscriber.get_all(len(stream.sent))]
    assert received == stream.sent  # every message, in order, once
    subscriber.assert_no_message(0.2)
    for client in (publisher, subscriber):
        assert not client.disconnected.is_set(), f"{client.client_id} was disconnected"
    assert publisher.publish(topic, b"after") == 0
    assert subscriber.get().payload == b"after"
    assert server.health() == 200
