"""Load: 2,000 concurrent MQTT connections, 200 messages/s of mixed traffic (issue #8, point 5).

    .venv/bin/python -m bench.load [--seconds 300] [--connections 2000] [--rate 200] [--procs 4]

Starts `manage.py serve` on a fresh temporary data dir with AWS's rate limits ON (retained
publishes 500/s per account and 1/s per topic): each retained topic belongs to one generator,
which publishes to it at most once every few seconds, so a throttle (MQTT 3.1.1: the broker
closes the connection) would show up as an error rather than being switched off.

Generator processes (bench/mqtt_load.run_workers) hold the connections: raw sockets, MQTT
3.1.1, clean sessions, each connection subscribed to two live topics (one in five of those
subscriptions at QoS 0, the others QoS 1) and half of them to one retained topic too. For
`--seconds` they send `--rate` PUBLISHes/s from random connections, each to one of its own
four live topics as a device would (`--publish-topics`; 0: any topic) or to a retained topic
it owns: 40% QoS 0, 40% QoS 1, 15% retained QoS 1, 5% retained QoS 0; meanwhile connections
unsubscribe and subscribe elsewhere (4/s) and reconnect (1/s, resubscribing).
Afterwards every record comes back to this process, which checks that every QoS 1 publish was
acknowledged and reached every subscription that was in place from before it was sent until
after its PUBACK (a reconnect's close counts from 2 s earlier: in-flight copies die with a
clean session), and reports errors (must be 0), messages, publish->receive latency of the
live copies, and the broker's RSS (VmRSS, VmHWM) after the connects, minute by minute,
and at the end.
Exit status 1 when there was any error.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.broker import (
    REPO_ROOT,
    BrokerProcess,
    CpuWatch,
    _die_with_parent,
    _interrupt,
    free_port,
    machine_line,
    read_status,
)
from bench.mqtt_load import (
    DISCONNECT,
    BrokerRefusedError,
    Worker,
    mqtt_string,
    open_session,
    publish_packet,
    raise_fd_limit,
    run_workers,
    split,
    subscribe_packet,
    varint,
)

KEEP_ALIVE = 300  # seconds; idle connections PINGREQ well before 1.5x this
PING_IDLE = 100.0
DRAIN_SECONDS = 5.0  # after the last publish: late deliveries and PUBACKs
CLOSE_MARGIN = 2.0  # copies routed this shortly before a reconnect may die with the session
RETAINED_EVERY = 5.0  # seconds between two retained publishes to one topic (AWS: >= 1)
LIVE_PER_CONNECTION = 2
SUBSCRIBERS_PER_TOPIC = 5
KINDS = (  # name, QoS, retain, share of the publishes
    ("QoS 0", 0, False, 0.40),
    ("QoS 1", 1, False, 0.40),
    ("retained QoS 1", 1, True, 0.15),
    ("retained QoS 0", 0, True, 0.05),
)
PINGREQ = b"\xc0\x00"


# --- the wire ---------------------------------------------------------------------------------


def unsubscribe_packet(packet_id: int, filters: list[str]) -> bytes:
    body = packet_id.to_bytes(2, "big") + b"".join(mqtt_string(f) for f in filters)
    return b"\xa2" + varint(len(body)) + body


class Stream:
    """Whole packets out of a byte stream: (first byte, body)."""

    __slots__ = ("buffer",)

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        buffer = self.buffer
        buffer += data
        packets = []
        position = 0
        size = len(buffer)
        while size - position >= 2:
            length, shift, start, complete = 0, 0, position + 1, False
            while start < size and start - position <= 4:
                byte = buffer[start]
                start += 1
                length |= (byte & 0x7F) << shift
                shift += 7
                if byte < 0x80:
                    complete = True
                    break
            if not complete or start + length > size:
                break
            packets.append((buffer[position], bytes(buffer[start : start + length])))
            position = start + length
        del buffer[:position]
        return packets


# --- a generator process ----------------------------------------------------------------------


@dataclass
class Conn:
    cid: str
    sock: socket.socket | None = None
    stream: Stream = field(default_factory=Stream)
    wanted: dict[str, int] = field(default_factory=dict)  # topic -> requested QoS
    opened: dict[str, tuple[float, int]] = field(default_factory=dict)  # topic -> (SUBACK, QoS)
    subscribing: dict[int, list[tuple[str, int]]] = field(default_factory=dict)
    unacked: dict[int, int] = field(default_factory=dict)  # packet id -> published index
    publishes_to: list[str] = field(default_factory=list)  # its live topics, like a device's
    packet_id: int = 0
    last_sent: float = 0.0

    def next_packet_id(self) -> int:
        while True:
            self.packet_id = self.packet_id % 65_535 + 1
            if self.packet_id not in self.unacked and self.packet_id not in self.subscribing:
                return self.packet_id


class Generator:
    """One process's share of the connections and of the traffic."""

    def __init__(self, args: dict[str, Any]) -> None:
        self.args = args
        self.port: int = args["port"]
        self.wid: int = args["worker"]
        self.rng = random.Random(args["seed"])
        self.conns = [Conn(cid) for cid in args["client_ids"]]
        self.by_fd: dict[int, Conn] = {}
        self.selector = selectors.DefaultSelector()
        self.live_topics: list[str] = args["live_topics"]
        self.retained_topics: list[str] = args["retained_topics"]  # all of them
        self.own_retained: list[str] = args["own_retained"]  # this process publishes these
        self.retained_set = set(self.retained_topics)
        self.publish_topics: int = args["publish_topics"]  # per connection; 0: any topic
        self.retained_owner = {
            topic: self.conns[index % len(self.conns)]
            for index, topic in enumerate(self.own_retained)
        }
        self.retained_turn = 0
        self.seq = 0
        # [message id, topic, QoS, retain, sent at, acknowledged at]
        self.published: list[list[Any]] = []
        self.received: list[tuple[str, str, float, bool]] = []  # id, receiver, at, RETAIN
        self.intervals: list[tuple[str, str, int, float, float, str]] = []
        self.errors: list[str] = []
        self.counts: Counter[str] = Counter()
        self.payload_pad = [b"." * size for size in (40, 100, 200, 400)]

    # connections
    def connect(self, conn: Conn) -> None:
        try:
            sock = open_session(self.port, conn.cid, keep_alive=KEEP_ALIVE)
        except (OSError, BrokerRefusedError) as error:
            self.errors.append(f"{conn.cid}: connect failed: {error}")
            conn.sock = None
            return
        conn.sock = sock
        conn.stream = Stream()
        conn.last_sent = time.monotonic()
        self.by_fd[sock.fileno()] = conn
        self.selector.register(sock, selectors.EVENT_READ, conn)

    def close(self, conn: Conn, now: float, kind: str, *, polite: bool = True) -> None:
        sock = conn.sock
        if sock is None:
            return
        for topic, (start, qos) in conn.opened.items():
            self.intervals.append((conn.cid, topic, qos, start, now, kind))
        conn.opened.clear()
        conn.subscribing.clear()
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(sock)
        self.by_fd.pop(sock.fileno(), None)
        if polite:
            with contextlib.suppress(OSError):
                sock.sendall(DISCONNECT)
        sock.close()
        conn.sock = None

    def send(self, conn: Conn, data: bytes) -> bool:
        if conn.sock is None:
            return False
        try:
            conn.sock.sendall(data)
        except OSError as error:
            self.errors.append(f"{conn.cid}: send failed: {error}")
            self.lost(conn, time.monotonic())
            return False
        conn.last_sent = time.monotonic()
        return True

    def lost(self, conn: Conn, now: float) -> None:
        """The broker closed a connection we did not close: an error; connect it again."""
        self.errors.append(f"{conn.cid}: connection closed by the broker")
        for index in conn.unacked.values():
            self.errors.append(f"{conn.cid}: publish {self.published[index][0]} never acknowledged")
        conn.unacked.clear()
        self.close(conn, now, "close", polite=False)
        self.connect(conn)
        self.subscribe(conn, list(conn.wanted.items()))

    def subscribe(self, conn: Conn, filters: list[tuple[str, int]]) -> None:
        if not filters or conn.sock is None:
            return
        packet_id = conn.next_packet_id()
        conn.subscribing[packet_id] = filters
        self.send(conn, subscribe_packet(packet_id, filters))

    # input
    def pump(self, timeout: float) -> None:
        for key, _ in self.selector.select(timeout=max(0.0, timeout)):
            conn: Conn = key.data
            sock = conn.sock
            if sock is None:
                continue
            try:
                data = sock.recv(1 << 16)
            except (BlockingIOError, TimeoutError):
                continue
            except OSError:
                data = b""
            now = time.monotonic()
            if not data:
                self.lost(conn, now)
                continue
            acks = []
            for first, body in conn.stream.feed(data):
                ack = self.handle(conn, first, body, now)
                if ack:
                    acks.append(ack)
            if acks:
                self.send(conn, b"".join(acks))

    def handle(self, conn: Conn, first: int, body: bytes, now: float) -> bytes | None:
        kind = first >> 4
        if kind == 3:
            qos = (first >> 1) & 3
            size = int.from_bytes(body[:2], "big")
            position = 2 + size
            packet_id = body[position : position + 2] if qos else b""
            payload = body[position + (2 if qos else 0) :]
            message_id = payload.split(b" ", 1)[0].decode()
            self.received.append((message_id, conn.cid, now, bool(first & 1)))
            return b"\x40\x02" + packet_id if qos else None
        if kind == 4:
            index = conn.unacked.pop(int.from_bytes(body[:2], "big"), None)
            if index is None:
                self.errors.append(f"{conn.cid}: PUBACK for an unknown packet id")
            else:
                self.published[index][5] = now
            return None
        if kind == 9:
            filters = conn.subscribing.pop(int.from_bytes(body[:2], "big"), None)
            if filters is None:
                self.errors.append(f"{conn.cid}: SUBACK for an unknown packet id")
                return None
            if len(body) - 2 != len(filters):
                self.errors.append(f"{conn.cid}: SUBACK with {len(body) - 2} codes")
            for (topic, _), code in zip(filters, body[2:], strict=False):
                if code >= 0x80:
                    self.errors.append(f"{conn.cid}: subscription to {topic} refused ({code:#x})")
                elif topic in conn.wanted:
                    conn.opened[topic] = (now, code)
            return None
        if kind in (11, 13):  # UNSUBACK, PINGRESP
            return None
        self.errors.append(f"{conn.cid}: unexpected packet type {kind}")
        return None

    # actions
    def publish(self, now: float) -> None:
        name, qos, retain = self.pick_kind()
        conn = self.rng.choice(self.conns)
        if retain:
            topic = self.own_retained[self.retained_turn % len(self.own_retained)]
            self.retained_turn += 1
            if self.publish_topics:
                conn = self.retained_owner[topic]
        elif self.publish_topics:
            topic = self.rng.choice(conn.publishes_to)
        else:
            topic = self.rng.choice(self.live_topics)
        if conn.sock is None:
            return
        self.seq += 1
        message_id = f"w{self.wid}-{self.seq}"
        payload = message_id.encode() + b" " + self.rng.choice(self.payload_pad)
        packet_id = conn.next_packet_id() if qos else None
        index = len(self.published)
        self.published.append([message_id, topic, qos, retain, now, None])
        self.counts[name] += 1
        if packet_id is not None:
            conn.unacked[packet_id] = index
        self.send(conn, publish_packet(topic, payload, qos=qos, retain=retain, packet_id=packet_id))

    def pick_kind(self) -> tuple[str, int, bool]:
        draw = self.rng.random()
        for name, qos, retain, share in KINDS:
            draw -= share
            if draw < 0:
                return name, qos, retain
        return KINDS[-1][:3]

    def churn(self, now: float) -> None:
        """One connection leaves one of its topics and subscribes to another."""
        conn = self.rng.choice(self.conns)
        if conn.sock is None or not conn.wanted or conn.subscribing:
            return
        old = self.rng.choice(sorted(conn.wanted))
        pool = self.retained_topics if old in self.retained_set else self.live_topics
        new = self.rng.choice(pool)
        if new in conn.wanted:
            return
        qos = conn.wanted.pop(old)
        opened = conn.opened.pop(old, None)
        if opened is not None:
            self.intervals.append((conn.cid, old, opened[1], opened[0], now, "unsubscribe"))
        self.send(conn, unsubscribe_packet(conn.next_packet_id(), [old]))
        conn.wanted[new] = qos
        self.subscribe(conn, [(new, qos)])
        self.counts["resubscribes"] += 1

    def reconnect(self, now: float) -> None:
        for _ in range(5):
            conn = self.rng.choice(self.conns)
            if conn.sock is not None and not conn.unacked and not conn.subscribing:
                break
        else:
            return
        self.close(conn, now, "close")
        self.connect(conn)
        self.subscribe(conn, list(conn.wanted.items()))
        self.counts["reconnects"] += 1

    def ping_idle(self, now: float) -> None:
        for conn in self.conns:
            if conn.sock is not None and now - conn.last_sent > PING_IDLE:
                self.send(conn, PINGREQ)

    # the run
    def setup(self) -> None:
        for conn in self.conns:
            self.connect(conn)
            topics = self.rng.sample(self.live_topics, LIVE_PER_CONNECTION)
            conn.wanted = {topic: 0 if self.rng.random() < 0.2 else 1 for topic in topics}
            if self.rng.random() < 0.5:
                conn.wanted[self.rng.choice(self.retained_topics)] = 1
            self.subscribe(conn, list(conn.wanted.items()))
            conn.publishes_to = self.rng.sample(self.live_topics, self.publish_topics)
        deadline = time.monotonic() + 60
        while any(c.subscribing for c in self.conns) and time.monotonic() < deadline:
            self.pump(0.05)
        if any(c.subscribing for c in self.conns):
            self.errors.append("SUBACKs missing after the initial subscriptions")

    def run(self, start: float) -> None:
        args = self.args
        end = start + args["seconds"]
        rates = {
            self.publish: args["rate"],
            self.churn: args["churn"],
            self.reconnect: args["reconnects"],
        }
        due = {action: start + self.rng.random() / rate for action, rate in rates.items() if rate}
        next_ping = start + 10
        while True:
            now = time.monotonic()
            if now >= end:
                break
            for action, at in due.items():
                while at <= now and at < end:
                    action(at)
                    at += 1.0 / rates[action]
                due[action] = at
            if now >= next_ping:
                self.ping_idle(now)
                next_ping = now + 10
            self.pump(min(min(due.values()), end) - time.monotonic())
        drain_until = end + DRAIN_SECONDS
        while (now := time.monotonic()) < drain_until:
            self.pump(min(0.1, drain_until - now))

    def finish(self) -> dict[str, Any]:
        now = time.monotonic()
        open_at_end = 0
        for conn in self.conns:
            if conn.sock is not None:
                open_at_end += 1
            for index in conn.unacked.values():
                self.errors.append(f"{conn.cid}: publish {self.published[index][0]} not acked")
            self.close(conn, now, "end")
        return {
            "published": self.published,
            "received": self.received,
            "intervals": self.intervals,
            "errors": self.errors,
            "counts": dict(self.counts),
            "connections": len(self.conns),
            "open_at_end": open_at_end,
        }


