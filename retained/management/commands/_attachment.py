"""Shared arguments of attach_policy / detach_policy."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, User
from django.core.management.base import CommandError, CommandParser

from retained.models import Certificate, Policy


def add_target_arguments(parser: CommandParser) -> None:
    parser.add_argument("name", help="policy name")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--user", help="a username")
    target.add_argument("--group", help="a group name")
    target.add_argument("--anonymous", action="store_true", help="the anonymous principal")
    target.add_argument("--certificate", help="a certificate id")


def resolve_target(options: dict[str, Any]) -> tuple[Policy, dict[str, Any]]:
    policy = Policy.objects.filter(name=options["name"]).first()
    if policy is None:
        raise CommandError(f"no policy named {options['name']!r}")
    if options["user"]:
        user = User.objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"no user named {options['user']!r}")
        return policy, {"user": user}
    if options["group"]:
        group = Group.objects.filter(name=options["group"]).first()
        if group is None:
            raise CommandError(f"no group named {options['group']!r}")
        return policy, {"group": group}
    if options["certificate"]:
        certificate_id = options["certificate"].strip().lower()
        if not Certificate.objects.filter(pk=certificate_id).exists():
            raise CommandError(f"no certificate {certificate_id!r} (see create_certificate)")
        return policy, {"certificate_id": certificate_id}
    return policy, {"anonymous": True}
