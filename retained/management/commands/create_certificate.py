"""`python manage.py create_certificate --out DIR [--thing NAME] [--common-name CN]`.

Writes device.pem.crt, private.pem.key (mode 0600) and root-CA.crt into DIR, the files the
AWS IoT Device SDK samples take as --cert, --key and --root-ca. The certificate is ACTIVE
and has no policy yet: attach one with `attach_policy NAME --certificate ID`. The last word
of the last line printed is the certificate id.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from retained.certificates import CertificateError, create_certificate

DEVICE_CERTIFICATE = "device.pem.crt"
PRIVATE_KEY = "private.pem.key"
ROOT_CA = "root-CA.crt"


class Command(BaseCommand):
    help = "Create a device key pair and certificate signed by the local CA."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", required=True, help="directory for the three files")
        parser.add_argument("--thing", default="", help="thing name (a client id) to record")
        parser.add_argument(
            "--common-name", default="", help="subject CN (default: the thing name)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        out = Path(options["out"])
        targets = [out / DEVICE_CERTIFICATE, out / PRIVATE_KEY, out / ROOT_CA]
        existing = [str(path) for path in targets if path.exists()]
        if existing:
            raise CommandError(f"refusing to overwrite {', '.join(existing)}")
        try:
            created = create_certificate(
                thing_name=options["thing"],
                common_name=options["common_name"],
                created_by="create_certificate",
            )
        except CertificateError as error:
            raise CommandError(str(error)) from None
        out.mkdir(parents=True, exist_ok=True)
        (out / DEVICE_CERTIFICATE).write_text(created.certificate.certificate_pem)
        descriptor = os.open(out / PRIVATE_KEY, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(created.private_key_pem)
        (out / ROOT_CA).write_text(created.root_ca_pem)
        for path in targets:
            self.stdout.write(f"wrote {path}")
        self.stdout.write(f"certificate id: {created.certificate.certificate_id}")