def load_worker(
    args: dict[str, Any], ready: Callable[[], None], go: Callable[[], float]
) -> dict[str, Any]:
    generator = Generator(args)
    try:
        generator.setup()
        ready()
        generator.run(go())
        return generator.finish()
    finally:
        for conn in generator.conns:
            if conn.sock is not None:
                conn.sock.close()


# --- the broker -------------------------------------------------------------------------------


class Serve(BrokerProcess):
    """`manage.py serve` with AWS's default limits (rate limits on)."""

    name = "serve"

    def __init__(self, root: Path) -> None:
        super().__init__(root, "load")
        self.http_port = free_port()
        self.data_dir = self.workdir / "data"

    def env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("RETAINED_", "DATABASE_URL", "SECRET_KEY", "DJANGO_SETTINGS"))
        }
        env.update({"RETAINED_DATA_DIR": str(self.data_dir), "PYTHONUNBUFFERED": "1"})
        return env

    def command(self) -> list[str]:
        return [
            sys.executable,
            "manage.py",
            "serve",
            *("--bind", "127.0.0.1"),
            *("--http-port", str(self.http_port)),
            *("--mqtt-port", str(self.port)),
            *("--mqtts-port", "0"),
        ]

    def start(self, timeout: float = 120.0) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=REPO_ROOT,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited early:\n{self.log_tail()}")
            if self.healthz() == 200:
                return
            time.sleep(0.2)
        raise RuntimeError(f"serve did not become healthy in {timeout:.0f}s:\n{self.log_tail()}")

    def healthz(self) -> int | None:
        try:
            url = f"http://127.0.0.1:{self.http_port}/healthz"
            with urllib.request.urlopen(url, timeout=5) as response:
                return int(response.status)
        except OSError:
            return None


