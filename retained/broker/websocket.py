"""MQTT over WebSocket at ws://HOST:HTTP_PORT/mqtt: an ASGI app feeding the broker's `Connection`.

The same `Connection` as the TCP listener (server.py) does all of MQTT; this module only
moves bytes between WebSocket frames and it, and decides who may open the socket:

* a SigV4 presigned URL (service ``iotdevicegateway``, what AWS IoT's WebSocket clients and
  botocore's ``SigV4QueryAuth`` produce) makes the connection pre-authenticated as the
  access key's owner; CONNECT's username/password are then ignored;
* without one, CONNECT's username/password (access key id / secret) or anonymity decide,
  exactly as over TCP; except that a browser page of another site (an Origin that is not
  the Host) must bring a presigned URL, or any site the local user visits could connect
  with the anonymous rights granted to loopback clients.

Any refusal happens before the handshake completes (daphne answers 403) and is logged with
its reason; the client only learns that it was refused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from retained import access, runtime
from retained.access import Principal
from retained.access_keys import find_active_access_key, note_access_key_used
from retained.api import sigv4
from retained.api.auth import allowed_regions
from retained.broker.broker import Broker, BrokerConfig, Connection, Identity
from retained.broker.reason_codes import ReasonCode

logger = logging.getLogger("retained.broker")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MQTT_PATH = "/mqtt"
SUBPROTOCOL = "mqtt"  # [MQTT-6.0.0-3] offered by the client, [MQTT-6.0.0-4] chosen by us
SIGNING_SERVICE = "iotdevicegateway"  # AWS: the SigV4 service name of MQTT over WebSocket

# WebSocket close codes. autobahn (under daphne) lets an application close only with 1000 or
# 3000-4999, so the RFC 6455 codes 1003 (unsupported data) and 1008 (policy violation) are
# sent in the private range as 4003 and 4008.
CLOSE_NORMAL = 1000
CLOSE_UNSUPPORTED_DATA = 4003
CLOSE_POLICY_VIOLATION = 4008


class HandshakeRefused(Exception):
    """The WebSocket handshake is refused; the message (for the log) says why."""


# --- who is connecting ------------------------------------------------------------------------


def wire_request(scope: Scope) -> sigv4.HttpRequest:
    """The handshake as the client signed it: GET, raw path and query, the headers."""
    raw_path = scope.get("raw_path") or scope["path"].encode()
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", []):
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    return sigv4.HttpRequest(
        method="GET",
        raw_path=raw_path.decode("latin-1"),
        raw_query=scope.get("query_string", b"").decode("latin-1"),
        headers=headers,
        body=b"",
    )


def is_signed(request: sigv4.HttpRequest) -> bool:
    """Does the handshake try SigV4 (any X-Amz-* query parameter, or an AWS4 Authorization
    header)? Then the signature must verify: a broken one never falls back to CONNECT."""
    if request.headers.get("authorization", "").startswith("AWS4-"):
        return True
    names = (segment.partition("=")[0] for segment in request.raw_query.split("&"))
    return any(name.lower().startswith("x-amz-") for name in names)


def authenticate_signed(request: sigv4.HttpRequest, *, now: datetime) -> Identity:
    """The owner of the access key that signed the handshake. Blocking (database): run it in
    a thread. Raises HandshakeRefused with the reason."""
    try:
        info = sigv4.parse_signature(request)
    except sigv4.SignatureError as error:
        raise HandshakeRefused(str(error)) from None
    if info.security_token is not None:
        # AWS: temporary credentials add X-Amz-Security-Token after signing; this server
        # issues no temporary credentials, so a token can only be meant for another service.
        raise HandshakeRefused(
            f"access key {info.access_key_id!r}: X-Amz-Security-Token is not supported "
            "(temporary credentials are not issued here); sign with an access key of this server"
        )
    close_old_connections()
    try:
        key = find_active_access_key(info.access_key_id)
        if key is None:
            raise HandshakeRefused(f"unknown or inactive access key {info.access_key_id!r}")
        try:
            sigv4.verify_signature(
                request,
                info,
                secret_access_key=key.secret_access_key,
                now=now,
                service=SIGNING_SERVICE,
                allowed_regions=allowed_regions(),
                max_skew=timedelta(seconds=settings.RETAINED_LIMITS.sigv4_max_skew_seconds),
            )
        except sigv4.SignatureError as error:
            raise HandshakeRefused(f"access key {info.access_key_id!r}: {error}") from None
        note_access_key_used(key)
        access.refresh_if_stale(check_now=True)  # a policy attached just now applies here
        principal = Principal(kind="user", name=key.user.get_username(), via=key.access_key_id)
        return Identity(principal)
    finally:
        close_old_connections()


def cross_origin(request: sigv4.HttpRequest) -> str | None:
    """The Origin of a browser page served by another site, else None. Such a page could
    otherwise use the connection rights of whoever runs the browser (anonymous clients are
    allowed on loopback), so it must bring a presigned URL."""
    origin = request.headers.get("origin")
    if origin is None:
        return None
    if urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower():
        return None
    return origin


async def authenticate_handshake(scope: Scope) -> Identity | None:
    """Who the connection is (presigned URL), or None to let CONNECT decide.
    Raises HandshakeRefused."""
    if SUBPROTOCOL not in scope.get("subprotocols", []):
        raise HandshakeRefused(
            f"the client did not offer the {SUBPROTOCOL!r} WebSocket subprotocol [MQTT-6.0.0-3]"
        )
    request = wire_request(scope)
    if is_signed(request):
        return await asyncio.to_thread(authenticate_signed, request, now=timezone.now())
    origin = cross_origin(request)
    if origin is not None:
        raise HandshakeRefused(
            f"unsigned connection from a page of another site (Origin {origin[:100]!r}); "
            "browser pages of other sites must use a presigned URL"
        )
    return None


def running_broker() -> Broker:
    broker, loop = runtime.broker_and_loop()
    if broker is None:
        raise HandshakeRefused("no MQTT broker runs in this process")
    if loop is not asyncio.get_running_loop():
        raise HandshakeRefused("the MQTT broker runs on another event loop")
    assert isinstance(broker, Broker)
    return broker


def send_queue_limit(config: BrokerConfig) -> int:
    """What the broker may legitimately owe one client at once: QoS 0 stops at the high-water
    mark, QoS 1 at the in-flight window. More than that waiting means the client does not
    read."""
    limits = config.limits
    return 2 * config.write_buffer_high_water + (limits.inflight_qos1_max + 2) * (
        limits.max_packet_bytes
    )


def twisted_unsent_bytes(send: Send) -> Callable[[], int] | None:
    """daphne hands every `websocket.send` straight to Twisted, which buffers without limit
    and tells the ASGI app nothing: a client that does not read grows that buffer unseen.
    When `send` is daphne's (a partial of its reply handler bound to the connection's
    protocol) over plain TCP, a function counting the bytes that Twisted transport still
    holds unsent; else None (the transport then sees only its own queue)."""
    arguments = getattr(send, "args", None) or (None,)
    transport: Any = getattr(arguments[0], "transport", None)
    if not all(hasattr(transport, name) for name in ("dataBuffer", "offset", "_tempDataLen")):
        return None

    def unsent() -> int:
        return len(transport.dataBuffer) - transport.offset + transport._tempDataLen

    return unsent


def _peer(scope: Scope) -> str:
    client = scope.get("client")
    return f"ws {client[0]}:{client[1]}" if client else "ws"


# --- the transport --------------------------------------------------------------------------


class WebSocketTransport:
    """One accepted WebSocket. The `Transport` its Connection writes to: writes never block;
    they queue, and a sender joins what one turn of the event loop wrote into one binary
    frame (a frame may carry several packets, a packet may span frames: MQTT is a stream)."""

    def __init__(
        self,
        broker: Broker,
        send: Send,
        *,
        peer: str,
        identity: Identity | None,
        unsent: Callable[[], int] | None = None,
    ) -> None:
        """`unsent`: how many bytes the server below holds unsent (twisted_unsent_bytes),
        so the broker's limits see what a client that does not read leaves behind."""
        self.loop = broker.loop
        self._send = send
        self._unsent = unsent
        self._limit = send_queue_limit(broker.config)
        self._chunks: list[bytes] = []
        self._queued = 0  # bytes in _chunks
        self._sending = 0  # bytes handed to the server and not yet confirmed
        self._wakeup = asyncio.Event()
        self._closing = False
        self._close_code = CLOSE_NORMAL
        self._peer_gone = False
        self.connection = Connection(broker, self, peer=peer, identity=identity)

    # --- the Transport the Connection writes to ---------------------------------------------
    def write(self, data: bytes) -> None:
        if self._closing:
            return
        waiting = self.write_buffer_size()
        if waiting + len(data) > self._limit:
            logger.info(
                "%s: closing: %d bytes wait to be sent; the client does not read",
                self.connection.client_id or self.connection.peer,
                waiting,
            )
            self._close_code = CLOSE_POLICY_VIOLATION
            self.close()
            return
        self._chunks.append(data)
        self._queued += len(data)
        self._wakeup.set()

    def close(self) -> None:
        """Send what is queued, then the close frame."""
        self._closing = True
        self._wakeup.set()

    def write_buffer_size(self) -> int:
        below = self._unsent() if self._unsent is not None else 0
        return self._queued + self._sending + below

    # --- the connection's life ------------------------------------------------------------------
    async def run(self, receive: Receive) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                reader = group.create_task(self._read(receive))
                await self._write_until_closed()
                reader.cancel()
        finally:
            self.connection.connection_lost()

    async def _read(self, receive: Receive) -> None:
        connection = self.connection
        last_read = self.loop.time()
        while not self._closing:
            try:
                # Keep-alive: the session computes the deadline, the transport enforces it.
                async with asyncio.timeout_at(last_read + connection.read_timeout()):
                    event = await receive()
            except TimeoutError:
                connection.keep_alive_expired()
                self.close()
                return
            if event["type"] == "websocket.disconnect":
                self._peer_gone = True
                self.close()
                return
            if event["type"] != "websocket.receive":
                continue
            last_read = self.loop.time()
            data = event.get("bytes")
            if data is None:
                logger.info(
                    "%s: closing: a text frame; MQTT over WebSocket is binary only [MQTT-6.0.0-1]",
                    connection.client_id or connection.peer,
                )
                self._close_code = CLOSE_UNSUPPORTED_DATA
                connection.close(ReasonCode.PROTOCOL_ERROR)
                self.close()
                return
            if data:
                await self._feed(data)

    async def _feed(self, data: bytes) -> None:
        connection = self.connection
        pending = connection.feed(data)
        if pending is not None:
            # A CONNECT is being authenticated: the next frame is read only after it, so
            # what arrives meanwhile waits in order in the server's queue.
            try:
                await pending
            except Exception:
                logger.exception("%s: CONNECT handling failed", connection.peer)
                self.close()
                return
        if connection.closed:
            self.close()

    async def _write_until_closed(self) -> None:
        while True:
            if not self._chunks and not self._closing:
                self._wakeup.clear()
                await self._wakeup.wait()
            if self._peer_gone:
                return
            if self._chunks:
                data = b"".join(self._chunks)
                self._chunks.clear()
                self._queued = 0
                self._sending = len(data)
                try:
                    await self._send({"type": "websocket.send", "bytes": data})
                finally:
                    self._sending = 0
            elif self._closing:
                await self._send({"type": "websocket.close", "code": self._close_code})
                return


