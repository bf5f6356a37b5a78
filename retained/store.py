"""The one place that reads and writes retained messages.

Every interface (broker, HTTP API, console) goes through these functions. Writes are atomic,
enforce the quotas, keep the maintained count, and emit a RetainedChanged event after commit.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import operator
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, NamedTuple

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from retained import events
from retained.conf import Limits
from retained.models import Counter, RetainedMessage, SetByKind
from retained.page_tokens import InvalidPageTokenError, decode_page_token, encode_page_token
from retained.topics import InvalidTopicError, TopicLimits, topic_matches, validate_topic_name

__all__ = [
    "Actor",
    "DeliveryPage",
    "InvalidPageTokenError",
    "InvalidTopicError",
    "MessageProperties",
    "Page",
    "PayloadTooLargeError",
    "RetainedQuotaExceededError",
    "RetainedWrite",
    "StoreError",
    "StoredMessage",
    "TopicSummary",
    "Written",
    "clear_retained",
    "count_retained",
    "get_retained",
    "list_page",
    "set_retained",
    "set_retained_many",
]

RETAINED_COUNTER = "retained_messages"
# Reads move the last-accessed clock at most this often, so a hot topic is not a write per read.
ACCESS_CLOCK_RESOLUTION = timedelta(hours=1)


class StoreError(Exception):
    """Base of the store's refusals; the message is meant for the client."""


class PayloadTooLargeError(StoreError):
    pass


class RetainedQuotaExceededError(StoreError):
    pass


class InvalidQosError(StoreError):
    pass


class InvalidMaxResultsError(StoreError):
    pass


@dataclass(frozen=True, slots=True)
class Actor:
    """Who set a retained message: an MQTT client id, an access key id, a console user."""

    kind: SetByKind
    name: str


@dataclass(frozen=True, slots=True)
class MessageProperties:
    """The MQTT 5 properties kept with a retained message."""

    content_type: str = ""
    payload_format_indicator: int | None = None
    response_topic: str = ""
    correlation_data: bytes | None = None
    user_properties: tuple[tuple[str, str], ...] = ()
    message_expiry_interval: int | None = None


NO_PROPERTIES = MessageProperties()


@dataclass(frozen=True, slots=True)
class StoredMessage:
    topic: str
    payload: bytes
    qos: int
    properties: MessageProperties
    last_modified_ms: int
    last_accessed_at: datetime
    expires_at: datetime | None
    set_by: Actor

    @property
    def payload_size(self) -> int:
        return len(self.payload)

    def remaining_expiry_seconds(self, now: datetime) -> int | None:
        """MQTT 5: a forwarded message carries the interval that is left, at least 1."""
        if self.expires_at is None:
            return None
        return max(1, int((self.expires_at - now).total_seconds()))


class Written(NamedTuple):
    """What a batch write (`set_retained_many`) tells about a message it stored: enough to
    route it (its version and expiry), without building a whole StoredMessage per write."""

    topic: str
    last_modified_ms: int
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class TopicSummary:
    topic: str
    payload_size: int
    qos: int
    last_modified_ms: int


@dataclass(frozen=True, slots=True)
class Page:
    items: list[TopicSummary] = field(default_factory=list)
    next_token: str | None = None


def _limits() -> Limits:
    limits: Limits = settings.RETAINED_LIMITS
    return limits


_topic_limits_of: tuple[Limits, TopicLimits] | None = None


def topic_limits(limits: Limits) -> TopicLimits:
    """The topic rules of `limits`, built once per Limits object (every write asks; hashing
    the frozen Limits for a cache key would cost more than building them)."""
    global _topic_limits_of
    cached = _topic_limits_of
    if cached is not None and cached[0] is limits:
        return cached[1]
    rules = TopicLimits(max_bytes=limits.max_topic_bytes, max_slashes=limits.max_topic_slashes)
    _topic_limits_of = (limits, rules)
    return rules


def _page_token_key() -> bytes:
    return hashlib.sha256(b"retained.page-token:" + settings.SECRET_KEY.encode()).digest()


def _now_ms(now: datetime) -> int:
    return int(now.timestamp() * 1000)


def clamp_message_expiry(interval: int | None, limits: Limits) -> int | None:
    """AWS clamps a retained message's expiry interval to 1..604800 s."""
    if interval is None:
        return None
    return min(max(interval, 1), limits.message_expiry_max_seconds)


def _not_expired(now: datetime) -> Q:
    return Q(expires_at__isnull=True) | Q(expires_at__gt=now)


