"""The WebSocket transport's pieces without a server: handshake authentication (signed by
botocore itself), the routing, the refusal when no broker runs here, and the send queue.
The real thing, with real clients, is tests/interop/test_websocket.py."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import MutableMapping
from datetime import timedelta
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from django.contrib.auth.models import User
from django.utils import timezone

from retained import runtime
from retained.access_keys import create_access_key
from retained.broker.broker import BrokerConfig
from retained.broker.websocket import (
    CLOSE_POLICY_VIOLATION,
    HandshakeRefused,
    MqttWebSocketRouter,
    WebSocketTransport,
    authenticate_handshake,
    authenticate_signed,
    cross_origin,
    is_signed,
    mqtt_over_websocket,
    send_queue_limit,
    wire_request,
)
from retained.conf import Limits
from retained.models import AccessKey

HOST = "broker.example:8000"
URL = f"ws://{HOST}/mqtt"


def scope(
    query: str = "",
    headers: dict[str, str] | None = None,
    subprotocols: tuple[str, ...] = ("mqtt",),
    path: str = "/mqtt",
) -> dict[str, Any]:
    """What daphne hands the app for a handshake."""
    all_headers = {"host": HOST, **(headers or {})}
    return {
        "type": "websocket",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": [(name.lower().encode(), value.encode()) for name, value in all_headers.items()],
        "subprotocols": list(subprotocols),
        "client": ["127.0.0.1", 50000],
    }


def presigned_query(key: AccessKey, *, region: str = "us-east-1", expires: int = 300) -> str:
    request = AWSRequest(method="GET", url=URL)
    credentials = BotoCredentials(key.access_key_id, key.secret_access_key)
    SigV4QueryAuth(credentials, "iotdevicegateway", region, expires=expires).add_auth(request)
    return urlsplit(request.url).query


@pytest.fixture
def key(db: None) -> AccessKey:
    return create_access_key(user=User.objects.create_user("device-owner"))


# ---------------------------------------------------------------------------- authentication


def test_presigned_url_from_botocore_names_the_key_owner(key: AccessKey) -> None:
    request = wire_request(scope(presigned_query(key)))
    assert is_signed(request)
    identity = authenticate_signed(request, now=timezone.now())
    assert identity.principal.kind == "user"
    assert identity.principal.name == "device-owner"
    assert identity.principal.via == key.access_key_id


def test_header_signed_handshake_is_accepted_too(key: AccessKey) -> None:
    request = AWSRequest(method="GET", url=URL, headers={"host": HOST})
    credentials = BotoCredentials(key.access_key_id, key.secret_access_key)
    SigV4Auth(credentials, "iotdevicegateway", "us-east-1").add_auth(request)
    headers = {name: str(value) for name, value in request.headers.items()}
    identity = authenticate_signed(wire_request(scope(headers=headers)), now=timezone.now())
    assert identity.principal.name == "device-owner"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"region": "eu-west-1"}, "valid region"),
        ({"expires": 604_801}, "X-Amz-Expires must be between 1 and 604800"),
    ],
    ids=["region-not-allowed", "expires-beyond-7-days"],
)
def test_signed_handshake_refusals(
    key: AccessKey, settings: Any, change: dict[str, Any], reason: str
) -> None:
    settings.RETAINED_ALLOWED_REGIONS = "us-east-1"
    request = wire_request(scope(presigned_query(key, **change)))
    with pytest.raises(HandshakeRefused, match=reason):
        authenticate_signed(request, now=timezone.now())


def test_presigned_url_is_checked_against_the_time_it_is_used(key: AccessKey) -> None:
    request = wire_request(scope(presigned_query(key, expires=60)))
    with pytest.raises(HandshakeRefused, match="Request has expired"):
        authenticate_signed(request, now=timezone.now() + timedelta(seconds=61))


def test_inactive_key_is_refused(key: AccessKey) -> None:
    query = presigned_query(key)
    key.is_active = False
    key.save()  # post_save also clears the lookup cache
    with pytest.raises(HandshakeRefused, match="unknown or inactive access key"):
        authenticate_signed(wire_request(scope(query)), now=timezone.now())


def test_security_token_is_refused_before_any_lookup() -> None:
    request = AWSRequest(method="GET", url=URL)
    credentials = BotoCredentials("AKIRNOTLOOKEDUP00000", "secret", "session-token")
    SigV4QueryAuth(credentials, "iotdevicegateway", "us-east-1").add_auth(request)
    request_seen = wire_request(scope(urlsplit(request.url).query))
    with pytest.raises(HandshakeRefused, match="X-Amz-Security-Token is not supported"):
        authenticate_signed(request_seen, now=timezone.now())


@pytest.mark.parametrize(
    ("query", "headers", "signed"),
    [
        ("", {}, False),
        ("clientId=abc", {}, False),
        ("X-Amz-Signature=00", {}, True),
        ("x-amz-credential=AKIR", {}, True),  # a broken attempt still counts as one
        ("a=1&X-Amz-Date=20260101T000000Z", {}, True),
        ("", {"authorization": "AWS4-HMAC-SHA256 Credential=..."}, True),
        ("", {"authorization": "Basic dXNlcjpwYXNz"}, False),  # e.g. from a proxy in front
    ],
)
def test_is_signed(query: str, headers: dict[str, str], signed: bool) -> None:
    assert is_signed(wire_request(scope(query, headers))) is signed


@pytest.mark.parametrize(
    ("origin", "foreign"),
    [
        (None, False),  # devices and command line clients send none
        (f"http://{HOST}", False),
        (f"https://{HOST.upper()}", False),
        ("http://broker.example:9000", True),
        ("https://evil.example", True),
        ("null", True),  # a sandboxed page
    ],
)
def test_cross_origin(origin: str | None, foreign: bool) -> None:
    headers = {} if origin is None else {"origin": origin}
    assert (cross_origin(wire_request(scope(headers=headers))) is not None) is foreign


def test_handshake_without_the_mqtt_subprotocol_is_refused() -> None:
    with pytest.raises(HandshakeRefused, match="subprotocol"):
        asyncio.run(authenticate_handshake(scope(subprotocols=("mqttv3.1",))))


def test_unsigned_handshake_leaves_it_to_connect() -> None:
    assert asyncio.run(authenticate_handshake(scope())) is None


# ---------------------------------------------------------------------------- the ASGI apps


def run_app(app: Any, handshake: dict[str, Any]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(handshake, receive, send))
    return sent


def test_no_broker_in_this_process_refuses_the_handshake(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(runtime, "broker_and_loop", lambda: (None, None))
    with caplog.at_level(logging.INFO, logger="retained.broker"):
        sent = run_app(mqtt_over_websocket, scope())
    assert sent == [{"type": "websocket.close"}]  # before accept: daphne answers 403
    assert "no MQTT broker runs in this process" in caplog.text


@pytest.mark.parametrize(
    ("path", "kind", "to"),
    [
        ("/mqtt", "websocket", "mqtt"),
        ("/mqtt/", "websocket", "inner"),
        ("/ws/retained/", "websocket", "inner"),
        ("/mqtt", "http", "inner"),
    ],
)
def test_router_sends_only_the_mqtt_path_to_the_broker(path: str, kind: str, to: str) -> None:
    called: list[str] = []

    def app(name: str) -> Any:
        async def handle(scope: Any, receive: Any, send: Any) -> None:
            called.append(name)

        return handle

    router = MqttWebSocketRouter(app("inner"), mqtt=app("mqtt"))
    unused: Any = None
    asyncio.run(router({**scope(path=path), "type": kind}, unused, unused))
    assert called == [to]


# ---------------------------------------------------------------------------- the send queue


def fake_broker(limits: Limits) -> Any:
    return SimpleNamespace(loop=asyncio.get_running_loop(), config=BrokerConfig(limits=limits))


def test_writes_of_one_turn_leave_in_one_frame_and_close_follows() -> None:
    sent: list[dict[str, Any]] = []

    async def scenario() -> None:
        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(dict(message))

        async def receive() -> dict[str, Any]:
            await asyncio.Event().wait()  # the client says nothing
            raise AssertionError

        transport = WebSocketTransport(fake_broker(Limits()), send, peer="test", identity=None)
        transport.write(b"\x20\x02\x00\x00")
        transport.write(b"\xd0\x00")
        assert transport.write_buffer_size() == 6
        transport.close()
        transport.write(b"after close")  # dropped
        await transport.run(receive)
        assert transport.connection.closed

    asyncio.run(scenario())
    assert sent == [
        {"type": "websocket.send", "bytes": b"\x20\x02\x00\x00\xd0\x00"},
        {"type": "websocket.close", "code": 1000},
    ]


def test_a_client_that_does_not_read_is_closed(caplog: pytest.LogCaptureFixture) -> None:
    limits = Limits(max_packet_bytes=1000, inflight_qos1_max=1)
    sent: list[dict[str, Any]] = []

    async def scenario() -> None:
        broker = fake_broker(limits)
        limit = send_queue_limit(broker.config)

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(dict(message))

        async def receive() -> dict[str, Any]:
            await asyncio.Event().wait()
            raise AssertionError

        transport = WebSocketTransport(broker, send, peer="test", identity=None)
        transport.write(b"x" * (limit - 10))
        transport.write(b"y" * 11)  # over the limit: the connection is given up
        await transport.run(receive)

    with caplog.at_level(logging.INFO, logger="retained.broker"):
        asyncio.run(scenario())
    assert [message["type"] for message in sent] == ["websocket.send", "websocket.close"]
    assert sent[-1]["code"] == CLOSE_POLICY_VIOLATION
    assert "the client does not read" in caplog.text
