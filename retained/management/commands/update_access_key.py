"""`python manage.py update_access_key ACCESS_KEY_ID --status Active|Inactive`.

The shape of `aws iam update-access-key --access-key-id ID --status STATUS`. An inactive key
is refused by the API and the broker, and the MQTT connections it opened are closed.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from retained.access_keys import UnknownAccessKeyError, set_access_key_active


class Command(BaseCommand):
    help = "Activate or deactivate an access key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("access_key_id")
        parser.add_argument("--status", required=True, choices=["Active", "Inactive"])

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            key = set_access_key_active(
                options["access_key_id"].strip(), active=options["status"] == "Active"
            )
        except UnknownAccessKeyError as error:
            raise CommandError(str(error)) from None
        status = "Active" if key.is_active else "Inactive"
        self.stdout.write(f"access key {key.access_key_id} is {status}")