def _to_stored(row: RetainedMessage) -> StoredMessage:
    return StoredMessage(
        topic=row.topic,
        payload=bytes(row.payload),
        qos=row.qos,
        properties=MessageProperties(
            content_type=row.content_type,
            payload_format_indicator=row.payload_format_indicator,
            response_topic=row.response_topic,
            correlation_data=bytes(row.correlation_data)
            if row.correlation_data is not None
            else None,
            user_properties=tuple((str(k), str(v)) for k, v in row.user_properties),
            message_expiry_interval=row.message_expiry_interval,
        ),
        last_modified_ms=row.last_modified_ms,
        last_accessed_at=row.last_accessed_at,
        expires_at=row.expires_at,
        set_by=Actor(kind=SetByKind(row.set_by_kind), name=row.set_by),
    )


def validate_topic(topic: str, *, limits: Limits, for_retain: bool = False) -> None:
    """A topic name as this server accepts it (MQTT rules plus the AWS limits in `limits`)."""
    validate_topic_name(topic, limits=topic_limits(limits), for_retain=for_retain)


def validate_publish(topic: str, payload: bytes, *, qos: int, retain: bool, limits: Limits) -> None:
    """Everything a publish must satisfy before anything is written or routed."""
    validate_topic_name(topic, limits=topic_limits(limits), for_retain=retain)
    if qos not in (0, 1):
        raise InvalidQosError(f"qos must be 0 or 1, got {qos}")
    if len(payload) > limits.max_payload_bytes:
        raise PayloadTooLargeError(
            f"payload is {len(payload)} bytes; the limit is {limits.max_payload_bytes} bytes"
        )


def validate_retained_publish(topic: str, payload: bytes, *, qos: int, limits: Limits) -> None:
    validate_publish(topic, payload, qos=qos, retain=True, limits=limits)


def _bump_counter(delta: int) -> None:
    if delta:
        Counter.objects.filter(name=RETAINED_COUNTER).update(value=F("value") + delta)


def _counter_value_for_update() -> int:
    counter, _ = Counter.objects.select_for_update().get_or_create(name=RETAINED_COUNTER)
    return counter.value


class RetainedWrite(NamedTuple):
    """One retained publish in a batch (see set_retained_many). A NamedTuple: the broker
    makes one per retained publish, and a frozen dataclass costs three times as much."""

    topic: str
    payload: bytes
    qos: int
    actor: Actor
    properties: MessageProperties = NO_PROPERTIES
    # True when the caller already checked it as `validate_retained_publish` does, against
    # the same limits: the broker, for an MQTT publish it validated on receipt. Saves a
    # second topic validation per write on the writer thread.
    checked: bool = False


def _row_values(
    write: RetainedWrite, *, now: datetime, limits: Limits, now_ms: int | None = None
) -> dict[str, Any]:
    expiry_interval = clamp_message_expiry(write.properties.message_expiry_interval, limits)
    properties = write.properties
    return {
        "payload": write.payload,
        "payload_size": len(write.payload),
        "qos": write.qos,
        "content_type": properties.content_type,
        "payload_format_indicator": properties.payload_format_indicator,
        "response_topic": properties.response_topic,
        "correlation_data": properties.correlation_data,
        "user_properties": [list(pair) for pair in properties.user_properties],
        "message_expiry_interval": expiry_interval,
        "expires_at": now + timedelta(seconds=expiry_interval) if expiry_interval else None,
        "last_modified_ms": _now_ms(now) if now_ms is None else now_ms,
        "last_accessed_at": now,
        "set_by_kind": write.actor.kind.value,
        "set_by": write.actor.name,
    }


def _stored_from_values(write: RetainedWrite, values: dict[str, Any]) -> StoredMessage:
    return StoredMessage(
        topic=write.topic,
        payload=write.payload,
        qos=write.qos,
        properties=write.properties
        if write.properties.message_expiry_interval == values["message_expiry_interval"]
        else dataclasses.replace(
            write.properties, message_expiry_interval=values["message_expiry_interval"]
        ),
        last_modified_ms=values["last_modified_ms"],
        last_accessed_at=values["last_accessed_at"],
        expires_at=values["expires_at"],
        set_by=write.actor,
    )


def _quota_error(limits: Limits) -> RetainedQuotaExceededError:
    return RetainedQuotaExceededError(
        f"the account already holds {limits.max_retained_messages} retained "
        "messages; delete some or raise RETAINED_MAX_RETAINED_MESSAGES"
    )


def _emit_after_commit(event: events.RetainedChanged) -> None:
    transaction.on_commit(partial(events.emit, event))


def _emit_all_after_commit(batch: list[events.RetainedChanged]) -> None:
    if batch:
        transaction.on_commit(partial(_emit_all, batch))


def _emit_all(batch: list[events.RetainedChanged]) -> None:
    for event in batch:
        events.emit(event)