# --- the ASGI apps ----------------------------------------------------------------------------


async def mqtt_over_websocket(scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI app for /mqtt: handshake (subprotocol, authentication), then MQTT."""
    if scope["type"] != "websocket":
        raise ValueError("mqtt_over_websocket serves WebSocket connections only")
    event = await receive()
    if event["type"] != "websocket.connect":
        return
    peer = _peer(scope)
    try:
        broker = running_broker()
        identity = await authenticate_handshake(scope)
    except HandshakeRefused as refusal:
        logger.info("%s: WebSocket handshake refused: %s", peer, refusal)
        await send({"type": "websocket.close"})  # before accept: daphne answers 403
        return
    if identity is not None:
        logger.debug(
            "%s: presigned URL of access key %s (user %s)",
            peer,
            identity.principal.via,
            identity.principal.name,
        )
    await send({"type": "websocket.accept", "subprotocol": SUBPROTOCOL})
    transport = WebSocketTransport(
        broker, send, peer=peer, identity=identity, unsent=twisted_unsent_bytes(send)
    )
    await transport.run(receive)


class MqttWebSocketRouter:
    """WebSocket connections to /mqtt go to the broker, the others to `inner` (Channels)."""

    def __init__(self, inner: ASGIApp, mqtt: ASGIApp = mqtt_over_websocket) -> None:
        self.inner = inner
        self.mqtt = mqtt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == MQTT_PATH:
            await self.mqtt(scope, receive, send)
        else:
            await self.inner(scope, receive, send)
