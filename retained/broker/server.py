"""The asyncio TCP listener: bytes from sockets into `Connection`, and back."""

from __future__ import annotations

import asyncio
import logging

from retained.broker.broker import Broker, Connection

logger = logging.getLogger("retained.broker")

READ_SIZE = 65_536


class StreamTransport:
    """The `Transport` a Connection writes to, over an asyncio StreamWriter."""

    __slots__ = ("_writer",)

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    def write(self, data: bytes) -> None:
        if not self._writer.is_closing():
            self._writer.write(data)

    def close(self) -> None:
        if not self._writer.is_closing():
            self._writer.close()

    def write_buffer_size(self) -> int:
        return self._writer.transport.get_write_buffer_size()


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
