"""Fixtures of the hostile-input table (issue #8 point 3).

Every row of the table sends one hostile or malformed input and asserts three things:

1. the clear error (a reason code, an HTTP status and error type, a form error);
2. that nothing was stored (each row writes under a topic of its own, its *marker*);
3. that the server is healthy afterwards (`Referee.assert_healthy`).

The MQTT and API rows run against one real `manage.py serve` of their own
(`hostile_server`): rate limits off, so that the health probes are never throttled; a keep-alive
minimum of 1 s, so that keep-alive silence takes 1.5 s instead of 45 s; and SigV4 credential
scopes restricted to us-east-1, so that a wrong region is refused.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import Credentials, create_credentials, iot_data_client
from tests.interop.test_malformed import DISCONNECT, Paho, RawClient, client_id, publish_packet
from tests.support.server import ServerProcess

REGION = "us-east-1"
# Rate limits off (an engineer is adding them): the probes publish and read every row.
NO_RATE_LIMITS = {
    "RETAINED_RETAINED_PUBLISHES_PER_SECOND": "0",
    "RETAINED_RETAINED_PUBLISHES_PER_TOPIC_PER_SECOND": "0",
    "RETAINED_GET_RETAINED_PER_SECOND": "0",
    "RETAINED_LIST_RETAINED_PER_SECOND": "0",
}
PROBE_PREFIX = "hostile-probe"


def new_marker() -> str:
    """A topic no other row uses: what a row's hostile input would have stored."""
    return f"hostile/{uuid.uuid4().hex[:16]}"


class Referee:
    """The checks every real-server row ends with.

    A watcher connected once for the whole table (an innocent bystander that must survive
    every row) sees each probe; each probe is made by a fresh, well-behaved MQTT 5 client
    that connects, publishes retained at QoS 1 and reads the message back over the HTTP
    API; /healthz must answer 200.
    """

    def __init__(self, server: ServerProcess, iot: Any, watcher: Paho) -> None:
        self.server = server
        self.iot = iot
        self.watcher = watcher

    def stored_topics(self) -> list[str]:
        topics: list[str] = []
        for page in self.iot.get_paginator("list_retained_messages").paginate(
            PaginationConfig={"PageSize": 200}
        ):
            topics += [item["topic"] for item in page["retainedTopics"]]
        return topics

    def assert_nothing_stored(self, marker: str, *also: str) -> None:
        """No retained message at `marker` (nor at `also`), and none listed whose topic
        holds the marker's unique part (wildcard, padded or `$aws/` variants of it)."""
        for topic in (marker, *also):
            with pytest.raises(self.iot.exceptions.ResourceNotFoundException):
                self.iot.get_retained_message(topic=topic)
        unique_part = marker.rsplit("/", 1)[-1]
        leaked = [topic for topic in self.stored_topics() if unique_part in topic]
        assert leaked == [], f"stored despite the refusal: {leaked!r}"

    def assert_healthy(self) -> None:
        assert not self.watcher.disconnected.is_set(), "the broker dropped an innocent client"
        topic = f"{PROBE_PREFIX}/{uuid.uuid4().hex[:12]}"
        payload = uuid.uuid4().hex.encode()
        probe = RawClient(self.server.mqtt_port)
        try:
            _, code, _ = probe.connect(client_id("probe"), level=5)
            assert code == 0, f"a well-behaved client was refused: CONNACK 0x{code:02X}"
            probe.send(publish_packet(topic, payload, qos=1, retain=True, packet_id=1, v5=True))
            assert probe.read_packet() == (0x40, b"\x00\x01"), "no PUBACK Success"
            assert self.iot.get_retained_message(topic=topic)["payload"] == payload
            self._watcher_gets(topic, payload)
            probe.send(publish_packet(topic, b"", qos=1, retain=True, packet_id=2, v5=True))
            assert probe.read_packet() == (0x40, b"\x00\x02")
            probe.send(DISCONNECT)
            assert probe.read_until_closed() == b""
        finally:
            probe.close()
        assert self.server.health() == 200

    def _watcher_gets(self, topic: str, payload: bytes) -> None:
        while True:  # earlier probes' deletions may still be queued
            message = self.watcher.get()
            if (message.topic, message.payload) == (topic, payload):
                return


@pytest.fixture(scope="session")
def hostile_server(start_server: Callable[..., ServerProcess]) -> ServerProcess:
    return start_server(
        **NO_RATE_LIMITS,
        RETAINED_KEEP_ALIVE_MIN_SECONDS="1",
        RETAINED_ALLOWED_REGIONS=REGION,
    )


@pytest.fixture(scope="session")
def hostile_credentials(hostile_server: ServerProcess) -> Credentials:
    return create_credentials(hostile_server, "hostile")


@pytest.fixture(scope="session")
def hostile_iot(hostile_server: ServerProcess, hostile_credentials: Credentials) -> Any:
    return iot_data_client(hostile_server, hostile_credentials, region_name=REGION)


@pytest.fixture(scope="session")
def referee(hostile_server: ServerProcess, hostile_iot: Any) -> Iterator[Referee]:
    watcher = Paho(hostile_server.mqtt_port, client_id("watcher"), v5=True, keep_alive=60)
    watcher.connect()
    assert watcher.subscribe(f"{PROBE_PREFIX}/+", 0) == [0]
    yield Referee(hostile_server, hostile_iot, watcher)
    with contextlib.suppress(Exception):  # cleanup must not hide a test's own failure
        watcher.close()
