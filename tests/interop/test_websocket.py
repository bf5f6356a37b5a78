"""MQTT over WebSocket (ws://HOST:HTTP_PORT/mqtt) against a real `manage.py serve`.

paho-mqtt (3.1.1 and 5, transport="websockets") with access-key username/password and with
presigned URLs that botocore's own SigV4QueryAuth signs; a minimal hand-written WebSocket
client for what paho would never send (no subprotocol, text frames, one byte per frame,
malformed MQTT). Every refusal is checked in the server's log, and the server must stay
healthy afterwards: /healthz answers 200 and a TCP client still connects and publishes.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import botocore.auth
import pytest
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from tests.conftest import Credentials, create_credentials, ensure_policy, iot_data_client
from tests.interop.clients import PahoClient, unique
from tests.interop.test_malformed import (
    PINGREQ,
    WAIT,
    ConnectionClosed,
    RawClient,
    connect_packet,
    subscribe_packet,
)
from tests.support.server import ServerProcess

HOST = "127.0.0.1"
PATH = "/mqtt"
REGION = "us-east-1"
ARN = f"arn:aws:iot:{REGION}:123456789012:"
NOT_AUTHORIZED = 0x87

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
CLOSE_UNSUPPORTED_DATA = 4003  # 1003 in autobahn's allowed (private) range


# ---------------------------------------------------------------------------- clients


class WebSocketRawClient(RawClient):
    """RawClient's MQTT helpers over a hand-written RFC 6455 client: MQTT bytes go out in
    binary frames (or any frame the test asks for); received binary frames feed the MQTT
    buffer; a close frame ends the stream (its code is kept)."""

    def __init__(
        self,
        port: int,
        *,
        path: str = PATH,
        subprotocol: str | None = "mqtt",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=WAIT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = bytearray()
        self.eof = False
        self.level = 4
        self.close_code: int | None = None
        self._wire = bytearray()
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {HOST}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if subprotocol is not None:
            lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        deadline = time.monotonic() + WAIT
        while b"\r\n\r\n" not in self._wire:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            self._wire += chunk
        head, _, rest = bytes(self._wire).partition(b"\r\n\r\n")
        self._wire = bytearray(rest)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split()[1])
        self.response_headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in header_lines if line)
        }

    def send(self, data: bytes) -> None:
        self.send_frame(OP_BINARY, data)

    def send_frame(self, opcode: int, payload: bytes) -> None:
        size = len(payload)
        if size < 126:
            header = bytes((0x80 | opcode, 0x80 | size))
        elif size < 1 << 16:
            header = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
        else:
            header = bytes((0x80 | opcode, 0x80 | 127)) + size.to_bytes(8, "big")
        mask = os.urandom(4)
        masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def _frame(self) -> tuple[int, bytes] | None:
        wire = self._wire
        if len(wire) < 2:
            return None
        size, position = wire[1] & 0x7F, 2
        if size == 126:
            if len(wire) < 4:
                return None
            size, position = int.from_bytes(wire[2:4], "big"), 4
        elif size == 127:
            if len(wire) < 10:
                return None
            size, position = int.from_bytes(wire[2:10], "big"), 10
        assert not wire[1] & 0x80, "a server must not mask its frames"
        if len(wire) < position + size:
            return None
        opcode, payload = wire[0] & 0x0F, bytes(wire[position : position + size])
        del wire[: position + size]
        return opcode, payload

    def _fill(self, deadline: float) -> None:
        while True:
            frame = self._frame()
            if frame is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("nothing more from the server")
                self.sock.settimeout(remaining)
                try:
                    chunk = self.sock.recv(65_536)
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    self.eof = True
                    raise ConnectionClosed(bytes(self.buffer))
                self._wire += chunk
                continue
            opcode, payload = frame
            if opcode in (OP_BINARY, OP_CONTINUATION):
                self.buffer += payload
                return
            if opcode == OP_CLOSE:
                self.close_code = int.from_bytes(payload[:2], "big") if payload else None
                self.eof = True
                raise ConnectionClosed(bytes(self.buffer))
            if opcode == OP_PING:
                self.send_frame(OP_PONG, payload)
            # text frames never come from this server; pongs need no answer


@contextlib.contextmanager
def raw_ws(server: ServerProcess, **kwargs: Any) -> Iterator[WebSocketRawClient]:
    client = WebSocketRawClient(server.http_port, **kwargs)
    try:
        yield client
    finally:
        client.close()


def ws_paho(
    server: ServerProcess,
    credentials: Credentials | None,
    *,
    version: int = 5,
    path: str = PATH,
) -> PahoClient:
    """A paho client (not yet connected) for the WebSocket endpoint."""
    client = PahoClient(server.http_port, version=version)
    client.client.transport = "websockets"
    client.client.ws_set_options(path=path)
    if credentials is not None:
        client.client.username_pw_set(credentials.access_key_id, credentials.secret_access_key)
    return client


def tcp_paho(server: ServerProcess, credentials: Credentials, *, version: int = 5) -> PahoClient:
    client = PahoClient(server.mqtt_port, version=version)
    client.client.username_pw_set(credentials.access_key_id, credentials.secret_access_key)
    return client


@contextlib.contextmanager
def connected(client: PahoClient) -> Iterator[PahoClient]:
    try:
        client.connect()
        yield client
    finally:
        client.disconnect()


# ---------------------------------------------------------------------------- presigned URLs


def presigned_path(
    server: ServerProcess,
    credentials: Credentials,
    *,
    service: str = "iotdevicegateway",
    region: str = REGION,
    expires: int = 300,
    token: str | None = None,
) -> str:
    """/mqtt?X-Amz-...: what botocore's SigV4QueryAuth makes of the ws:// URL."""
    request = AWSRequest(method="GET", url=f"ws://{HOST}:{server.http_port}{PATH}")
    signer = SigV4QueryAuth(
        BotoCredentials(credentials.access_key_id, credentials.secret_access_key, token),
        service,
        region,
        expires=expires,
    )
    signer.add_auth(request)
    url = urlsplit(request.url)
    return f"{url.path}?{url.query}"


