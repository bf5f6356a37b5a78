"""retained/pki.py: the local CA, server and device certificates, CSR signing."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from retained import pki

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def authority() -> pki.Authority:
    return pki.create_authority(common_name="test CA", now=NOW)


def csr(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, common_name: str | None) -> str:
    attributes = (
        [] if common_name is None else [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    )
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name(attributes))
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM).decode()


def test_authority_is_a_ca_valid_for_ten_years(authority: pki.Authority) -> None:
    certificate = authority.certificate
    constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca is True
    assert certificate.not_valid_after_utc - NOW == timedelta(days=pki.CA_DAYS)
    assert pki.is_issued_by(certificate, authority)


def test_device_certificate_is_a_client_certificate_named_by_its_sha256(
    authority: pki.Authority, tmp_path: Path
) -> None:
    issued = pki.issue_device_certificate(authority, common_name="user01", now=NOW)
    certificate = pki.load_certificate(issued.certificate_pem)
    info = pki.describe(certificate)
    assert info.subject_common_name == "user01"
    assert info.issuer_common_name == "test CA"
    usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert pki.is_issued_by(certificate, authority)
    # The id is what `openssl x509 -fingerprint -sha256` prints, lowercased without colons.
    path = tmp_path / "device.pem.crt"
    path.write_text(issued.certificate_pem)
    printed = subprocess.run(
        ["openssl", "x509", "-in", str(path), "-noout", "-fingerprint", "-sha256"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert printed.strip().split("=", 1)[1].replace(":", "").lower() == info.certificate_id
    assert len(info.certificate_id) == 64


def test_certificate_from_another_authority_is_not_ours(authority: pki.Authority) -> None:
    stranger = pki.create_authority(common_name="test CA", now=NOW)  # same name, other key
    issued = pki.issue_device_certificate(stranger, common_name="x", now=NOW)
    assert not pki.is_issued_by(pki.load_certificate(issued.certificate_pem), authority)


@pytest.mark.parametrize(
    ("names", "asked", "covered"),
    [
        (["localhost", "127.0.0.1"], ["localhost"], True),
        (["localhost", "127.0.0.1"], ["127.0.0.1", "localhost"], True),
        (["localhost", "127.0.0.1", "::1"], ["0:0:0:0:0:0:0:1"], True),
        (["localhost", "127.0.0.1"], ["iot.example.com"], False),
        (["localhost", "iot.example.com"], ["iot.example.com"], True),
        (["localhost"], ["127.0.0.1"], False),
    ],
)
def test_server_certificate_covers_its_names(
    authority: pki.Authority, names: list[str], asked: list[str], covered: bool
) -> None:
    issued = pki.issue_server_certificate(authority, names=names, now=NOW)
    certificate = pki.load_certificate(issued.certificate_pem)
    assert pki.covers_names(certificate, asked) is covered


def test_sign_csr_keeps_the_device_key_and_subject(authority: pki.Authority) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    signed = pki.sign_csr(authority, csr(key, "sensor-7"), now=NOW)
    assert pki.describe(signed).subject_common_name == "sensor-7"
    public_key = signed.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    assert public_key.public_numbers() == key.public_key().public_numbers()
    assert pki.is_issued_by(signed, authority)


@pytest.mark.parametrize(
    ("make_csr", "message"),
    [
        (lambda: "not a csr", "not a PEM certificate signing request"),
        (lambda: "", "not a PEM certificate signing request"),
        (lambda: csr(ec.generate_private_key(ec.SECP256R1()), None), "no common name"),
        (
            lambda: csr(rsa.generate_private_key(public_exponent=65537, key_size=1024), "weak"),  # noqa: S505
            "at least 2048 bits",
        ),
    ],
    ids=["garbage", "empty", "no-cn", "rsa-1024"],
)
def test_sign_csr_refuses_bad_requests(
    authority: pki.Authority, make_csr: object, message: str
) -> None:
    assert callable(make_csr)
    with pytest.raises(pki.CertificateError, match=message):
        pki.sign_csr(authority, make_csr(), now=NOW)


def test_sign_csr_refuses_a_tampered_request(authority: pki.Authority) -> None:
    """A CSR whose signature does not match its content (public key swapped)."""
    key = ec.generate_private_key(ec.SECP256R1())
    good = x509.load_pem_x509_csr(csr(key, "tampered").encode())
    der = bytearray(good.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01  # inside the signature
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(pki.CertificateError, match="does not verify"):
        pki.sign_csr(authority, tampered.decode(), now=NOW)


def test_ensure_authority_creates_once_and_reissues_the_server_certificate_for_new_names(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "pki"
    first = pki.ensure_authority(directory, server_names=["localhost", "127.0.0.1"], now=NOW)
    files = pki.AuthorityFiles(directory)
    assert files.ca_key.stat().st_mode & 0o777 == 0o600
    assert files.server_key.stat().st_mode & 0o777 == 0o600
    assert directory.stat().st_mode & 0o777 == 0o700
    server_before = files.server_certificate.read_text()

    again = pki.ensure_authority(directory, server_names=["localhost", "127.0.0.1"], now=NOW)
    assert again.certificate == first.certificate
    assert files.server_certificate.read_text() == server_before

    renamed = pki.ensure_authority(
        directory, server_names=["localhost", "127.0.0.1", "iot.example.com"], now=NOW
    )
    assert renamed.certificate == first.certificate  # the CA stays: devices keep trusting it
    server_after = pki.load_certificate(files.server_certificate.read_text())
    assert pki.covers_names(server_after, ["iot.example.com", "127.0.0.1"])

    later = NOW + timedelta(days=pki.SERVER_DAYS - 10)  # expires within 30 days: renewed
    pki.ensure_authority(directory, server_names=["localhost"], now=later)
    renewed = pki.load_certificate(files.server_certificate.read_text())
    assert renewed.not_valid_after_utc > server_after.not_valid_after_utc