def _set_event(topic: str, values: dict[str, Any]) -> events.RetainedChanged:
    return events.RetainedChanged(
        topic=topic,
        change="set",
        qos=values["qos"],
        payload_size=values["payload_size"],
        last_modified_ms=values["last_modified_ms"],
    )


def set_retained(
    topic: str,
    payload: bytes,
    *,
    qos: int,
    actor: Actor,
    properties: MessageProperties = NO_PROPERTIES,
    now: datetime | None = None,
) -> StoredMessage | None:
    """Store (or replace) the retained message of `topic`; an empty payload clears it.

    Returns the stored message, or None when the publish cleared the topic.
    Raises InvalidTopicError, InvalidQosError, PayloadTooLargeError, RetainedQuotaExceededError.
    """
    limits = _limits()
    validate_retained_publish(topic, payload, qos=qos, limits=limits)
    if not payload:
        clear_retained(topic, actor=actor)
        return None
    write = RetainedWrite(topic=topic, payload=payload, qos=qos, actor=actor, properties=properties)
    values = _row_values(write, now=now or timezone.now(), limits=limits)
    with transaction.atomic():
        replaced = RetainedMessage.objects.filter(topic=topic).update(**values)
        if not replaced:
            # AWS: a new topic beyond the count quota is throttled; replacements still work.
            if _counter_value_for_update() >= limits.max_retained_messages:
                raise _quota_error(limits)
            RetainedMessage.objects.create(topic=topic, **values)
            _bump_counter(+1)
        _emit_after_commit(_set_event(topic, values))
    return _stored_from_values(write, values)


def set_retained_many(
    writes: list[RetainedWrite], *, now: datetime | None = None
) -> list[Written | Exception | None]:
    """Apply a batch of retained publishes in ONE transaction (group commit).

    Each write is validated on its own: a refused write gets its StoreError in the result
    list and does not affect the others. Later writes to the same topic win, as if applied
    in order. Returns, per write, what was stored (Written), None (cleared) or the error.
    """
    limits = _limits()
    now = now or timezone.now()
    now_ms = _now_ms(now)
    results: list[Written | Exception | None] = []
    final: dict[str, tuple[list[int], dict[str, Any] | None]] = {}
    for write in writes:
        if not write.checked:
            try:
                validate_retained_publish(write.topic, write.payload, qos=write.qos, limits=limits)
            except (StoreError, InvalidTopicError) as error:
                results.append(error)
                continue
        topic = write.topic
        values = None
        if write.payload:
            values = _row_values(write, now=now, limits=limits, now_ms=now_ms)
        if topic in final:
            final[topic][0].append(len(results))
            final[topic] = (final[topic][0], values)
        else:
            final[topic] = ([len(results)], values)
        results.append(Written(topic, now_ms, values["expires_at"]) if values else None)
    if not final:
        return results
    with transaction.atomic():
        count = _counter_value_for_update()
        existing = _existing_topics(list(final))
        deleted = [t for t, (_, values) in final.items() if values is None and t in existing]
        for first in range(0, len(deleted), 500):
            RetainedMessage.objects.filter(topic__in=deleted[first : first + 500]).delete()
        changes = [events.RetainedChanged(topic=topic, change="cleared") for topic in deleted]
        room = limits.max_retained_messages - (count - len(deleted))
        rows: list[tuple[str, dict[str, Any]]] = []
        created = 0
        for topic, (positions, values) in final.items():
            if values is None:
                continue
            if topic not in existing:
                if created >= room:
                    # AWS: a new topic beyond the count quota is throttled.
                    for position in positions:
                        results[position] = _quota_error(limits)
                    continue
                created += 1
            rows.append((topic, values))
            changes.append(_set_event(topic, values))
        _upsert(rows)
        _emit_all_after_commit(changes)
        _bump_counter(created - len(deleted))
    return results


@contextmanager
def _bulk_cursor() -> Iterator[tuple[Any, str]]:
    """A cursor for statements with many parameters, and its placeholder. On SQLite the
    driver's own cursor with "?": Django's wrapper rewrites every "%s" of a statement with a
    regex on each call (0.7 ms for 6,000 placeholders). Same connection, so the same
    transaction as Django's atomic block."""
    with connection.cursor() as django_cursor:
        if connection.vendor == "sqlite":
            cursor = connection.connection.cursor()
            try:
                yield cursor, "?"
            finally:
                cursor.close()
        else:
            yield django_cursor, "%s"


