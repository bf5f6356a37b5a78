"""`python manage.py runbroker`: the MQTT broker alone (no HTTP); retained events still
reach the channel layer (useful with a shared one, e.g. Redis)."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from console import live
from retained.bootstrap import ANONYMOUS_LOCAL_POLICY, ensure_anonymous_local_policy
from retained.broker.service import is_loopback, start_broker


class Command(BaseCommand):
    help = "Run only the MQTT broker."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default="127.0.0.1")
        parser.add_argument("--mqtt-port", type=int, default=1883)
        parser.add_argument(
            "--mqtts-port",
            type=int,
            default=8883,
            help="MQTT over TLS with X.509 client certificates (0: no TLS listener)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        if ensure_anonymous_local_policy(mqtt_on_loopback=is_loopback(options["bind"])):
            self.stdout.write(f"Seeded the {ANONYMOUS_LOCAL_POLICY!r} policy (see README)")
        asyncio.run(self._main(options["bind"], options["mqtt_port"], options["mqtts_port"]))

    async def _main(self, bind: str, mqtt_port: int, mqtts_port: int) -> None:
        live.install(asyncio.get_running_loop())
        running = await start_broker(bind=bind, mqtt_port=mqtt_port, mqtts_port=mqtts_port)
        self.stdout.write(f"MQTT broker at mqtt://{bind}:{mqtt_port}")
        if mqtts_port:
            self.stdout.write(f"MQTT over TLS (client certificates) at mqtts://{bind}:{mqtts_port}")
        self.stdout.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await running.stop()
