"""Throughput benchmark of the data-plane API against a real `manage.py serve` process.

    .venv/bin/python -m bench.api [--messages 100000] [--seconds 10] [--clients N]

Seeds a fresh data dir with --messages retained messages, starts the server on free loopback
ports, then drives it from --clients worker processes (each with --connections keep-alive
HTTP connections, one thread each) with real SigV4-signed requests, signed with botocore
exactly as boto3's `iot-data` client signs them:

* GET /healthz (no auth, trivial) -- the ceiling of the HTTP stack and of the load generator;
* GetRetainedMessage on random seeded topics;
* ListRetainedMessages, maxResults=200, first page and pages deep in the keyspace (real
  nextTokens, collected by walking the whole keyspace first).

Prints requests/s, p50/p95/p99 latency, the ratio to AWS IoT Core's default quotas, and the CPU
time used by the server, the generator and the rest of the machine, to show which was the limit.
This is a benchmark, not a test: it asserts nothing, but says loudly when requests failed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import platform
import random
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.utils import percent_encode, percent_encode_sequence

from tests.support.server import NO_RATE_LIMITS, ServerProcess, make_server

REGION = "us-east-1"
SERVICE = "iotdata"
PAGE_SIZE = 200
# AWS IoT Core default quotas (requests per second, per account), data plane.
AWS_QUOTA = {"GetRetainedMessage": 500, "ListRetainedMessages": 10}
MAX_ERROR_SAMPLES = 5
HEALTH_PHASE = "GET /healthz (no auth)"
GET_PHASE = "GetRetainedMessage"
LIST_PHASE = f"ListRetainedMessages ({PAGE_SIZE}/page)"

# A pre-built request: (path with query, headers). The method is always GET.
Request = tuple[str, dict[str, str]]


# --- signing ----------------------------------------------------------------------------------


def sign_get(base_url: str, host: str, path: str, credentials: Credentials) -> Request:
    """A GET request signed the way botocore signs `iot-data` calls (SigV4, header auth)."""
    request = AWSRequest(method="GET", url=base_url + path, data=b"")
    SigV4Auth(credentials, SERVICE, REGION).add_auth(request)
    prepared = request.prepare()
    headers = {name: str(value) for name, value in prepared.headers.items()}
    headers["Host"] = host  # what SigV4Auth signed; stops http.client adding its own
    return path, headers


def get_path(topic: str) -> str:
    # The topic is one URI label: botocore percent-encodes it whole, "/" becoming "%2F".
    return "/retainedMessage/" + percent_encode(topic)


def list_path(next_token: str | None) -> str:
    params: dict[str, Any] = {"maxResults": PAGE_SIZE}
    if next_token:
        params["nextToken"] = next_token
    return "/retainedMessage?" + percent_encode_sequence(params)


def seeded_topic(n: int) -> str:
    # The naming of `manage.py seed_retained` (default prefix).
    return f"seed/{n // 1000:04d}/{n:07d}"


# --- the load generator (runs in worker processes) -------------------------------------------


@dataclass
class WorkerResult:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0
    cpu_seconds: float = 0.0


def _connection_loop(
    host: str,
    port: int,
    requests: list[Request],
    seed: int,
    deadline_holder: list[float],
    go: threading.Event,
    result: WorkerResult,
    lock: threading.Lock,
) -> None:
    rng = random.Random(seed)
    latencies: list[float] = []
    errors = 0
    samples: list[str] = []
    connection = http.client.HTTPConnection(host, port, timeout=30)
    connection.connect()
    go.wait()
    deadline = deadline_holder[0]
    perf = time.perf_counter
    count = len(requests)
    while True:
        path, headers = requests[rng.randrange(count)]
        began = perf()
        if began >= deadline:
            break
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            body = response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as error:
            errors += 1
            if len(samples) < MAX_ERROR_SAMPLES:
                samples.append(f"{type(error).__name__}: {error}")
            connection.close()
            connection = http.client.HTTPConnection(host, port, timeout=30)
            continue
        latencies.append(perf() - began)
        if status != 200:
            errors += 1
            if len(samples) < MAX_ERROR_SAMPLES:
                samples.append(f"HTTP {status} {path[:80]}: {body[:200]!r}")
    connection.close()
    with lock:
        result.latencies.extend(latencies)
        result.errors += errors
        result.error_samples.extend(samples[: MAX_ERROR_SAMPLES - len(result.error_samples)])


def worker_main(
    index: int,
    host: str,
    port: int,
    requests: list[Request],
    connections: int,
    seconds: float,
    ready: Any,
    start: Any,
    results: Any,
) -> None:
    """One load-generator process: `connections` threads, one keep-alive connection each."""
    result = WorkerResult()
    lock = threading.Lock()
    go = threading.Event()
    deadline_holder = [0.0]
    threads = [
        threading.Thread(
            target=_connection_loop,
            args=(host, port, requests, index * 1000 + n, deadline_holder, go, result, lock),
            daemon=True,
        )
        for n in range(connections)
    ]
    for thread in threads:
        thread.start()
    ready.put(index)
    start.wait()
    cpu_before = time.process_time()
    result.started = time.perf_counter()
    deadline_holder[0] = result.started + seconds
    go.set()
    for thread in threads:
        thread.join()
    result.finished = time.perf_counter()
    result.cpu_seconds = time.process_time() - cpu_before
    results.put(result)


# --- one measured phase ----------------------------------------------------------------------


@dataclass
class PhaseResult:
    name: str
    requests: int
    errors: int
    error_samples: list[str]
    wall_seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    server_cpu_seconds: float
    generator_cpu_seconds: float
    machine_busy_seconds: float  # all CPUs, every process (NaN when unknown)

    @property
    def rate(self) -> float:
        return self.requests / self.wall_seconds if self.wall_seconds else 0.0


def _percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, int(fraction * len(sorted_values)))
    return sorted_values[index]


def _process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc); NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def _machine_busy_seconds() -> float:
    """CPU seconds all processes have used since boot, summed over CPUs (Linux); NaN elsewhere."""
    try:
        fields = [
            int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        ]
    except (OSError, ValueError):
        return float("nan")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    # guest time is already counted in user time
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def run_phase(
    name: str,
    server: ServerProcess,
    requests: list[Request],
    *,
    clients: int,
    connections: int,
    seconds: float,
) -> PhaseResult:
    assert server.process is not None
    context = multiprocessing.get_context("spawn")
    ready = context.Queue()
    results = context.Queue()
    start = context.Event()
    workers = [
        context.Process(
            target=worker_main,
            args=(
                index,
                "127.0.0.1",
                server.http_port,
                requests,
                connections,
                seconds,
                ready,
                start,
                results,
            ),
            daemon=True,
        )
        for index in range(clients)
    ]
    for worker in workers:
        worker.start()
    try:
        for _ in workers:
            ready.get(timeout=60)
        server_cpu_before = _process_cpu_seconds(server.process.pid)
        machine_before = _machine_busy_seconds()
        start.set()
        collected: list[WorkerResult] = [results.get(timeout=seconds + 120) for _ in workers]
        server_cpu = _process_cpu_seconds(server.process.pid) - server_cpu_before
        machine_busy = _machine_busy_seconds() - machine_before
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.terminate()
    latencies = sorted(value for result in collected for value in result.latencies)
    wall = max(r.finished for r in collected) - min(r.started for r in collected)
    samples = [sample for result in collected for sample in result.error_samples]
    return PhaseResult(
        name=name,
        requests=len(latencies),
        errors=sum(result.errors for result in collected),
        error_samples=samples[:MAX_ERROR_SAMPLES],
        wall_seconds=wall,
        p50_ms=_percentile(latencies, 0.50) * 1000,
        p95_ms=_percentile(latencies, 0.95) * 1000,
        p99_ms=_percentile(latencies, 0.99) * 1000,
        server_cpu_seconds=server_cpu,
        generator_cpu_seconds=sum(result.cpu_seconds for result in collected),
        machine_busy_seconds=machine_busy,
    )


# --- setup -----------------------------------------------------------------------------------


def create_bench_credentials(server: ServerProcess) -> Credentials:
    result = server.manage("create_access_key", "bench", "--create-user")
    access_key_id, secret = result.stdout.strip().splitlines()[-1].split()
    return Credentials(access_key_id, secret)


def walk_page_tokens(server: ServerProcess, credentials: Credentials) -> tuple[list[str], int]:
    """Every nextToken of a full ListRetainedMessages walk (signed requests), and the count."""
    host = f"127.0.0.1:{server.http_port}"
    connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=30)
    tokens: list[str] = []
    listed = 0
    token: str | None = None
    try:
        while True:
            path, headers = sign_get(server.base_url, host, list_path(token), credentials)
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"listing failed: HTTP {response.status}: {body[:300]!r}")
            page = json.loads(body)
            listed += len(page["retainedTopics"])
            token = page.get("nextToken")
            if not token:
                return tokens, listed
            tokens.append(token)
    finally:
        connection.close()


def _dir_size(path: Path) -> int:
    return sum(item.stat().st_size for item in path.glob("db.sqlite3*") if item.is_file())


def machine_facts() -> list[str]:
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return [
        f"nproc: {usable} (os.cpu_count {os.cpu_count()}){' - ' + cpu_model if cpu_model else ''}",
        f"python: {platform.python_implementation()} {platform.python_version()} "
        f"on {platform.system()} {platform.release()}",
    ]


# --- report ----------------------------------------------------------------------------------


def _per_second(seconds: float, phase: PhaseResult) -> float:
    return seconds / phase.wall_seconds if phase.wall_seconds else float("nan")


def print_report(
    phases: list[PhaseResult],
    *,
    facts: list[str],
    store_lines: list[str],
    clients: int,
    connections: int,
) -> None:
    print()
    print("=" * 108)
    print("Data-plane API benchmark (one `manage.py serve` process, SQLite, loopback)")
    print("=" * 108)
    for line in facts + store_lines:
        print("  " + line)
    print(
        f"  load: {clients} worker processes x {connections} keep-alive connections "
        f"= {clients * connections} requests in flight, SigV4-signed by botocore"
    )
    print()
    header = (
        f"{'endpoint':<34}{'req/s':>8}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}"
        f"{'requests':>10}{'errors':>8}{'server CPU':>12}{'gen CPU':>9}{'other CPU':>11}"
    )
    print(header)
    print("-" * len(header))
    busiest_other = 0.0
    for phase in phases:
        server = _per_second(phase.server_cpu_seconds, phase)
        generator = _per_second(phase.generator_cpu_seconds, phase)
        other = max(
            0.0,
            _per_second(
                phase.machine_busy_seconds - phase.server_cpu_seconds - phase.generator_cpu_seconds,
                phase,
            ),
        )
        if other == other:  # not NaN
            busiest_other = max(busiest_other, other)
        print(
            f"{phase.name:<34}{phase.rate:>8.0f}{phase.p50_ms:>8.1f}{phase.p95_ms:>8.1f}"
            f"{phase.p99_ms:>8.1f}{phase.requests:>10}{phase.errors:>8}"
            f"{server:>12.0%}{generator:>9.0%}{other:>11.0%}"
        )
    print(
        "  CPU columns: CPU-seconds per wall-second (100% = one core busy). server = the serve\n"
        "  process, gen = all load-generator processes, other = everything else on the machine."
    )
    print()
    by_name = {phase.name: phase for phase in phases}
    for name, (api, quota) in zip((GET_PHASE, LIST_PHASE), AWS_QUOTA.items(), strict=True):
        measured = by_name.get(name)
        if measured is not None:
            print(
                f"{api}: {measured.rate:.0f} req/s = {measured.rate / quota:.2f}x "
                f"AWS default quota ({quota}/s)"
            )
    health = by_name.get(HEALTH_PHASE)
    if health is not None:
        busiest = max(_per_second(phase.generator_cpu_seconds, phase) for phase in phases)
        verdict = (
            "it is not the limit"
            if busiest / clients < 0.5
            else "it MAY be the limit: try more --clients"
        )
        print(
            f"Load generator: {health.rate:.0f} req/s against GET /healthz (no auth, trivial) "
            f"on the same server; the generator used at most {busiest:.0%} of a core over "
            f"{clients} processes, so {verdict}."
        )
    if busiest_other > 0.25:
        print()
        print(
            f"WARNING: other processes used up to {busiest_other:.0%} of a core during the "
            "measurement; the machine was shared and these figures are depressed."
        )
    failed = [phase for phase in phases if phase.errors]
    if failed:
        print()
        print("!" * 108)
        print("!!! THIS RUN HAD ERRORS -- its figures are NOT valid")
        for phase in failed:
            print(f"!!! {phase.name}: {phase.errors} failed requests; first ones:")
            for sample in phase.error_samples:
                print(f"!!!     {sample}")
        print("!" * 108)
    else:
        print("All requests answered HTTP 200.")


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2
    parser = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000, help="retained messages to seed")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per endpoint")
    parser.add_argument(
        "--clients",
        type=int,
        default=max(2, min(4, usable)),
        help="load-generator worker processes (default: nproc clamped to 2..4)",
    )
    parser.add_argument(
        "--connections", type=int, default=4, help="keep-alive connections per worker process"
    )
    parser.add_argument(
        "--get-requests", type=int, default=2000, help="distinct pre-signed GetRetainedMessage"
    )
    parser.add_argument(
        "--deep-pages", type=int, default=50, help="distinct deep ListRetainedMessages pages"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed for the topics")
    parser.add_argument(
        "--server-log-level",
        default=None,
        help="LOG_LEVEL for the server (default: the server's own default, INFO)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp data dir")
    args = parser.parse_args(argv)
    if args.messages < 1 or args.clients < 1 or args.connections < 1 or args.seconds <= 0:
        parser.error("--messages, --clients, --connections and --seconds must be positive")
    if args.seconds > 600:
        parser.error("--seconds must be at most 600 (SigV4 signatures are valid for 15 minutes)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data_dir = Path(tempfile.mkdtemp(prefix="retained-bench-"))
    env = {"LOG_LEVEL": args.server_log_level} if args.server_log_level else {}
    # Raw throughput: AWS's rate limits (10 List/s, 500 Get/s, ...) off.
    server = make_server(data_dir, **NO_RATE_LIMITS, **env)
    phases: list[PhaseResult] = []
    try:
        print(f"data dir: {data_dir}", flush=True)
        print("rate limits: off (RETAINED_*_PER_SECOND=0), to measure raw throughput", flush=True)
        server.manage("migrate", "--verbosity", "0")
        began = time.monotonic()
        seeded = server.manage("seed_retained", str(args.messages))
        print(
            f"seeded {args.messages} messages in {time.monotonic() - began:.1f}s "
            f"({seeded.stdout.strip()})",
            flush=True,
        )
        server.start()
        credentials = create_bench_credentials(server)
        host = f"127.0.0.1:{server.http_port}"

        began = time.monotonic()
        tokens, listed = walk_page_tokens(server, credentials)
        walk_seconds = time.monotonic() - began
        print(
            f"walked {len(tokens) + 1} pages ({listed} topics) in {walk_seconds:.1f}s "
            "to collect real nextTokens",
            flush=True,
        )
        store_lines = [
            f"store: {listed} retained messages listed (seeded {args.messages}), "
            f"SQLite files {_dir_size(data_dir) / 1e6:.1f} MB",
        ]

        rng = random.Random(args.seed)
        health: list[Request] = [("/healthz", {"Host": host})]
        run = {"clients": args.clients, "connections": args.connections, "seconds": args.seconds}

        print(f"measuring GET /healthz for {args.seconds:g}s ...", flush=True)
        phases.append(run_phase(HEALTH_PHASE, server, health, **run))

        # Signed just before each phase, so the 15-minute SigV4 window never runs out.
        get_requests = [
            sign_get(server.base_url, host, get_path(seeded_topic(n)), credentials)
            for n in (rng.randrange(args.messages) for _ in range(args.get_requests))
        ]
        print(f"measuring GetRetainedMessage for {args.seconds:g}s ...", flush=True)
        phases.append(run_phase(GET_PHASE, server, get_requests, **run))

        deep = rng.sample(tokens, min(args.deep_pages, len(tokens)))
        # Half the requests ask for the first page, half for pages deep in the keyspace.
        pages: list[str | None] = [None] * max(1, len(deep)) + list(deep)
        list_requests = [
            sign_get(server.base_url, host, list_path(token), credentials) for token in pages
        ]
        print(f"measuring ListRetainedMessages for {args.seconds:g}s ...", flush=True)
        phases.append(run_phase(LIST_PHASE, server, list_requests, **run))

        print_report(
            phases,
            facts=machine_facts(),
            store_lines=store_lines,
            clients=args.clients,
            connections=args.connections,
        )
    finally:
        server.stop()
        if args.keep:
            print(f"kept {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    return 1 if any(phase.errors for phase in phases) else 0


if __name__ == "__main__":
    sys.exit(main())
