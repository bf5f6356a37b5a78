"""Server time of the console's Retained messages list at 100,000 and 1,000,000 messages.

    .venv/bin/python -m bench.console [--sizes 100000,1000000] [--requests 200]
                                      [--data-root DIR] [--seed-only]

For each size: a data dir is migrated and filled with `manage.py seed_retained N` (SQLite,
topics seed/<n/1000>/<n>; reused when --data-root already holds one of that size). Then, in
a child process whose settings point at that data dir (RETAINED_DATA_DIR before
django.setup()), Django's test Client, logged in as a superuser, requests each scenario
--requests times and the wall time of every request is recorded (the whole Django stack:
middleware, session, the view, the template; no network):

* the first page (/retained/, 25 rows sorted by topic, with the maintained total);
* page 1,000: the keyset cursor reached by following the "next" cursor 999 times from the
  first page (console.views.listing.fetch_page, the function the view renders), checked to
  show rows 24,975-24,999;
* an MQTT filter search, `seed/+/0000042` (literal prefix `seed/` = every row; matched in
  Python with a 50,000-row scan budget per page);
* a filter with a longer literal prefix, `seed/0042/+`;
* a substring search, `0000042` (case-insensitive LIKE; one topic matches, so the database
  looks at every topic);
* a substring that matches early, `/0000/`.

Then one real `manage.py serve` on free loopback ports serves the same data dir and the first
page is fetched over HTTP (keep-alive, session cookie from the real login form) --requests
times: the round trip a browser sees, with daphne and the ASGI stack.

A benchmark, not a test: it prints a table (p50/p95/max per scenario and size) and asserts
only that every response was 200 with the expected rows. The goal is p95 <= 50 ms at
1,000,000.
"""

from __future__ import annotations

import argparse
import html
import http.client
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.server import NO_RATE_LIMITS, REPO_ROOT, ServerProcess, make_server

DEFAULT_SIZES = (100_000, 1_000_000)
DEFAULT_REQUESTS = 200
# A scenario stops early after this long (slow ones would otherwise take many minutes).
SCENARIO_SECONDS = 90.0
DEEP_PAGE = 1000
PAGE_SIZE = 25  # the list's default page size
GOAL_P95_MS = 50.0
SEED_MARKER = ".seeded"
# The superuser the measurements sign in as (in-process, and through the login form).
BENCH_USER = "bench"
BENCH_PASSWORD = "bench-console-password"
ENV_EXTRA = {
    # AWS's default quota is 500,000 retained messages; the benchmark goes past it.
    "RETAINED_MAX_RETAINED_MESSAGES": "100000000",
    "LOG_LEVEL": "WARNING",
    # Raw throughput: AWS's rate limits off (in-process and in the live serve).
    **NO_RATE_LIMITS,
}


def seeded_topic(n: int) -> str:
    """The naming of `manage.py seed_retained` (default prefix)."""
    return f"seed/{n // 1000:04d}/{n:07d}"


@dataclass(frozen=True)
class Scenario:
    name: str
    query: dict[str, str]
    expect: str  # a topic the page must show


SEARCHES = (
    Scenario("filter seed/+/0000042", {"q": "seed/+/0000042"}, seeded_topic(42)),
    Scenario("filter seed/0042/+", {"q": "seed/0042/+"}, seeded_topic(42_000)),
    Scenario("substring 0000042 (1 match)", {"q": "0000042"}, seeded_topic(42)),
    Scenario("substring /0000/", {"q": "/0000/"}, seeded_topic(0)),
)


# --- seeding ----------------------------------------------------------------------------------


def bench_env(data_dir: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RETAINED_", "DATABASE_URL", "SECRET_KEY"))
    }
    env.update(ENV_EXTRA)
    env.update({"RETAINED_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"})
    return env


def manage(data_dir: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=bench_env(data_dir),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def seed(data_dir: Path, size: int) -> float | None:
    """Migrate and seed `data_dir` with `size` messages (skipped when it already holds them);
    the seconds seeding took, or None when reused."""
    marker = data_dir / SEED_MARKER
    if marker.exists() and marker.read_text().strip() == str(size):
        return None
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    manage(data_dir, "migrate", "--verbosity", "0")
    started = time.monotonic()
    print(f"  seeding {size:,} retained messages into {data_dir} ...", flush=True)
    manage(data_dir, "seed_retained", str(size))
    elapsed = time.monotonic() - started
    marker.write_text(str(size))
    return elapsed


def database_bytes(data_dir: Path) -> int:
    return sum(path.stat().st_size for path in data_dir.glob("db.sqlite3*"))


# --- in-process measurement (child process: settings are fixed at django.setup()) ------------


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)

    def at(fraction: float) -> float:
        index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
        return ordered[index]

    return {"n": len(ordered), "p50": at(0.50), "p95": at(0.95), "max": ordered[-1]}


