"""The asyncio TCP listener: bytes from sockets into `Connection`, and back.

A plain asyncio Protocol per socket (no reader task, no stream objects): an idle connection
costs a few small objects, which matters with thousands of devices.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from pathlib import Path
from typing import Any

from retained.broker.broker import Broker, Connection
from retained.pki import fingerprint_der

logger = logging.getLogger("retained.broker")

# Stop reading a client whose answers pile up unsent; resume once they drained.
_PAUSE_READING_ABOVE = 4 << 20
# How long a closed connection may take to send what is still buffered before it is cut.
_CLOSE_GRACE_SECONDS = 10.0


class MqttProtocol(asyncio.Protocol):
    """One TCP connection. Also the `Transport` its Connection writes to: writes made in one
    turn of the event loop are joined and handed to the socket once, at the end of the turn."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.loop = broker.loop
        self.transport: asyncio.Transport | None = None
        self.connection: Connection | None = None
        self._chunks: list[bytes] = []
        self._pending_bytes = 0
        self._backlog: deque[bytes] | None = None  # created when needed (760 bytes)
        self._busy: asyncio.Task[None] | None = None
        self._last_read = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._reading_paused = False

    # --- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=_PAUSE_READING_ABOVE)
        peer = transport.get_extra_info("peername")
        # On the TLS listener the handshake already verified the chain to our CA (and the
        # validity dates); the broker checks the certificate's status at CONNECT.
        client_certificate = None
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            der = ssl_object.getpeercert(binary_form=True)
            if der is None:  # cannot happen with CERT_REQUIRED; refuse rather than trust
                transport.close()
                return
            client_certificate = fingerprint_der(der)
        self.connection = Connection(
            self.broker, self, peer=str(peer), client_certificate=client_certificate
        )
        self._last_read = self.loop.time()
        self._arm_timer()

    def data_received(self, data: bytes) -> None:
        self._last_read = self.loop.time()
        if self._busy is not None:
            if self._backlog is None:
                self._backlog = deque()
            self._backlog.append(data)  # a CONNECT is being authenticated: keep the order
            return
        self._feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._busy is not None:
            self._busy.cancel()
        if self.connection is not None:
            self.connection.connection_lost()
        self._chunks.clear()

    def pause_writing(self) -> None:
        if self.transport is not None and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and self._reading_paused:
            self._reading_paused = False
            self.transport.resume_reading()

    # --- input ------------------------------------------------------------------------------
    def _feed(self, data: bytes) -> None:
        connection = self.connection
        assert connection is not None
        pending = connection.feed(data)
        if pending is not None:
            self._busy = self.loop.create_task(self._finish(pending))
        if connection.closed:
            self.close()

    async def _finish(self, pending: Any) -> None:
        try:
            await pending
        except Exception:
            logger.exception(
                "%s: CONNECT handling failed", self.connection and self.connection.peer
            )
            self.close()
            return
        finally:
            self._busy = None
        while self._backlog and self._busy is None and self.transport is not None:
            self._feed(self._backlog.popleft())
        if self.connection is not None and self.connection.closed:
            self.close()
        self._arm_timer()

    def _arm_timer(self) -> None:
        connection = self.connection
        if connection is None or connection.closed:
            return
        deadline = self._last_read + connection.read_timeout()
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_at(deadline, self._check_silence)

    def _check_silence(self) -> None:
        """Keep-alive: a client silent for 1.5x its keep-alive (or before CONNECT, the
        connect timeout) is closed. Re-armed lazily instead of on every packet."""
        self._timer = None
        connection = self.connection
        if connection is None or connection.closed:
            return
        if self.loop.time() - self._last_read >= connection.read_timeout():
            connection.keep_alive_expired()
            self.close()
        else:
            self._arm_timer()

    # --- the Transport the Connection writes to ---------------------------------------------
    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if not self._chunks:
            self.loop.call_soon(self._flush)
        self._chunks.append(data)
        self._pending_bytes += len(data)

    def _flush(self) -> None:
        chunks, self._chunks, self._pending_bytes = self._chunks, [], 0
        transport = self.transport
        if chunks and transport is not None and not transport.is_closing():
            transport.write(b"".join(chunks))

    def close(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self._flush()
        transport.close()
        if transport.get_write_buffer_size():
            # close() waits for the buffer to drain: a client that does not read would keep
            # the socket, the buffer and its session forever. Give it a moment, then cut.
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self.loop.call_later(_CLOSE_GRACE_SECONDS, transport.abort)

    def write_buffer_size(self) -> int:
        transport = self.transport
        buffered = transport.get_write_buffer_size() if transport is not None else 0
        return self._pending_bytes + buffered


async def start_tcp_listener(broker: Broker, host: str, port: int) -> asyncio.Server:
    server = await broker.loop.create_server(lambda: MqttProtocol(broker), host, port, backlog=1024)
    for sock in server.sockets:
        logger.info("MQTT listening on %s", sock.getsockname())
    return server


def client_certificate_context(
    *, ca_file: Path, certificate_file: Path, key_file: Path
) -> ssl.SSLContext:
    """TLS 1.2+ server side that requires a client certificate chaining to our CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(str(certificate_file), str(key_file))
    return context


async def start_tls_listener(
    broker: Broker, host: str, port: int, *, ca_file: Path, certificate_file: Path, key_file: Path
) -> asyncio.Server:
    context = client_certificate_context(
        ca_file=ca_file, certificate_file=certificate_file, key_file=key_file
    )
    server = await broker.loop.create_server(
        lambda: MqttProtocol(broker),
        host,
        port,
        backlog=1024,
        ssl=context,
        ssl_handshake_timeout=10.0,
    )
    for sock in server.sockets:
        logger.info("MQTT over TLS listening on %s", sock.getsockname())
    return server
