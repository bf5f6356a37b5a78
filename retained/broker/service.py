"""The broker as a service of this Django project: settings, authentication, runtime handle."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import close_old_connections

from retained import access, runtime
from retained.access import Principal
from retained.access_keys import find_active_access_key
from retained.broker.broker import Broker, BrokerConfig
from retained.broker.server import start_tcp_listener

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


def broker_config(*, bind: str) -> BrokerConfig:
    return BrokerConfig(
        limits=settings.RETAINED_LIMITS,
        wildcard_delivery=settings.RETAINED_WILDCARD_DELIVERY,
        allow_anonymous=anonymous_allowed(bind),
        sweep_interval_seconds=settings.RETAINED_SWEEP_INTERVAL_SECONDS,
        region=settings.RETAINED_REGION,
        account_id=settings.RETAINED_ACCOUNT_ID,
    )


@dataclass
class RunningBroker:
    broker: Broker
    listeners: list[asyncio.Server]

    async def stop(self) -> None:
        for listener in self.listeners:
            listener.close()
        await self.broker.stop()
        runtime.set_broker(None)
        runtime.set_broker_status("stopped")


async def start_broker(*, bind: str, mqtt_port: int) -> RunningBroker:
    """Start the broker and its TCP listener on the running loop; register it for /healthz
    and for in-process publishes (HTTP API, console)."""
    runtime.set_broker_status("starting")
    loop = asyncio.get_running_loop()
    broker = Broker(
        broker_config(bind=bind),
        authenticator=authenticate_access_key,
        authorizer=access.is_allowed,
        policy_refresher=access.refresh_if_stale,
        loop=loop,
    )
    await broker.start()
    listener = await start_tcp_listener(broker, bind, mqtt_port)
    runtime.set_broker(broker, loop)
    runtime.set_mqtt_port(mqtt_port)
    runtime.set_broker_status("ok")
    logger.info(
        "broker ready: anonymous clients %s, retained delivery %s",
        "allowed" if broker.config.allow_anonymous else "refused",
        "spec (every matching filter)" if broker.config.wildcard_delivery else "AWS (exact match)",
    )
    return RunningBroker(broker=broker, listeners=[listener])
