"""A small, fast MQTT 3.1.1 load generator for bench/broker.py.

Raw sockets, packets encoded once up front, big `send` batches, and a stream scanner that only
walks fixed headers to count PUBLISH / PUBACK packets. Each `*_worker` function runs in its own
process (see `run_workers`); they report counts, timestamps (time.monotonic(), which is
system-wide on Linux, so comparable across processes) and their own CPU time.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import resource
import selectors
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PROTOCOL_LEVEL_311 = 4
DISCONNECT = b"\xe0\x00"
RECV_SIZE = 1 << 18

# --- encoding ---------------------------------------------------------------------------------


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def mqtt_string(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else value
    return len(raw).to_bytes(2, "big") + raw


def _packet(first_byte: int, body: bytes) -> bytes:
    return bytes([first_byte]) + varint(len(body)) + body


def connect_packet(client_id: str, *, keep_alive: int = 600, clean: bool = True) -> bytes:
    flags = 0x02 if clean else 0x00
    body = (
        mqtt_string("MQTT")
        + bytes([PROTOCOL_LEVEL_311, flags])
        + keep_alive.to_bytes(2, "big")
        + mqtt_string(client_id)
    )
    return _packet(0x10, body)


def subscribe_packet(packet_id: int, filters: list[tuple[str, int]]) -> bytes:
    body = packet_id.to_bytes(2, "big")
    for topic_filter, qos in filters:
        body += mqtt_string(topic_filter) + bytes([qos])
    return _packet(0x82, body)


def publish_packet(
    topic: str,
    payload: bytes,
    *,
    qos: int = 0,
    retain: bool = False,
    packet_id: int | None = None,
) -> bytes:
    first = 0x30 | (qos << 1) | (1 if retain else 0)
    body = mqtt_string(topic)
    if qos:
        assert packet_id is not None
        body += packet_id.to_bytes(2, "big")
    return _packet(first, body + payload)


def puback_packet(packet_id: int) -> bytes:
    return b"\x40\x02" + packet_id.to_bytes(2, "big")


def seed_topic(prefix: str, n: int) -> str:
    """The topic scheme of `manage.py seed_retained` (PREFIX/<n/1000>/<n>)."""
    return f"{prefix}/{n // 1000:04d}/{n:07d}"


def seed_payload(n: int) -> bytes:
    """The payload of `manage.py seed_retained --payload-size 64`."""
    return b'{"n":%d}' % n + b"x" * 40


# --- scanning ---------------------------------------------------------------------------------


class Scanner:
    """Counts packets in an MQTT byte stream by walking fixed headers only.

    PUBLISH packets with QoS > 0 have their packet ids collected in `to_ack` so the caller can
    answer with PUBACKs. Everything else is counted by packet type in `other`.
    """

    __slots__ = ("_tail", "other", "puback", "publish", "to_ack")

    def __init__(self) -> None:
        self._tail = b""
        self.publish = 0
        self.puback = 0
        self.other: dict[int, int] = {}
        self.to_ack: list[bytes] = []

    def feed(self, data: bytes) -> None:
        buf = self._tail + data if self._tail else data
        size = len(buf)
        pos = 0
        publish = 0
        puback = 0
        while pos + 2 <= size:
            length = buf[pos + 1]
            start = pos + 2
            if length & 0x80:
                length &= 0x7F
                shift = 7
                complete = False
                while start < size:
                    byte = buf[start]
                    start += 1
                    length |= (byte & 0x7F) << shift
                    if not byte & 0x80:
                        complete = True
                        break
                    shift += 7
                    if shift > 21:
                        raise ValueError("malformed remaining length")
                if not complete:
                    break
            end = start + length
            if end > size:
                break
            kind = buf[pos] >> 4
            if kind == 3:
                publish += 1
                if buf[pos] & 0x06:
                    at = start + 2 + int.from_bytes(buf[start : start + 2], "big")
                    self.to_ack.append(buf[at : at + 2])
            elif kind == 4:
                puback += 1
            else:
                self.other[kind] = self.other.get(kind, 0) + 1
            pos = end
        self._tail = buf[pos:] if pos < size else b""
        self.publish += publish
        self.puback += puback

    def take_acks(self) -> bytes:
        if not self.to_ack:
            return b""
        acks = b"".join(b"\x40\x02" + pid for pid in self.to_ack)
        self.to_ack = []
        return acks


def scanner_speed(packets: int = 200_000) -> float:
    """PUBLISH packets per second one process can scan (the generator's receive ceiling)."""
    stream = publish_packet("bench/a/00", b"x" * 32) * packets
    scanner = Scanner()
    started = time.perf_counter()
    for offset in range(0, len(stream), RECV_SIZE):
        scanner.feed(stream[offset : offset + RECV_SIZE])
    elapsed = time.perf_counter() - started
    assert scanner.publish == packets
    return packets / elapsed


# --- connections ------------------------------------------------------------------------------


class BrokerRefusedError(RuntimeError):
    pass


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        data += chunk
    return data


def open_session(
    port: int, client_id: str, *, timeout: float = 10.0, keep_alive: int = 600
) -> socket.socket:
    """A connected socket after a successful CONNECT / CONNACK (blocking mode)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(connect_packet(client_id, keep_alive=keep_alive))
        connack = _read_exactly(sock, 4)
        if connack[0] != 0x20 or connack[3] != 0:
            raise BrokerRefusedError(f"CONNACK {connack.hex()} for {client_id}")
    except BaseException:
        sock.close()
        raise
    return sock


def subscribe(sock: socket.socket, filters: list[tuple[str, int]], packet_id: int = 1) -> None:
    sock.sendall(subscribe_packet(packet_id, filters))
    suback = _read_exactly(sock, 2)
    if suback[0] != 0x90:
        raise BrokerRefusedError(f"expected SUBACK, got {suback.hex()}")
    codes = _read_exactly(sock, suback[1])[2:]
    if any(code >= 0x80 for code in codes):
        raise BrokerRefusedError(f"subscription refused: {codes.hex()}")


def mqtt_ping(port: int, timeout: float = 1.0) -> bool:
    """True when something on `port` answers CONNECT with a successful CONNACK."""
    try:
        sock = open_session(port, f"bench-ping-{os.getpid()}", timeout=timeout)
    except (OSError, BrokerRefusedError):
        return False
    with contextlib.suppress(OSError):
        sock.sendall(DISCONNECT)
    sock.close()
    return True


def _close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.close()


# --- workers ----------------------------------------------------------------------------------
# A worker gets its args, calls ready() once connected, then go() which blocks until the
# coordinator starts everyone and returns the common start time (monotonic seconds).


@dataclass
class Window:
    """Counter snapshots at the start and the end of the measured window."""

    begin_at: float
    end_at: float
    begin: tuple[float, int] | None = None
    end: tuple[float, int] | None = None

    def observe(self, now: float, total: int) -> None:
        if self.begin is None and now >= self.begin_at:
            self.begin = (now, total)
        if self.end is None and now >= self.end_at:
            self.end = (now, total)

    def result(self) -> dict[str, float]:
        if self.begin is None or self.end is None:
            return {"count": 0, "seconds": 0.0}
        return {"count": self.end[1] - self.begin[1], "seconds": self.end[0] - self.begin[0]}


def qos0_subscriber_worker(
    args: dict[str, Any], ready: Callable[[], None], go: Callable[[], float]
):
    """Subscribes each (client_id, topic) at QoS 0, counts PUBLISH packets received."""
    socks: list[socket.socket] = []
    try:
        scanners: dict[int, Scanner] = {}
        selector = selectors.DefaultSelector()
        for client_id, topic in args["subscribers"]:
            sock = open_session(args["port"], client_id)
            socks.append(sock)
            subscribe(sock, [(topic, 0)])
            sock.setblocking(False)
            scanners[sock.fileno()] = Scanner()
            selector.register(sock, selectors.EVENT_READ)
        ready()
        start = go()
        window = Window(start + args["warmup"], start + args["warmup"] + args["window"])
        stop_at = window.end_at + 0.05
        total = 0
        closed = 0
        while True:
            now = time.monotonic()
            window.observe(now, total)
            if now >= stop_at:
                break
            for key, _ in selector.select(timeout=0.02):
                conn = key.fileobj
                assert isinstance(conn, socket.socket)
                try:
                    data = conn.recv(RECV_SIZE)
                except BlockingIOError:
                    continue
                if not data:
                    selector.unregister(conn)
                    closed += 1
                    continue
                scanner = scanners[key.fd]
                before = scanner.publish
                scanner.feed(data)
                total += scanner.publish - before
        return {
            **window.result(),
            "total": total,
            "closed_by_broker": closed,
            "per_connection": [s.publish for s in scanners.values()],
        }
    finally:
        _close_all(socks)


def qos0_publisher_worker(args: dict[str, Any], ready: Callable[[], None], go: Callable[[], float]):
    """Each (client_id, topic) publishes one pre-encoded QoS 0 PUBLISH as fast as TCP allows."""
    socks: list[socket.socket] = []
    try:
        selector = selectors.DefaultSelector()
        state: dict[int, list[Any]] = {}
        packet_len = 0
        for client_id, topic in args["publishers"]:
            sock = open_session(args["port"], client_id)
            socks.append(sock)
            packet = publish_packet(topic, args["payload"])
            packet_len = len(packet)
            batch = memoryview(packet * max(1, args["batch_bytes"] // len(packet)))
            sock.setblocking(False)
            # [socket, batch, offset into the packet, bytes sent]
            state[sock.fileno()] = [sock, batch, 0, 0]
            selector.register(sock, selectors.EVENT_WRITE)
        ready()
        start = go()
        window = Window(start + args["warmup"], start + args["warmup"] + args["window"])
        total_bytes = 0
        errors = 0
        while True:
            now = time.monotonic()
            window.observe(now, total_bytes // packet_len)
            if now >= window.end_at:
                break
            for key, _ in selector.select(timeout=0.02):
                entry = state[key.fd]
                try:
                    sent = entry[0].send(entry[1][entry[2] :])
                except BlockingIOError:
                    continue
                except OSError:
                    selector.unregister(entry[0])
                    errors += 1
                    continue
                entry[2] = (entry[2] + sent) % packet_len
                entry[3] += sent
                total_bytes += sent
        return {**window.result(), "total": total_bytes // packet_len, "errors": errors}
    finally:
        _close_all(socks)


@dataclass
class _Pipeline:
    sock: socket.socket
    packets: list[bytes]
    scanner: Scanner = field(default_factory=Scanner)
    sent: int = 0
    acked: int = 0
    last_ack: float = 0.0
    closed: bool = False


def qos1_publisher_worker(args: dict[str, Any], ready: Callable[[], None], go: Callable[[], float]):
    """Each publisher sends its pre-encoded QoS 1 PUBLISH packets (distinct topics), keeping up
    to `window` unacknowledged; counts PUBACKs."""
    socks: list[socket.socket] = []
    try:
        window = args["window"]
        pipes: dict[int, _Pipeline] = {}
        selector = selectors.DefaultSelector()
        for client_id, prefix, first, count in args["publishers"]:
            packets = [
                publish_packet(
                    seed_topic(prefix, n),
                    seed_payload(n),
                    qos=1,
                    retain=args["retain"],
                    packet_id=index % 65_535 + 1,
                )
                for index, n in enumerate(range(first, first + count))
            ]
            sock = open_session(args["port"], client_id)
            socks.append(sock)
            pipes[sock.fileno()] = _Pipeline(sock=sock, packets=packets)
            selector.register(sock, selectors.EVENT_READ)
        ready()
        start = go()
        deadline = start + args["time_limit"]
        for pipe in pipes.values():
            pipe.sent = min(window, len(pipe.packets))
            pipe.sock.sendall(b"".join(pipe.packets[: pipe.sent]))
        unfinished = len(pipes)
        while unfinished and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.05):
                pipe = pipes[key.fd]
                try:
                    data = pipe.sock.recv(RECV_SIZE)
                except OSError:
                    data = b""
                if not data:
                    pipe.closed = True
                    selector.unregister(pipe.sock)
                    unfinished -= 1
                    continue
                before = pipe.scanner.puback
                pipe.scanner.feed(data)
                acks = pipe.scanner.puback - before
                if not acks:
                    continue
                pipe.acked += acks
                pipe.last_ack = time.monotonic()
                if pipe.acked >= len(pipe.packets):
                    selector.unregister(pipe.sock)
                    unfinished -= 1
                    continue
                more = min(pipe.acked + window, len(pipe.packets))
                if more > pipe.sent:
                    pipe.sock.sendall(b"".join(pipe.packets[pipe.sent : more]))
                    pipe.sent = more
        return {
            "start": start,
            "acked": sum(p.acked for p in pipes.values()),
            "wanted": sum(len(p.packets) for p in pipes.values()),
            "last_ack": max((p.last_ack for p in pipes.values()), default=start),
            "closed_by_broker": sum(p.closed for p in pipes.values()),
            "other_packets": [p.scanner.other for p in pipes.values() if p.scanner.other],
        }
    finally:
        _close_all(socks)


def retained_subscriber_worker(
    args: dict[str, Any], ready: Callable[[], None], go: Callable[[], float]
):
    """A new subscriber to `filter`: time from SUBSCRIBE until `expected` PUBLISH arrived."""
    sock = open_session(args["port"], args["client_id"])
    try:
        ready()
        start = go()
        deadline = start + args["time_limit"]
        scanner = Scanner()
        sock.settimeout(0.2)
        sent_at = time.monotonic()
        sock.sendall(subscribe_packet(1, [(args["filter"], args["qos"])]))
        first_at = None
        done_at = None
        closed = False
        while time.monotonic() < deadline:
            try:
                data = sock.recv(RECV_SIZE)
            except TimeoutError:
                continue
            if not data:
                closed = True
                break
            scanner.feed(data)
            acks = scanner.take_acks()
            if acks:
                sock.sendall(acks)
            if first_at is None and scanner.publish:
                first_at = time.monotonic()
            if scanner.publish >= args["expected"]:
                done_at = time.monotonic()
                break
        return {
            "received": scanner.publish,
            "expected": args["expected"],
            "seconds": (done_at - sent_at) if done_at else None,
            "waited": time.monotonic() - sent_at,
            "first_after": (first_at - sent_at) if first_at else None,
            "closed_by_broker": closed,
        }
    finally:
        sock.close()


def idle_connections_worker(
    args: dict[str, Any], ready: Callable[[], None], go: Callable[[], float]
):
    """Open `count` MQTT connections (CONNECT/CONNACK, in batches), hold them until go()."""
    raise_fd_limit()
    socks: list[socket.socket] = []
    failures = 0
    started = time.monotonic()
    deadline = started + args["time_limit"]
    try:
        connack = b"\x20\x02\x00\x00"
        prefix = args["prefix"]
        batch_size = args["batch"]
        for first in range(0, args["count"], batch_size):
            if time.monotonic() >= deadline:
                break
            batch: list[socket.socket] = []
            for index in range(first, min(first + batch_size, args["count"])):
                try:
                    sock = socket.create_connection(("127.0.0.1", args["port"]), timeout=10)
                    sock.sendall(connect_packet(f"{prefix}-{index}", keep_alive=600))
                except OSError:
                    failures += 1
                    continue
                batch.append(sock)
            selector = selectors.DefaultSelector()
            for sock in batch:
                sock.setblocking(False)
                selector.register(sock, selectors.EVENT_READ)
            waiting = len(batch)
            received: dict[int, bytes] = {}
            while waiting and time.monotonic() < deadline:
                for key, _ in selector.select(timeout=0.5):
                    conn = key.fileobj
                    assert isinstance(conn, socket.socket)
                    try:
                        data = conn.recv(4 - len(received.get(key.fd, b"")))
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    got = received.get(key.fd, b"") + data
                    received[key.fd] = got
                    if not data or len(got) >= 4:
                        selector.unregister(conn)
                        waiting -= 1
                        if got == connack:
                            socks.append(conn)
                        else:
                            failures += 1
                            conn.close()
            for key in list(selector.get_map().values()):
                failures += 1
                selector.unregister(key.fileobj)
                key.fileobj.close()  # type: ignore[union-attr]
            selector.close()
        connect_seconds = time.monotonic() - started
        ready()
        go()
        alive = 0
        for sock in socks:  # still connected? (the broker did not drop idle clients)
            try:
                data = sock.recv(1)
            except BlockingIOError:
                alive += 1
                continue
            except OSError:
                continue
            alive += 1 if data else 0
        return {
            "connected": len(socks),
            "still_open": alive,
            "failed": failures,
            "connect_seconds": connect_seconds,
        }
    finally:
        _close_all(socks)


# --- coordination -----------------------------------------------------------------------------

Worker = Callable[[dict[str, Any], Callable[[], None], Callable[[], float]], dict[str, Any]]


def _worker_entry(
    worker: Worker, args: dict[str, Any], results: Any, go_event: Any, start_at: Any
) -> None:
    cpu_before = [0.0]

    def ready() -> None:
        results.put(("ready", os.getpid(), None))

    def go() -> float:
        if not go_event.wait(args.get("go_timeout", 300)):
            raise TimeoutError("the coordinator never said go")
        times = os.times()
        cpu_before[0] = times.user + times.system
        return float(start_at.value)

    try:
        raise_fd_limit()
        result = worker(args, ready, go)
        times = os.times()
        result["cpu_seconds"] = times.user + times.system - cpu_before[0]
        results.put(("result", os.getpid(), result))
    except BaseException:
        results.put(("error", os.getpid(), traceback.format_exc()))


@dataclass
class WorkerRun:
    results: list[dict[str, Any]]
    errors: list[str]
    wall_seconds: float  # from go to the last result


def run_workers(
    jobs: list[tuple[Worker, dict[str, Any]]],
    *,
    setup_timeout: float,
    run_timeout: float,
    before_go: Callable[[], None] | None = None,
    lead_seconds: float = 0.2,
) -> WorkerRun:
    """Start one process per (worker, args) job, wait until all are ready, start them together
    (after running `before_go`), collect their results. Every wait is bounded; stragglers are
    killed."""
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    go_event = context.Event()
    start_at = context.Value("d", 0.0)
    processes = [
        context.Process(
            target=_worker_entry, args=(worker, args, results, go_event, start_at), daemon=True
        )
        for worker, args in jobs
    ]
    collected: list[dict[str, Any]] = []
    errors: list[str] = []
    go_at = time.monotonic()
    try:
        for process in processes:
            process.start()
        pending_ready = len(processes)
        ready_count = 0
        deadline = time.monotonic() + setup_timeout
        while pending_ready:
            try:
                kind, _, payload = results.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                errors.append(f"{pending_ready} worker(s) not ready after {setup_timeout:.0f}s")
                break
            pending_ready -= 1
            if kind == "ready":
                ready_count += 1
            elif kind == "error":
                errors.append(payload)
            else:
                collected.append(payload)
        if before_go is not None and not errors:
            before_go()
        go_at = time.monotonic()
        start_at.value = go_at + lead_seconds
        go_event.set()
        expected = ready_count
        deadline = time.monotonic() + run_timeout
        while expected > 0:
            try:
                kind, _, payload = results.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                errors.append(f"{expected} worker(s) gave no result after {run_timeout:.0f}s")
                break
            if kind == "ready":
                continue  # a straggler that missed the start
            if kind == "result":
                collected.append(payload)
            else:
                errors.append(payload)
            expected -= 1
        return WorkerRun(collected, errors, time.monotonic() - go_at)
    finally:
        go_event.set()
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)
        results.close()
        results.join_thread()


def split(items: list[Any], parts: int) -> list[list[Any]]:
    """`items` dealt round-robin into at most `parts` non-empty lists."""
    parts = max(1, min(parts, len(items)))
    return [items[index::parts] for index in range(parts)]
