"""Long-run fuzzing of the pure parsers (issue #8, point 2).

    .venv/bin/python -m bench.fuzz [--seconds 600] [--targets codec,topics,policy,sigv4,page_tokens]
                                   [--engine atheris|hypothesis]

The targets are those of tests/test_fuzz_properties.py (whose bounded Hypothesis properties
run in the suite): the MQTT decoder (bytes whole and byte by byte, re-encoding what decodes),
topic validation and matching against a reference matcher, the policy parser (and evaluation
of what it accepts), the SigV4 verifier, and page tokens. --seconds is the total, shared
evenly by the targets.

Engines:
* atheris (coverage-guided libFuzzer; `pip install atheris==3.0.0`, not a project dependency):
  each target runs in its own process, instrumented, starting from the targets' SEEDS plus
  what earlier runs kept in --corpus. A failing input is written to --artifacts and the
  target restarts on the time that is left, so one bug does not hide the next.
* hypothesis (always available): the targets' FUZZ_INPUTS strategies, example after example,
  until the target's time is up; a failure is shrunk and printed.

Prints executions, executions/s and failures per target; exits 1 if anything failed.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import re
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
TARGET_NAMES = ("codec", "topics", "policy", "sigv4", "page_tokens")
MAX_RESTARTS = 5  # after a failure, per target


@dataclass
class Outcome:
    target: str
    seconds: float = 0.0
    executions: int = 0
    failures: list[str] = field(default_factory=list)

    def line(self) -> str:
        rate = self.executions / self.seconds if self.seconds else 0.0
        return (
            f"{self.target:<12}{self.seconds:>9.0f} s{self.executions:>13,}{rate:>12,.0f}/s"
            f"{len(self.failures):>10}"
        )


# --------------------------------------------------------------------------- atheris


def atheris_worker(target: str, seconds: int, corpus: Path, artifacts: Path) -> None:
    """Runs in its own process (libFuzzer exits it when the time is up)."""
    atheris: Any = importlib.import_module("atheris")
    with atheris.instrument_imports(include=["retained", "tests.test_fuzz_properties"]):
        properties = importlib.import_module("tests.test_fuzz_properties")
    corpus.mkdir(parents=True, exist_ok=True)
    for index, seed in enumerate(properties.SEEDS[target]):
        (corpus / f"seed-{index}").write_bytes(seed)
    arguments = [
        sys.argv[0],
        str(corpus),
        f"-max_total_time={seconds}",
        f"-artifact_prefix={artifacts}/{target}-",
        "-max_len=4096",
        "-rss_limit_mb=2048",
        "-timeout=10",
        "-print_final_stats=1",
    ]
    atheris.Setup(arguments, properties.TARGETS[target])
    atheris.Fuzz()


_EXECUTED = re.compile(r"stat::number_of_executed_units:\s*(\d+)")
_DONE = re.compile(r"Done (\d+) runs in")


def run_atheris(target: str, seconds: float, work: Path) -> Outcome:
    outcome = Outcome(target)
    deadline = time.monotonic() + seconds
    artifacts = work / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    for _ in range(MAX_RESTARTS + 1):
        left = int(deadline - time.monotonic())
        if left < 2:
            break
        started = time.monotonic()
        command = [
            sys.executable,
            "-m",
            "bench.fuzz",
            "--worker",
            target,
            "--seconds",
            str(left),
            "--corpus",
            str(work / "corpus" / target),
            "--artifacts",
            str(artifacts),
        ]
        result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
        outcome.seconds += time.monotonic() - started
        log = result.stderr + result.stdout
        counts = _EXECUTED.findall(log) or _DONE.findall(log)
        outcome.executions += int(counts[-1]) if counts else 0
        if result.returncode == 0:
            break
        outcome.failures.append(_failure_summary(log))
    return outcome


def _failure_summary(log: str) -> str:
    lines = log.splitlines()
    start = next((i for i, line in enumerate(lines) if "Uncaught Python exception" in line), 0)
    artifact = next((line for line in lines if "Test unit written to" in line), "")
    return "\n".join([*lines[start : start + 30], artifact])


# --------------------------------------------------------------------------- hypothesis


def run_hypothesis(target: str, seconds: float) -> Outcome:
    from hypothesis import HealthCheck, given, settings

    from tests import test_fuzz_properties as properties

    outcome = Outcome(target)
    function = properties.TARGETS[target]
    deadline = time.monotonic() + seconds
    started = time.monotonic()

    def once(data: bytes) -> None:
        outcome.executions += 1
        function(data)

    check = settings(
        max_examples=200,  # one batch; batches run until the time is up
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )(given(properties.FUZZ_INPUTS[target])(once))
    while time.monotonic() < deadline:
        try:
            check()
        except Exception:
            outcome.failures.append(traceback.format_exc(limit=8))
            if len(outcome.failures) > MAX_RESTARTS:
                break
    outcome.seconds = time.monotonic() - started
    return outcome


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description="long-run fuzzing (see module docstring)")
    parser.add_argument("--seconds", type=float, default=600, help="total, over all targets")
    parser.add_argument("--targets", default=",".join(TARGET_NAMES))
    parser.add_argument("--engine", choices=("atheris", "hypothesis"), default=None)
    parser.add_argument("--work", type=Path, default=None, help="corpus and artifacts dir")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--artifacts", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        atheris_worker(args.worker, int(args.seconds), args.corpus, args.artifacts)
        return 0

    targets = [name.strip() for name in args.targets.split(",") if name.strip()]
    unknown = set(targets) - set(TARGET_NAMES)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    engine = args.engine or ("atheris" if importlib.util.find_spec("atheris") else "hypothesis")
    work = args.work or Path(tempfile.mkdtemp(prefix="retained-fuzz-"))
    share = args.seconds / len(targets)
    print(f"engine {engine}, {share:.0f} s per target, work dir {work}", flush=True)
    outcomes = []
    for target in targets:
        if engine == "atheris":
            outcome = run_atheris(target, share, work)
        else:
            outcome = run_hypothesis(target, share)
        print(outcome.line(), flush=True)
        outcomes.append(outcome)

    print(f"\n{'target':<12}{'time':>11}{'executions':>13}{'rate':>14}{'failures':>10}")
    for outcome in outcomes:
        print(outcome.line())
    total = sum(outcome.executions for outcome in outcomes)
    seconds = sum(outcome.seconds for outcome in outcomes)
    print(f"{'total':<12}{seconds:>9.0f} s{total:>13,}")
    failed = [outcome for outcome in outcomes if outcome.failures]
    for outcome in failed:
        for failure in outcome.failures:
            print(f"\n--- {outcome.target} failure ---\n{failure}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
