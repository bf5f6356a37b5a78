"""Crash durability, long run: acknowledged writes survive SIGKILL (issue #8, point 1).

    .venv/bin/python -m bench.crash [--kills 100] [--seconds 0] [--mqtt 2 --http 1 --console 1]

Starts a fresh `manage.py serve` (rate limits off) and runs tests/reliability/crash_harness.py
against it: MQTT (paho, QoS 1), HTTP API (boto3 iot-data Publish) and console (edit/create
forms) writers on distinct, hot and live topics, two offline persistent sessions (MQTT 3.1.1
and 5), and a kill loop: a random while of writes, SIGKILL, restart, check. --seconds, when
set, stops the loop early (the report says how many kills were made). Prints, per kind,
acknowledged / verified / lost / refused / unknown writes and what the persistent sessions
got, and exits 1 if anything acknowledged was lost. tests/reliability/test_crash.py is the
short run in the suite.

Keep a write window well under what fills a persistent session's queue (10,000 messages by
default, BrokerConfig.max_queued_messages: the broker drops the excess, and the run would
count those as lost).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from tests.reliability.crash_harness import ZERO_RATE_LIMITS, CrashHarness
from tests.support.server import make_server


def main() -> int:
    parser = argparse.ArgumentParser(description="crash durability run (see module docstring)")
    parser.add_argument("--kills", type=int, default=100, help="SIGKILLs (at least 20)")
    parser.add_argument("--seconds", type=float, default=0, help="stop early after this long")
    parser.add_argument("--mqtt", type=int, default=2, help="MQTT writer threads")
    parser.add_argument("--http", type=int, default=1, help="HTTP API writer threads")
    parser.add_argument("--console", type=int, default=1, help="console writer threads")
    parser.add_argument("--hot", type=int, default=8, help="hot (shared) topics")
    parser.add_argument("--min-delay", type=float, default=0.3, help="shortest write window")
    parser.add_argument("--max-delay", type=float, default=2.0, help="longest write window")
    parser.add_argument("--seed", default=None, help="for the same kill moments and choices")
    parser.add_argument("--keep", action="store_true", help="keep the data dir")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="retained-crash-")) / "data"
    server = make_server(data_dir, **ZERO_RATE_LIMITS)
    server.start()
    try:
        harness = CrashHarness(
            server,
            mqtt_writers=args.mqtt,
            http_writers=args.http,
            console_writers=args.console,
            hot_topics=args.hot,
            min_delay=args.min_delay,
            max_delay=args.max_delay,
            seed=args.seed,
        )
        print(f"seed {harness.seed}, data dir {data_dir}", flush=True)
        report = harness.run(args.kills, max_seconds=args.seconds or None)
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(data_dir.parent, ignore_errors=True)
    print("\n".join(report.lines()))
    return 1 if report.total_lost or report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
