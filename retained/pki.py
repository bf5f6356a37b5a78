"""The local certificate authority: create it, issue server and device certificates, sign
CSRs, read what a certificate says. Pure over PEM bytes and an explicit clock; the only file
access is `ensure_authority()`, which keeps the CA and the TLS listener's certificate under
the data directory (private keys mode 0600).

AWS names a certificate by the SHA-256 of its DER encoding (64 lowercase hex digits); so do we.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
SERVER_DAYS = 825
DEVICE_DAYS = 3650  # AWS's own device certificates run until 2049; ten years is plenty here
# Issue slightly in the past so a client whose clock is a little behind accepts it.
BACKDATE = timedelta(minutes=5)

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class CertificateError(ValueError):
    """A PEM that is not what it should be (the message says why, for the user)."""


@dataclass(frozen=True)
class Authority:
    """The CA's key and certificate, loaded once."""

    key: PrivateKey
    certificate: x509.Certificate

    @property
    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()


@dataclass(frozen=True)
class CertificateInfo:
    """What the console and the broker need to know about a certificate."""

    certificate_id: str
    subject_common_name: str
    issuer_common_name: str
    not_before: datetime
    not_after: datetime


@dataclass(frozen=True)
class IssuedCertificate:
    certificate_pem: str
    private_key_pem: str


def fingerprint_der(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def certificate_id(certificate: x509.Certificate) -> str:
    return fingerprint_der(certificate.public_bytes(serialization.Encoding.DER))


def _common_name(name: x509.Name) -> str:
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not values:
        return ""
    value = values[0].value
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def describe(certificate: x509.Certificate) -> CertificateInfo:
    return CertificateInfo(
        certificate_id=certificate_id(certificate),
        subject_common_name=_common_name(certificate.subject),
        issuer_common_name=_common_name(certificate.issuer),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
    )


def load_certificate(pem: str | bytes) -> x509.Certificate:
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as error:
        raise CertificateError(f"not a PEM certificate: {error}") from None


def to_pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def key_to_pem(key: PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common_name: str, organization: str = "") -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def create_authority(*, common_name: str, now: datetime, days: int = CA_DAYS) -> Authority:
    key = new_rsa_key()
    subject = _name(common_name, "retained")
    public_key = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(key=key, certificate=certificate)


def _leaf_builder(
    authority: Authority,
    *,
    subject: x509.Name,
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
    not_before: datetime,
    not_after: datetime,
    usage: x509.ObjectIdentifier,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(authority.certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()),
            critical=False,
        )
    )


def _san(names: Iterable[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def issue_server_certificate(
    authority: Authority, *, names: Sequence[str], now: datetime, days: int = SERVER_DAYS
) -> IssuedCertificate:
    """The TLS listener's certificate: every name (DNS or IP) in its subjectAltName."""
    key = new_rsa_key()
    certificate = (
        _leaf_builder(
            authority,
            subject=_name(names[0], "retained"),
            public_key=key.public_key(),
            not_before=now - BACKDATE,
            not_after=now + timedelta(days=days),
            usage=ExtendedKeyUsageOID.SERVER_AUTH,
        )
        .add_extension(_san(names), critical=False)
        .sign(authority.key, hashes.SHA256())
    )
    return IssuedCertificate(to_pem(certificate), key_to_pem(key))


def issue_device_certificate(
    authority: Authority,
    *,
    common_name: str,
    now: datetime,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> IssuedCertificate:
    """A new key pair and a client certificate for it (AWS's CreateKeysAndCertificate)."""
    key = new_rsa_key()
    certificate = _leaf_builder(
        authority,
        subject=_name(common_name),
        public_key=key.public_key(),
        not_before=not_before or now - BACKDATE,
        not_after=not_after or now + timedelta(days=DEVICE_DAYS),
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    ).sign(authority.key, hashes.SHA256())
    return IssuedCertificate(to_pem(certificate), key_to_pem(key))


def sign_csr(authority: Authority, csr_pem: str, *, now: datetime) -> x509.Certificate:
    """A client certificate for a device's own key (AWS's CreateCertificateFromCsr). The
    subject is the CSR's; the CSR's own signature must verify."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem.strip().encode())
    except ValueError as error:
        raise CertificateError(f"not a PEM certificate signing request: {error}") from None
    if not csr.is_signature_valid:
        raise CertificateError("the CSR's signature does not verify")
    public_key = csr.public_key()
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < 2048:
            raise CertificateError("RSA keys must have at least 2048 bits")
    elif not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise CertificateError("only RSA and EC keys are supported")
    if not _common_name(csr.subject):
        raise CertificateError("the CSR's subject has no common name (CN)")
    return _leaf_builder(
        authority,
        subject=csr.subject,
        public_key=public_key,
        not_before=now - BACKDATE,
        not_after=now + timedelta(days=DEVICE_DAYS),
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    ).sign(authority.key, hashes.SHA256())


def is_issued_by(certificate: x509.Certificate, authority: Authority) -> bool:
    try:
        certificate.verify_directly_issued_by(authority.certificate)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def covers_names(certificate: x509.Certificate, names: Iterable[str]) -> bool:
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    present = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    present.update(san.get_values_for_type(x509.DNSName))
    wanted = set()
    for name in names:
        try:
            wanted.add(str(ipaddress.ip_address(name)))
        except ValueError:
            wanted.add(name)
    return wanted <= present


# --- files under the data directory ---------------------------------------------------------


@dataclass(frozen=True)
class AuthorityFiles:
    directory: Path

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def ca_certificate(self) -> Path:
        return self.directory / "root-CA.crt"

    @property
    def server_key(self) -> Path:
        return self.directory / "server.key"

    @property
    def server_certificate(self) -> Path:
        return self.directory / "server.crt"


def _write_private(path: Path, text: str) -> None:
    """Create with mode 0600 from the start (never world-readable, not even briefly)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def load_authority(files: AuthorityFiles) -> Authority:
    key = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise CertificateError(f"{files.ca_key}: unsupported key type")
    return Authority(key=key, certificate=load_certificate(files.ca_certificate.read_bytes()))


def ensure_authority(directory: Path, *, server_names: Sequence[str], now: datetime) -> Authority:
    """Create the CA on first start; (re)issue the server certificate when it is missing,
    does not cover `server_names`, or expires within 30 days. Idempotent."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    files = AuthorityFiles(directory)
    if files.ca_key.exists() and files.ca_certificate.exists():
        authority = load_authority(files)
    else:
        authority = create_authority(common_name="retained local CA", now=now)
        _write_private(files.ca_key, key_to_pem(authority.key))
        files.ca_certificate.write_text(authority.certificate_pem)
    server: x509.Certificate | None = None
    if files.server_certificate.exists() and files.server_key.exists():
        server = load_certificate(files.server_certificate.read_bytes())
    if (
        server is None
        or not covers_names(server, server_names)
        or not is_issued_by(server, authority)
        or server.not_valid_after_utc - now < timedelta(days=30)
    ):
        issued = issue_server_certificate(authority, names=server_names, now=now)
        _write_private(files.server_key, issued.private_key_pem)
        files.server_certificate.write_text(issued.certificate_pem)
    return authority


def utcnow() -> datetime:
    return datetime.now(UTC)
