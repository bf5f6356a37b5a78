"""`python manage.py serve`: everything in one process, on one asyncio loop.

daphne serves the console, the data-plane API and WebSockets; the MQTT broker listens on
the same loop (daphne runs Twisted on asyncio). Migrations run first (idempotent) and an
admin account is created on first start.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from retained.bootstrap import (
    ANONYMOUS_LOCAL_POLICY,
    CREDENTIALS_FILE,
    ensure_admin_account,
    ensure_anonymous_local_policy,
)
from retained.broker.service import is_loopback

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run the console, the data-plane API (HTTP) and the MQTT broker in one process."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default="127.0.0.1", help="address to listen on")
        parser.add_argument("--http-port", type=int, default=8000, help="console + API port")
        parser.add_argument("--mqtt-port", type=int, default=1883, help="MQTT (TCP) port")
        parser.add_argument(
            "--mqtts-port",
            type=int,
            default=8883,
            help="MQTT over TLS with X.509 client certificates (0: no TLS listener)",
        )
        parser.add_argument(
            "--no-migrate", action="store_true", help="do not apply migrations first"
        )
        parser.add_argument(
            "--no-broker", action="store_true", help="serve HTTP only (no MQTT listener)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["no_migrate"]:
            call_command("migrate", interactive=False, verbosity=0)
        credentials = ensure_admin_account(settings.DATA_DIR)
        if credentials:
            username, password = credentials
            self.stdout.write(
                f"Created the admin account: username {username!r} password {password!r}\n"
                f"(saved in {settings.DATA_DIR / CREDENTIALS_FILE}; shown only this once)"
            )
        if not options["no_broker"] and ensure_anonymous_local_policy(
            mqtt_on_loopback=is_loopback(options["bind"])
        ):
            self.stdout.write(
                f"Seeded the {ANONYMOUS_LOCAL_POLICY!r} policy: anonymous clients on this machine "
                "may do everything (see README, Policies, to remove it)"
            )
        self._run(
            options["bind"],
            options["http_port"],
            None if options["no_broker"] else options["mqtt_port"],
            options["mqtts_port"],
        )

    def _run(self, bind: str, http_port: int, mqtt_port: int | None, mqtts_port: int) -> None:
        from daphne.endpoints import build_endpoint_description_strings
        from daphne.server import Server
        from twisted.internet import defer
        from twisted.internet import reactor as twisted_reactor

        from console import live
        from console.asgi import application
        from retained.broker.service import RunningBroker, start_broker

        reactor: Any = twisted_reactor
        running: list[RunningBroker] = []
        failed: list[BaseException] = []

        def ready() -> None:
            self.stdout.write(f"Console and API at http://{bind}:{http_port}/")
            self.stdout.flush()

        async def start() -> None:
            live.install(asyncio.get_running_loop())
            if mqtt_port is None:
                return
            try:
                running.append(
                    await start_broker(bind=bind, mqtt_port=mqtt_port, mqtts_port=mqtts_port)
                )
            except Exception as error:
                failed.append(error)
                logger.error("the MQTT broker could not start: %s", error)
                reactor.stop()
                return
            self.stdout.write(f"MQTT broker at mqtt://{bind}:{mqtt_port}")
            if mqtts_port:
                self.stdout.write(
                    f"MQTT over TLS (client certificates) at mqtts://{bind}:{mqtts_port}"
                )
            self.stdout.write(f"MQTT over WebSocket at ws://{bind}:{http_port}/mqtt")
            self.stdout.flush()

        def stop() -> defer.Deferred[None] | None:
            if not running:
                return None
            return defer.Deferred.fromFuture(asyncio.ensure_future(running[0].stop()))

        reactor.callWhenRunning(lambda: asyncio.ensure_future(start()))
        reactor.addSystemEventTrigger("before", "shutdown", stop)
        server = Server(
            application=application,
            endpoints=build_endpoint_description_strings(host=bind, port=http_port),
            signal_handlers=True,
            action_logger=None,
            # MQTT over WebSocket devices stay connected as long as MQTT keep-alive says so
            # (daphne's default cuts every WebSocket after 24 hours). Incoming WebSocket
            # messages stay capped at daphne's 1 MiB, which bounds what is buffered before
            # the MQTT decoder checks the packet size.
            websocket_timeout=-1,
            verbosity=0,
            ready_callable=ready,
        )
        server.run()
        if failed:
            sys.exit(1)
