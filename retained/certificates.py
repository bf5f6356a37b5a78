"""Write operations on device certificates (console, admin, commands) and the broker's
certificate lookup. The CA lives under the data directory (see retained/pki.py)."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction

from retained import pki
from retained.models import Certificate, CertificateStatus, PolicyAttachment, PolicyTarget

__all__ = [
    "CertificateError",
    "CreatedCertificate",
    "authority",
    "create_certificate",
    "delete_certificate",
    "register_certificate_from_csr",
    "set_certificate_status",
    "tls_server_names",
]

DEFAULT_COMMON_NAME = "AWS IoT Certificate"  # what AWS's CreateKeysAndCertificate puts there
MAX_THING_NAME = 128


class CertificateError(ValueError):
    """A certificate operation that cannot be done (the message says why)."""


@dataclass(frozen=True)
class CreatedCertificate:
    """What "Create certificate" hands out once: the private key is never stored."""

    certificate: Certificate
    private_key_pem: str
    root_ca_pem: str


def pki_directory() -> Path:
    return Path(settings.DATA_DIR) / "pki"


def authority_files() -> pki.AuthorityFiles:
    return pki.AuthorityFiles(pki_directory())


def tls_server_names() -> list[str]:
    """Names the TLS listener's certificate covers: loopback, this host, and
    RETAINED_TLS_HOSTNAMES (comma-separated) for the names devices use to reach us."""
    names = ["localhost", "127.0.0.1", "::1"]
    hostname = socket.gethostname()
    if hostname:
        names.append(hostname)
    names.extend(settings.RETAINED_TLS_HOSTNAMES)
    return list(dict.fromkeys(names))


_authority_lock = threading.Lock()
_authority: pki.Authority | None = None


def authority() -> pki.Authority:
    """The local CA, created (with the server certificate) on first use."""
    global _authority
    with _authority_lock:
        if _authority is None:
            _authority = pki.ensure_authority(
                pki_directory(), server_names=tls_server_names(), now=pki.utcnow()
            )
        return _authority


def _validate_thing_name(thing_name: str) -> str:
    thing_name = thing_name.strip()
    if len(thing_name) > MAX_THING_NAME:
        raise CertificateError(f"a thing name has at most {MAX_THING_NAME} characters")
    if thing_name and not all(c.isalnum() or c in "_-:" for c in thing_name):
        raise CertificateError("a thing name may contain only letters, digits, _ - and :")
    return thing_name


def _save(certificate_pem: str, *, thing_name: str, created_by: str) -> Certificate:
    info = pki.describe(pki.load_certificate(certificate_pem))
    with transaction.atomic():
        if Certificate.objects.filter(certificate_id=info.certificate_id).exists():
            raise CertificateError(f"certificate {info.certificate_id} is already registered")
        return Certificate.objects.create(
            certificate_id=info.certificate_id,
            certificate_pem=certificate_pem,
            status=CertificateStatus.ACTIVE,
            subject_common_name=info.subject_common_name,
            thing_name=thing_name,
            not_before=info.not_before,
            not_after=info.not_after,
            created_by=created_by,
        )


def create_certificate(
    *, thing_name: str = "", common_name: str = "", created_by: str = ""
) -> CreatedCertificate:
    """A key pair and an ACTIVE certificate signed by the CA (CreateKeysAndCertificate)."""
    thing_name = _validate_thing_name(thing_name)
    common_name = (common_name or thing_name or DEFAULT_COMMON_NAME).strip()
    if not common_name or len(common_name) > 64:
        raise CertificateError("a common name has 1 to 64 characters")
    ca = authority()
    issued = pki.issue_device_certificate(ca, common_name=common_name, now=pki.utcnow())
    certificate = _save(issued.certificate_pem, thing_name=thing_name, created_by=created_by)
    return CreatedCertificate(certificate, issued.private_key_pem, ca.certificate_pem)


def register_certificate_from_csr(
    csr_pem: str, *, thing_name: str = "", created_by: str = ""
) -> Certificate:
    """Sign a device's CSR with the CA (CreateCertificateFromCsr); the key stays on the device."""
    thing_name = _validate_thing_name(thing_name)
    try:
        signed = pki.sign_csr(authority(), csr_pem, now=pki.utcnow())
    except pki.CertificateError as error:
        raise CertificateError(str(error)) from None
    return _save(pki.to_pem(signed), thing_name=thing_name, created_by=created_by)


def set_certificate_status(certificate_id: str, status: str) -> Certificate:
    """ACTIVE <-> INACTIVE; REVOKED is final (as in AWS). Live connections of a certificate
    that is no longer ACTIVE are closed by the broker when the change commits."""
    if status not in CertificateStatus.values:
        raise CertificateError(f"unknown status {status!r}")
    with transaction.atomic():
        certificate = Certificate.objects.select_for_update().filter(pk=certificate_id).first()
        if certificate is None:
            raise CertificateError(f"no certificate {certificate_id}")
        if certificate.status == CertificateStatus.REVOKED and status != CertificateStatus.REVOKED:
            raise CertificateError("a revoked certificate cannot be activated or deactivated")
        if certificate.status != status:
            certificate.status = status
            certificate.save(update_fields=["status", "updated_at"])
    return certificate


def delete_certificate(certificate_id: str) -> None:
    """AWS: only a certificate that is not ACTIVE can be deleted; its attachments go too."""
    with transaction.atomic():
        certificate = Certificate.objects.select_for_update().filter(pk=certificate_id).first()
        if certificate is None:
            raise CertificateError(f"no certificate {certificate_id}")
        if certificate.status == CertificateStatus.ACTIVE:
            raise CertificateError("deactivate or revoke the certificate before deleting it")
        for attachment in PolicyAttachment.objects.filter(
            target=PolicyTarget.CERTIFICATE, certificate_id=certificate_id
        ):
            attachment.delete()  # one by one, so the policy snapshot hears of each
        certificate.delete()


def attached_policy_names(certificate_id: str) -> list[str]:
    return list(
        PolicyAttachment.objects.filter(
            target=PolicyTarget.CERTIFICATE, certificate_id=certificate_id
        )
        .order_by("policy__name")
        .values_list("policy__name", flat=True)
    )