def _existing_topics(topics: list[str]) -> set[str]:
    """Which of `topics` have a row. Raw SQL: the ORM took ~10 us a topic to build and
    run this query, a quarter of a retained write."""
    existing: set[str] = set()
    with _bulk_cursor() as (cursor, placeholder):
        for first in range(0, len(topics), 500):
            chunk = topics[first : first + 500]
            cursor.execute(
                f"SELECT {_C_TOPIC} FROM {_TABLE} WHERE {_C_TOPIC} IN "  # noqa: S608 -- names from the model
                f"({', '.join([placeholder] * len(chunk))})",
                chunk,
            )
            existing.update(row[0] for row in cursor.fetchall())
    return existing


_UPSERT_COLUMNS = (
    "payload",
    "payload_size",
    "qos",
    "content_type",
    "payload_format_indicator",
    "response_topic",
    "correlation_data",
    "user_properties",
    "message_expiry_interval",
    "expires_at",
    "last_modified_ms",
    "last_accessed_at",
    "set_by_kind",
    "set_by",
)


# Rows per INSERT statement: one statement per chunk rather than executemany's one step per
# row. Each step releases and re-takes the GIL; with the broker's event loop busy in the other
# thread, every re-take can wait, which made executemany cost ~75 us a row under load.
# 400 rows x 15 columns stays under SQLite's 32,766 and PostgreSQL's 65,535 parameters.
_UPSERT_CHUNK = 400


@functools.cache
def _upsert_sql(row_count: int, placeholder: str) -> str:
    ops = connection.ops
    table = ops.quote_name(RetainedMessage._meta.db_table)
    columns = ("topic", *_UPSERT_COLUMNS)
    quoted = [ops.quote_name(column) for column in columns]
    updates = ", ".join(f"{name} = excluded.{name}" for name in quoted[1:])
    row = "(" + ", ".join([placeholder] * len(columns)) + ")"
    # Only quoted identifiers from our own model are interpolated; values are parameters.
    return (
        f"INSERT INTO {table} ({', '.join(quoted)}) VALUES {', '.join([row] * row_count)} "  # noqa: S608
        f"ON CONFLICT ({quoted[0]}) DO UPDATE SET {updates}"
    )


def _upsert(rows: list[tuple[str, dict[str, Any]]]) -> None:
    """INSERT .. ON CONFLICT(topic) DO UPDATE, many rows per statement (SQLite and
    PostgreSQL). `rows` has each topic at most once."""
    if not rows:
        return
    ops = connection.ops
    adapted: dict[datetime | None, Any] = {}

    def adapt(moment: datetime | None) -> Any:
        if moment not in adapted:
            adapted[moment] = ops.adapt_datetimefield_value(moment)
        return adapted[moment]

    with _bulk_cursor() as (cursor, placeholder):
        for first in range(0, len(rows), _UPSERT_CHUNK):
            chunk = rows[first : first + _UPSERT_CHUNK]
            parameters: list[Any] = []
            for topic, values in chunk:
                parameters += (
                    topic,
                    values["payload"],
                    values["payload_size"],
                    values["qos"],
                    values["content_type"],
                    values["payload_format_indicator"],
                    values["response_topic"],
                    values["correlation_data"],
                    json.dumps(values["user_properties"]) if values["user_properties"] else "[]",
                    values["message_expiry_interval"],
                    adapt(values["expires_at"]),
                    values["last_modified_ms"],
                    adapt(values["last_accessed_at"]),
                    values["set_by_kind"],
                    values["set_by"],
                )
            cursor.execute(_upsert_sql(len(chunk), placeholder), parameters)


def clear_retained(topic: str, *, actor: Actor) -> bool:
    """Delete the retained message of `topic`; True when there was one."""
    validate_topic_name(topic, limits=topic_limits(_limits()), for_retain=True)
    with transaction.atomic():
        deleted, _ = RetainedMessage.objects.filter(topic=topic).delete()
        if deleted:
            _bump_counter(-deleted)
            _emit_after_commit(events.RetainedChanged(topic=topic, change="cleared"))
    return bool(deleted)


def get_retained(
    topic: str, *, touch: bool = True, now: datetime | None = None
) -> StoredMessage | None:
    """The live (not expired) retained message of `topic`, or None.

    touch=True counts the read as an access for the retention clock.
    """
    now = now or timezone.now()
    row = RetainedMessage.objects.filter(_not_expired(now), topic=topic).first()
    if row is None:
        return None
    if touch and row.last_accessed_at < now - ACCESS_CLOCK_RESOLUTION:
        RetainedMessage.objects.filter(pk=row.pk).update(last_accessed_at=now)
        row.last_accessed_at = now
    return _to_stored(row)


