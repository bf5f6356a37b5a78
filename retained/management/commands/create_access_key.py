"""`python manage.py create_access_key USERNAME`: prints `ACCESS_KEY_ID SECRET_ACCESS_KEY`."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from retained.access_keys import create_access_key


class Command(BaseCommand):
    help = (
        "Create an access key for a user and print 'ACCESS_KEY_ID SECRET_ACCESS_KEY' on one "
        "line. The secret is shown only this once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--description", default="", help="a note shown in the admin")
        parser.add_argument(
            "--create-user",
            action="store_true",
            help="create the user (without a password) when it does not exist",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        username: str = options["username"]
        user = user_model.objects.filter(username=username).first()
        if user is None:
            if not options["create_user"]:
                raise CommandError(
                    f"no user named {username!r}; create it first or pass --create-user"
                )
            user = user_model.objects.create_user(username=username)
        key = create_access_key(user=user, description=options["description"])
        self.stdout.write(f"{key.access_key_id} {key.secret_access_key}")
