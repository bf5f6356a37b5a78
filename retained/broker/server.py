"""The asyncio TCP listener: bytes from sockets into `Connection`, and back."""

from __future__ import annotations

import asyncio
import logging

from retained.broker.broker import Broker, Connection

logger = logging.getLogger("retained.broker")

READ_SIZE = 65_536


class StreamTransport:
    """The `Transport` a Connection writes to, over an asyncio StreamWriter.

    Writes made during one turn of the event loop are joined and handed to the socket once,
    at the end of the turn: a burst of small packets (PUBACKs, fan-out) costs one send().
    """

    __slots__ = ("_chunks", "_loop", "_pending", "_writer")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._loop = asyncio.get_running_loop()
        self._chunks: list[bytes] = []
        self._pending = 0

    def write(self, data: bytes) -> None:
        if self._writer.is_closing():
            return
        if not self._chunks:
            self._loop.call_soon(self._flush)
        self._chunks.append(data)
        self._pending += len(data)

    def _flush(self) -> None:
        chunks, self._chunks, self._pending = self._chunks, [], 0
        if chunks and not self._writer.is_closing():
            self._writer.write(b"".join(chunks))

    def close(self) -> None:
        self._flush()
        if not self._writer.is_closing():
            self._writer.close()

    def write_buffer_size(self) -> int:
        return self._pending + self._writer.transport.get_write_buffer_size()


async def serve_connection(
    broker: Broker, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    peer = writer.get_extra_info("peername")
    connection = Connection(broker, StreamTransport(writer), peer=str(peer))
    try:
        while not connection.closed:
            try:
                async with asyncio.timeout(connection.read_timeout()):
                    data = await reader.read(READ_SIZE)
            except TimeoutError:
                connection.keep_alive_expired()
                break
            if not data:
                break
            await connection.data_received(data)
            if writer.transport.get_write_buffer_size() > broker.config.write_buffer_high_water * 4:
                # Our own answers pile up: let the socket drain before reading more.
                await writer.drain()
    except (ConnectionError, OSError) as error:
        logger.debug("%s: connection error: %s", peer, error)
    except Exception:
        logger.exception("%s: connection failed", peer)
    finally:
        connection.connection_lost()
        if not writer.is_closing():
            writer.close()


async def start_tcp_listener(broker: Broker, host: str, port: int) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_connection(broker, reader, writer)

    server = await asyncio.start_server(handle, host, port, limit=READ_SIZE, backlog=1024)
    logger.info("MQTT listening on %s:%d", host, port)
    return server
