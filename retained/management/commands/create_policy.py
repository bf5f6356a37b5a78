"""`python manage.py create_policy NAME FILE.json`: a new policy (version 1, default)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from retained.policies import PolicyError, PolicyParseError, create_policy


class Command(BaseCommand):
    help = "Create a policy from a JSON document file ('-' reads standard input)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("file")
        parser.add_argument("--description", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        source: str = options["file"]
        try:
            text = sys.stdin.read() if source == "-" else Path(source).read_text()
        except OSError as error:
            raise CommandError(f"cannot read {source}: {error}") from None
        try:
            policy = create_policy(options["name"], text, description=options["description"])
        except PolicyParseError as error:
            problems = "\n".join(f"  {problem}" for problem in error.errors)
            raise CommandError(f"the policy document is invalid:\n{problems}") from None
        except PolicyError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"created policy {policy.name!r} (version 1, default)")
