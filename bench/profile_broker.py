"""`manage.py runbroker`, in-process, under cProfile: the event loop AND the database writer.

    RETAINED_DATA_DIR=... .venv/bin/python -m bench.profile_broker --mqtt-port P --out DIR

`python -m cProfile manage.py runbroker` sees only the main thread; the group-commit writer
(retained.broker.writer.DatabaseWriter) runs in its own thread. This wraps the writer thread's
`_run` in a second profiler (bench-only monkeypatch, nothing in retained/ changes). On SIGTERM
runbroker stops cleanly and both profiles are written: DIR/loop.prof and DIR/writer.prof.
"""

from __future__ import annotations

import argparse
import cProfile
import os
from pathlib import Path
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--mqtt-port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from retained.broker import writer

    original_run = writer.DatabaseWriter._run

    def profiled_run(self: Any) -> None:
        profile = cProfile.Profile()
        profile.enable()
        try:
            original_run(self)
        finally:
            profile.disable()
            profile.dump_stats(args.out / "writer.prof")

    writer.DatabaseWriter._run = profiled_run  # type: ignore[method-assign]

    profile = cProfile.Profile()
    profile.enable()
    try:
        call_command("runbroker", bind=args.bind, mqtt_port=args.mqtt_port, mqtts_port=0)
    finally:
        profile.disable()
        profile.dump_stats(args.out / "loop.prof")


if __name__ == "__main__":
    main()
