"""MQTT broker benchmark: our broker vs Eclipse Mosquitto 2.0 vs amqtt, same load generator.

    .venv/bin/python -m bench.broker [--quick] [--brokers ours,mosquitto,amqtt] [--profile]

Every broker runs as its own process on a free loopback port with a fresh data dir, once per
phase group, and is driven by bench/mqtt_load.py (raw sockets, pre-encoded MQTT 3.1.1 packets,
several processes):

(a) QoS 0 messages/s RECEIVED by subscribers: 1 publisher -> 1 subscriber, and 10 -> 10
    (each subscriber on its own publisher's topic), counted over a fixed window after warm-up;
(b) QoS 1 retained publishes/s acknowledged (PUBACKs), distinct topics, 8 publishers each
    pipelining up to 100 unacknowledged;
(c) seconds until a new '#' subscriber received 100,000 retained messages (ours seeded with
    `manage.py seed_retained`, in spec mode RETAINED_WILDCARD_DELIVERY=true; the others seeded
    by publishing the same topics and payloads with the load generator);
(d) peak RSS (VmHWM) of the broker holding those 100,000 retained messages and 5,000 idle
    connections (measured before (c), on the same broker process).

Prints the figures, the ratios ours/mosquitto and ours/amqtt, PASS/MISS against the goals, and
CPU use of broker and generator per phase, so a reader can see which side was the limit.
--profile instead runs only our broker under cProfile (bench/profile_broker.py, event loop and
database-writer thread) for (a), (b) and (c) and prints where its time goes.

Nothing is installed by this script. Mosquitto: `apt-get install -y mosquitto`; amqtt:
`.venv/bin/pip install -e '.[bench]'` (amqtt==0.12.1), or a separate venv bench/.venv-amqtt.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import os
import platform
import pstats
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import mqtt_load
from bench.mqtt_load import (
    idle_connections_worker,
    qos0_publisher_worker,
    qos0_subscriber_worker,
    qos1_publisher_worker,
    retained_subscriber_worker,
    run_workers,
    split,
)
from retained.conf import RATE_LIMIT_FIELDS

REPO_ROOT = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1
MOSQUITTO_INSTALL = "apt-get update && apt-get install -y mosquitto"
AMQTT_INSTALL = ".venv/bin/pip install -e '.[bench]'   # amqtt==0.12.1"

# --- settings ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    quick: bool
    procs: int  # generator processes per role
    warmup: float
    window: float
    qos1_messages: int  # per broker, spread over the publishers
    qos1_publishers: int
    qos1_window: int
    qos1_time_limit: float
    retained: int
    idle: int
    seed_time_limit: float
    idle_time_limit: float
    wildcard_time_limit: float

    @classmethod
    def make(cls, args: argparse.Namespace) -> Settings:
        cpus = os.cpu_count() or 1
        quick = args.quick
        return cls(
            quick=quick,
            procs=args.procs or max(1, min(4, cpus // 2)),
            warmup=0.5 if quick else 1.0,
            window=2.0 if quick else 5.0,
            qos1_messages=40_000 if quick else 200_000,
            qos1_publishers=8,
            qos1_window=100,
            qos1_time_limit=5.0 if quick else 15.0,
            retained=args.retained or (20_000 if quick else 100_000),
            idle=args.idle or (1_000 if quick else 5_000),
            seed_time_limit=30.0 if quick else 120.0,
            idle_time_limit=60.0 if quick else 180.0,
            wildcard_time_limit=30.0 if quick else 120.0,
        )


# --- broker processes -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def read_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM (KiB) of a process."""
    values: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return values
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0])
    return values