def list_page(
    *, max_results: int, next_token: str | None = None, now: datetime | None = None
) -> Page:
    """One page of topics in topic order (keyset pagination), with the token for the next."""
    limits = _limits()
    if not 1 <= max_results <= limits.list_max_results:
        raise InvalidMaxResultsError(
            f"maxResults must be between 1 and {limits.list_max_results}, got {max_results}"
        )
    now = now or timezone.now()
    rows = RetainedMessage.objects.filter(_not_expired(now))
    if next_token:
        after = decode_page_token(next_token, key=_page_token_key())
        rows = rows.filter(topic__gt=after)
    fetched = list(
        rows.order_by("topic").values_list("topic", "payload_size", "qos", "last_modified_ms")[
            : max_results + 1
        ]
    )
    items = [TopicSummary(*values) for values in fetched[:max_results]]
    token = None
    if len(fetched) > max_results:
        token = encode_page_token(items[-1].topic, key=_page_token_key())
    return Page(items=items, next_token=token)


def _literal_prefix(topic_filter: str) -> str:
    """The part of a filter before its first wildcard level (what a prefix scan can use)."""
    levels: list[str] = []
    for level in topic_filter.split("/"):
        if level == "#":  # "a/#" also matches "a" itself
            return "/".join(levels)
        if level == "+":
            return "/".join(levels) + ("/" if levels else "")
        levels.append(level)
    return topic_filter


def iter_retained_matching(
    topic_filter: str, *, chunk_size: int = 2000, now: datetime | None = None
) -> Iterator[list[RetainedCopy]]:
    """Live retained messages whose topic matches `topic_filter`, in chunks, topic order."""
    after: str | None = None
    while True:
        chunk, after = retained_matching_page(topic_filter, after=after, limit=chunk_size, now=now)
        if chunk:
            yield chunk
        if after is None:
            return


@dataclass(frozen=True, slots=True)
class RetainedCopy:
    """What delivering a retained message on subscribe needs (no audit columns)."""

    topic: str
    payload: bytes
    qos: int
    properties: MessageProperties
    last_modified_ms: int
    expires_at: datetime | None


