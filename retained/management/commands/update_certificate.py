"""`python manage.py update_certificate ID --new-status ACTIVE|INACTIVE|REVOKED`.

The shape of `aws iot update-certificate --certificate-id ID --new-status STATUS`. A
certificate that is no longer ACTIVE has its live connections closed and new ones refused;
REVOKED is final.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from retained.certificates import CertificateError, set_certificate_status
from retained.models import CertificateStatus


class Command(BaseCommand):
    help = "Activate, deactivate or revoke a device certificate."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("certificate_id", help="the certificate id (64 hex digits)")
        parser.add_argument("--new-status", required=True, choices=list(CertificateStatus.values))

    def handle(self, *args: Any, **options: Any) -> None:
        certificate_id = options["certificate_id"].strip().lower()
        try:
            certificate = set_certificate_status(certificate_id, options["new_status"])
        except CertificateError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"certificate {certificate.certificate_id} is {certificate.status}")
