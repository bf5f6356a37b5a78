"""The broker as a service of this Django project: settings, authentication, runtime handle."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import close_old_connections

from retained import access, certificates, runtime, throttles
from retained.access import Principal
from retained.access_keys import find_active_access_key
from retained.broker.broker import Broker, BrokerConfig, Identity
from retained.broker.server import start_tcp_listener, start_tls_listener
from retained.models import Certificate, CertificateStatus

logger = logging.getLogger("retained.broker")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def anonymous_allowed(bind: str) -> bool:
    """RETAINED_ALLOW_ANONYMOUS if set; otherwise only while listening on loopback."""
    configured: str = settings.RETAINED_ALLOW_ANONYMOUS
    if configured in ("true", "false"):
        return configured == "true"
    return is_loopback(bind)


def authenticate_access_key(username: str, password: bytes) -> Principal | None:
    """MQTT username/password = access key id / secret access key."""
    close_old_connections()
    try:
        key = find_active_access_key(username)
        if key is None:
            return None
        if not hmac.compare_digest(key.secret_access_key.encode(), password):
            return None
        access.refresh_if_stale(check_now=True)  # a policy attached just now applies here
        return Principal(kind="user", name=key.user.get_username(), via=key.access_key_id)
    finally:
        close_old_connections()


def authenticate_certificate(certificate_id: str, client_id: str) -> Identity | None:
    """A TLS client whose certificate our CA signed: it may connect while ACTIVE.
    `iot:Connection.Thing.ThingName` resolves when the client id is the certificate's thing
    (AWS: the thing attached to the certificate, named by the client id)."""
    close_old_connections()
    try:
        certificate = Certificate.objects.filter(pk=certificate_id).first()
        if certificate is None or certificate.status != CertificateStatus.ACTIVE:
            return None
        access.refresh_if_stale(check_now=True)
        context = [("iot:Certificate.Subject.CommonName", certificate.subject_common_name)]
        if certificate.thing_name and certificate.thing_name == client_id:
            context.append(("iot:Connection.Thing.ThingName", certificate.thing_name))
            context.append(("iot:Connection.Thing.IsAttached", "true"))
        principal = Principal(kind="certificate", name=certificate.certificate_id, via="x509")
        return Identity(principal, tuple(context))
    finally:
        close_old_connections()


def broker_config(*, bind: str) -> BrokerConfig:
    return BrokerConfig(
        limits=settings.RETAINED_LIMITS,
        wildcard_delivery=settings.RETAINED_WILDCARD_DELIVERY,
        allow_anonymous=anonymous_allowed(bind),
        # At least one, or no QoS 1 subscriber could stay connected.
        max_queued_messages=max(1, settings.RETAINED_LIMITS.max_queued_messages),
        sweep_interval_seconds=settings.RETAINED_SWEEP_INTERVAL_SECONDS,
        region=settings.RETAINED_REGION,
        account_id=settings.RETAINED_ACCOUNT_ID,
    )


@dataclass
class RunningBroker:
    broker: Broker
    listeners: list[asyncio.Server]

    def __post_init__(self) -> None:
        access.add_snapshot_listener(self._on_snapshot)

    def _on_snapshot(self, snapshot: access.Snapshot) -> None:
        """A policy or certificate change committed in this process: act on it now rather
        than at the next refresh (other processes' changes arrive through the refresher)."""
        loop = self.broker.loop
        if not loop.is_closed():
            loop.call_soon_threadsafe(self.broker.policies_changed)

    async def stop(self) -> None:
        access.remove_snapshot_listener(self._on_snapshot)
        for listener in self.listeners:
            listener.close()
        await self.broker.stop()
        runtime.set_broker(None)
        runtime.set_broker_status("stopped")


async def start_broker(
    *, bind: str, mqtt_port: int, mqtts_port: int | None = None
) -> RunningBroker:
    """Start the broker, its TCP listener and (unless `mqtts_port` is None or 0) its TLS
    listener for X.509 client certificates on the running loop; register it for /healthz
    and for in-process publishes (HTTP API, console)."""
    runtime.set_broker_status("starting")
    loop = asyncio.get_running_loop()
    broker = Broker(
        broker_config(bind=bind),
        authenticator=authenticate_access_key,
        authorizer=access.is_allowed,
        policy_refresher=access.refresh_if_stale,
        certificate_authenticator=authenticate_certificate,
        principal_validator=access.principal_is_valid,
        principal_unrestricted=access.is_unrestricted,
        retained_publish_limiter=throttles.retained_publish_limiter(),
        loop=loop,
    )
    await broker.start()
    listeners = [await start_tcp_listener(broker, bind, mqtt_port)]
    if mqtts_port:
        authority = await asyncio.to_thread(certificates.authority)
        files = certificates.authority_files()
        listeners.append(
            await start_tls_listener(
                broker,
                bind,
                mqtts_port,
                ca_file=files.ca_certificate,
                certificate_file=files.server_certificate,
                key_file=files.server_key,
            )
        )
        logger.info("TLS listener uses CA %r", authority.certificate.subject.rfc4514_string())
        runtime.set_mqtts_port(mqtts_port)
    runtime.set_broker(broker, loop)
    runtime.set_mqtt_port(mqtt_port)
    runtime.set_broker_status("ok")
    logger.info(
        "broker ready: anonymous clients %s, retained delivery %s",
        "allowed" if broker.config.allow_anonymous else "refused",
        "spec (every matching filter)" if broker.config.wildcard_delivery else "AWS (exact match)",
    )
    return RunningBroker(broker=broker, listeners=listeners)
