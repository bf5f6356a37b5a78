"""Persistent MQTT sessions in the database (sync; run on the writer thread or at start)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from retained.broker.properties import Properties
from retained.broker.router import SubscriptionOptions
from retained.models import MqttQueuedMessage, MqttSession, MqttSubscription

# The message properties a queued message keeps (what is forwarded to subscribers).
_FORWARDED = ("payload_format_indicator", "content_type", "response_topic", "user_property")


@dataclass(slots=True)
class QueuedMessage:
    row_id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: Properties
    expires_at: datetime | None


@dataclass(slots=True)
class SavedSession:
    client_id: str
    protocol_level: int
    expiry_interval: int
    disconnected_at: datetime | None
    subscriptions: dict[str, SubscriptionOptions] = field(default_factory=dict)
    queue: list[QueuedMessage] = field(default_factory=list)


def properties_to_json(properties: Properties) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if properties.payload_format_indicator is not None:
        data["payload_format_indicator"] = properties.payload_format_indicator
    if properties.content_type is not None:
        data["content_type"] = properties.content_type
    if properties.response_topic is not None:
        data["response_topic"] = properties.response_topic
    if properties.correlation_data is not None:
        data["correlation_data"] = base64.b64encode(properties.correlation_data).decode()
    if properties.user_property:
        data["user_property"] = [list(pair) for pair in properties.user_property]
    return data


def properties_from_json(data: dict[str, Any]) -> Properties:
    return Properties(
        payload_format_indicator=data.get("payload_format_indicator"),
        content_type=data.get("content_type"),
        response_topic=data.get("response_topic"),
        correlation_data=base64.b64decode(data["correlation_data"])
        if "correlation_data" in data
        else None,
        user_property=tuple((str(k), str(v)) for k, v in data.get("user_property", [])),
    )


def save_session(
    client_id: str, *, protocol_level: int, expiry_interval: int, principal: str
) -> None:
    MqttSession.objects.update_or_create(
        client_id=client_id,
        defaults={
            "protocol_level": protocol_level,
            "expiry_interval": expiry_interval,
            "disconnected_at": None,
            "principal": principal,
        },
    )


def mark_disconnected(client_id: str, *, at: datetime, expiry_interval: int) -> None:
    MqttSession.objects.filter(client_id=client_id).update(
        disconnected_at=at, expiry_interval=expiry_interval
    )


def delete_session(client_id: str) -> None:
    MqttSession.objects.filter(client_id=client_id).delete()


def save_subscription(client_id: str, topic_filter: str, options: SubscriptionOptions) -> None:
    session = MqttSession.objects.filter(client_id=client_id).first()
    if session is None:
        return
    MqttSubscription.objects.update_or_create(
        session=session,
        topic_filter=topic_filter,
        defaults={
            "qos": options.qos,
            "no_local": options.no_local,
            "retain_as_published": options.retain_as_published,
            "retain_handling": options.retain_handling,
        },
    )


def delete_subscription(client_id: str, topic_filter: str) -> None:
    MqttSubscription.objects.filter(
        session__client_id=client_id, topic_filter=topic_filter
    ).delete()


def enqueue(
    client_id: str,
    *,
    topic: str,
    payload: bytes,
    qos: int,
    retain: bool,
    properties: Properties,
    expires_at: datetime | None,
) -> int | None:
    session_id = (
        MqttSession.objects.filter(client_id=client_id).values_list("id", flat=True).first()
    )
    if session_id is None:
        return None
    row = MqttQueuedMessage.objects.create(
        session_id=session_id,
        topic=topic,
        payload=payload,
        qos=qos,
        retain=retain,
        properties=properties_to_json(properties),
        expires_at=expires_at,
    )
    return row.id


def dequeue(row_ids: list[int]) -> None:
    MqttQueuedMessage.objects.filter(id__in=row_ids).delete()


def expire_sessions(now: datetime) -> list[str]:
    """Delete sessions whose expiry has passed since their disconnect; their client ids."""
    expired = [
        client_id
        for client_id, disconnected_at, interval in MqttSession.objects.filter(
            disconnected_at__isnull=False
        ).values_list("client_id", "disconnected_at", "expiry_interval")
        if disconnected_at is not None and disconnected_at + timedelta(seconds=interval) <= now
    ]
    if expired:
        MqttSession.objects.filter(client_id__in=expired).delete()
    return expired


def load_sessions() -> list[SavedSession]:
    """Every stored session, with subscriptions and queued messages (at broker start).

    Sessions that were connected when the server stopped count as disconnected now.
    """
    now = timezone.now()
    MqttSession.objects.filter(disconnected_at__isnull=True).update(disconnected_at=now)
    expire_sessions(now)
    sessions: dict[int, SavedSession] = {}
    for row in MqttSession.objects.all():
        sessions[row.id] = SavedSession(
            client_id=row.client_id,
            protocol_level=row.protocol_level,
            expiry_interval=row.expiry_interval,
            disconnected_at=row.disconnected_at,
        )
    for sub in MqttSubscription.objects.all():
        if sub.session_id in sessions:
            sessions[sub.session_id].subscriptions[sub.topic_filter] = SubscriptionOptions(
                qos=sub.qos,
                no_local=sub.no_local,
                retain_as_published=sub.retain_as_published,
                retain_handling=sub.retain_handling,
            )
    for message in MqttQueuedMessage.objects.order_by("id").iterator(chunk_size=2000):
        if message.session_id in sessions:
            sessions[message.session_id].queue.append(
                QueuedMessage(
                    row_id=message.id,
                    topic=message.topic,
                    payload=bytes(message.payload),
                    qos=message.qos,
                    retain=message.retain,
                    properties=properties_from_json(message.properties),
                    expires_at=message.expires_at,
                )
            )
    return list(sessions.values())