class MemorySampler(threading.Thread):
    """The broker's VmRSS / VmHWM every few seconds while the load runs."""

    def __init__(self, pid: int, every: float = 5.0) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.every = every
        self.samples: list[tuple[float, dict[str, int]]] = []
        self.stopped = threading.Event()

    def sample(self) -> dict[str, int]:
        status = read_status(self.pid)
        self.samples.append((time.monotonic(), status))
        return status

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            self.sample()


# --- checking and reporting -------------------------------------------------------------------


@dataclass
class Verdict:
    published: Counter[str]
    qos1_published: int
    qos1_acked: int
    expected: dict[int, int]  # delivery QoS -> deliveries that must have arrived
    missing: dict[int, int]
    received_live: int
    received_retained: int
    duplicates: int
    unknown: int
    latencies: list[float]
    examples: list[str]


def verify(results: list[dict[str, Any]]) -> Verdict:
    published: dict[str, list[Any]] = {}
    kinds: Counter[str] = Counter()
    for result in results:
        for record in result["published"]:
            published[record[0]] = record
        for name, count in result["counts"].items():
            kinds[name] += count
    by_topic: dict[str, list[tuple[str, int, float, float, str]]] = defaultdict(list)
    for result in results:
        for cid, topic, qos, start, end, kind in result["intervals"]:
            by_topic[topic].append((cid, qos, start, end, kind))
    got: Counter[tuple[str, str]] = Counter()
    live: Counter[tuple[str, str]] = Counter()
    latencies: list[float] = []
    retained_copies = 0
    unknown = 0
    for result in results:
        for message_id, cid, at, retain in result["received"]:
            record = published.get(message_id)
            if record is None:
                unknown += 1
                continue
            got[(message_id, cid)] += 1
            if retain:
                retained_copies += 1  # may repeat a live copy received before: not a duplicate
            else:
                live[(message_id, cid)] += 1
                latencies.append(at - record[4])
    expected: Counter[int] = Counter()
    missing: Counter[int] = Counter()
    examples: list[str] = []
    qos1 = acked = 0
    for message_id, topic, qos, _, sent, acked_at in published.values():
        if qos == 1:
            qos1 += 1
            if acked_at is None:
                continue  # an error already, reported by the generator
            acked += 1
        # A QoS 1 message was routed before its PUBACK; a QoS 0 one, shortly after it left.
        done = acked_at if acked_at is not None else sent + CLOSE_MARGIN
        must: dict[str, int] = {}
        for cid, sub_qos, start, end, kind in by_topic.get(topic, ()):
            margin = 0.0 if kind == "unsubscribe" else CLOSE_MARGIN
            if start < sent and done < end - margin:
                must[cid] = max(must.get(cid, 0), min(qos, sub_qos))
        for cid, delivery_qos in must.items():
            expected[delivery_qos] += 1
            if not got[(message_id, cid)]:
                missing[delivery_qos] += 1
                if delivery_qos == 1 and len(examples) < 10:
                    examples.append(f"{message_id} on {topic} never reached {cid}")
    duplicates = sum(count - 1 for count in live.values() if count > 1)
    received_live = sum(live.values())
    latencies.sort()
    return Verdict(
        published=kinds,
        qos1_published=qos1,
        qos1_acked=acked,
        expected=dict(expected),
        missing=dict(missing),
        received_live=received_live,
        received_retained=retained_copies,
        duplicates=duplicates,
        unknown=unknown,
        latencies=latencies,
        examples=examples,
    )


