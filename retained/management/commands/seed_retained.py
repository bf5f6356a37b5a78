"""`python manage.py seed_retained COUNT`: fill the store with demo/benchmark messages."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from retained import store
from retained.models import SetByKind

BATCH = 5000


class Command(BaseCommand):
    help = (
        "Store COUNT retained messages on topics PREFIX/<n/1000>/<n> (through the store, in "
        "batches), for demos and benchmarks."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("count", type=int)
        parser.add_argument("--prefix", default="seed")
        parser.add_argument("--payload-size", type=int, default=64)
        parser.add_argument("--qos", type=int, choices=[0, 1], default=1)

    def handle(self, *args: Any, **options: Any) -> None:
        count: int = options["count"]
        prefix: str = options["prefix"]
        actor = store.Actor(kind=SetByKind.SYSTEM, name="seed_retained")
        filler = b"x" * max(options["payload_size"] - 24, 0)
        started = time.monotonic()
        for first in range(0, count, BATCH):
            writes = [
                store.RetainedWrite(
                    topic=f"{prefix}/{n // 1000:04d}/{n:07d}",
                    payload=f'{{"n":{n}}}'.encode() + filler,
                    qos=options["qos"],
                    actor=actor,
                )
                for n in range(first, min(first + BATCH, count))
            ]
            errors = [r for r in store.set_retained_many(writes) if isinstance(r, Exception)]
            if errors:
                self.stderr.write(f"{len(errors)} refused, first: {errors[0]}")
                return
        elapsed = time.monotonic() - started
        self.stdout.write(f"stored {count} retained messages in {elapsed:.1f}s")
