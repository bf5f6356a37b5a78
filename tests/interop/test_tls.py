"""Devices over mutual TLS (the `--mqtts-port` listener) against a real `manage.py serve`:
the AWS IoT Device SDK v2 (awsiotsdk from PyPI) publishing like the seed's device, paho-mqtt
with the files `create_certificate` writes, policy variables of certificates, and every
refusal (no certificate, another CA, expired, unregistered, deactivated, revoked) with the
server healthy afterwards. Certificate states change from another process
(`manage.py update_certificate`), as an operator's script would.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from retained import pki
from tests.conftest import ensure_policy
from tests.interop.clients import HOST, PahoClient, paho_client, unique
from tests.support.server import REPO_ROOT, ServerProcess

DEVICE_POLICY = """{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:Connect",
  "Resource": "arn:aws:iot:*:*:client/${iot:Connection.Thing.ThingName}"},
 {"Effect": "Allow", "Action": ["iot:Publish", "iot:RetainPublish", "iot:Receive"],
  "Resource": "arn:aws:iot:*:*:topic/devices/${iot:Certificate.Subject.CommonName}/*"},
 {"Effect": "Allow", "Action": "iot:Subscribe",
  "Resource": "arn:aws:iot:*:*:topicfilter/devices/${iot:Certificate.Subject.CommonName}/*"}
]}"""

SEED_POLICY = """{"Version": "2012-10-17", "Statement": [
 {"Effect": "Allow", "Action": "iot:Connect", "Resource": "arn:aws:iot:*:*:client/user01*"},
 {"Effect": "Allow", "Action": ["iot:Publish", "iot:RetainPublish"],
  "Resource": "arn:aws:iot:*:*:topic/users/settings/*"}
]}"""

STATE_CHANGE_DEADLINE = 5.0  # the broker re-reads policies every second at most


@dataclass(frozen=True)
class Device:
    certificate_id: str
    directory: Path
    thing: str

    @property
    def certificate(self) -> Path:
        return self.directory / "device.pem.crt"

    @property
    def key(self) -> Path:
        return self.directory / "private.pem.key"

    @property
    def root_ca(self) -> Path:
        return self.directory / "root-CA.crt"

    def context(self) -> ssl.SSLContext:
        return client_context(self.root_ca, certificate=self.certificate, key=self.key)


def client_context(
    root_ca: Path, *, certificate: Path | None = None, key: Path | None = None
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(root_ca))  # verifies 127.0.0.1 in the SAN
    if certificate is not None:
        context.load_cert_chain(str(certificate), str(key) if key else None)
    return context


def create_device(
    server: ServerProcess, directory: Path, *, thing: str = "", policy: str | None = "device"
) -> Device:
    args = ["create_certificate", "--out", str(directory)]
    if thing:
        args += ["--thing", thing]
    result = server.manage(*args)
    certificate_id = result.stdout.strip().splitlines()[-1].split()[-1]
    assert len(certificate_id) == 64, result.stdout
    if policy is not None:
        if policy == "device":
            ensure_policy(server, "device", DEVICE_POLICY)
        server.manage("attach_policy", policy, "--certificate", certificate_id)
    return Device(certificate_id, directory, thing)


def set_status(server: ServerProcess, device: Device, status: str) -> None:
    result = server.manage(
        "update_certificate", device.certificate_id, "--new-status", status, check=False
    )
    assert result.returncode == 0, result.stderr


def mqtt311_connect(client_id: str) -> bytes:
    variable = b"\x00\x04MQTT\x04\x02\x00\x3c"
    payload = len(client_id).to_bytes(2, "big") + client_id.encode()
    body = variable + payload
    assert len(body) < 128
    return bytes([0x10, len(body)]) + body


def attempt(port: int, context: ssl.SSLContext, client_id: str) -> str:
    """One raw MQTT 3.1.1 CONNECT over TLS: "connack:<code>" when the broker answered,
    "tls-refused" when the handshake (or the TLS 1.3 post-handshake client check) failed,
    "closed" when the server hung up without a CONNACK."""
    with socket.create_connection((HOST, port), timeout=5) as raw:
        try:
            with context.wrap_socket(raw, server_hostname=HOST) as tls:
                tls.sendall(mqtt311_connect(client_id))
                data = tls.recv(4)
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            return "tls-refused"
    if len(data) < 4:
        return "closed"
    assert data[0] == 0x20, data
    return f"connack:{data[3]}"


def tls_paho(port: int, device: Device, client_id: str, *, version: int = 5) -> PahoClient:
    client = PahoClient(port, version=version, client_id=client_id)
    client.client.tls_set_context(device.context())
    return client


def assert_healthy(server: ServerProcess, device: Device) -> None:
    """/healthz answers 200 and a good device still connects and publishes over TLS."""
    with urllib.request.urlopen(f"{server.base_url}/healthz", timeout=5) as response:
        assert response.status == 200
    client = tls_paho(server.mqtts_port, device, device.thing).connect()
    try:
        assert client.publish(f"devices/{device.thing}/health", b"ok", qos=1) == 0
    finally:
        client.disconnect()


@pytest.fixture
def good_device(server: ServerProcess, tmp_path: Path) -> Device:
    thing = f"good-{uuid.uuid4().hex[:8]}"
    return create_device(server, tmp_path / "good", thing=thing)


@pytest.fixture
def device(server: ServerProcess, tmp_path: Path) -> Device:
    thing = f"dev-{uuid.uuid4().hex[:8]}"
    return create_device(server, tmp_path / "device", thing=thing)


# --- the seed's device ---------------------------------------------------------------------------


def run_seed_pubsub(
    port: int, certs: Path, *, topic: str = "users/settings/user01", message: str
) -> subprocess.CompletedProcess[str]:
    """docs/examples/pubsub.py, the seed's command line: the SDK's mtls_from_path to
    127.0.0.1 with the files of create_certificate in `certs`, client id user01, one message."""
    return subprocess.run(
        [
            sys.executable,
            "docs/examples/pubsub.py",
            *("--endpoint", HOST, "--port", str(port)),
            *("--cert", str(certs / "device.pem.crt"), "--key", str(certs / "private.pem.key")),
            *("--root-ca", str(certs / "root-CA.crt"), "--client-id", "user01"),
            *("--topic", topic, "--count", "1", "--message", message),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_awsiotsdk_pubsub_publishes_retained_and_a_later_subscriber_gets_it(
    server: ServerProcess, tmp_path: Path
) -> None:
    """The seed's command: the SDK's mtls_from_path to 127.0.0.1:8883 with the files from
    create_certificate, client id user01, QoS 1, retain."""
    ensure_policy(server, "seed-device", SEED_POLICY)
    device = create_device(server, tmp_path / "certs", thing="user01", policy="seed-device")
    result = run_seed_pubsub(server.mqtts_port, device.directory, message="hello from python!")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "acknowledged" in result.stdout

    with paho_client(server.mqtt_port) as subscriber:
        assert subscriber.subscribe("users/settings/user01", qos=1) == [1]
        (received,) = subscriber.collect(1)
    assert received.payload == b"hello from python!"
    assert received.retain is True
    assert received.qos == 1


# --- the certificate is the principal ----------------------------------------------------------


def test_connect_requires_the_thing_name_as_client_id(
    server: ServerProcess, device: Device
) -> None:
    """iot:Connect on client/${iot:Connection.Thing.ThingName}: only the certificate's thing
    name resolves it (AWS: the client id names the thing attached to the certificate)."""
    assert attempt(server.mqtts_port, device.context(), device.thing) == "connack:0"
    assert attempt(server.mqtts_port, device.context(), f"{device.thing}-other") == "connack:5"


def test_publish_only_under_the_certificate_common_name(
    server: ServerProcess, device: Device
) -> None:
    own = f"devices/{device.thing}/{unique('state')}"
    other = f"devices/someone-else/{unique('state')}"
    client = tls_paho(server.mqtts_port, device, device.thing).connect()
    try:
        assert client.publish(own, b"mine", qos=1, retain=True) == 0
        assert client.publish(other, b"not mine", qos=1, retain=True) == 0x87
        assert client.subscribe(f"devices/{device.thing}/#", qos=1) == [1]
        assert client.subscribe("devices/#", qos=1) == [0x87]
    finally:
        client.disconnect()
    with paho_client(server.mqtt_port) as reader:
        assert reader.subscribe(own, qos=1) == [1]
        assert reader.subscribe(other, qos=1) == [1]
        received = reader.collect(1)
    assert [(message.topic, message.payload) for message in received] == [(own, b"mine")]


# --- refusals -----------------------------------------------------------------------------------


def test_no_client_certificate_is_refused(
    server: ServerProcess, good_device: Device, tmp_path: Path
) -> None:
    context = client_context(good_device.root_ca)
    assert attempt(server.mqtts_port, context, "no-certificate") in ("tls-refused", "closed")
    assert_healthy(server, good_device)


def test_certificate_from_another_ca_is_refused(
    server: ServerProcess, good_device: Device, tmp_path: Path
) -> None:
    now = pki.utcnow()
    stranger = pki.create_authority(common_name="someone else's CA", now=now)
    issued = pki.issue_device_certificate(stranger, common_name=good_device.thing, now=now)
    (tmp_path / "stranger.crt").write_text(issued.certificate_pem)
    (tmp_path / "stranger.key").write_text(issued.private_key_pem)
    context = client_context(
        good_device.root_ca, certificate=tmp_path / "stranger.crt", key=tmp_path / "stranger.key"
    )
    assert attempt(server.mqtts_port, context, good_device.thing) in ("tls-refused", "closed")
    assert_healthy(server, good_device)


def test_expired_certificate_is_refused_at_the_handshake(
    server: ServerProcess, good_device: Device, tmp_path: Path
) -> None:
    """Signed by the server's own CA, but its validity ended yesterday."""
    authority = pki.load_authority(pki.AuthorityFiles(server.pki_dir))
    now = pki.utcnow()
    issued = pki.issue_device_certificate(
        authority,
        common_name=good_device.thing,
        now=now,
        not_before=now - timedelta(days=30),
        not_after=now - timedelta(days=1),
    )
    (tmp_path / "expired.crt").write_text(issued.certificate_pem)
    (tmp_path / "expired.key").write_text(issued.private_key_pem)
    context = client_context(
        good_device.root_ca, certificate=tmp_path / "expired.crt", key=tmp_path / "expired.key"
    )
    assert attempt(server.mqtts_port, context, good_device.thing) in ("tls-refused", "closed")
    assert_healthy(server, good_device)


