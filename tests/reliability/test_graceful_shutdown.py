"""SIGTERM is a graceful shutdown: MQTT 5 clients are told (DISCONNECT 0x8B Server shutting
down), every acknowledged retained publish and queued message is committed, the process exits
0, and a restart restores retained messages and persistent sessions."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.conftest import create_credentials, iot_data_client
from tests.interop.clients import PahoClient, paho_client, unique
from tests.support.server import ServerProcess

SERVER_SHUTTING_DOWN = 0x8B


def test_sigterm_tells_clients_commits_everything_and_restart_restores(
    start_server: Callable[..., ServerProcess],
) -> None:
    server = start_server()
    prefix = unique("shutdown")
    port = server.mqtt_port

    # A persistent-session subscriber, offline, with QoS 1 messages queued for it.
    queued_topic = f"{prefix}/queued"
    subscriber_id = f"{prefix}-persistent".replace("/", "-")
    subscriber = PahoClient(port, version=5, client_id=subscriber_id)
    subscriber.client.connect(
        "127.0.0.1",
        port,
        clean_start=False,
        properties=_session_expiry(3600),
    )
    subscriber.client.loop_start()
    time.sleep(0.2)
    assert subscriber.subscribe(queued_topic, qos=1) == [1]
    subscriber.disconnect()

    # A connected MQTT 5 client that watches for the shutdown notice, and a publisher that
    # streams QoS 1 retained publishes while SIGTERM arrives.
    watcher = PahoClient(port, version=5).connect()
    acknowledged: dict[str, bytes] = {}
    stop = threading.Event()

    def stream() -> None:
        with paho_client(port) as publisher:
            for index in range(100_000):
                if stop.is_set():
                    return
                topic = f"{prefix}/retained/{index}"
                payload = f"value-{index}".encode()
                if publisher.publish(topic, payload, qos=1, retain=True) != 0:
                    return  # no PUBACK: the server is going away
                acknowledged[topic] = payload

    with paho_client(port) as queuer:
        for index in range(5):
            assert queuer.publish(queued_topic, f"queued-{index}".encode(), qos=1) == 0

    streamer = threading.Thread(target=stream)
    streamer.start()
    time.sleep(0.5)
    assert server.process is not None
    process = server.process
    process.send_signal(signal.SIGTERM)
    assert watcher.wait_disconnected(10), "the MQTT 5 client was not told"
    assert watcher.disconnect_reason is not None
    assert int(watcher.disconnect_reason.value) == SERVER_SHUTTING_DOWN
    assert process.wait(timeout=20) == 0, server.log()[-2000:]
    stop.set()
    streamer.join(10)
    server.process = None
    assert len(acknowledged) > 10, "the stream did not get going before SIGTERM"

    server.start()
    iot = iot_data_client(server, create_credentials(server, "shutdown-reader"))
    lost = [
        topic
        for topic, payload in acknowledged.items()
        if iot.get_retained_message(topic=topic)["payload"] != payload
    ]
    print(f"\n{len(acknowledged)} acknowledged retained publishes before SIGTERM, lost {len(lost)}")
    assert lost == []

    again = PahoClient(port, version=5, client_id=subscriber_id)
    again.client.connect("127.0.0.1", port, clean_start=False, properties=_session_expiry(3600))
    again.client.loop_start()
    try:
        received = again.collect(5)
        assert sorted(message.payload for message in received) == [
            f"queued-{index}".encode() for index in range(5)
        ]
    finally:
        again.disconnect()


def _session_expiry(seconds: int) -> Properties:
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = seconds
    return properties