def measure_in_process(data_dir: Path, requests: int) -> dict[str, Any]:
    os.environ.update(ENV_EXTRA)
    os.environ["RETAINED_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.test import Client

    from console.views.listing import ListState, fetch_page

    user = User.objects.filter(username=BENCH_USER).first()
    if user is None:
        user = User.objects.create_superuser(BENCH_USER, password=BENCH_PASSWORD)
    elif not user.check_password(BENCH_PASSWORD):
        user.set_password(BENCH_PASSWORD)
        user.save()
    client = Client()
    client.force_login(user)

    def run(path: str, expect: str) -> dict[str, float]:
        for _ in range(3):  # warm caches, the connection, templates
            response = client.get(path)
        samples: list[float] = []
        deadline = time.monotonic() + SCENARIO_SECONDS
        for _ in range(requests):
            started = time.perf_counter()
            response = client.get(path)
            samples.append((time.perf_counter() - started) * 1000)
            if time.monotonic() > deadline:
                break
        body = response.content.decode()
        assert response.status_code == 200, (path, response.status_code)
        assert html.escape(expect) in body, (path, expect)
        numbers = percentiles(samples)
        print(
            f"    {path[:60]:60} p50 {numbers['p50']:7.1f}  p95 {numbers['p95']:7.1f} ms",
            file=sys.stderr,
            flush=True,
        )
        return numbers

    results: dict[str, dict[str, float]] = {}
    results["first page"] = run("/retained/", seeded_topic(0))

    # Page 1,000: follow the next cursor 999 times, the cursors the pages link to.
    state = ListState()
    started = time.perf_counter()
    for _ in range(DEEP_PAGE - 1):
        page = fetch_page(state)
        assert page.next_cursor is not None
        state = state.with_cursor(page.next_cursor)
    walk_seconds = time.perf_counter() - started
    deep = fetch_page(state)
    first_row = (DEEP_PAGE - 1) * PAGE_SIZE
    assert deep.rows[0].topic == seeded_topic(first_row), deep.rows[0].topic
    results[f"page {DEEP_PAGE:,} (keyset cursor)"] = run(state.url(), seeded_topic(first_row))

    for scenario in SEARCHES:
        path = "/retained/?" + urllib.parse.urlencode(scenario.query)
        results[scenario.name] = run(path, scenario.expect)
    return {"results": results, "walk_seconds": walk_seconds}


def measure_child(data_dir: Path, requests: int) -> dict[str, Any]:
    """measure_in_process in a fresh interpreter (one data dir per django.setup())."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.console",
            "--measure",
            str(data_dir),
            "--requests",
            str(requests),
        ],
        cwd=REPO_ROOT,
        env=bench_env(data_dir),
        stdout=subprocess.PIPE,  # progress goes to stderr, straight through
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"measurement failed:\n{result.stdout}")
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return data


# --- HTTP round trip through a live `manage.py serve` -----------------------------------------


def _cookies(response: http.client.HTTPResponse) -> dict[str, str]:
    found = {}
    for header in response.headers.get_all("Set-Cookie") or []:
        name, _, rest = header.partition("=")
        found[name.strip()] = rest.split(";", 1)[0]
    return found


def measure_http(data_dir: Path, requests: int) -> dict[str, float]:
    server = make_server(data_dir, **ENV_EXTRA)
    server.start(timeout=180)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=30)
        connection.request("GET", "/accounts/login/")
        response = connection.getresponse()
        page = response.read().decode()
        cookies = _cookies(response)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token, "no CSRF token on the login page"
        form = urllib.parse.urlencode(
            {
                "username": BENCH_USER,
                "password": BENCH_PASSWORD,
                "csrfmiddlewaretoken": token.group(1),
                "next": "/retained/",
            }
        )
        connection.request(
            "POST",
            "/accounts/login/",
            body=form,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": f"csrftoken={cookies['csrftoken']}",
            },
        )
        response = connection.getresponse()
        response.read()
        session = _cookies(response).get("sessionid")
        assert response.status == 302, f"login failed: {response.status}"
        assert session, "login set no session cookie"
        headers = {"Cookie": f"sessionid={session}"}
        samples: list[float] = []
        for index in range(requests + 3):
            started = time.perf_counter()
            connection.request("GET", "/retained/", headers=headers)
            response = connection.getresponse()
            body = response.read()
            elapsed = (time.perf_counter() - started) * 1000
            assert response.status == 200, response.status
            assert seeded_topic(0).encode() in body
            if index >= 3:
                samples.append(elapsed)
        connection.close()
        return percentiles(samples)
    finally:
        _stop(server)


def _stop(server: ServerProcess) -> None:
    server.stop()


# --- report -----------------------------------------------------------------------------------


def machine_line() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{cores} vCPU{' ' + model if model else ''}, "
        f"{platform.python_implementation()} {platform.python_version()}, SQLite (WAL)"
    )


def table(report: dict[int, dict[str, Any]]) -> str:
    sizes = sorted(report)
    scenarios = list(report[sizes[0]]["results"])
    header = "| scenario | " + " | ".join(f"{size:,}: p50 / p95 / max ms" for size in sizes) + " |"
    rule = "|---|" + "---:|" * len(sizes)
    lines = [header, rule]
    for scenario in [*scenarios, "HTTP round trip, first page"]:
        cells = []
        for size in sizes:
            if scenario == "HTTP round trip, first page":
                numbers = report[size]["http"]
            else:
                numbers = report[size]["results"][scenario]
            flag = "" if numbers["p95"] <= GOAL_P95_MS else " ✗"
            short = f" (n={int(numbers['n'])})" if numbers["n"] < report[size]["requests"] else ""
            cells.append(
                f"{numbers['p50']:.1f} / {numbers['p95']:.1f} / {numbers['max']:.1f}{flag}{short}"
            )
        lines.append(f"| {scenario} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(str(size) for size in DEFAULT_SIZES))
    parser.add_argument("--requests", type=int, default=DEFAULT_REQUESTS)
    parser.add_argument(
        "--data-root",
        type=Path,
        help="keep the seeded data dirs here and reuse them (default: a temporary dir)",
    )
    parser.add_argument("--seed-only", action="store_true", help="seed, do not measure")
    parser.add_argument("--no-http", action="store_true", help="skip the live-serve round trip")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child's role
    args = parser.parse_args()

    if args.measure is not None:
        print(json.dumps(measure_in_process(args.measure, args.requests)))
        return 0

    sizes = [int(size.replace("_", "")) for size in args.sizes.split(",") if size.strip()]
    root = args.data_root or Path(tempfile.mkdtemp(prefix="bench-console-"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine_line()}")
    print("rate limits: off (RETAINED_*_PER_SECOND=0), to measure raw throughput")
    report: dict[int, dict[str, Any]] = {}
    try:
        for size in sizes:
            data_dir = root / f"n{size}"
            print(f"== {size:,} retained messages", flush=True)
            seconds = seed(data_dir, size)
            if seconds is not None:
                print(f"  seeded in {seconds:.0f} s", flush=True)
            print(f"  database: {database_bytes(data_dir) / 1e6:.0f} MB", flush=True)
            if args.seed_only:
                continue
            measured = measure_child(data_dir, args.requests)
            print(
                f"  walked {DEEP_PAGE - 1} next cursors in {measured['walk_seconds']:.1f} s",
                flush=True,
            )
            measured["requests"] = args.requests
            if args.no_http:
                measured["http"] = {"n": 0, "p50": 0.0, "p95": 0.0, "max": 0.0}
            else:
                measured["http"] = measure_http(data_dir, args.requests)
            report[size] = measured
            for name, numbers in [*measured["results"].items(), ("HTTP", measured["http"])]:
                print(
                    f"  {name:32} p50 {numbers['p50']:7.1f}  p95 {numbers['p95']:7.1f}  "
                    f"max {numbers['max']:7.1f} ms  (n={int(numbers['n'])})",
                    flush=True,
                )
    finally:
        if args.data_root is None:
            shutil.rmtree(root, ignore_errors=True)
    if report:
        print()
        print(f"Server time of /retained/ ({args.requests} requests each; ✗ = p95 over 50 ms)")
        print(table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