def test_certificate_of_our_ca_that_was_never_registered_is_refused(
    server: ServerProcess, good_device: Device, tmp_path: Path
) -> None:
    authority = pki.load_authority(pki.AuthorityFiles(server.pki_dir))
    issued = pki.issue_device_certificate(
        authority, common_name=good_device.thing, now=pki.utcnow()
    )
    (tmp_path / "unknown.crt").write_text(issued.certificate_pem)
    (tmp_path / "unknown.key").write_text(issued.private_key_pem)
    context = client_context(
        good_device.root_ca, certificate=tmp_path / "unknown.crt", key=tmp_path / "unknown.key"
    )
    assert attempt(server.mqtts_port, context, good_device.thing) == "connack:5"
    assert_healthy(server, good_device)


@pytest.mark.parametrize("status", ["INACTIVE", "REVOKED"])
def test_deactivated_or_revoked_certificate_is_refused_and_its_live_connection_closed(
    server: ServerProcess, device: Device, good_device: Device, status: str
) -> None:
    live = tls_paho(server.mqtts_port, device, device.thing).connect()
    bystander = tls_paho(server.mqtts_port, good_device, good_device.thing).connect()
    try:
        assert live.publish(f"devices/{device.thing}/before", b"1", qos=1) == 0
        started = time.monotonic()
        set_status(server, device, status)
        assert live.wait_disconnected(STATE_CHANGE_DEADLINE), "the live connection stayed open"
        print(f"\n{status}: connection closed {time.monotonic() - started:.2f} s after the change")
        assert live.disconnect_reason is not None
        assert int(live.disconnect_reason.value) == 0x87
        assert attempt(server.mqtts_port, device.context(), device.thing) == "connack:5"
        # Another certificate's connection is untouched.
        assert bystander.connected
        assert bystander.publish(f"devices/{good_device.thing}/after", b"2", qos=1) == 0
    finally:
        live.disconnect()
        bystander.disconnect()
    assert_healthy(server, good_device)