def _stat_cpu(path: str) -> float:
    try:
        text = Path(path).read_text()
    except OSError:
        return 0.0
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def thread_cpu(pid: int) -> dict[int, float]:
    try:
        tids = [int(name) for name in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return {}
    return {tid: _stat_cpu(f"/proc/{pid}/task/{tid}/stat") for tid in tids}


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it if this benchmark dies without cleaning up."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


class BrokerProcess:
    name = "broker"
    stop_signal = signal.SIGTERM

    def __init__(self, root: Path, label: str) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.name}-{label}-", dir=root))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "broker.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str] | None:
        return None

    def prepare(self) -> None:
        pass

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 60.0) -> None:
        self.prepare()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=REPO_ROOT,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us, and we stop it in order
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            if mqtt_load.mqtt_ping(self.port):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer CONNECT in {timeout:.0f}s")

    def stop(self) -> None:
        process = self.process
        if process is None:
            return
        self.process = None
        if process.poll() is None:
            process.send_signal(self.stop_signal)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def status(self) -> dict[str, int]:
        return read_status(self.pid)

    def cpu_seconds(self) -> float:
        return _stat_cpu(f"/proc/{self.pid}/stat")

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class OurBroker(BrokerProcess):
    name = "ours"

    def __init__(
        self,
        root: Path,
        label: str,
        template: Path,
        *,
        wildcard: bool = False,
        profile_dir: Path | None = None,
    ) -> None:
        super().__init__(root, label)
        self.data_dir = self.workdir / "data"
        shutil.copytree(template, self.data_dir)
        self.wildcard = wildcard
        self.profile_dir = profile_dir

    def env(self) -> dict[str, str]:
        return our_env(self.data_dir, wildcard=self.wildcard)

    def command(self) -> list[str]:
        port = str(self.port)
        if self.profile_dir is not None:
            return [
                sys.executable,
                *("-m", "bench.profile_broker", "--mqtt-port", port),
                *("--out", str(self.profile_dir)),
            ]
        return [
            sys.executable,
            "manage.py",
            "runbroker",
            "--bind",
            "127.0.0.1",
            "--mqtt-port",
            port,
            "--mqtts-port",
            "0",
        ]

    def seed(self, count: int) -> float:
        started = time.monotonic()
        manage(self.data_dir, "seed_retained", str(count), "--prefix", "seed", timeout=600)
        return time.monotonic() - started


class Mosquitto(BrokerProcess):
    name = "mosquitto"

    def __init__(self, root: Path, label: str, executable: str) -> None:
        super().__init__(root, label)
        self.executable = executable

    def prepare(self) -> None:
        persistence = self.workdir / "persistence"
        persistence.mkdir()
        user = pwd.getpwuid(os.getuid()).pw_name  # as root, mosquitto would switch users
        config = "\n".join(
            [
                f"listener {self.port} 127.0.0.1",
                "allow_anonymous true",
                "persistence true",
                f"persistence_location {persistence}/",
                "autosave_interval 2",
                "max_connections -1",
                f"user {user}",
                "log_dest stderr",
                "log_type error",
                "log_type warning",
                "",
            ]
        )
        (self.workdir / "mosquitto.conf").write_text(config)

    def command(self) -> list[str]:
        return [self.executable, "-c", str(self.workdir / "mosquitto.conf")]


class Amqtt(BrokerProcess):
    name = "amqtt"
    stop_signal = signal.SIGINT  # its CLI shuts down cleanly on KeyboardInterrupt only

    def __init__(self, root: Path, label: str, executable: str) -> None:
        super().__init__(root, label)
        self.executable = executable

    def prepare(self) -> None:
        config = "\n".join(
            [
                "listeners:",
                "  default:",
                "    type: tcp",
                f"    bind: 127.0.0.1:{self.port}",
                "plugins:",
                "  amqtt.plugins.authentication.AnonymousAuthPlugin:",
                "    allow_anonymous: true",
                "",
            ]
        )
        (self.workdir / "amqtt.yaml").write_text(config)

    def command(self) -> list[str]:
        return [self.executable, "-c", str(self.workdir / "amqtt.yaml")]


def our_env(data_dir: Path, *, wildcard: bool = False) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RETAINED_", "DATABASE_URL", "SECRET_KEY", "DJANGO_SETTINGS"))
    }
    env.update({"RETAINED_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"})
    # Raw throughput: AWS's rate limits (500 retained publishes/s, 1/s per topic) off.
    env.update({f"RETAINED_{name.upper()}": "0" for name in RATE_LIMIT_FIELDS})
    if wildcard:
        env["RETAINED_WILDCARD_DELIVERY"] = "true"
    return env


def manage(data_dir: Path, *args: str, timeout: float = 300) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=our_env(data_dir),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


ALLOW_ALL_POLICY = (
    '{"Version": "2012-10-17", "Statement": '
    '[{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}'
)