def signed_at(monkeypatch: pytest.MonkeyPatch, offset: dt.timedelta) -> None:
    """Make botocore sign as if its clock were `offset` away from now."""
    when = dt.datetime.now(dt.UTC).replace(tzinfo=None) + offset
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *args, **kwargs: when)


def tampered(path: str) -> str:
    url = urlsplit(path)
    query = dict(parse_qsl(url.query))
    signature = query["X-Amz-Signature"]
    query["X-Amz-Signature"] = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    return f"{url.path}?{urlencode(query)}"


# ---------------------------------------------------------------------------- checks


def wait_for_log(server: ServerProcess, fragment: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while fragment not in server.log():
        if time.monotonic() > deadline:
            raise AssertionError(f"{fragment!r} not in the server log:\n{server.log()[-3000:]}")
        time.sleep(0.05)


def assert_healthy(server: ServerProcess, credentials: Credentials) -> None:
    """/healthz 200, and a TCP client connects and gets its QoS 1 publish acknowledged."""
    assert server.health() == 200
    with connected(tcp_paho(server, credentials)) as client:
        assert client.publish(unique("ws-health"), b"ok", qos=1) == 0


def limited_user(server: ServerProcess, base: str) -> Credentials:
    """A user who may connect, and publish/subscribe/receive under `base` only."""
    name = f"ws-{uuid.uuid4().hex[:8]}"
    policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{ARN}client/*"},
                {
                    "Effect": "Allow",
                    "Action": ["iot:Publish", "iot:RetainPublish", "iot:Receive"],
                    "Resource": f"{ARN}topic/{base}/*",
                },
                {
                    "Effect": "Allow",
                    "Action": "iot:Subscribe",
                    "Resource": f"{ARN}topicfilter/{base}/*",
                },
            ],
        }
    )
    ensure_policy(server, name, policy)
    return create_credentials(server, name, policy=name)


# ---------------------------------------------------------------------------- MQTT over ws


@pytest.mark.parametrize("version", [4, 5], ids=["mqtt311", "mqtt5"])
def test_retained_publish_over_websocket_reaches_a_later_websocket_subscriber(
    server: ServerProcess, credentials: Credentials, version: int
) -> None:
    topic = unique("ws")
    with connected(ws_paho(server, credentials, version=version)) as publisher:
        assert publisher.publish(topic, b"hello over ws", qos=1, retain=True) == 0
    with connected(ws_paho(server, credentials, version=version)) as subscriber:
        assert subscriber.subscribe(topic, qos=1) == [1]
        got = subscriber.collect(1)
    assert [message.key() for message in got] == [(topic, b"hello over ws", 1, True)]


@pytest.mark.parametrize("version", [4, 5], ids=["mqtt311", "mqtt5"])
def test_websocket_and_tcp_clients_share_one_broker(
    server: ServerProcess, credentials: Credentials, version: int
) -> None:
    to_ws, to_tcp = unique("ws-in"), unique("tcp-in")
    with (
        connected(ws_paho(server, credentials, version=version)) as ws,
        connected(tcp_paho(server, credentials, version=version)) as tcp,
    ):
        assert ws.subscribe(to_ws, qos=1) == [1]
        assert tcp.subscribe(to_tcp, qos=1) == [1]
        assert tcp.publish(to_ws, b"from tcp", qos=1) == 0
        assert ws.publish(to_tcp, b"from ws", qos=1, retain=True) == 0
        from_tcp, from_ws = ws.collect(1), tcp.collect(1)
    assert [m.key() for m in from_tcp] == [(to_ws, b"from tcp", 1, False)]
    # AWS: a live copy never carries RETAIN, even of a retained publish.
    assert [m.key() for m in from_ws] == [(to_tcp, b"from ws", 1, False)]
    with connected(tcp_paho(server, credentials, version=version)) as later:
        assert later.subscribe(to_tcp, qos=1) == [1]
        assert [m.key() for m in later.collect(1)] == [(to_tcp, b"from ws", 1, True)]


def test_packets_span_frames_and_frames_carry_several_packets(
    server: ServerProcess, credentials: Credentials
) -> None:
    topic = unique("ws-frames")
    with raw_ws(server) as client:
        assert client.status == 101
        assert client.response_headers["sec-websocket-protocol"] == "mqtt"  # [MQTT-6.0.0-4]
        connect = connect_packet(
            f"frames-{uuid.uuid4().hex[:8]}",
            username=credentials.access_key_id,
            password=credentials.secret_access_key,
        )
        for byte in connect:  # one byte per frame
            client.send(bytes((byte,)))
        first, body = client.read_packet()
        assert (first, body) == (0x20, b"\x00\x00")
        # SUBSCRIBE and two PINGREQs in one frame: SUBACK, PINGRESP, PINGRESP.
        client.send(subscribe_packet([(topic, 1)], packet_id=7) + PINGREQ + PINGREQ)
        assert client.read_packet() == (0x90, b"\x00\x07\x01")
        assert client.read_packet() == (0xD0, b"")
        assert client.read_packet() == (0xD0, b"")


# ---------------------------------------------------------------------------- presigned URLs


def test_presigned_url_connects_as_the_key_owner_without_username(
    server: ServerProcess, credentials: Credentials
) -> None:
    base = unique("ws-owner")
    owner = limited_user(server, base)
    path = presigned_path(server, owner)
    assert "X-Amz-Signature=" in path
    assert "%2Fiotdevicegateway%2F" in path
    allowed, forbidden = f"{base}/allowed", unique("ws-forbidden")
    with connected(ws_paho(server, None, path=path)) as client:
        assert client.publish(allowed, b"signed", qos=1, retain=True) == 0
        assert client.publish(forbidden, b"nope", qos=1) == NOT_AUTHORIZED
    stored = iot_data_client(server, credentials).get_retained_message(topic=allowed)
    assert stored["payload"] == b"signed"
    # With a presigned URL, CONNECT's username/password (here: an allow-all key) are ignored.
    with connected(ws_paho(server, credentials, path=path)) as client:
        assert client.publish(forbidden, b"nope", qos=1) == NOT_AUTHORIZED


@pytest.mark.parametrize("version", [4, 5], ids=["mqtt311", "mqtt5"])
def test_presigned_url_of_a_user_without_iot_connect_is_refused_at_connack(
    server: ServerProcess, credentials: Credentials, version: int
) -> None:
    nobody = create_credentials(server, f"ws-nopolicy-{uuid.uuid4().hex[:6]}", policy=None)
    client = ws_paho(server, None, version=version, path=presigned_path(server, nobody))
    with pytest.raises(ConnectionError, match="CONNACK refused: Not authorized"):
        client.connect()
    client.disconnect()
    assert_healthy(server, credentials)


# ---------------------------------------------------------------------------- refusals


@dataclass(frozen=True)
class Refusal:
    name: str
    log: str  # what the server log must say about it


REFUSALS = [
    Refusal("missing-subprotocol", "did not offer the 'mqtt' WebSocket subprotocol"),
    Refusal("other-subprotocol", "did not offer the 'mqtt' WebSocket subprotocol"),
    Refusal("tampered-signature", "signature we calculated does not match"),
    Refusal("expired", "Request has expired"),
    Refusal("date-outside-skew", "Signature not yet current"),
    Refusal("expires-beyond-7-days", "X-Amz-Expires must be between 1 and 604800"),
    Refusal("wrong-service", "Credential should be scoped to correct service"),
    Refusal("unknown-key", "unknown or inactive access key 'AKIRUNKNOWN"),
    Refusal("security-token", "X-Amz-Security-Token is not supported"),
    Refusal("unsigned-cross-origin", "browser pages of other sites must use a presigned URL"),
]


def refused_handshake(
    refusal: Refusal,
    server: ServerProcess,
    credentials: Credentials,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    """The raw_ws() arguments of each refused handshake."""
    name = refusal.name
    if name == "missing-subprotocol":
        return {"subprotocol": None}
    if name == "other-subprotocol":
        return {"subprotocol": "mqttv3.1"}
    if name == "tampered-signature":
        return {"path": tampered(presigned_path(server, credentials))}
    if name == "expired":
        signed_at(monkeypatch, -dt.timedelta(minutes=10))
        return {"path": presigned_path(server, credentials, expires=60)}
    if name == "date-outside-skew":
        signed_at(monkeypatch, dt.timedelta(hours=1))
        return {"path": presigned_path(server, credentials)}
    if name == "expires-beyond-7-days":
        return {"path": presigned_path(server, credentials, expires=604_801)}
    if name == "wrong-service":
        return {"path": presigned_path(server, credentials, service="iotdata")}
    if name == "unknown-key":
        unknown = Credentials("AKIRUNKNOWN" + uuid.uuid4().hex[:9].upper(), "x" * 40)
        return {"path": presigned_path(server, unknown)}
    if name == "security-token":
        return {"path": presigned_path(server, credentials, token="FwoGZXIvYXdzEJr//token")}
    if name == "unsigned-cross-origin":
        return {"headers": {"Origin": "https://evil.example"}}
    raise AssertionError(name)


@pytest.mark.parametrize("refusal", REFUSALS, ids=[r.name for r in REFUSALS])
def test_refused_handshake_is_logged_and_harms_nothing(
    refusal: Refusal,
    server: ServerProcess,
    credentials: Credentials,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    arguments = refused_handshake(refusal, server, credentials, monkeypatch)
    with raw_ws(server, **arguments) as client:
        assert client.status == 403
    wait_for_log(server, refusal.log)
    assert_healthy(server, credentials)


def test_paho_sees_a_refused_presigned_url_as_a_failed_handshake(
    server: ServerProcess, credentials: Credentials
) -> None:
    client = ws_paho(server, None, path=tampered(presigned_path(server, credentials)))
    with pytest.raises(OSError, match="WebSocket handshake error"):
        client.connect()
    client.disconnect()
    assert_healthy(server, credentials)


def test_presigned_url_from_another_origin_is_accepted(
    server: ServerProcess, credentials: Credentials
) -> None:
    path = presigned_path(server, credentials)
    with raw_ws(server, path=path, headers={"Origin": "https://app.example"}) as client:
        assert client.status == 101
        connect = connect_packet(f"origin-{uuid.uuid4().hex[:8]}")  # no username: presigned
        client.send(connect)
        assert client.read_packet() == (0x20, b"\x00\x00")


# ---------------------------------------------------------------------------- bad input


def test_text_frame_closes_the_connection_and_nobody_else_notices(
    server: ServerProcess, credentials: Credentials
) -> None:
    topic = unique("ws-text")
    with (
        connected(ws_paho(server, credentials)) as bystander,
        raw_ws(server) as client,
    ):
        assert bystander.subscribe(topic, qos=1) == [1]
        _, reason, _ = client.connect(
            f"text-{uuid.uuid4().hex[:8]}",
            level=5,
            username=credentials.access_key_id,
            password=credentials.secret_access_key,
        )
        assert reason == 0
        client.send_frame(OP_TEXT, b"\x30\x05\x00\x01ahi")  # a PUBLISH, but in a text frame
        # [MQTT-6.0.0-1]: closed; MQTT 5 is told why first (DISCONNECT, protocol error).
        assert client.read_until_closed() == b"\xe0\x01\x82"
        assert client.close_code == CLOSE_UNSUPPORTED_DATA
        assert bystander.publish(topic, b"still here", qos=1) == 0
        assert [m.key() for m in bystander.collect(1)] == [(topic, b"still here", 1, False)]
    wait_for_log(server, "a text frame; MQTT over WebSocket is binary only")
    assert_healthy(server, credentials)


MALFORMED = {
    "garbage-before-connect": b"\xff\xff\xff\xff\xff\xff",
    "reserved-packet-type-after-connect": b"\x00\x00",
    "second-connect": connect_packet("again"),
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_mqtt_over_websocket_closes_only_that_connection(
    server: ServerProcess, credentials: Credentials, data: bytes
) -> None:
    topic = unique("ws-malformed")
    with (
        connected(ws_paho(server, credentials)) as bystander,
        raw_ws(server) as client,
    ):
        assert bystander.subscribe(topic, qos=1) == [1]
        if data[0] != 0xFF:
            _, reason, _ = client.connect(
                f"bad-{uuid.uuid4().hex[:8]}",
                username=credentials.access_key_id,
                password=credentials.secret_access_key,
            )
            assert reason == 0
        client.send(data)
        assert client.read_until_closed() == b""  # MQTT 3.1.1: closed without a word
        assert bystander.publish(topic, b"unaffected", qos=1) == 0
        assert [m.key() for m in bystander.collect(1)] == [(topic, b"unaffected", 1, False)]
    assert_healthy(server, credentials)