def test_reactivated_certificate_connects_again_but_revoked_is_final(
    server: ServerProcess, device: Device
) -> None:
    set_status(server, device, "INACTIVE")
    assert attempt(server.mqtts_port, device.context(), device.thing) == "connack:5"
    set_status(server, device, "ACTIVE")
    assert attempt(server.mqtts_port, device.context(), device.thing) == "connack:0"
    set_status(server, device, "REVOKED")
    result = server.manage(
        "update_certificate", device.certificate_id, "--new-status", "ACTIVE", check=False
    )
    assert result.returncode != 0
    assert "revoked" in result.stderr.lower()
    assert attempt(server.mqtts_port, device.context(), device.thing) == "connack:5"


def test_certificate_without_any_policy_cannot_connect(
    server: ServerProcess, tmp_path: Path
) -> None:
    """Default deny: an ACTIVE certificate with no policy attached."""
    bare = create_device(server, tmp_path / "bare", thing="bare-device", policy=None)
    assert attempt(server.mqtts_port, bare.context(), "bare-device") == "connack:5"


def test_create_certificate_files_and_their_modes(server: ServerProcess, tmp_path: Path) -> None:
    device = create_device(server, tmp_path / "files", thing="files-device", policy=None)
    assert device.key.stat().st_mode & 0o777 == 0o600
    assert (server.pki_dir / "ca.key").stat().st_mode & 0o777 == 0o600
    assert (server.pki_dir / "server.key").stat().st_mode & 0o777 == 0o600
    certificate = pki.load_certificate(device.certificate.read_text())
    assert pki.certificate_id(certificate) == device.certificate_id
    assert pki.describe(certificate).subject_common_name == "files-device"
    assert device.root_ca.read_text() == (server.pki_dir / "root-CA.crt").read_text()
    again = server.manage("create_certificate", "--out", str(device.directory), check=False)
    assert again.returncode != 0
    assert "refusing to overwrite" in again.stderr
    unknown = server.manage("attach_policy", "device", "--certificate", "ab" * 32, check=False)
    assert unknown.returncode != 0
    assert "no certificate" in unknown.stderr