def allow_anonymous(data_dir: Path) -> None:
    """Where policies are enforced, anonymous loopback clients need one: attach an allow-all
    policy (what `serve` seeds on first start as 'anonymous-local'). runbroker alone seeds
    none, so without this a fresh data dir refuses the generator's CONNECTs."""
    document = data_dir / "bench-policy.json"
    document.write_text(ALLOW_ALL_POLICY)
    try:
        manage(data_dir, "create_policy", "bench-anonymous", str(document))
    except RuntimeError as error:
        if "Unknown command" in str(error):
            return  # a version without policies: anonymous loopback clients may do anything
        raise
    manage(data_dir, "attach_policy", "bench-anonymous", "--anonymous")


def git_revision() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "retained", "console"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"
    return head + (" + uncommitted changes in retained/ or console/" if dirty else "")


def find_mosquitto() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)),
        None,
    )


def find_amqtt() -> str | None:
    for candidate in (
        Path(sys.executable).parent / "amqtt",
        REPO_ROOT / "bench" / ".venv-amqtt" / "bin" / "amqtt",
    ):
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def tool_version(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return "?"
    text = (done.stdout + done.stderr).strip().splitlines()
    return text[0].strip() if text else "?"


# --- phases -----------------------------------------------------------------------------------


@dataclass
class Outcome:
    value: float | None  # the figure (None: not measured)
    info: str = ""  # one line of context: CPU, caps, drops
    notes: list[str] = field(default_factory=list)  # caps and failures, printed under the table


class CpuWatch:
    """CPU seconds the broker (and, for ours, each of its threads) used between two points."""

    def __init__(self, broker: BrokerProcess) -> None:
        self.broker = broker
        self.start_cpu = 0.0
        self.start_threads: dict[int, float] = {}
        self.started = 0.0

    def begin(self) -> None:
        self.start_cpu = self.broker.cpu_seconds()
        self.start_threads = thread_cpu(self.broker.pid)
        self.started = time.monotonic()

    def summary(self) -> str:
        wall = max(time.monotonic() - self.started, 1e-9)
        used = self.broker.cpu_seconds() - self.start_cpu
        text = f"broker CPU {used / wall:.0%}"
        if isinstance(self.broker, OurBroker):
            now = thread_cpu(self.broker.pid)
            pid = self.broker.pid
            main = now.get(pid, 0.0) - self.start_threads.get(pid, 0.0)
            others = sum(v - self.start_threads.get(t, 0.0) for t, v in now.items() if t != pid)
            text += f" (event loop {main / wall:.0%}, other threads {others / wall:.0%})"
        return text


def generator_cpu(results: list[dict[str, Any]], wall: float) -> str:
    used = sum(r.get("cpu_seconds", 0.0) for r in results)
    return f"generator CPU {used / max(wall, 1e-9):.0%} over {len(results)} procs"


def _errors(name: str, phase: str, errors: list[str]) -> list[str]:
    return [f"{name} {phase}: {error.strip().splitlines()[-1]}" for error in errors]


def phase_qos0(broker: BrokerProcess, pairs: int, settings: Settings) -> Outcome:
    topics = [f"bench/a/{i:02d}" for i in range(pairs)]
    subscribers = [(f"sub-{i}", topic) for i, topic in enumerate(topics)]
    publishers = [(f"pub-{i}", topic) for i, topic in enumerate(topics)]
    common = {"port": broker.port, "warmup": settings.warmup, "window": settings.window}
    jobs: list[tuple[mqtt_load.Worker, dict[str, Any]]] = [
        (qos0_subscriber_worker, {**common, "subscribers": chunk})
        for chunk in split(subscribers, settings.procs)
    ]
    jobs += [
        (
            qos0_publisher_worker,
            {**common, "publishers": chunk, "payload": b"x" * 32, "batch_bytes": 1 << 16},
        )
        for chunk in split(publishers, settings.procs)
    ]
    watch = CpuWatch(broker)
    run = run_workers(
        jobs,
        setup_timeout=30,
        run_timeout=settings.warmup + settings.window + 20,
        before_go=watch.begin,
    )
    cpu = watch.summary()
    received = [r for r in run.results if "per_connection" in r]
    sent = [r for r in run.results if "errors" in r]
    notes = _errors(broker.name, f"(a) {pairs}->{pairs}", run.errors)
    if run.errors or not received:
        return Outcome(None, "failed", notes)
    rate = sum(r["count"] / r["seconds"] for r in received if r["seconds"])
    sent_rate = sum(r["count"] / r["seconds"] for r in sent if r["seconds"])
    per_conn = [n for r in received for n in r["per_connection"]]
    closed = sum(r["closed_by_broker"] for r in received)
    info = (
        f"publishers wrote {sent_rate:,.0f}/s into their sockets (MBs of kernel buffer"
        f" hide the broker's read rate);"
        f" per subscriber min {min(per_conn):,} max {max(per_conn):,}; {cpu};"
        f" {generator_cpu(run.results, run.wall_seconds)}"
    )
    if closed:
        notes.append(f"{broker.name} (a) {pairs}->{pairs}: {closed} subscriber(s) disconnected")
    return Outcome(rate, info, notes)


def qos1_publish(
    broker: BrokerProcess,
    *,
    prefix: str,
    total: int,
    publishers: int,
    window: int,
    time_limit: float,
    procs: int,
    client_prefix: str,
) -> tuple[mqtt_load.WorkerRun, str]:
    """`total` QoS 1 retained publishes on topics seed_topic(prefix, n), n = 0..total-1."""
    per = -(-total // publishers)
    specs = [
        (f"{client_prefix}-{i}", prefix, i * per, min(per, total - i * per))
        for i in range(publishers)
        if i * per < total
    ]
    jobs: list[tuple[mqtt_load.Worker, dict[str, Any]]] = [
        (
            qos1_publisher_worker,
            {
                "port": broker.port,
                "publishers": chunk,
                "window": window,
                "retain": True,
                "time_limit": time_limit,
            },
        )
        for chunk in split(specs, procs)
    ]
    watch = CpuWatch(broker)
    run = run_workers(jobs, setup_timeout=60, run_timeout=time_limit + 20, before_go=watch.begin)
    return run, watch.summary()


def qos1_rate(run: mqtt_load.WorkerRun) -> tuple[int, int, float]:
    acked = sum(r["acked"] for r in run.results)
    wanted = sum(r["wanted"] for r in run.results)
    if not run.results:
        return 0, 0, 0.0
    start = min(r["start"] for r in run.results)
    end = max(r["last_ack"] for r in run.results)
    return acked, wanted, max(end - start, 1e-9)


def phase_qos1(broker: BrokerProcess, settings: Settings) -> Outcome:
    run, cpu = qos1_publish(
        broker,
        prefix="bench/b",
        total=settings.qos1_messages,
        publishers=settings.qos1_publishers,
        window=settings.qos1_window,
        time_limit=settings.qos1_time_limit,
        procs=settings.procs,
        client_prefix="qos1",
    )
    notes = _errors(broker.name, "(b)", run.errors)
    acked, wanted, seconds = qos1_rate(run)
    if not acked:
        return Outcome(None, "failed", notes)
    closed = sum(r["closed_by_broker"] for r in run.results)
    if closed:
        notes.append(f"{broker.name} (b): broker closed {closed} publisher connection(s)")
    capped = "" if acked >= wanted else f" (stopped at the {settings.qos1_time_limit:.0f}s cap)"
    info = (
        f"{acked:,} of {wanted:,} acked in {seconds:.1f}s{capped}; {cpu};"
        f" {generator_cpu(run.results, run.wall_seconds)}"
    )
    return Outcome(acked / seconds, info, notes)


def seed_by_publishing(broker: BrokerProcess, settings: Settings) -> tuple[int, str, list[str]]:
    run, cpu = qos1_publish(
        broker,
        prefix="seed",
        total=settings.retained,
        publishers=4,
        window=100,
        time_limit=settings.seed_time_limit,
        procs=settings.procs,
        client_prefix="seeder",
    )
    acked, wanted, seconds = qos1_rate(run)
    notes = _errors(broker.name, "seeding", run.errors)
    if acked < wanted:
        notes.append(
            f"{broker.name}: seeding capped at {settings.seed_time_limit:.0f}s:"
            f" {acked:,} of {wanted:,} retained messages stored; (c)/(d) use {acked:,}"
        )
    return acked, f"seeded {acked:,} by publishing in {seconds:.1f}s; {cpu}", notes


def phase_idle(broker: BrokerProcess, settings: Settings) -> tuple[Outcome, int]:
    samples: list[dict[str, int]] = []
    baseline = broker.status().get("VmRSS", 0) / 1024

    def measure() -> None:
        time.sleep(1.0)
        for _ in range(5):
            samples.append(broker.status())
            time.sleep(0.2)

    counts = split(list(range(settings.idle)), settings.procs)
    jobs: list[tuple[mqtt_load.Worker, dict[str, Any]]] = [
        (
            idle_connections_worker,
            {
                "port": broker.port,
                "count": len(chunk),
                "prefix": f"idle{j}",
                "batch": 100,
                "time_limit": settings.idle_time_limit,
            },
        )
        for j, chunk in enumerate(counts)
    ]
    run = run_workers(
        jobs,
        setup_timeout=settings.idle_time_limit + 30,
        run_timeout=30,
        before_go=measure,
    )
    notes = _errors(broker.name, "(d)", run.errors)
    connected = sum(r["connected"] for r in run.results)
    still_open = sum(r["still_open"] for r in run.results)
    seconds = max((r["connect_seconds"] for r in run.results), default=0.0)
    if not samples:
        return Outcome(None, "failed", notes), connected
    hwm = max(s.get("VmHWM", 0) for s in samples) / 1024
    rss = max(s.get("VmRSS", 0) for s in samples) / 1024
    if connected < settings.idle:
        notes.append(f"{broker.name} (d): only {connected:,} of {settings.idle:,} connected")
    if still_open < connected:
        notes.append(f"{broker.name} (d): {connected - still_open} idle connection(s) dropped")
    per_connection = (rss - baseline) * 1024 / connected if connected else 0.0
    info = (
        f"{connected:,} connected in {seconds:.1f}s; VmRSS {baseline:.0f} MiB before them,"
        f" {rss:.0f} MiB with them (~{per_connection:.1f} KiB each); VmHWM {hwm:.0f} MiB"
    )
    return Outcome(hwm, info, notes), connected


def phase_wildcard(broker: BrokerProcess, expected: int, settings: Settings) -> Outcome:
    args = {
        "port": broker.port,
        "client_id": "wildcard",
        "filter": "#",
        "qos": 0,
        "expected": expected,
        "time_limit": settings.wildcard_time_limit,
    }
    watch = CpuWatch(broker)
    run = run_workers(
        [(retained_subscriber_worker, args)],
        setup_timeout=30,
        run_timeout=settings.wildcard_time_limit + 20,
        before_go=watch.begin,
    )
    cpu = watch.summary()
    notes = _errors(broker.name, "(c)", run.errors)
    if not run.results:
        return Outcome(None, "failed", notes)
    result = run.results[0]
    after = broker.status()
    hwm = after.get("VmHWM", 0) / 1024
    first = result["first_after"]
    first_text = f"first after {first * 1000:.0f} ms" if first is not None else "none arrived"
    if result["seconds"] is None:
        notes.append(
            f"{broker.name} (c): only {result['received']:,} of {expected:,} retained messages"
            f" arrived in {result['waited']:.0f}s"
            + (" (the broker closed the connection)" if result["closed_by_broker"] else "")
        )
        return Outcome(None, f"{result['received']:,} received; {first_text}; {cpu}", notes)
    info = f"{expected:,} received; {first_text}; {cpu}; VmHWM after (c) {hwm:.0f} MiB"
    return Outcome(float(result["seconds"]), info, notes)


# --- one broker through every phase ---------------------------------------------------------

PHASES = ("a1", "a10", "b", "c", "d")


def bench_one(
    factory: Callable[[str, bool], BrokerProcess],
    name: str,
    settings: Settings,
    phases: set[str],
    log: Callable[[str], None],
) -> dict[str, Outcome]:
    outcomes: dict[str, Outcome] = {}

    def run_phase(label: str, body: Callable[[BrokerProcess], None], wildcard: bool) -> None:
        broker = factory(label, wildcard)
        try:
            broker.start()
            body(broker)
            if not broker.alive():
                outcomes.setdefault(label, Outcome(None)).notes.append(
                    f"{name}: broker process died during {label}:\n{broker.log_tail()}"
                )
        except Exception as error:
            log(f"  {name} {label}: {type(error).__name__}: {error}")
            outcomes.setdefault(label, Outcome(None, "failed")).notes.append(
                f"{name} {label}: {type(error).__name__}: {str(error).splitlines()[0]}"
            )
        finally:
            broker.stop()
            shutil.rmtree(broker.workdir, ignore_errors=True)

    for pairs in (1, 10):
        label = f"a{pairs}"
        if label not in phases:
            continue

        def qos0(broker: BrokerProcess, pairs: int = pairs, label: str = label) -> None:
            outcomes[label] = phase_qos0(broker, pairs, settings)
            log(
                f"  {name} (a) {pairs}->{pairs}: {fmt_rate(outcomes[label].value)} msg/s;"
                f" {outcomes[label].info}"
            )

        run_phase(label, qos0, False)

    if "b" in phases:

        def qos1(broker: BrokerProcess) -> None:
            outcomes["b"] = phase_qos1(broker, settings)
            log(f"  {name} (b): {fmt_rate(outcomes['b'].value)} PUBACK/s; {outcomes['b'].info}")

        run_phase("b", qos1, False)

    if phases & {"c", "d"}:

        def retained(broker: BrokerProcess) -> None:
            expected = settings.retained
            seed_notes: list[str] = []
            if isinstance(broker, OurBroker):
                seed_info = f"seeded {expected:,} with manage.py seed_retained beforehand"
            else:
                expected, seed_info, seed_notes = seed_by_publishing(broker, settings)
            log(f"  {name}: {seed_info}")
            if "d" in phases:
                outcome, _ = phase_idle(broker, settings)
                outcome.notes[:0] = seed_notes
                outcomes["d"] = outcome
                log(f"  {name} (d): {fmt_mib(outcome.value)}; {outcome.info}")
                time.sleep(2.0)  # let the broker finish closing the idle connections
            if "c" in phases:
                outcome = phase_wildcard(broker, expected, settings)
                if "d" not in phases:
                    outcome.notes[:0] = seed_notes
                outcomes["c"] = outcome
                log(f"  {name} (c): {fmt_seconds(outcome.value)}; {outcome.info}")

        run_phase("cd", retained, True)
        if "cd" in outcomes:  # a failure before (c)/(d) produced anything
            failed = outcomes.pop("cd")
            for label in ("c", "d"):
                if label in phases:
                    outcomes.setdefault(label, Outcome(None, "failed", failed.notes))
    return outcomes


# --- reporting --------------------------------------------------------------------------------


def fmt_rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def fmt_seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


def fmt_mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f} MiB"


def ratio(ours: float | None, other: float | None) -> float | None:
    if ours is None or other is None or other == 0:
        return None
    return ours / other


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        cells = [
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        ]
        lines.append("| " + " | ".join(cells) + " |")
        if index == 0:
            lines.append(
                "|"
                + "|".join("-" * (w + 1) + (":" if i else "-") for i, w in enumerate(widths))
                + "|"
            )
    return "\n".join(lines)


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def report(results: dict[str, dict[str, Outcome]], settings: Settings) -> str:
    def value(broker: str, phase: str) -> float | None:
        outcome = results.get(broker, {}).get(phase)
        return outcome.value if outcome else None

    n = f"{settings.retained:,}"
    labels = {
        "a1": ("(a) QoS 0 msg/s received, 1 pub -> 1 sub", fmt_rate),
        "a10": ("(a) QoS 0 msg/s received, 10 pubs -> 10 subs", fmt_rate),
        "b": ("(b) QoS 1 retained PUBACKs/s, distinct topics", fmt_rate),
        "c": (f"(c) new '#' subscriber gets {n} retained (s)", fmt_seconds),
        "d": (f"(d) peak RSS, {n} retained + {settings.idle:,} idle conns", fmt_mib),
    }
    rows = [["figure", "ours", "mosquitto", "amqtt", "ours/mosquitto", "ours/amqtt"]]
    for phase, (label, fmt) in labels.items():
        if not any(phase in outcomes for outcomes in results.values()):
            continue
        ours = value("ours", phase)
        rows.append(
            [
                label,
                fmt(ours),
                fmt(value("mosquitto", phase)),
                fmt(value("amqtt", phase)),
                fmt_ratio(ratio(ours, value("mosquitto", phase))),
                fmt_ratio(ratio(ours, value("amqtt", phase))),
            ]
        )

    goals = [["goal", "measured", "result"]]

    def at_least(phase: str, other: str, factor: float, text: str) -> None:
        r = ratio(value("ours", phase), value(other, phase))
        goals.append([text, fmt_ratio(r), verdict(None if r is None else r >= factor)])

    def at_most(phase: str, other: str, factor: float, text: str) -> None:
        r = ratio(value("ours", phase), value(other, phase))
        goals.append([text, fmt_ratio(r), verdict(None if r is None else r <= factor)])

    at_least("a1", "mosquitto", 0.5, "(a) 1->1: ours >= 0.5x mosquitto")
    at_least("a1", "amqtt", 5, "(a) 1->1: ours >= 5x amqtt")
    at_least("a10", "mosquitto", 0.5, "(a) 10->10: ours >= 0.5x mosquitto")
    at_least("a10", "amqtt", 5, "(a) 10->10: ours >= 5x amqtt")
    b = value("ours", "b")
    goals.append(
        ["(b) ours >= 20,000 PUBACKs/s", fmt_rate(b), verdict(None if b is None else b >= 20_000)]
    )
    at_most("c", "mosquitto", 2, "(c) ours <= 2x mosquitto's time")
    at_most("d", "mosquitto", 2, "(d) ours <= 2x mosquitto's peak RSS")

    details = []
    for broker, outcomes in results.items():
        for phase, outcome in outcomes.items():
            if outcome.info:
                details.append(f"- {broker} {phase}: {outcome.info}")
    notes = [note for outcomes in results.values() for o in outcomes.values() for note in o.notes]
    out = [table(rows), "", table(goals), "", "Details:", *details]
    if notes:
        out += ["", "Caps and failures:", *(f"- {note}" for note in notes)]
    return "\n".join(out)


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def machine_line(versions: dict[str, str]) -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    parts = [
        datetime.date.today().isoformat(),
        f"nproc {os.cpu_count()}",
        cpu,
        f"Python {platform.python_version()}",
        platform.platform(),
        f"loadavg {load_average()}",
        f"commit {git_revision()}",
        *(f"{name}: {version}" for name, version in versions.items()),
    ]
    return "; ".join(parts)


# --- profile mode -----------------------------------------------------------------------------


def print_profile(path: Path, title: str, limit: int) -> None:
    if not path.exists():
        print(f"\n{title}: no profile written ({path.name})")
        return
    stats = pstats.Stats(str(path))
    total = stats.total_tt  # type: ignore[attr-defined]
    print(f"\n{title} -- {total:.1f}s profiled; top {limit} by own time (tottime)")
    print(f"{'tottime':>8} {'%':>5} {'cumtime':>8} {'calls':>10}  function")
    entries = stats.stats  # type: ignore[attr-defined]
    rows = sorted(entries.items(), key=lambda item: item[1][2], reverse=True)[:limit]
    for (filename, line, func), (_, calls, tottime, cumtime, _) in rows:
        short = filename
        for marker in ("/site-packages/", str(REPO_ROOT) + "/", "/lib/python3.11/"):
            if marker in short:
                short = short.split(marker, 1)[1]
        print(
            f"{tottime:8.2f} {tottime / total:5.1%} {cumtime:8.2f} {calls:10,}  "
            f"{short}:{line}({func})"
        )


def run_profile(settings: Settings, root: Path, template: Path, phases: set[str]) -> None:
    print("Profiling our broker under cProfile (rates are slowed down by the profiler).")
    for label in ("a1", "a10", "b", "c"):
        if label not in phases:
            continue
        profile_dir = root / f"profile-{label}"
        broker = OurBroker(root, label, template, wildcard=label == "c", profile_dir=profile_dir)
        try:
            if label == "c":
                broker.seed(settings.retained)
            broker.start()
            if label in ("a1", "a10"):
                pairs = 1 if label == "a1" else 10
                outcome = phase_qos0(broker, pairs, settings)
                print(
                    f"\n== ({label}) QoS 0 {pairs}->{pairs}: {fmt_rate(outcome.value)} msg/s;"
                    f" {outcome.info}"
                )
            elif label == "b":
                outcome = phase_qos1(broker, settings)
                print(
                    f"\n== (b) QoS 1 retained: {fmt_rate(outcome.value)} PUBACK/s; {outcome.info}"
                )
            else:
                outcome = phase_wildcard(broker, settings.retained, settings)
                print(f"\n== (c) '#' subscriber: {fmt_seconds(outcome.value)}; {outcome.info}")
            for note in outcome.notes:
                print(f"   note: {note}")
        finally:
            broker.stop()
        print_profile(profile_dir / "loop.prof", f"[{label}] event-loop thread", 25)
        print_profile(profile_dir / "writer.prof", f"[{label}] database-writer thread", 12)
        shutil.rmtree(broker.workdir, ignore_errors=True)


# --- main -------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description="MQTT broker benchmark (see module docstring)")
    parser.add_argument("--quick", action="store_true", help="short windows, 20k retained, 1k idle")
    parser.add_argument("--brokers", default="ours,mosquitto,amqtt")
    parser.add_argument("--phases", default=",".join(PHASES), help="any of a1,a10,b,c,d")
    parser.add_argument("--procs", type=int, default=0, help="generator processes per role")
    parser.add_argument("--retained", type=int, default=0, help="retained messages for (c)/(d)")
    parser.add_argument("--idle", type=int, default=0, help="idle connections for (d)")
    parser.add_argument("--profile", action="store_true", help="profile our broker instead")
    args = parser.parse_args()
    settings = Settings.make(args)
    phases = {p.strip() for p in args.phases.split(",") if p.strip()}
    wanted = [b.strip() for b in args.brokers.split(",") if b.strip()]
    signal.signal(signal.SIGTERM, _interrupt)  # stop brokers, remove temp dirs (finally)
    fd_limit = mqtt_load.raise_fd_limit()  # children (brokers, generator) inherit it
    if "d" in phases and fd_limit < settings.idle + 1000:
        print(f"warning: open-file limit {fd_limit} is low for {settings.idle} connections")

    mosquitto = find_mosquitto()
    amqtt = find_amqtt()
    if "mosquitto" in wanted and mosquitto is None:
        print(f"mosquitto is not installed; skipping it. Install: {MOSQUITTO_INSTALL}")
        wanted.remove("mosquitto")
    if "amqtt" in wanted and amqtt is None:
        print(f"amqtt is not installed; skipping it. Install: {AMQTT_INSTALL}")
        wanted.remove("amqtt")
    versions = {}
    if mosquitto and "mosquitto" in wanted:
        versions["mosquitto"] = tool_version([mosquitto, "-h"]).removeprefix("mosquitto ")
    if amqtt and "amqtt" in wanted:
        versions["amqtt"] = tool_version([amqtt, "--version"])

    root = Path(tempfile.mkdtemp(prefix="bench-broker-"))
    try:
        print(f"Machine: {machine_line(versions)}")
        print("Our broker: rate limits off (RETAINED_*_PER_SECOND=0), to measure raw throughput")
        print(
            f"Generator: {settings.procs} process(es) per role; scanner ceiling"
            f" {mqtt_load.scanner_speed():,.0f} PUBLISH/s per process; open-file limit {fd_limit}"
        )
        template = root / "template-data"
        started = time.monotonic()
        manage(template, "migrate", "--noinput")
        allow_anonymous(template)
        print(f"(migrated a template data dir in {time.monotonic() - started:.1f}s)")
        if args.profile:
            run_profile(settings, root, template, phases)
            return 0
        seed_template = None
        if "ours" in wanted and phases & {"c", "d"}:
            seed_template = root / "template-seeded"
            shutil.copytree(template, seed_template)
            started = time.monotonic()
            manage(seed_template, "seed_retained", str(settings.retained), "--prefix", "seed")
            print(f"(seed_retained {settings.retained:,}: {time.monotonic() - started:.1f}s)")

        def factory_for(name: str) -> Callable[[str, bool], BrokerProcess]:
            def make(label: str, wildcard: bool) -> BrokerProcess:
                if name == "ours":
                    source = seed_template if label == "cd" and seed_template else template
                    return OurBroker(root, label, source, wildcard=wildcard)
                if name == "mosquitto":
                    assert mosquitto is not None
                    return Mosquitto(root, label, mosquitto)
                assert amqtt is not None
                return Amqtt(root, label, amqtt)

            return make

        results: dict[str, dict[str, Outcome]] = {}
        for name in wanted:
            print(f"\n[{name}]", flush=True)
            results[name] = bench_one(
                factory_for(name), name, settings, phases, lambda line: print(line, flush=True)
            )
        mode = "--quick" if settings.quick else "full run"
        print(f"\n== Broker benchmark ({mode}) ==")
        print(f"Machine: {machine_line(versions)}\n")
        print(report(results, settings))
        return 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as interrupt:
        print(f"\ninterrupted ({interrupt or 'Ctrl-C'}); brokers stopped, temp dirs removed")
        sys.exit(130)