def percentile(values: list[float], fraction: float) -> float:
    """Of sorted `values`."""
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(fraction * len(values)))]


def mib(kib: int | None) -> str:
    return "?" if kib is None else f"{kib / 1024:.0f} MiB"


def log_findings(text: str) -> tuple[list[str], Counter[str]]:
    """Errors in the broker's log (tracebacks, failures) and counts of notable events."""
    errors = [line for line in text.splitlines() if "Traceback" in line or "failed" in line]
    notable: Counter[str] = Counter()
    for line in text.splitlines():
        if "does not keep up" in line:
            notable["slow-client disconnects"] += 1
        elif "closing:" in line:
            notable["connections closed by the broker"] += 1
        elif "keep-alive expired" in line:
            notable["keep-alive expiries"] += 1
    return errors, notable


def main() -> int:
    parser = argparse.ArgumentParser(description="MQTT load (see module docstring)")
    parser.add_argument("--seconds", type=float, default=300.0, help="traffic duration")
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200.0, help="PUBLISH packets per second")
    parser.add_argument("--procs", type=int, default=4, help="generator processes")
    parser.add_argument("--churn", type=float, default=4.0, help="resubscribes per second")
    parser.add_argument("--reconnects", type=float, default=1.0, help="reconnects per second")
    parser.add_argument(
        "--publish-topics",
        type=int,
        default=4,
        help="live topics each connection publishes to, as a device does (0: any topic)",
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)
    fd_limit = raise_fd_limit()  # the broker and the generators inherit it
    if fd_limit < args.connections + 1000:
        print(f"error: open-file limit {fd_limit} is too low for {args.connections} connections")
        return 1
    procs = max(1, min(args.procs, args.connections))
    rng = random.Random(8)
    live_topics = [
        f"load/live/{i}"
        for i in range(max(1, args.connections * LIVE_PER_CONNECTION // SUBSCRIBERS_PER_TOPIC))
    ]
    retained_rate = args.rate * sum(share for _, _, retain, share in KINDS if retain)
    # AWS: at most 1 retained publish/s per topic. Enough topics that each waits RETAINED_EVERY.
    retained_count = max(procs, int(retained_rate * RETAINED_EVERY) + procs)
    retained_topics = [f"load/retained/{i}" for i in range(retained_count)]
    client_ids = [f"load-{i:05d}" for i in range(args.connections)]
    rng.shuffle(client_ids)
    jobs: list[tuple[Worker, dict[str, Any]]] = []
    for worker, (ids, own) in enumerate(
        zip(split(client_ids, procs), split(retained_topics, procs), strict=True)
    ):
        jobs.append(
            (
                load_worker,
                {
                    "worker": worker,
                    "seed": 1000 + worker,
                    "client_ids": ids,
                    "live_topics": live_topics,
                    "retained_topics": retained_topics,
                    "own_retained": own,
                    "seconds": args.seconds,
                    "rate": args.rate / procs,
                    "churn": args.churn / procs,
                    "reconnects": args.reconnects / procs,
                    "publish_topics": min(args.publish_topics, len(live_topics)),
                    "go_timeout": 600,
                },
            )
        )
    root = Path(tempfile.mkdtemp(prefix="bench-load-"))
    broker = Serve(root)
    try:
        print(f"Machine: {machine_line({})}")
        print(
            f"Broker: manage.py serve, AWS default limits (rate limits on), open-file limit "
            f"{fd_limit}; {args.connections:,} connections from {procs} generator process(es)"
        )
        broker.start()
        for job in jobs:
            job[1]["port"] = broker.port
        sampler = MemorySampler(broker.pid)
        cpu = CpuWatch(broker)
        marks: dict[str, Any] = {}

        def sample_end(go: float) -> None:
            """The end figures, just before the generators close their connections."""
            time.sleep(max(0.0, go + args.seconds + DRAIN_SECONDS * 0.8 - time.monotonic()))
            marks["end"] = sampler.sample()
            marks["cpu"] = cpu.summary()

        enders: list[threading.Thread] = []

        def before_go() -> None:
            marks["go"] = time.monotonic()
            marks["start"] = sampler.sample()
            cpu.begin()
            sampler.start()
            enders.append(
                threading.Thread(target=sample_end, args=(time.monotonic(),), daemon=True)
            )
            enders[0].start()
            print(
                f"{args.connections:,} connected and subscribed; broker RSS "
                f"{mib(marks['start'].get('VmRSS'))}; {args.seconds:.0f} s of traffic...",
                flush=True,
            )

        run = run_workers(
            jobs,
            setup_timeout=300,
            run_timeout=args.seconds + DRAIN_SECONDS + 300,
            before_go=before_go,
        )
        for ender in enders:
            ender.join(timeout=30)
        sampler.stopped.set()
        health = broker.healthz()
        verdict = verify(run.results)
        return report(args, procs, broker, run, verdict, marks, sampler, health)
    finally:
        broker.stop()
        shutil.rmtree(root, ignore_errors=True)


def report(
    args: argparse.Namespace,
    procs: int,
    broker: Serve,
    run: Any,
    verdict: Verdict,
    marks: dict[str, Any],
    sampler: MemorySampler,
    health: int | None,
) -> int:
    errors: list[str] = [line.strip().splitlines()[-1] for line in run.errors]
    for result in run.results:
        errors.extend(result["errors"])
    log_errors, notable = log_findings(broker.log_path.read_text(errors="replace"))
    errors.extend(f"broker log: {line}" for line in log_errors)
    unacked = verdict.qos1_published - verdict.qos1_acked
    missing_qos1 = verdict.missing.get(1, 0)
    if missing_qos1:
        errors.extend(verdict.examples)
    if health != 200:
        errors.append(f"/healthz answered {health} at the end")
    connections = sum(r["connections"] for r in run.results)
    open_at_end = sum(r["open_at_end"] for r in run.results)
    counts: Counter[str] = Counter()
    for result in run.results:
        counts.update(result["counts"])
    total = sum(counts[name] for name, *_ in KINDS)
    start, end = marks.get("start", {}), marks.get("end", {})
    go = marks.get("go", 0.0)
    by_minute = [
        next((s.get("VmRSS") for at, s in sampler.samples if at >= go + 60 * minute), None)
        for minute in range(int(args.seconds // 60) + 1)
    ]
    latencies = verdict.latencies
    error_count = len(errors) + missing_qos1 + verdict.unknown + verdict.duplicates
    lines = [
        "",
        f"== Load: {connections:,} connections, {args.rate:.0f} msg/s mixed, "
        f"{args.seconds:.0f} s ==",
        f"connections: {connections:,} opened over {procs} processes, {open_at_end:,} open at "
        f"the end; {counts['reconnects']:,} reconnects, {counts['resubscribes']:,} "
        "unsubscribe+subscribe",
        f"published: {total:,} ({total / args.seconds:.1f}/s): "
        + ", ".join(f"{name} {counts[name]:,}" for name, *_ in KINDS),
        f"QoS 1 publishes acknowledged: {verdict.qos1_acked:,} of {verdict.qos1_published:,}",
        f"deliveries that had to arrive: QoS 1 {verdict.expected.get(1, 0):,} (missing "
        f"{missing_qos1}), QoS 0 {verdict.expected.get(0, 0):,} (missing "
        f"{verdict.missing.get(0, 0)})",
        f"received: {verdict.received_live:,} live copies, {verdict.received_retained:,} "
        f"retained copies on subscribe; duplicates {verdict.duplicates}, unknown "
        f"{verdict.unknown}",
        f"latency publish->receive (live copies): p50 {percentile(latencies, 0.5) * 1000:.1f} ms,"
        f" p95 {percentile(latencies, 0.95) * 1000:.1f} ms, max "
        f"{(latencies[-1] if latencies else float('nan')) * 1000:.1f} ms",
        f"broker RSS: start {mib(start.get('VmRSS'))} (VmHWM {mib(start.get('VmHWM'))}), end "
        f"{mib(end.get('VmRSS'))} (VmHWM {mib(end.get('VmHWM'))}); minute by minute "
        + ", ".join(mib(value) for value in by_minute),
        f"{marks.get('cpu', 'broker CPU ?')}",
        "broker log: "
        + (", ".join(f"{name} {count}" for name, count in notable.items()) or "nothing notable"),
        f"errors: {error_count} (unacknowledged QoS 1: {unacked})",
    ]
    lines.extend(f"  {error}" for error in errors[:20])
    lines.append("PASS" if error_count == 0 else "FAIL")
    print("\n".join(lines))
    return 0 if error_count == 0 else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as interrupt:
        print(f"\ninterrupted ({interrupt or 'Ctrl-C'}); broker stopped, temp dir removed")
        sys.exit(130)
