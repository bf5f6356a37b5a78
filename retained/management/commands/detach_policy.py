"""`python manage.py detach_policy NAME --user U | --group G | --anonymous | --certificate ID`."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from retained.management.commands._attachment import add_target_arguments, resolve_target
from retained.policies import detach_policy


class Command(BaseCommand):
    help = "Detach a policy from a user, a group, a certificate or the anonymous principal."

    def add_arguments(self, parser: CommandParser) -> None:
        add_target_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        policy, target = resolve_target(options)
        if not detach_policy(policy, **target):
            raise CommandError("that policy is not attached there")
        self.stdout.write(f"detached {policy.name!r}")