def retained_matching_page(
    topic_filter: str, *, after: str | None, limit: int = 2000, now: datetime | None = None
) -> tuple[list[RetainedCopy], str | None]:
    """One keyset page of live retained messages matching `topic_filter` (topic order).

    Returns the matching messages and the topic to continue after (None when done). A hot
    path (a new `#` subscriber in spec mode reads every row): one SQL statement over the topic
    index, plain tuples, no model instances; properties parsed only where present.
    """
    now = now or timezone.now()
    conditions, params = _matching_conditions(topic_filter, after=after, now=now)
    params.append(limit)
    sql = (
        f"SELECT {_COPY_SELECT} FROM {_TABLE} WHERE {' AND '.join(conditions)} "  # noqa: S608 -- names from the model, values bound
        f"ORDER BY {_C_TOPIC} LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    every_plain_topic = topic_filter == "#"
    matching = [
        _copy_from_row(row)
        for row in rows
        if (
            not row[0].startswith("$") if every_plain_topic else topic_matches(topic_filter, row[0])
        )
    ]
    return matching, (rows[-1][0] if len(rows) == limit else None)


# A retained message for a subscriber: (topic, last_modified_ms, what to send). What to send is
# the bare payload when the copy is a plain QoS 0 message (no properties or expiry to carry,
# see `retained_delivery_page`), else the RetainedCopy (or StoredMessage) with everything.
RetainedItem = tuple[str, int, "bytes | RetainedCopy | StoredMessage"]


class DeliveryPage(NamedTuple):
    items: list[RetainedItem]
    after: str | None  # the topic to continue after; None when this was the last page
    stale: set[str]  # topics whose last-accessed clock is older than ACCESS_CLOCK_RESOLUTION
    payload_bytes: int  # of the rows read, for the caller to size the next page


def retained_delivery_page(
    topic_filter: str,
    *,
    after: str | None,
    granted_qos: int,
    with_properties: bool,
    limit: int = 2000,
    now: datetime | None = None,
) -> DeliveryPage:
    """`retained_matching_page` for a subscriber granted `granted_qos`, that takes MQTT 5
    properties (`with_properties`) or not: plain rows come back as three values, no copy.

    A new `#` subscriber in spec mode gets every stored message. A row is plain when its
    copy goes out at QoS 0 (stored at QoS 0 or granted 0) and, for an MQTT 5 subscriber,
    without properties or an expiry; the database tells which, and only the others are read
    in full (`_retained_copies`). Topic order, keyset pages, as `retained_matching_page`.
    `stale` says which rows a delivery must touch (`touch_retained`): only those whose clock
    is older than its resolution, so that a `#` subscriber does not rewrite every row.
    """
    now = now or timezone.now()
    conditions, params = _matching_conditions(topic_filter, after=after, now=now)
    every_plain_topic = topic_filter == "#"
    if every_plain_topic:
        conditions.append(f"substr({_C_TOPIC}, 1, 1) <> '$'")  # [MQTT-4.7.2-1]
    plain = [f"{_quoted('qos')} = 0"] if granted_qos else []
    if with_properties:
        plain += [
            f"{_quoted('content_type')} = ''",
            f"{_quoted('payload_format_indicator')} IS NULL",
            f"{_quoted('response_topic')} = ''",
            f"{_quoted('correlation_data')} IS NULL",
            f"{_quoted('user_properties')} = '[]'",
            f"{_quoted('message_expiry_interval')} IS NULL",
            f"{_C_EXPIRES} IS NULL",
        ]
    is_plain = f"CASE WHEN {' AND '.join(plain)} THEN 1 ELSE 0 END" if plain else "1"
    sql = (
        f"SELECT {_C_TOPIC}, {_quoted('last_modified_ms')}, {_quoted('payload')}, {is_plain}, "  # noqa: S608 -- names from the model
        f"CASE WHEN {_C_ACCESSED} < %s THEN 1 ELSE 0 END "
        f"FROM {_TABLE} WHERE {' AND '.join(conditions)} ORDER BY {_C_TOPIC} LIMIT %s"
    )
    params = [connection.ops.adapt_datetimefield_value(now - ACCESS_CLOCK_RESOLUTION), *params]
    params.append(limit)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    next_after = rows[-1][0] if len(rows) == limit else None
    payload_bytes = sum(map(len, map(_third, rows)))
    if not every_plain_topic:
        rows = [row for row in rows if topic_matches(topic_filter, row[0])]
    stale = {row[0] for row in rows if row[4]}
    missing = [row[0] for row in rows if not row[3]]
    if not missing:
        plain_items: list[RetainedItem] = [
            (topic, stored_ms, bytes(payload)) for topic, stored_ms, payload, _, _ in rows
        ]
        return DeliveryPage(plain_items, next_after, stale, payload_bytes)
    by_topic = {copy.topic: copy for copy in _retained_copies(missing, now=now)}
    items: list[RetainedItem] = []
    for topic, stored_ms, payload, row_is_plain, _ in rows:
        if row_is_plain:
            items.append((topic, stored_ms, bytes(payload)))
        elif topic in by_topic:  # (unless it was deleted between the two reads)
            copy = by_topic[topic]
            items.append((topic, copy.last_modified_ms, copy))
    return DeliveryPage(items, next_after, stale, payload_bytes)


_third = operator.itemgetter(2)


def _matching_conditions(
    topic_filter: str, *, after: str | None, now: datetime
) -> tuple[list[str], list[Any]]:
    """SQL conditions for live rows in the topic range of `topic_filter`, and their values."""
    conditions = [f"({_C_EXPIRES} IS NULL OR {_C_EXPIRES} > %s)"]
    params: list[Any] = [connection.ops.adapt_datetimefield_value(now)]
    prefix = _literal_prefix(topic_filter)
    if prefix:
        conditions.append(f"{_C_TOPIC} >= %s")
        params.append(prefix)
        upper = _prefix_upper_bound(prefix)
        if upper is not None:
            conditions.append(f"{_C_TOPIC} < %s")
            params.append(upper)
    if after is not None:
        conditions.append(f"{_C_TOPIC} > %s")
        params.append(after)
    return conditions, params


def _retained_copies(topics: list[str], *, now: datetime) -> list[RetainedCopy]:
    copies: list[RetainedCopy] = []
    expiry = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        for first in range(0, len(topics), 500):
            chunk = topics[first : first + 500]
            cursor.execute(
                f"SELECT {_COPY_SELECT} FROM {_TABLE} WHERE {_C_TOPIC} IN "  # noqa: S608
                f"({', '.join(['%s'] * len(chunk))}) "
                f"AND ({_C_EXPIRES} IS NULL OR {_C_EXPIRES} > %s)",
                [*chunk, expiry],
            )
            copies += (_copy_from_row(row) for row in cursor.fetchall())
    return copies


def _quoted(name: str) -> str:
    column = RetainedMessage._meta.get_field(name).column  # type: ignore[union-attr]
    assert isinstance(column, str)
    return connection.ops.quote_name(column)


_COPY_COLUMNS = (
    "topic",
    "payload",
    "qos",
    "content_type",
    "payload_format_indicator",
    "response_topic",
    "correlation_data",
    "user_properties",
    "message_expiry_interval",
    "last_modified_ms",
    "expires_at",
)
_TABLE = connection.ops.quote_name(RetainedMessage._meta.db_table)
_COPY_SELECT = ", ".join(_quoted(name) for name in _COPY_COLUMNS)
_C_TOPIC = _quoted("topic")
_C_EXPIRES = _quoted("expires_at")
_C_ACCESSED = _quoted("last_accessed_at")


def _copy_from_row(row: tuple[Any, ...]) -> RetainedCopy:
    # fmt: off
    (topic, payload, qos, content_type, pfi, response_topic, correlation, user_properties,
     expiry, last_modified_ms, expires_at) = row
    # fmt: on
    if user_properties == "[]":  # the common case, without parsing
        user_properties = None
    elif isinstance(user_properties, str):  # SQLite hands JSON back as text
        user_properties = json.loads(user_properties)
    if (
        content_type
        or pfi is not None
        or response_topic
        or correlation is not None
        or user_properties
        or expiry is not None
    ):
        properties = MessageProperties(
            content_type=content_type,
            payload_format_indicator=pfi,
            response_topic=response_topic,
            correlation_data=bytes(correlation) if correlation is not None else None,
            user_properties=tuple((str(k), str(v)) for k, v in user_properties)
            if user_properties
            else (),
            message_expiry_interval=expiry,
        )
    else:
        properties = NO_PROPERTIES
    if expires_at is not None:
        expires_at = _stored_datetime(expires_at)
    return RetainedCopy(topic, bytes(payload), qos, properties, last_modified_ms, expires_at)


def _stored_datetime(value: datetime | str) -> datetime:
    """A datetime column read through a plain cursor: SQLite gives naive UTC (a datetime
    through Django's converter, or text), PostgreSQL an aware datetime."""
    if isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is None:
            raise ValueError(f"not a stored datetime: {value!r}")
        value = parsed
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _topic_prefix_range(prefix: str) -> Q:
    """Topics starting with `prefix`, as a range the topic index can serve (a LIKE cannot)."""
    if not prefix:
        return Q()
    upper = _prefix_upper_bound(prefix)
    return Q(topic__gte=prefix) & (Q(topic__lt=upper) if upper is not None else Q())


def touch_retained(topics: list[str], *, now: datetime | None = None) -> int:
    """Move the last-accessed clock of `topics` (deliveries count as accesses). One prepared
    statement for all of them: a `#` subscriber in spec mode touches every row."""
    now = now or timezone.now()
    ops = connection.ops
    stamp = ops.adapt_datetimefield_value(now)
    older = ops.adapt_datetimefield_value(now - ACCESS_CLOCK_RESOLUTION)
    sql = (
        f"UPDATE {_TABLE} SET {_C_ACCESSED} = %s "  # noqa: S608 -- names from the model, values bound
        f"WHERE {_C_TOPIC} = %s AND {_C_ACCESSED} < %s"
    )
    with connection.cursor() as cursor:
        cursor.executemany(sql, [(stamp, topic, older) for topic in topics])
        return max(cursor.rowcount, 0)


def sweep_retained(*, now: datetime | None = None, batch_size: int = 1000) -> int:
    """Delete up to `batch_size` retained messages that expired (MQTT 5 message expiry) or
    were neither updated nor accessed for RETAINED_RETENTION_DAYS. Returns how many."""
    limits = _limits()
    now = now or timezone.now()
    cutoff = now - timedelta(days=limits.retention_days)
    stale = Q(expires_at__lte=now) | Q(
        last_modified_ms__lt=_now_ms(cutoff), last_accessed_at__lt=cutoff
    )
    with transaction.atomic():
        # No ORDER BY: the model's default (topic) would make SQLite scan the topic index
        # instead of searching the expires_at and last_modified_ms indexes.
        doomed = list(
            RetainedMessage.objects.filter(stale).order_by().values_list("id", "topic")[:batch_size]
        )
        if not doomed:
            return 0
        deleted, _ = RetainedMessage.objects.filter(id__in=[pk for pk, _ in doomed]).delete()
        _bump_counter(-deleted)
        for _, topic in doomed:
            _emit_after_commit(events.RetainedChanged(topic=topic, change="expired"))
    return deleted


def count_retained() -> int:
    """The maintained number of stored retained messages (expired but unswept included)."""
    counter = Counter.objects.filter(name=RETAINED_COUNTER).first()
    return counter.value if counter else 0


# --- the console's list: filtered, sorted keyset pages ----------------------------------------

# "topic" or "updated" (time of the last update).
ConsoleOrder = str
CONSOLE_ORDERS = ("topic", "updated")
# A keyset position: (topic,) when ordered by topic, (last_modified_ms, id) when ordered by
# time of update (the last_modified_ms index carries the row id, so SQLite serves the whole
# ORDER BY from it).
ConsoleKey = tuple[str | int, ...]

# Searches match in Python (the one topic matcher; a casefolded substring), so a rare match
# may need many rows; one page request looks at no more than this many, then says where to
# continue. Keeps every request around the 50 ms mark at 1,000,000 messages.
CONSOLE_SCAN_BUDGET = 3_000
_CONSOLE_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class ConsoleRow:
    """A retained message as one row of the console's list."""

    id: int
    topic: str
    qos: int
    payload_size: int
    last_modified_ms: int
    expires_at: datetime | None

    def key(self, order: ConsoleOrder) -> ConsoleKey:
        """Its keyset position in `order`."""
        return (self.topic,) if order == "topic" else (self.last_modified_ms, self.id)


@dataclass(frozen=True, slots=True)
class ConsolePage:
    """Rows in traversal order; `resume_after` is where the next call continues (None: no
    more rows that way). `budget_exhausted`: a filter search stopped early (see
    CONSOLE_SCAN_BUDGET), so the page may hold fewer rows although more may match."""

    rows: list[ConsoleRow]
    resume_after: ConsoleKey | None
    budget_exhausted: bool = False


def _prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with `prefix` (code point
    order, which is also UTF-8 byte order), or None when there is none."""
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if code == 0xD800:  # skip the surrogates, which cannot be stored
            code = 0xE000
        if code <= 0x10FFFF:
            return "".join(chars) + chr(code)
    return None


def _after_key(order: ConsoleOrder, key: ConsoleKey, *, forwards: bool) -> Q:
    """Rows strictly after `key` in traversal order, written as a range on the index."""
    if order == "topic":
        return Q(topic__gt=key[0]) if forwards else Q(topic__lt=key[0])
    moment, row_id = key[0], key[1]
    if forwards:
        return Q(last_modified_ms__gte=moment) & ~Q(last_modified_ms=moment, id__lte=row_id)
    return Q(last_modified_ms__lte=moment) & ~Q(last_modified_ms=moment, id__gte=row_id)


def console_page(
    *,
    order: ConsoleOrder,
    forwards: bool,
    limit: int,
    after: ConsoleKey | None = None,
    contains: str = "",
    topic_filter: str = "",
    scan_budget: int = CONSOLE_SCAN_BUDGET,
    now: datetime | None = None,
) -> ConsolePage:
    """Up to `limit` live retained messages after `after`, walking `order` ascending
    (forwards) or descending. Keyset only (never OFFSET), on the topic or last_modified_ms
    index.

    `contains`: a case-insensitive topic substring.
    `topic_filter`: a valid MQTT topic filter; rows are narrowed to its literal prefix by a
    range on the topic index, then matched with `topic_matches`.
    """
    if order not in CONSOLE_ORDERS:
        raise ValueError(f"unknown order {order!r}")
    now = now or timezone.now()
    rows = RetainedMessage.objects.filter(_not_expired(now))
    if topic_filter:
        prefix = _literal_prefix(topic_filter)
        if prefix:
            rows = rows.filter(topic__gte=prefix)
            upper = _prefix_upper_bound(prefix)
            if upper is not None:
                rows = rows.filter(topic__lt=upper)
    fields = ("topic",) if order == "topic" else ("last_modified_ms", "id")
    rows = rows.order_by(*(name if forwards else f"-{name}" for name in fields))
    columns = ("id", "topic", "qos", "payload_size", "last_modified_ms", "expires_at")

    def fetch(position: ConsoleKey | None, count: int) -> list[ConsoleRow]:
        selected = rows
        if position is not None:
            selected = rows.filter(_after_key(order, position, forwards=forwards))
        return [ConsoleRow(*values) for values in selected.values_list(*columns)[:count]]

    needle = contains.casefold()

    def wanted(topic: str) -> bool:
        if needle and needle not in topic.casefold():
            return False
        return not topic_filter or topic_matches(topic_filter, topic)

    if not topic_filter and not contains:
        fetched = fetch(after, limit + 1)
        found = fetched[:limit]
        more = len(fetched) > limit
        return ConsolePage(rows=found, resume_after=found[-1].key(order) if more else None)

    matched: list[ConsoleRow] = []
    position = after
    scanned = 0
    while True:
        chunk = fetch(position, _CONSOLE_CHUNK)
        for row in chunk:
            scanned += 1
            position = row.key(order)
            if wanted(row.topic):
                if len(matched) == limit:  # one more match exists: there is a next page
                    return ConsolePage(rows=matched, resume_after=matched[-1].key(order))
                matched.append(row)
            if scanned >= scan_budget:
                return ConsolePage(rows=matched, resume_after=position, budget_exhausted=True)
        if len(chunk) < _CONSOLE_CHUNK:
            return ConsolePage(rows=matched, resume_after=None)
