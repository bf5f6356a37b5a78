"""`python manage.py serve`: everything in one process.

daphne serves the console, the data-plane API and WebSockets; the MQTT broker joins the same
event loop once it exists. Migrations run first (idempotent) and an admin account is created
on first start.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from retained.bootstrap import CREDENTIALS_FILE, ensure_admin_account

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run the console, the data-plane API (HTTP) and the MQTT broker in one process."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default="127.0.0.1", help="address to listen on")
        parser.add_argument("--http-port", type=int, default=8000, help="console + API port")
        parser.add_argument("--mqtt-port", type=int, default=1883, help="MQTT (TCP) port")
        parser.add_argument(
            "--no-migrate", action="store_true", help="do not apply migrations first"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        bind: str = options["bind"]
        http_port: int = options["http_port"]
        if not options["no_migrate"]:
            call_command("migrate", interactive=False, verbosity=0)
        credentials = ensure_admin_account(settings.DATA_DIR)
        if credentials:
            username, password = credentials
            self.stdout.write(
                f"Created the admin account: username {username!r} password {password!r}\n"
                f"(saved in {settings.DATA_DIR / CREDENTIALS_FILE}; shown only this once)"
            )
        self._run_daphne(bind, http_port, options["mqtt_port"])

    def _run_daphne(self, bind: str, http_port: int, mqtt_port: int) -> None:
        from daphne.endpoints import build_endpoint_description_strings
        from daphne.server import Server

        from console.asgi import application

        def ready() -> None:
            self.stdout.write(f"Console and API at http://{bind}:{http_port}/", ending="\n")
            self.stdout.write(
                f"MQTT broker on {bind}:{mqtt_port}: not part of this build yet", ending="\n"
            )
            self.stdout.flush()

        server = Server(
            application=application,
            endpoints=build_endpoint_description_strings(host=bind, port=http_port),
            signal_handlers=True,
            action_logger=None,
            verbosity=0,
            ready_callable=ready,
        )
        server.run()
