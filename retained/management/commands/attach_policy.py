"""`python manage.py attach_policy NAME --user U | --group G | --anonymous | --certificate ID`."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from retained.management.commands._attachment import add_target_arguments, resolve_target
from retained.policies import attach_policy


class Command(BaseCommand):
    help = "Attach a policy to a user, a group, a certificate or the anonymous principal."

    def add_arguments(self, parser: CommandParser) -> None:
        add_target_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        policy, target = resolve_target(options)
        attachment = attach_policy(policy, **target)
        self.stdout.write(f"attached {attachment}")
