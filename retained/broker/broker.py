"""The MQTT broker: sessions, routing, retained messages, wills; transport-agnostic.

A transport (TCP in server.py, WebSocket later) creates one `Connection` per client and
feeds it bytes; the connection answers through the transport's `write`. Everything here
runs on one asyncio loop; database work goes to the `DatabaseWriter` thread (group commit)
or to a reader thread, so the loop never blocks on SQL.

AWS deviations and spec rules are marked where they are coded.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol

from retained import store
from retained.access import ANONYMOUS, Principal
from retained.broker import persistence
from retained.broker._wire import encode_utf8
from retained.broker.codec import (
    MQTT_5,
    Decoder,
    ProtocolError,
    encode,
    encode_plain_publish,
    encode_publish,
    encode_retained_copies,
)
from retained.broker.packets import (
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Subscription,
    Unsuback,
    Unsubscribe,
    Will,
)
from retained.broker.properties import EMPTY_PROPERTIES, Properties
from retained.broker.reason_codes import ReasonCode, connack_return_code_311
from retained.broker.router import Match, SubscriptionIndex, SubscriptionOptions
from retained.broker.writer import DatabaseWriter
from retained.conf import Limits
from retained.models import SetByKind
from retained.ratelimit import RetainedPublishLimiter, Throttled
from retained.topics import (
    InvalidTopicError,
    TopicLimits,
    is_wildcard_filter,
    split_shared_subscription,
    validate_topic_filter,
    validate_topic_name,
)

logger = logging.getLogger("retained.broker")

CONNECT_TIMEOUT_SECONDS = 10.0
MAX_PACKET_ID = 65_535
POLICY_REFRESH_SECONDS = 1.0
# Per connection: policy decisions kept (action, resource). A device uses a few topics; a
# connection touching many starts over rather than holding ~200 bytes per topic for ever.
DECISIONS_PER_CONNECTION = 512
PLAIN_ROUTES_PER_CONNECTION = 256  # cached routes of plain QoS 0 messages, per connection
RETAINED_SENT_MEMORY = 1024  # per session: recent retained copies, to drop a racing live copy


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a connection is, as the transport or an authenticator established it, and what
    that adds to every policy request's context (certificate subject, thing name)."""

    principal: Principal
    context: tuple[tuple[str, str], ...] = ()


Authenticator = Callable[[str, bytes], Principal | None]
"""(username, password) -> Principal, or None when the credentials are wrong. Runs in a thread."""

CertificateAuthenticator = Callable[[str, str], Identity | None]
"""(certificate id, client id) -> Identity, or None when the certificate may not connect
(unknown, inactive, revoked). Runs in a thread."""


def refuse_certificates(certificate_id: str, client_id: str) -> Identity | None:
    return None


def always_valid(principal: Principal) -> bool:
    return True


Authorizer = Callable[[Principal, str, str, dict[str, Any]], bool]
"""(principal, action, resource, context) -> allowed. The policy issue plugs in here."""


def allow_everything(
    principal: Principal, action: str, resource: str, context: dict[str, Any]
) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    limits: Limits
    wildcard_delivery: bool = False  # False: AWS (exact-match filters only); True: MQTT spec
    allow_anonymous: bool = False
    # Per session: QoS 1 messages in flight + queued (Limits.max_queued_messages). A connected
    # client whose backlog reaches it is disconnected; an offline session drops the excess.
    max_queued_messages: int = 10_000
    write_buffer_high_water: int = 1 << 20  # above this, QoS 0 to that client is dropped
    sweep_interval_seconds: float = 60.0
    region: str = "us-east-1"
    account_id: str = "123456789012"


class Transport(Protocol):
    def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...
    def write_buffer_size(self) -> int: ...


@dataclass(slots=True)
class Message:
    """A message being routed: what subscribers receive (forwarded properties only)."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: Properties = EMPTY_PROPERTIES
    expires_at: float | None = None  # epoch seconds
    sender: str | None = None
    # For a retained publish: the stored message's last_modified_ms (for a clear, the time
    # it was cleared), so a retained delivery racing a live one can tell which is newer.
    stored_ms: int | None = None


@dataclass(slots=True)
class Outgoing:
    """A QoS 1 message owed to a session (in flight or waiting)."""

    topic: str
    payload: bytes
    retain: bool
    properties: Properties
    expires_at: float | None
    row_id: int | None = None  # MqttQueuedMessage id while persisted
    persisting: bool = False  # a row was requested (row_id arrives after the commit)
    acked: bool = False


def _forwarded_properties(properties: Properties) -> Properties:
    """What travels with a message to subscribers ([MQTT-3.3.2-*]); not aliases etc."""
    if properties is EMPTY_PROPERTIES:
        return properties
    return Properties(
        payload_format_indicator=properties.payload_format_indicator,
        content_type=properties.content_type,
        response_topic=properties.response_topic,
        correlation_data=properties.correlation_data,
        user_property=properties.user_property,
    )


def _with_remaining_expiry(
    properties: Properties, expires_at: float | None, now: float
) -> Properties:
    if expires_at is None:
        return properties
    # [MQTT-3.3.2-6]: forward the interval that is left.
    return replace(properties, message_expiry_interval=max(1, int(expires_at - now)))


@dataclass(slots=True)
class PlainRoute:
    """Where a plain QoS 0 message goes (received at QoS 0, no RETAIN, no properties: every
    subscriber gets the same bytes, QoS 0 without RETAIN), for one topic and sender, cached
    by the sender's connection while the index and the broker's routing stay as they were.
    Devices publish telemetry to the same topics again and again; this skips the index walk,
    the policy checks and the per-subscriber encoding for each of those messages."""

    index_version: int
    routing_version: int
    topic_field: bytes  # the Topic Name as a UTF-8 Encoded String (length prefix included)
    to_v4: tuple[Connection, ...]  # one entry per matching subscription
    to_v5: tuple[Connection, ...]
    deliveries: int  # matching subscriptions, online or not (for the stats)

    def is_current(self, broker: Broker) -> bool:
        return (
            self.index_version == broker.index.version
            and self.routing_version == broker.routing_version
        )

    def forward(self, payload: bytes) -> None:
        if self.to_v4:
            data = encode_plain_publish(self.topic_field, payload, retain=False, v5=False)
            for connection in self.to_v4:
                connection.send_plain_qos0(data)
        if self.to_v5:
            data = encode_plain_publish(self.topic_field, payload, retain=False, v5=True)
            for connection in self.to_v5:
                connection.send_plain_qos0(data)


# Spec-mode retained delivery reads pages of about this many rows (fewer when payloads are
# large, see _EncodedPage.next_limit) and hands the loop runs of ready packets of about
# RUN_BYTES each, so that the loop's share per message is a list append.
RETAINED_PAGE_ROWS = 2000
RETAINED_PAGE_BYTES = 2 << 20
RUN_BYTES = 256 << 10
# A retained copy stored longer ago than this cannot race the live copy of its own publish.
RACE_WINDOW_MS = 60_000


@dataclass(slots=True)
class PlainRun:
    """Consecutive plain retained copies (see store.retained_delivery_page), encoded for one
    subscriber in the reader thread: `data` is their packets back to back."""

    packets: list[bytes]
    topics: list[str]
    stored_ms: list[int]
    recent: list[tuple[str, int]]  # (topic, stored_ms) of copies stored within RACE_WINDOW_MS
    data: bytes
    oversize: int  # copies left out: larger than the client's Maximum Packet Size


@dataclass(slots=True)
class _EncodedPage:
    parts: list[store.RetainedItem | PlainRun]
    after: str | None
    stale: set[str]
    rows_read: int  # the page's limit (a page followed by another one is full)
    payload_bytes: int  # of the rows read

    def next_limit(self) -> int:
        """Rows for the next page: ~RETAINED_PAGE_BYTES of payload at this page's sizes."""
        if not self.payload_bytes:
            return RETAINED_PAGE_ROWS
        rows = RETAINED_PAGE_BYTES * self.rows_read // self.payload_bytes
        return max(16, min(RETAINED_PAGE_ROWS, rows))


def _read_encoded_page(
    topic_filter: str,
    *,
    after: str | None,
    limit: int,
    granted_qos: int,
    v5: bool,
    max_packet: int,
) -> _EncodedPage:
    """One page of retained copies for a subscriber, its plain ones already encoded (run in
    the reader thread: the event loop only writes the runs)."""
    page = store.retained_delivery_page(
        topic_filter, after=after, granted_qos=granted_qos, with_properties=v5, limit=limit
    )
    recent_since = int(time.time() * 1000) - RACE_WINDOW_MS
    parts: list[store.RetainedItem | PlainRun] = []
    plain: list[store.RetainedItem] = []
    for item in page.items:
        if type(item[2]) is bytes:
            plain.append(item)
            continue
        parts += _plain_runs(plain, v5=v5, max_packet=max_packet, recent_since=recent_since)
        plain = []
        parts.append(item)
    parts += _plain_runs(plain, v5=v5, max_packet=max_packet, recent_since=recent_since)
    return _EncodedPage(parts, page.after, page.stale, limit, page.payload_bytes)


def _plain_runs(
    items: list[store.RetainedItem], *, v5: bool, max_packet: int, recent_since: int
) -> list[PlainRun]:
    """Consecutive plain copies as runs of about RUN_BYTES of packets."""
    if not items:
        return []
    topics = [item[0] for item in items]
    stored_ms = [item[1] for item in items]
    payloads: list[bytes] = [item[2] for item in items]  # type: ignore[misc]  # plain: bytes
    packets = encode_retained_copies(topics, payloads, v5=v5)
    oversize = 0
    if max(map(len, packets)) > max_packet:
        keep = [index for index, packet in enumerate(packets) if len(packet) <= max_packet]
        oversize = len(packets) - len(keep)
        topics = [topics[index] for index in keep]
        stored_ms = [stored_ms[index] for index in keep]
        packets = [packets[index] for index in keep]
    if not packets:  # every one too large for the client
        return [PlainRun([], [], [], [], b"", oversize)]
    runs: list[PlainRun] = []
    ends = list(itertools.accumulate(map(len, packets)))  # where each packet ends
    start = 0
    while start < len(packets):
        offset = ends[start - 1] if start else 0
        stop = min(bisect.bisect_left(ends, offset + RUN_BYTES, lo=start) + 1, len(packets))
        run_topics, run_ms = topics[start:stop], stored_ms[start:stop]
        recent = []
        if max(run_ms) > recent_since:
            pairs = zip(run_topics, run_ms, strict=True)
            recent = [(topic, ms) for topic, ms in pairs if ms > recent_since]
        run_packets = packets[start:stop]
        data = b"".join(run_packets)
        runs.append(PlainRun(run_packets, run_topics, run_ms, recent, data, oversize))
        oversize = 0  # counted once, with the first run
        start = stop
    return runs


class Session:
    """State of one client id: subscriptions live in the broker's index; this holds the
    connection, QoS 1 messages in flight and the queue behind them."""

    def __init__(self, broker: Broker, client_id: str, *, protocol_level: int) -> None:
        self.broker = broker
        self.client_id = client_id
        self.protocol_level = protocol_level
        self.expiry_interval = 0
        self.connection: Connection | None = None
        self.inflight: dict[int, Outgoing] = {}
        # Created on first use: an empty deque costs 760 bytes, and most sessions never
        # queue anything (5,000 idle connections: 3.7 MB).
        self.pending: deque[Outgoing] | None = None
        self.send_quota = broker.config.limits.inflight_qos1_max
        self.disconnected_at: float | None = None
        self.will_handle: asyncio.TimerHandle | None = None
        self.pending_will: Callable[[], None] | None = None
        self.dropped_qos0 = 0
        self.dropped_qos1 = 0
        self.dropped_oversize = 0
        # Resumed with a backlog already at the limit (queued while offline): until it first
        # falls below, new QoS 1 messages are dropped as for an offline session rather than
        # cutting off a client that has had no chance to catch up yet.
        self.catching_up = False
        # While retained deliveries for new subscriptions are being read from the store,
        # remember which retained publishes went out live meanwhile (topic -> stored_ms).
        self.retained_reads_pending = 0
        self.live_retained_seen: dict[str, int] = {}
        # The other way round: the stored copy was read (and sent) before the live copy of
        # the same publish was routed. topic -> stored_ms, the most recent few only.
        self.retained_sent: OrderedDict[str, int] = OrderedDict()
        # The last Packet Identifier used. (Not itertools.cycle: it keeps a copy of every
        # value it has produced, 2.6 MB per session after the first 65,535 messages.)
        self._last_packet_id = 0

    @property
    def persistent(self) -> bool:
        return self.expiry_interval > 0

    def backlog(self) -> int:
        """QoS 1 messages this session owes: in flight and queued behind them."""
        return len(self.inflight) + (len(self.pending) if self.pending else 0)

    def next_packet_id(self) -> int:
        packet_id = self._last_packet_id
        for _ in range(MAX_PACKET_ID):
            packet_id = packet_id % MAX_PACKET_ID + 1  # 1..65535, then 1 again
            if packet_id not in self.inflight:
                self._last_packet_id = packet_id
                return packet_id
        raise RuntimeError("no free packet identifier")  # unreachable: in-flight is bounded

    def deliver(
        self, message: Message, options: SubscriptionOptions, *, retained_delivery: bool, now: float
    ) -> None:
        if message.expires_at is not None and message.expires_at <= now:
            return
        if not retained_delivery and message.stored_ms:
            if self.retained_sent.get(message.topic) == message.stored_ms:
                return  # this very message already went out as the retained copy
            if self.retained_reads_pending:
                seen = self.live_retained_seen.get(message.topic, 0)
                self.live_retained_seen[message.topic] = max(seen, message.stored_ms)
        qos = min(message.qos, options.qos)
        if retained_delivery:
            retain_flag = True
        else:
            # AWS: live copies never carry RETAIN; spec mode honours Retain As Published.
            retain_flag = (
                message.retain
                and options.retain_as_published
                and self.broker.config.wildcard_delivery
            )
        connection = self.connection
        if qos == 0:
            if connection is not None:
                connection.send_qos0(message, retain_flag, now)
            return
        outgoing = Outgoing(
            topic=message.topic,
            payload=message.payload,
            retain=retain_flag,
            properties=message.properties,
            expires_at=message.expires_at,
        )
        if connection is None:
            self._queue_offline(outgoing)
            return
        if self.backlog() >= self.broker.config.max_queued_messages:
            self._drop_qos1()
            if not self.catching_up:
                connection.backlog_exceeded()
            return
        self.catching_up = False
        if self.persistent and not retained_delivery:
            # Written down before the publisher's PUBACK (route_durably waits for it) and
            # deleted on the client's: a crash while the message is in flight or waiting
            # does not lose what was acknowledged. (Retained copies come from the store.)
            self.broker.persist_queued(self, outgoing)
        if len(self.inflight) < self.send_quota and not self.pending:
            connection.send_qos1(self, outgoing, dup=False, now=now)
        else:
            self.enqueue(outgoing)

    def note_retained_sent(self, topic: str, stored_ms: int) -> None:
        sent = self.retained_sent
        sent[topic] = stored_ms
        sent.move_to_end(topic)
        if len(sent) > RETAINED_SENT_MEMORY:
            sent.popitem(last=False)

    def _drop_qos1(self) -> None:
        self.dropped_qos1 += 1
        self.broker.stats["dropped_qos1"] += 1

    def _queue_offline(self, outgoing: Outgoing) -> None:
        """AWS: a persistent session's QoS 1 messages wait for its client (and a restart),
        up to the backlog limit; beyond it they are dropped (counted)."""
        if self.backlog() >= self.broker.config.max_queued_messages:
            self._drop_qos1()
            return
        self.enqueue(outgoing)
        self.broker.persist_queued(self, outgoing)

    def enqueue(self, outgoing: Outgoing) -> None:
        """Put `outgoing` at the end of the queue (behind what is in flight)."""
        if self.pending is None:
            self.pending = deque()
        self.pending.append(outgoing)

    def keep_backlog(self) -> None:
        """Queue what is in flight or waiting in memory only (retained copies sent on
        subscribe) for the client's return, as for an offline session: it survives a
        restart. Routed messages were written when they were routed."""
        for outgoing in [*self.inflight.values(), *(self.pending or ())]:
            if not outgoing.persisting and not outgoing.acked:
                self.broker.persist_queued(self, outgoing)

    def acknowledged(self, packet_id: int) -> None:
        outgoing = self.inflight.pop(packet_id, None)
        if outgoing is None:
            return
        outgoing.acked = True
        if outgoing.row_id is not None:
            self.broker.forget_queued(outgoing.row_id)
        self.send_pending()

    def send_pending(self) -> None:
        connection = self.connection
        if connection is None:
            return
        now = time.time()
        pending = self.pending
        while pending and len(self.inflight) < self.send_quota:
            outgoing = pending.popleft()
            expired = outgoing.expires_at is not None and outgoing.expires_at <= now
            # Queued while offline, it was not checked then: iot:Receive decides now.
            denied = not connection.allowed("iot:Receive", self.broker.topic_arn(outgoing.topic))
            if expired or denied:
                outgoing.acked = True
                if outgoing.row_id is not None:
                    self.broker.forget_queued(outgoing.row_id)
                continue
            connection.send_qos1(self, outgoing, dup=False, now=now)

    def resume(self, connection: Connection) -> None:
        """A client took this session back: redeliver what is in flight, then the queue."""
        self.connection = connection
        self.broker.routing_version += 1
        self.disconnected_at = None
        if self.will_handle is not None:
            self.will_handle.cancel()
            self.will_handle = None
        now = time.time()
        self.catching_up = self.backlog() >= self.broker.config.max_queued_messages
        for packet_id, outgoing in list(self.inflight.items()):
            connection.resend_qos1(packet_id, outgoing, now=now)  # [MQTT-4.4.0-1] DUP=1
        self.send_pending()


class Broker:
    def __init__(
        self,
        config: BrokerConfig,
        *,
        authenticator: Authenticator,
        authorizer: Authorizer = allow_everything,
        policy_refresher: Callable[[], object] | None = None,
        certificate_authenticator: CertificateAuthenticator = refuse_certificates,
        principal_validator: Callable[[Principal], bool] = always_valid,
        principal_unrestricted: Callable[[Principal], bool] | None = None,
        retained_publish_limiter: RetainedPublishLimiter | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """`authorizer` must not block (it runs on the loop); `policy_refresher`, run in a
        thread at start and every few seconds, keeps what it reads fresh.
        `retained_publish_limiter` (None: unlimited) rates MQTT clients' retained publishes;
        the process shares it with the API and console, which are charged before `publish`."""
        self.config = config
        self.retained_publish_limiter = retained_publish_limiter
        self.authenticator = authenticator
        self.authorizer = authorizer
        self.policy_refresher = policy_refresher
        self.certificate_authenticator = certificate_authenticator
        self.principal_validator = principal_validator
        # Whether a principal may do everything (no per-topic checks needed); without it,
        # only the allow_everything authorizer is known to allow everything.
        self.principal_unrestricted = principal_unrestricted or (
            lambda principal: authorizer is allow_everything
        )
        self.policy_epoch = 0  # moves whenever the refresher returns something new
        # Moves whenever a session appears, ends, goes on- or offline, or policies change:
        # with the index's version, it tells when a connection's cached routes are stale.
        self.routing_version = 0
        self._policy_state: object = None
        self.loop = loop or asyncio.get_event_loop()
        self.writer = DatabaseWriter(self.loop)
        self.index = SubscriptionIndex()
        self.sessions: dict[str, Session] = {}
        self.topic_limits = TopicLimits(
            max_bytes=config.limits.max_topic_bytes, max_slashes=config.limits.max_topic_slashes
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._to_forget: list[int] = []
        self._forget_scheduled = False
        # The commit of the latest copy queued for an offline persistent session: the writer
        # commits in submission order, so once it is done every earlier one is durable too.
        self._last_queued_write: asyncio.Future[Any] | None = None
        self._client_ids = itertools.count(1)
        self.stats: dict[str, int] = {
            "published": 0,
            "delivered": 0,
            "throttled": 0,
            # Slow clients: QoS 0 not sent above the write buffer's high-water mark, QoS 1
            # beyond a session's backlog limit, clients disconnected for reaching that limit.
            "dropped_qos0": 0,
            "dropped_qos1": 0,
            "slow_client_disconnects": 0,
        }
        self.started = False

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        self.writer.start()
        saved = await asyncio.to_thread(_in_django_thread, persistence.load_sessions)
        now = time.time()
        for record in saved:
            session = Session(self, record.client_id, protocol_level=record.protocol_level)
            session.expiry_interval = record.expiry_interval
            session.disconnected_at = (
                record.disconnected_at.timestamp() if record.disconnected_at else now
            )
            for topic_filter, options in record.subscriptions.items():
                self.index.add(record.client_id, topic_filter, options)
            for queued in record.queue:
                session.enqueue(
                    Outgoing(
                        topic=queued.topic,
                        payload=queued.payload,
                        retain=queued.retain,
                        properties=queued.properties,
                        expires_at=queued.expires_at.timestamp() if queued.expires_at else None,
                        row_id=queued.row_id,
                        persisting=True,
                    )
                )
            self.sessions[record.client_id] = session
        if self.policy_refresher is not None:
            self._policy_state = await asyncio.to_thread(_in_django_thread, self.policy_refresher)
        self._sweeper = self.loop.create_task(self._sweep_forever())
        self._refresher = self.loop.create_task(self._refresh_policies_forever())
        self.started = True
        logger.info("broker started with %d persistent sessions", len(saved))

    async def stop(self) -> None:
        """Tell MQTT 5 clients, persist what persistent sessions still owe, flush writes."""
        for background in (self._sweeper, self._refresher):
            if background is not None:
                background.cancel()
        for session in list(self.sessions.values()):
            if session.connection is not None:
                session.connection.close(ReasonCode.SERVER_SHUTTING_DOWN)
            if session.persistent:
                # What is in flight or waiting lives in memory only: keep it for the restart.
                session.keep_backlog()
        for task in list(self._tasks):
            task.cancel()
        self._flush_forgotten()
        await asyncio.to_thread(self.writer.stop)

    def spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task = self.loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("broker task failed", exc_info=task.exception())

    async def _refresh_policies_forever(self) -> None:
        if self.policy_refresher is None:
            return
        while True:
            await asyncio.sleep(POLICY_REFRESH_SECONDS)
            try:
                state = await asyncio.to_thread(_in_django_thread, self.policy_refresher)
            except Exception:
                logger.exception("policy refresh failed; keeping the previous policies")
                continue
            if state is not self._policy_state:
                self._policy_state = state
                self.policies_changed()

    def policies_changed(self) -> None:
        """New policies or certificate states: drop cached decisions, and close the
        connections of principals no longer valid (a deactivated or revoked certificate).
        Thread-safe callers use `loop.call_soon_threadsafe`."""
        self.policy_epoch += 1
        self.routing_version += 1
        for session in list(self.sessions.values()):
            connection = session.connection
            if connection is None or connection.principal is None:
                continue
            if not self.principal_validator(connection.principal):
                logger.info(
                    "%s: closing: %s %s may no longer connect",
                    session.client_id,
                    connection.principal.kind,
                    connection.principal.name,
                )
                connection.close(ReasonCode.NOT_AUTHORIZED)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.sweep_interval_seconds)
            await self.sweep_once()

    async def sweep_once(self) -> None:
        """Expired retained messages (bounded batches) and expired persistent sessions."""
        while True:
            future = self.writer.submit(store.sweep_retained)
            assert future is not None
            deleted = await future
            if not isinstance(deleted, int) or deleted == 0:
                break
        now = time.time()
        for session in list(self.sessions.values()):
            if (
                session.connection is None
                and session.disconnected_at is not None
                and session.disconnected_at + session.expiry_interval <= now
            ):
                self.end_session(session)

    # --- sessions --------------------------------------------------------------------------
    def assign_client_id(self) -> str:
        return f"retained-{int(time.time() * 1000):x}-{next(self._client_ids)}"

    def end_session(self, session: Session) -> None:
        if session.will_handle is not None:  # the session ends: a delayed will fires now
            session.will_handle.cancel()
            session.will_handle = None
            if session.pending_will is not None:
                session.pending_will()
        self.index.remove_client(session.client_id)
        self.routing_version += 1
        if self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]
        if session.persistent or session.pending:
            client_id = session.client_id
            self.writer.submit(lambda: persistence.delete_session(client_id), wait=False)

    def persist_queued(self, session: Session, outgoing: Outgoing) -> None:
        outgoing.persisting = True
        client_id = session.client_id
        expires_at = (
            datetime.fromtimestamp(outgoing.expires_at, UTC) if outgoing.expires_at else None
        )

        def enqueue() -> int | None:
            return persistence.enqueue(
                client_id,
                topic=outgoing.topic,
                payload=outgoing.payload,
                qos=1,
                retain=outgoing.retain,
                properties=outgoing.properties,
                expires_at=expires_at,
            )

        future = self.writer.submit(enqueue)
        assert future is not None
        self._last_queued_write = future

        def remember(done: asyncio.Future[Any]) -> None:
            row_id = done.result()
            if isinstance(row_id, int):
                if outgoing.acked:
                    self.forget_queued(row_id)
                else:
                    outgoing.row_id = row_id

        future.add_done_callback(remember)

    def forget_queued(self, row_id: int) -> None:
        self._to_forget.append(row_id)
        if not self._forget_scheduled:
            self._forget_scheduled = True
            self.loop.call_later(0.05, self._flush_forgotten)

    def _flush_forgotten(self) -> None:
        self._forget_scheduled = False
        if self._to_forget:
            row_ids, self._to_forget = self._to_forget, []
            self.writer.submit(lambda: persistence.dequeue(row_ids), wait=False)

    # --- routing ---------------------------------------------------------------------------
    def route(self, message: Message, matches: list[Match] | None = None) -> int:
        """Deliver to every matching subscription (one copy each, as AWS does); `matches`:
        what the index's `match` just returned for this message, if the caller asked."""
        self.stats["published"] += 1
        now = time.time()
        delivered = 0
        sessions = self.sessions
        if matches is None:
            matches = self.index.match(message.topic, is_member_available=self._is_online)
        for match in matches:
            session = sessions.get(match.client_id)
            if session is None:
                continue
            if match.options.no_local and message.sender == match.client_id:
                continue  # [MQTT-3.8.3-3]
            if not self._may_receive(session, message.topic):
                continue
            session.deliver(message, match.options, retained_delivery=False, now=now)
            delivered += 1
        self.stats["delivered"] += delivered
        return delivered

    def route_durably(self, message: Message) -> tuple[int, asyncio.Future[Any] | None]:
        """`route`, plus the commit to wait for before acknowledging the message (PUBACK,
        HTTP 200): that of the copies it left in offline persistent sessions' queues, which
        would otherwise die with the process. None when it queued nothing."""
        before = self._last_queued_write
        delivered = self.route(message)
        queued = self._last_queued_write
        return delivered, queued if queued is not before else None

    def matches(self, topic: str) -> list[Match]:
        return self.index.match(topic, is_member_available=self._is_online)

    def plain_route(self, topic: str, sender: str | None, matches: list[Match]) -> PlainRoute:
        """Where a plain QoS 0 message (see `PlainRoute`) to `topic` from `sender` goes,
        given the index's `matches` for it, none of them shared: what `route` would do."""
        v4: list[Connection] = []
        v5: list[Connection] = []
        deliveries = 0
        for match in matches:
            session = self.sessions.get(match.client_id)
            if session is None or (match.options.no_local and sender == match.client_id):
                continue
            if not self._may_receive(session, topic):
                continue
            deliveries += 1
            connection = session.connection
            if connection is not None:  # QoS 0 is not queued for an offline session
                (v5 if connection.protocol_level == MQTT_5 else v4).append(connection)
        return PlainRoute(
            index_version=self.index.version,
            routing_version=self.routing_version,
            topic_field=encode_utf8(topic),
            to_v4=tuple(v4),
            to_v5=tuple(v5),
            deliveries=deliveries,
        )

    def _is_online(self, client_id: str) -> bool:
        session = self.sessions.get(client_id)
        return session is not None and session.connection is not None

    def _may_receive(self, session: Session, topic: str) -> bool:
        connection = session.connection
        principal = connection.principal if connection is not None else None
        if principal is None:
            return True  # offline: checked again when the queued message is sent
        return connection.allowed("iot:Receive", self.topic_arn(topic))  # type: ignore[union-attr]

    def topic_arn(self, topic: str) -> str:
        return f"arn:aws:iot:{self.config.region}:{self.config.account_id}:topic/{topic}"

    def topicfilter_arn(self, topic_filter: str) -> str:
        return (
            f"arn:aws:iot:{self.config.region}:{self.config.account_id}:topicfilter/{topic_filter}"
        )

    def client_arn(self, client_id: str) -> str:
        return f"arn:aws:iot:{self.config.region}:{self.config.account_id}:client/{client_id}"

    def throttle_retained(self, topic: str) -> Throttled | None:
        """AWS: an MQTT client's retained publish with a payload takes a token from the
        account's and the topic's rate limits; None when it may go ahead."""
        limiter = self.retained_publish_limiter
        if limiter is None:
            return None
        throttled = limiter.try_acquire(topic)
        if throttled is not None:
            self.stats["throttled"] += 1
        return throttled

    def store_retained(
        self,
        message: Message,
        actor: store.Actor,
        *,
        notify: Callable[[], None] | None = None,
        checked: bool = False,
    ) -> asyncio.Future[Any]:
        """Queue the retained write of `message`; `checked`: the caller validated it as
        the store would (topic for retain, QoS, payload size) against this broker's limits."""
        properties = message.properties
        write = store.RetainedWrite(
            topic=message.topic,
            payload=message.payload,
            qos=message.qos,
            actor=actor,
            checked=checked,
            properties=store.NO_PROPERTIES
            if properties is EMPTY_PROPERTIES or properties == EMPTY_PROPERTIES
            else store.MessageProperties(
                content_type=properties.content_type or "",
                payload_format_indicator=properties.payload_format_indicator,
                response_topic=properties.response_topic or "",
                correlation_data=properties.correlation_data,
                user_properties=properties.user_property,
                message_expiry_interval=properties.message_expiry_interval,
            ),
        )
        return self.writer.submit_retained(write, notify=notify)

    async def publish(self, message: Message, *, actor: store.Actor) -> int:
        """Publish from inside the server (HTTP API, console, wills): store if retained
        (raising the store's refusal), then route. Returns the number of deliveries."""
        if message.retain:
            outcome = await self.store_retained(message, actor)
            if isinstance(outcome, Exception):
                raise outcome
            message.expires_at = _expiry_epoch(outcome)
            message.stored_ms = _stored_ms(outcome)
        delivered, queued = self.route_durably(message)
        if queued is not None:
            await queued  # a failed queue write was logged by the writer
        return delivered

    async def deliver_retained(
        self, session: Session, topic_filter: str, options: SubscriptionOptions
    ) -> None:
        """Retained messages for a new subscription, sent with RETAIN set.

        The caller counted this read in `session.retained_reads_pending` when it added the
        subscription; a stored message no newer than one already sent live is skipped."""
        try:
            await self._deliver_retained(session, topic_filter, options)
        finally:
            session.retained_reads_pending -= 1
            if session.retained_reads_pending == 0:
                session.live_retained_seen.clear()

    async def _deliver_retained(
        self, session: Session, topic_filter: str, options: SubscriptionOptions
    ) -> None:
        share_group, plain_filter = split_shared_subscription(topic_filter)
        if share_group is not None:
            return  # shared subscriptions never get retained messages on subscribe
        if self.config.wildcard_delivery:
            delivered = await self._deliver_matching(session, plain_filter, options)
        elif is_wildcard_filter(plain_filter):
            return  # AWS: retained delivered on exact-match subscribe only
        else:
            found = await asyncio.to_thread(
                _in_django_thread, lambda: store.get_retained(plain_filter, touch=False)
            )
            delivered = []
            if found is not None:
                item = (found.topic, found.last_modified_ms, found)
                self._deliver_stored(session, [item], 0, options, delivered)
        if delivered:
            self.writer.submit(lambda: store.touch_retained(delivered), wait=False)

    async def _deliver_matching(
        self, session: Session, topic_filter: str, options: SubscriptionOptions
    ) -> list[str]:
        """Spec mode: every stored message matching a wildcard filter, page by page (the
        next page is read while this one is sent), pausing while the client's socket
        buffer is full rather than dropping retained copies. The copies are for the
        connection that subscribed: if it goes away, the rest is not sent."""
        subscriber = session.connection
        if subscriber is None:
            return []
        v5 = subscriber.protocol_level == MQTT_5

        def read(after: str | None, limit: int) -> asyncio.Future[_EncodedPage]:
            page = partial(
                _read_encoded_page,
                topic_filter,
                after=after,
                limit=limit,
                granted_qos=options.qos,
                v5=v5,
                max_packet=subscriber.client_max_packet,
            )
            return asyncio.ensure_future(asyncio.to_thread(_in_django_thread, page))

        delivered: list[str] = []
        stale: set[str] = set()
        next_page: asyncio.Future[_EncodedPage] | None = read(None, RETAINED_PAGE_ROWS)
        try:
            while next_page is not None:
                page = await next_page
                stale |= page.stale
                after = page.after
                next_page = read(after, page.next_limit()) if after is not None else None
                if not await self._send_page(session, subscriber, page.parts, options, delivered):
                    break  # the subscriber's connection went away
        finally:
            if next_page is not None:
                next_page.cancel()  # the client went away: the read's result is not needed
        # Only clocks older than their resolution need moving (store.touch_retained).
        return [topic for topic in delivered if topic in stale] if stale else []

    async def _send_page(
        self,
        session: Session,
        subscriber: Connection,
        parts: list[store.RetainedItem | PlainRun],
        options: SubscriptionOptions,
        delivered: list[str],
    ) -> bool:
        """Send one page, pausing while the client's buffer is full; False when the
        subscriber's connection went away first."""
        index = 0
        while index < len(parts):
            if session.connection is not subscriber or subscriber.closed:
                return False
            index = self._deliver_stored(session, parts, index, options, delivered)
            await self._drained(session)
        return True

    async def _drained(self, session: Session) -> None:
        """Until the client's output buffer is below half the high-water mark and its QoS 1
        backlog below half its limit (retained copies must not get it disconnected)."""
        limit = self.config.write_buffer_high_water // 2
        backlog_limit = self._retained_backlog_limit()
        while True:
            connection = session.connection
            if connection is None or connection.closed:
                return
            if (
                connection.transport.write_buffer_size() <= limit
                and session.backlog() < backlog_limit
            ):
                return
            await asyncio.sleep(0.002)

    def _retained_backlog_limit(self) -> int:
        """The QoS 1 backlog above which a retained delivery waits for acknowledgements,
        leaving the other half of the limit to live messages."""
        return max(1, self.config.max_queued_messages // 2)

    def _deliver_stored(
        self,
        session: Session,
        chunk: Sequence[store.RetainedItem | PlainRun],
        start: int,
        options: SubscriptionOptions,
        delivered: list[str],
    ) -> int:
        """Send chunk[start:] as retained copies until the client's output buffer passes the
        high-water mark (or its QoS 1 backlog half its limit); returns where to continue.
        QoS 0 copies without properties (the bulk of a `#` subscription), encoded already
        by the store or here, go out in one joined write."""
        connection = session.connection
        if connection is None:
            return len(chunk)
        unrestricted = connection.receives_everything()
        level = connection.protocol_level
        max_packet = connection.client_max_packet
        high_water = self.config.write_buffer_high_water
        backlog_limit = self._retained_backlog_limit()
        live_seen = session.live_retained_seen
        batch: list[bytes] = []
        batch_bytes = connection.transport.write_buffer_size()
        sent: list[tuple[str, int]] = []
        now = time.time()
        index = start
        while index < len(chunk):
            entry = chunk[index]
            index += 1
            if type(entry) is PlainRun:
                session.dropped_oversize += entry.oversize  # [MQTT-3.1.2-25]
                if unrestricted and not live_seen:  # the common case: all of it, as it is
                    batch.append(entry.data)
                    batch_bytes += len(entry.data)
                    delivered += entry.topics
                    sent += entry.recent
                else:
                    for topic, stored_ms, data in zip(
                        entry.topics, entry.stored_ms, entry.packets, strict=True
                    ):
                        if not unrestricted and not self._may_receive(session, topic):
                            continue
                        if live_seen and live_seen.get(topic, -1) >= stored_ms:
                            continue  # this one, or a newer one, already went out live
                        batch.append(data)
                        batch_bytes += len(data)
                        sent.append((topic, stored_ms))
                        delivered.append(topic)
                if batch_bytes > high_water:
                    break
                continue
            assert type(entry) is tuple
            topic, stored_ms, stored = entry
            if not unrestricted and not self._may_receive(session, topic):
                continue
            if live_seen and live_seen.get(topic, -1) >= stored_ms:
                continue  # this one, or a newer one, already went out live
            assert isinstance(stored, store.RetainedCopy | store.StoredMessage)
            plain = stored.properties is store.NO_PROPERTIES or level != MQTT_5
            if (stored.qos == 0 or options.qos == 0) and stored.expires_at is None and plain:
                data = encode_publish(
                    topic=topic,
                    payload=stored.payload,
                    qos=0,
                    retain=True,
                    dup=False,
                    packet_id=None,
                    properties=EMPTY_PROPERTIES,
                    protocol_level=level,
                )
                if len(data) > max_packet:
                    session.dropped_oversize += 1  # [MQTT-3.1.2-25]
                    continue
                batch.append(data)
                batch_bytes += len(data)
            else:
                if batch:  # keep the order of what was sent before
                    connection.transport.write(b"".join(batch))
                    batch.clear()
                message = Message(
                    topic=topic,
                    payload=stored.payload,
                    qos=stored.qos,
                    retain=True,
                    properties=properties_from_store(stored.properties),
                    expires_at=_expiry_epoch(stored),
                )
                session.deliver(message, options, retained_delivery=True, now=now)
                batch_bytes = connection.transport.write_buffer_size()
            sent.append((topic, stored_ms))
            delivered.append(topic)
            if batch_bytes > high_water or session.backlog() >= backlog_limit:
                break
        if batch:
            connection.transport.write(b"".join(batch))
        for topic, stored_ms in sent[-RETAINED_SENT_MEMORY:]:
            session.note_retained_sent(topic, stored_ms)
        return index


def _stored_ms(outcome: store.Written | None) -> int:
    if outcome is None:  # cleared: newer than anything stored before
        return int(time.time() * 1000)
    return outcome.last_modified_ms


def _expiry_epoch(
    stored: store.RetainedCopy | store.StoredMessage | store.Written | None,
) -> float | None:
    if stored is None or stored.expires_at is None:
        return None
    return stored.expires_at.timestamp()


def properties_from_store(properties: store.MessageProperties) -> Properties:
    return Properties(
        payload_format_indicator=properties.payload_format_indicator,
        content_type=properties.content_type or None,
        response_topic=properties.response_topic or None,
        correlation_data=properties.correlation_data,
        user_property=properties.user_properties,
        message_expiry_interval=properties.message_expiry_interval,
    )


def _in_django_thread(function: Callable[[], Any]) -> Any:
    """Run ORM code in a worker thread and release its connection afterwards."""
    from django.db import close_old_connections

    close_old_connections()
    try:
        return function()
    finally:
        close_old_connections()


@dataclass(slots=True)
class _Inbound:
    """A received PUBLISH waiting (in order) for its store write, then routing and PUBACK."""

    publish: Publish
    message: Message | None
    future: asyncio.Future[Any] | None
    refusal: int | None = None
    refusal_reason: str | None = None  # MQTT 5 PUBACK Reason String for `refusal`


@dataclass(slots=True)
class _ConnectionState:
    keep_alive: float = CONNECT_TIMEOUT_SECONDS
    topic_aliases: dict[int, str] = field(default_factory=dict)
    clean_disconnect: bool = False
    connacked: bool = False
    problem_information: bool = True  # MQTT 5 Request Problem Information (default 1)


class Connection:
    """One client connection, fed by a transport. The same code serves TCP and WebSocket."""

    def __init__(
        self,
        broker: Broker,
        transport: Transport,
        *,
        peer: str,
        client_certificate: str | None = None,
        identity: Identity | None = None,
    ) -> None:
        """`client_certificate`: the id (SHA-256) of the certificate the TLS transport
        verified; `identity`: who the transport already authenticated (a presigned
        WebSocket URL). Either replaces CONNECT's username/password."""
        self.broker = broker
        self.transport = transport
        self.peer = peer
        self.client_certificate = client_certificate
        self.transport_identity = identity
        self.policy_context: dict[str, Any] = {}
        limits = broker.config.limits
        self.decoder = Decoder(max_packet_size=limits.max_packet_bytes)
        self.protocol_level = 4
        self.session: Session | None = None
        self.principal: Principal | None = None
        self.client_id: str | None = None
        self.will: Will | None = None
        self.state = _ConnectionState()
        self.closed = False
        self.client_max_packet = limits.max_packet_bytes * 64
        self._pipeline: deque[_Inbound] | None = None  # created on first use (760 bytes)
        self._inbound_qos1 = 0  # QoS 1 publishes received and not yet acknowledged
        # PUBACKs held until the copies their messages queued for offline sessions commit.
        self._held_pubacks: list[Puback] = []
        self._puback_barrier: asyncio.Future[Any] | None = None
        self._decisions: dict[tuple[str, str], bool] = {}
        self._decisions_epoch = -1
        self._unrestricted = False
        self._unrestricted_epoch = -1
        self._first_bytes = b""
        self._plain_routes: dict[str, PlainRoute] = {}
        self._actor: store.Actor | None = None  # who sets the retained messages it publishes

    def receives_everything(self) -> bool:
        """Whether this principal's policies allow every action on every resource, so no
        per-topic check is needed (cached until the broker's policies change)."""
        broker = self.broker
        if self._unrestricted_epoch != broker.policy_epoch:
            principal = self.principal
            self._unrestricted = principal is not None and broker.principal_unrestricted(principal)
            self._unrestricted_epoch = broker.policy_epoch
        return self._unrestricted

    def allowed(self, action: str, resource: str) -> bool:
        """This connection's policy decision (cached until the broker's policies change)."""
        if self.receives_everything():
            return True
        broker = self.broker
        if (
            self._decisions_epoch != broker.policy_epoch
            or len(self._decisions) > DECISIONS_PER_CONNECTION
        ):
            self._decisions.clear()
            self._decisions_epoch = broker.policy_epoch
        key = (action, resource)
        decision = self._decisions.get(key)
        if decision is None:
            principal = self.principal
            decision = principal is not None and broker.authorizer(
                principal, action, resource, self.policy_context
            )
            self._decisions[key] = decision
        return decision

    # --- transport side --------------------------------------------------------------------
    def read_timeout(self) -> float:
        """Keep-alive x 1.5 ([MQTT-3.1.2-22]); before CONNECT a short connect timeout."""
        return self.state.keep_alive * 1.5 if self.state.connacked else CONNECT_TIMEOUT_SECONDS

    def feed(self, data: bytes) -> Coroutine[Any, Any, None] | None:
        """Process received bytes. Returns a coroutine when a CONNECT must be authenticated
        first: the transport awaits it, and feeds nothing more until it is done."""
        if self.closed:
            return None
        if not self.state.connacked and len(self._first_bytes) < 16:
            self._first_bytes += data[:16]
        error: ProtocolError | None = None
        try:
            packets = self.decoder.feed(data)
        except ProtocolError as failure:
            packets, error = list(failure.packets), failure
        return self._process(packets, error)

    def _process(
        self, packets: list[Packet], error: ProtocolError | None
    ) -> Coroutine[Any, Any, None] | None:
        for index, packet in enumerate(packets):
            if isinstance(packet, Connect) and not self.state.connacked and self.client_id is None:
                return self._connect_then(packet, packets[index + 1 :], error)
            self._handle(packet)
            if self.closed:
                return None
        if error is not None:
            self._protocol_failure(error)
        return None

    async def _connect_then(
        self, connect: Connect, rest: list[Packet], error: ProtocolError | None
    ) -> None:
        await self._on_connect(connect)
        if not self.closed:
            self._process(rest, error)  # a second CONNECT in `rest` is a violation, not awaited

    async def data_received(self, data: bytes) -> None:
        pending = self.feed(data)
        if pending is not None:
            await pending

    def keep_alive_expired(self) -> None:
        logger.info("%s: keep-alive expired", self.client_id or self.peer)
        self.close(ReasonCode.KEEP_ALIVE_TIMEOUT)

    def backlog_exceeded(self) -> None:
        """The client owes acknowledgements for as many QoS 1 messages as a session may
        hold: it does not keep up, and waiting for it would only grow its queue. Disconnect
        it; a persistent session keeps its backlog for the client's return."""
        if self.closed:
            return
        session = self.session
        broker = self.broker
        broker.stats["slow_client_disconnects"] += 1
        logger.info(
            "%s: closing: %d QoS 1 messages unacknowledged or queued, the limit; "
            "the client does not keep up",
            self.client_id or self.peer,
            session.backlog() if session is not None else 0,
        )
        if session is not None and session.persistent:
            session.keep_backlog()
        # 0x97 Quota exceeded rather than 0x89 Server busy: the server is fine, this
        # client used up its own share (the per-session backlog limit), and it should read
        # faster rather than retry later elsewhere. 3.1.1 has no reason: the socket closes.
        self.close(ReasonCode.QUOTA_EXCEEDED)

    def connection_lost(self) -> None:
        """The transport is gone (any reason): wills, session bookkeeping."""
        self.closed = True
        session = self.session
        if session is None or session.connection is not self:
            return
        session.connection = None
        self.broker.routing_version += 1
        session.disconnected_at = time.time()
        if not self.state.clean_disconnect and self.will is not None:
            self._schedule_will(session, self.will)
        self.will = None
        if session.persistent:
            # What it still owes the client was in memory only: write it down, so a crash
            # while the client is away does not lose acknowledged messages.
            session.keep_backlog()
            client_id, interval = session.client_id, session.expiry_interval
            at = datetime.now(UTC)
            self.broker.writer.submit(
                lambda: persistence.mark_disconnected(client_id, at=at, expiry_interval=interval),
                wait=False,
            )
        else:
            self.broker.end_session(session)

    # --- output ----------------------------------------------------------------------------
    def send(self, packet: Packet) -> None:
        if self.closed:
            return
        if (
            type(packet) is Puback
            and not packet.reason_code
            and packet.properties is EMPTY_PROPERTIES
        ):
            # The common case, in both protocol levels: a success PUBACK without properties
            # is the two-byte form ([MQTT-3.4.2-1] lets MQTT 5 omit reason code 0).
            self.transport.write(b"\x40\x02" + packet.packet_id.to_bytes(2, "big"))
            return
        self.transport.write(encode(packet, protocol_level=self.protocol_level))

    def close(self, reason: ReasonCode | None = None) -> None:
        if self.closed:
            return
        if reason is not None and self.protocol_level == MQTT_5 and self.state.connacked:
            self.send(Disconnect(reason_code=reason))
        self.closed = True
        self.transport.close()

    def _send_publish(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        properties: Properties,
        expires_at: float | None,
        packet_id: int | None,
        dup: bool,
        now: float,
    ) -> None:
        if self.closed:
            return
        if self.protocol_level == MQTT_5:
            properties = _with_remaining_expiry(properties, expires_at, now)
        else:
            properties = EMPTY_PROPERTIES
        data = encode_publish(
            topic=topic,
            payload=payload,
            qos=qos,
            retain=retain,
            dup=dup,
            packet_id=packet_id,
            properties=properties,
            protocol_level=self.protocol_level,
        )
        if len(data) > self.client_max_packet:
            # [MQTT-3.1.2-24]: never send more than the client accepts; the message is
            # dropped as if delivered ([MQTT-3.1.2-25]).
            if self.session is not None:
                self.session.dropped_oversize += 1
                if packet_id is not None:
                    self.session.inflight.pop(packet_id, None)
            return
        self.transport.write(data)

    def send_qos0(self, message: Message, retain: bool, now: float) -> None:
        session = self.session
        if self.transport.write_buffer_size() > self.broker.config.write_buffer_high_water:
            if session is not None:
                session.dropped_qos0 += 1  # a slow reader must not slow the others
            self.broker.stats["dropped_qos0"] += 1
            return
        self._send_publish(
            message.topic,
            message.payload,
            0,
            retain,
            message.properties,
            message.expires_at,
            None,
            False,
            now,
        )

    def send_plain_qos0(self, data: bytes) -> None:
        """`send_qos0` for an encoded plain message (see `PlainRoute`)."""
        if self.closed:
            return
        if self.transport.write_buffer_size() > self.broker.config.write_buffer_high_water:
            if self.session is not None:
                self.session.dropped_qos0 += 1
            self.broker.stats["dropped_qos0"] += 1
            return
        if len(data) > self.client_max_packet:
            if self.session is not None:
                self.session.dropped_oversize += 1
            return
        self.transport.write(data)

    def send_qos1(self, session: Session, outgoing: Outgoing, *, dup: bool, now: float) -> None:
        packet_id = session.next_packet_id()
        session.inflight[packet_id] = outgoing
        self.resend_qos1(packet_id, outgoing, now=now, dup=dup)

    def resend_qos1(
        self, packet_id: int, outgoing: Outgoing, *, now: float, dup: bool = True
    ) -> None:
        self._send_publish(
            outgoing.topic,
            outgoing.payload,
            1,
            outgoing.retain,
            outgoing.properties,
            outgoing.expires_at,
            packet_id,
            dup,
            now,
        )

    # --- input -----------------------------------------------------------------------------
    def _handle(self, packet: Packet) -> None:
        if isinstance(packet, Connect):
            self._violation(ReasonCode.PROTOCOL_ERROR, "second CONNECT")  # [MQTT-3.1.0-2]
        elif not self.state.connacked:
            self._violation(ReasonCode.PROTOCOL_ERROR, "packet before CONNECT")
        elif isinstance(packet, Publish):
            self._on_publish(packet)
        elif isinstance(packet, Puback):
            if self.session is not None:
                self.session.acknowledged(packet.packet_id)
        elif isinstance(packet, Subscribe):
            self._on_subscribe(packet)
        elif isinstance(packet, Unsubscribe):
            self._on_unsubscribe(packet)
        elif isinstance(packet, Pingreq):
            self.send(Pingresp())
        elif isinstance(packet, Disconnect):
            self._on_disconnect(packet)
        elif isinstance(packet, Pubrec | Pubrel | Pubcomp):
            # QoS 2 is not supported (AWS neither): we never send QoS 2, so these are errors.
            self._violation(ReasonCode.PROTOCOL_ERROR, "QoS 2 flow packets are not supported")
        elif isinstance(packet, Auth):
            self._violation(
                ReasonCode.BAD_AUTHENTICATION_METHOD, "enhanced authentication is not supported"
            )
        else:
            self._violation(ReasonCode.PROTOCOL_ERROR, f"unexpected {type(packet).__name__}")

    def _violation(self, reason: ReasonCode, message: str) -> None:
        logger.info("%s: closing: %s (0x%02X)", self.client_id or self.peer, message, reason)
        self.close(reason)

    def _protocol_failure(self, error: ProtocolError) -> None:
        logger.info("%s: %s", self.client_id or self.peer, error)
        if (
            not self.state.connacked
            and error.reason_code == ReasonCode.UNSUPPORTED_PROTOCOL_VERSION
        ):
            # 3.1.1 [MQTT-3.1.2-2]: answer an unknown level with return code 1, then close.
            self.transport.write(encode(Connack(reason_code=1), protocol_level=4))
            self.closed = True
            self.transport.close()
            return
        if not self.state.connacked and (
            self.decoder.protocol_level == MQTT_5
            or _sniff_connect_level(self._first_bytes) == MQTT_5
        ):
            self.protocol_level = MQTT_5
            self.send(Connack(reason_code=error.reason_code))
            self.closed = True
            self.transport.close()
            return
        self.close(error.reason_code)

    # --- CONNECT ---------------------------------------------------------------------------
    def _refuse_connect(self, reason: ReasonCode, message: str) -> None:
        logger.info("%s: CONNECT refused: %s", self.peer, message)
        code = reason if self.protocol_level == MQTT_5 else connack_return_code_311(reason)
        properties = (
            Properties(reason_string=message[:200])
            if self.protocol_level == MQTT_5
            else EMPTY_PROPERTIES
        )
        self.send(Connack(reason_code=code, properties=properties))
        self.closed = True
        self.transport.close()

    async def _on_connect(self, connect: Connect) -> None:
        broker = self.broker
        limits = broker.config.limits
        self.protocol_level = connect.protocol_level
        v5 = connect.protocol_level == MQTT_5
        client_id = connect.client_id
        assigned = False
        if not client_id:
            if not v5 and not connect.clean_start:
                self._refuse_connect(
                    ReasonCode.CLIENT_IDENTIFIER_NOT_VALID, "empty client id needs clean session"
                )  # [MQTT-3.1.3-8]
                return
            client_id = broker.assign_client_id()
            assigned = True
        if len(client_id.encode()) > limits.max_client_id_bytes:
            self._refuse_connect(
                ReasonCode.CLIENT_IDENTIFIER_NOT_VALID,
                f"client id is longer than {limits.max_client_id_bytes} bytes",
            )
            return
        identity = await self._authenticate(connect, client_id)
        if identity is None or self.closed:
            return
        principal = identity.principal
        context: dict[str, Any] = {"iot:ClientId": client_id, **dict(identity.context)}
        # A session that outlives the connection: 3.1.1 clean session 0; MQTT 5 a Session
        # Expiry Interval above 0 (Clean Start only says whether an old session is resumed).
        if connect.protocol_level == MQTT_5:
            persistent = bool(connect.properties.session_expiry_interval)
        else:
            persistent = not connect.clean_start
        attributes = ["PersistentConnect"] if persistent else []
        if connect.will is not None:
            attributes.append("LastWill")
        if not broker.authorizer(
            principal,
            "iot:Connect",
            broker.client_arn(client_id),
            {**context, "iot:ConnectAttributes": attributes},
        ):
            self._refuse_connect(ReasonCode.NOT_AUTHORIZED, "iot:Connect is not allowed")
            return
        if connect.will is not None:
            try:
                validate_topic_name(
                    connect.will.topic, limits=broker.topic_limits, for_retain=connect.will.retain
                )
            except InvalidTopicError as error:
                if not v5:
                    # [MQTT-3.1.4-1]: a CONNECT that does not conform is closed without a
                    # CONNACK (3.1.1 has no return code for it; 3 would invite a retry).
                    logger.info("%s: CONNECT refused: will topic: %s", self.peer, error)
                    self.closed = True
                    self.transport.close()
                    return
                self._refuse_connect(ReasonCode.TOPIC_NAME_INVALID, f"will topic: {error}")
                return
            if len(connect.will.payload) > limits.max_payload_bytes:
                self._refuse_connect(ReasonCode.PACKET_TOO_LARGE, "will payload is too large")
                return
            if connect.will.qos > 1:
                self._refuse_connect(ReasonCode.QOS_NOT_SUPPORTED, "will QoS 2 is not supported")
                return
        self.principal = principal
        self._unrestricted_epoch = -1  # decide again for this principal
        self.policy_context = context
        self.client_id = client_id
        self.will = connect.will
        await self._start_session(connect, client_id, assigned)

    async def _authenticate(self, connect: Connect, client_id: str) -> Identity | None:
        broker = self.broker
        if self.client_certificate is not None:
            # AWS: over mutual TLS the certificate is the principal; username is ignored.
            identity = await asyncio.to_thread(
                broker.certificate_authenticator, self.client_certificate, client_id
            )
            if identity is None:
                self._refuse_connect(
                    ReasonCode.NOT_AUTHORIZED, "the client certificate is not registered or ACTIVE"
                )
            return identity
        if self.transport_identity is not None:
            identity = self.transport_identity
            if not await asyncio.to_thread(broker.principal_validator, identity.principal):
                self._refuse_connect(ReasonCode.NOT_AUTHORIZED, "the access key is not active")
                return None
            return identity
        if connect.username is None and connect.password is None:
            if broker.config.allow_anonymous:
                return Identity(ANONYMOUS)
            self._refuse_connect(ReasonCode.NOT_AUTHORIZED, "anonymous clients are not allowed")
            return None
        username = connect.username or ""
        password = connect.password or b""

        def authenticate() -> Principal | None:
            # The key lookup is cached for a few seconds; the validator reads the policy
            # snapshot, which hears of a key or user deactivated elsewhere within a second.
            found = broker.authenticator(username, password)
            return found if found is not None and broker.principal_validator(found) else None

        principal = await asyncio.to_thread(authenticate)
        if principal is None:
            self._refuse_connect(ReasonCode.BAD_USER_NAME_OR_PASSWORD, "bad user name or password")
            return None
        return Identity(principal)

    async def _start_session(self, connect: Connect, client_id: str, assigned: bool) -> None:
        broker = self.broker
        limits = broker.config.limits
        v5 = connect.protocol_level == MQTT_5
        # AWS: keep-alive 0 or >1200 -> 1200, 1..29 -> 30.
        requested = connect.keep_alive
        keep_alive = (
            limits.keep_alive_max_seconds
            if requested == 0
            else min(max(requested, limits.keep_alive_min_seconds), limits.keep_alive_max_seconds)
        )
        self.state.keep_alive = keep_alive
        if v5:
            requested_expiry = connect.properties.session_expiry_interval or 0
        else:
            # 3.1.1: clean session 0 = persistent; AWS keeps it for the default expiry.
            requested_expiry = 0 if connect.clean_start else limits.session_expiry_default_seconds
        expiry = min(requested_expiry, limits.session_expiry_max_seconds)

        existing = broker.sessions.get(client_id)
        if existing is not None and existing.connection is not None:
            old = existing.connection
            logger.info("%s: session taken over by %s", client_id, self.peer)
            old.close(ReasonCode.SESSION_TAKEN_OVER)  # [MQTT-3.1.4-3]
            old.connection_lost()
            existing = broker.sessions.get(client_id)
        if (
            existing is not None
            and existing.connection is None
            and existing.disconnected_at is not None
            and existing.disconnected_at + existing.expiry_interval <= time.time()
        ):
            broker.end_session(existing)  # its expiry passed while the client was away
            existing = None
        session_present = False
        if existing is not None and not connect.clean_start:
            session = existing
            session_present = True
        else:
            if existing is not None:
                broker.end_session(existing)
            session = Session(broker, client_id, protocol_level=connect.protocol_level)
            broker.sessions[client_id] = session
            broker.routing_version += 1
        session.protocol_level = connect.protocol_level
        session.expiry_interval = expiry
        if v5 and connect.properties.receive_maximum:
            session.send_quota = min(connect.properties.receive_maximum, limits.inflight_qos1_max)
        else:
            session.send_quota = limits.inflight_qos1_max
        if v5 and connect.properties.maximum_packet_size:
            self.client_max_packet = connect.properties.maximum_packet_size
        if v5 and connect.properties.request_problem_information is False:
            self.state.problem_information = False  # [MQTT-3.1.2-29] no Reason Strings
        self.session = session

        if session.persistent:
            principal_name = self.principal.name if self.principal else ""
            level = connect.protocol_level
            saved = broker.writer.submit(
                lambda: persistence.save_session(
                    client_id,
                    protocol_level=level,
                    expiry_interval=expiry,
                    principal=principal_name,
                )
            )
            # CONNACK once the session is committed: a client told its session exists must
            # find it after a crash.
            assert saved is not None
            await saved
            if self.closed:
                return
            if broker.sessions.get(client_id) is not session or session.connection is not None:
                # Taken over while the session was being saved: the newer connection owns it.
                self.close(ReasonCode.SESSION_TAKEN_OVER)
                return

        properties = EMPTY_PROPERTIES
        if v5:
            properties = Properties(
                maximum_qos=1,
                retain_available=True,
                wildcard_subscription_available=True,
                subscription_identifier_available=False,
                shared_subscription_available=True,
                topic_alias_maximum=limits.topic_alias_maximum,
                maximum_packet_size=limits.max_packet_bytes,
                receive_maximum=limits.inflight_qos1_max,
                server_keep_alive=keep_alive if keep_alive != requested else None,
                session_expiry_interval=expiry if expiry != requested_expiry else None,
                assigned_client_identifier=client_id if assigned else None,
            )
        self.state.connacked = True
        self.send(Connack(session_present=session_present, reason_code=0, properties=properties))
        session.resume(self)

    # --- PUBLISH ---------------------------------------------------------------------------
    def _on_publish(self, publish: Publish) -> None:
        broker = self.broker
        limits = broker.config.limits
        plain = (
            not publish.qos
            and not publish.retain
            and publish.properties is EMPTY_PROPERTIES
            and not self._pipeline  # nothing received earlier still waits for the store
        )
        if plain:
            route = self._plain_routes.get(publish.topic)
            if (
                route is not None
                and route.is_current(broker)
                and len(publish.payload) <= limits.max_payload_bytes
            ):
                # Topic checked and publishing allowed when the route was made, routing and
                # policies unchanged since: the fast path for repeated telemetry.
                stats = broker.stats
                stats["published"] += 1
                stats["delivered"] += route.deliveries
                route.forward(publish.payload)
                return
        v5 = self.protocol_level == MQTT_5
        if publish.qos > 1:
            # AWS sends nothing back for QoS 2; we say why (MQTT 5) or close (3.1.1).
            self._violation(ReasonCode.QOS_NOT_SUPPORTED, "QoS 2 is not supported")
            return
        topic = publish.topic
        properties = publish.properties
        if v5 and properties.topic_alias is not None:
            alias = properties.topic_alias
            if alias == 0 or alias > limits.topic_alias_maximum:
                self._violation(
                    ReasonCode.TOPIC_ALIAS_INVALID, f"topic alias {alias}"
                )  # [MQTT-3.3.2-9]
                return
            if topic:
                self.state.topic_aliases[alias] = topic
            else:
                known = self.state.topic_aliases.get(alias)
                if known is None:
                    self._violation(ReasonCode.PROTOCOL_ERROR, f"unknown topic alias {alias}")
                    return
                topic = known
        if v5 and not topic:
            # MQTT 5.0 section 3.3.2.1: a zero-length Topic Name without a Topic Alias.
            self._violation(ReasonCode.PROTOCOL_ERROR, "empty topic name without a topic alias")
            return
        try:
            validate_topic_name(topic, limits=broker.topic_limits)
        except InvalidTopicError as error:
            self._violation(ReasonCode.TOPIC_NAME_INVALID, str(error))
            return
        response_topic = properties.response_topic
        if response_topic is not None and ("+" in response_topic or "#" in response_topic):
            # [MQTT-3.3.2-14]: the Response Topic is a Topic Name, never a filter.
            self._violation(ReasonCode.PROTOCOL_ERROR, "wildcard in the response topic")
            return
        if len(publish.payload) > limits.max_payload_bytes:
            self._violation(ReasonCode.PACKET_TOO_LARGE, "payload is larger than the limit")
            return
        if publish.qos == 1 and self._inbound_qos1 >= limits.inflight_qos1_max:
            self._violation(
                ReasonCode.RECEIVE_MAXIMUM_EXCEEDED, "too many unacknowledged QoS 1 publishes"
            )
            return
        refusal = self._publish_refusal(publish, topic)
        refusal_reason: str | None = None
        if refusal is None and publish.retain and publish.payload:
            # AWS: retained publishes are rate limited (0-byte deletes never are). Over the
            # limit: MQTT 5 QoS 1 PUBACK 0x97, QoS 0 dropped; 3.1.1 closes, as for the count
            # quota, since it has no way to say why.
            throttled = broker.throttle_retained(topic)
            if throttled is not None:
                refusal, refusal_reason = ReasonCode.QUOTA_EXCEEDED, throttled.message
                logger.debug("%s: %r throttled: %s", self.client_id, topic, refusal_reason)
        if refusal is not None and not v5:
            # 3.1.1 has no PUBACK codes
            self._violation(ReasonCode(refusal), refusal_reason or "publish refused")
            return
        if plain and refusal is None:
            self._route_plain(topic, publish.payload)
            return
        expiry = properties.message_expiry_interval if v5 else None
        if expiry is not None and publish.retain:
            expiry = min(max(expiry, 1), limits.message_expiry_max_seconds)  # AWS clamp
        message = Message(
            topic=topic,
            payload=publish.payload,
            qos=publish.qos,
            retain=publish.retain,
            properties=_forwarded_properties(properties) if v5 else EMPTY_PROPERTIES,
            expires_at=time.time() + expiry if expiry is not None else None,
            sender=self.client_id,
        )
        if expiry is not None:
            message.properties = replace(message.properties, message_expiry_interval=expiry)
        future = None
        if refusal is None and publish.retain:
            actor = self._actor
            if actor is None or actor.name != self.client_id:
                actor = self._actor = store.Actor(kind=SetByKind.MQTT, name=self.client_id or "")
            # Checked above: topic name (and $aws/ for retain), QoS 0/1, payload size.
            future = broker.store_retained(
                message, actor, notify=self._drain_pipeline, checked=True
            )
        inbound = _Inbound(
            publish=publish,
            message=message,
            future=future,
            refusal=refusal,
            refusal_reason=refusal_reason,
        )
        if self._pipeline is None:
            self._pipeline = deque()
        self._pipeline.append(inbound)
        if publish.qos == 1:
            self._inbound_qos1 += 1
        if future is None:
            self._drain_pipeline()
        # else: the writer calls _drain_pipeline once its batch committed

    def _route_plain(self, topic: str, payload: bytes) -> None:
        """Route a plain QoS 0 message (see `PlainRoute`), keeping its route for the next
        ones to the same topic, unless a shared subscription matches (those rotate)."""
        broker = self.broker
        matches = broker.matches(topic)
        if any(match.share_group is not None for match in matches):
            message = Message(topic=topic, payload=payload, qos=0, retain=False)
            message.sender = self.client_id
            broker.route(message, matches)
            return
        route = broker.plain_route(topic, self.client_id, matches)
        routes = self._plain_routes
        if len(routes) >= PLAIN_ROUTES_PER_CONNECTION:
            routes.clear()
        routes[topic] = route
        broker.stats["published"] += 1
        broker.stats["delivered"] += route.deliveries
        route.forward(payload)

    def _publish_refusal(self, publish: Publish, topic: str) -> int | None:
        broker = self.broker
        principal = self.principal
        assert principal is not None
        arn = broker.topic_arn(topic)
        if not self.allowed("iot:Publish", arn):
            return ReasonCode.NOT_AUTHORIZED
        if publish.retain:
            if not self.allowed("iot:RetainPublish", arn):
                return ReasonCode.NOT_AUTHORIZED
            if topic.startswith("$aws/"):
                return ReasonCode.TOPIC_NAME_INVALID  # AWS: no retained publishes to $aws/
        if publish.properties.payload_format_indicator == 1 and not _is_utf8(publish.payload):
            return ReasonCode.PAYLOAD_FORMAT_INVALID  # [MQTT-3.3.2-4]
        return None

    def _refusal_properties(self, reason: str | None) -> Properties:
        """A refusal's Reason String, unless the client asked for none [MQTT-3.1.2-29] or
        it would not fit the client's Maximum Packet Size [MQTT-3.4.2-2]."""
        if reason is None or not self.state.problem_information:
            return EMPTY_PROPERTIES
        if len(reason.encode()) + 16 > self.client_max_packet:
            return EMPTY_PROPERTIES
        return Properties(reason_string=reason)

    def _drain_pipeline(self) -> None:
        """Route and acknowledge received publishes in the order they arrived
        ([MQTT-4.6.0-2], [MQTT-4.6.0-6]), each only once its retained write committed."""
        pipeline = self._pipeline
        while pipeline:
            head = pipeline[0]
            if head.future is not None and not head.future.done():
                return
            pipeline.popleft()
            if head.publish.qos == 1:
                self._inbound_qos1 -= 1
            reason = head.refusal
            queued: asyncio.Future[Any] | None = None
            if reason is None and head.future is not None:
                outcome = head.future.result()
                if isinstance(outcome, store.RetainedQuotaExceededError):
                    reason = ReasonCode.QUOTA_EXCEEDED  # AWS: count quota -> throttled
                elif isinstance(outcome, Exception):
                    logger.warning("%s: retained write failed: %s", self.client_id, outcome)
                    reason = ReasonCode.IMPLEMENTATION_SPECIFIC_ERROR
                elif head.message is not None:
                    head.message.stored_ms = _stored_ms(outcome)
            if reason is None and head.message is not None:
                _, queued = self.broker.route_durably(head.message)
            elif self.protocol_level != MQTT_5:
                if not self.closed:
                    self._violation(ReasonCode(reason or 0x80), "retained publish refused")
                continue
            if head.publish.qos == 1 and head.publish.packet_id is not None:
                if reason is None and queued is None and self._puback_barrier is None:
                    if not self.closed:  # the common case, in its two-byte form (see `send`)
                        self.transport.write(b"\x40\x02" + head.publish.packet_id.to_bytes(2))
                    continue
                puback = Puback(
                    packet_id=head.publish.packet_id,
                    reason_code=reason or 0,
                    properties=self._refusal_properties(head.refusal_reason if reason else None),
                )
                self._send_puback(puback, after=queued)

    def _send_puback(self, puback: Puback, *, after: asyncio.Future[Any] | None) -> None:
        """Send `puback` once `after` (a queue write) committed, and after every PUBACK
        held before it ([MQTT-4.6.0-2]): the publisher may forget a message only once no
        crash can lose it."""
        if after is not None and not after.done():
            self._puback_barrier = after  # commits after every earlier barrier
            after.add_done_callback(self._release_pubacks)
        if self._puback_barrier is None:
            self.send(puback)
        else:
            self._held_pubacks.append(puback)

    def _release_pubacks(self, done: asyncio.Future[Any]) -> None:
        if done is not self._puback_barrier:
            return  # a later barrier holds them still
        self._puback_barrier = None
        held, self._held_pubacks = self._held_pubacks, []
        for puback in held:
            self.send(puback)

    # --- SUBSCRIBE / UNSUBSCRIBE ------------------------------------------------------------
    def _on_subscribe(self, subscribe: Subscribe) -> None:
        broker = self.broker
        limits = broker.config.limits
        session = self.session
        principal = self.principal
        assert session is not None
        assert principal is not None
        v5 = self.protocol_level == MQTT_5
        if subscribe.properties.subscription_identifier:
            # Our CONNACK says Subscription Identifier Available = 0 (section 3.2.2.3.12).
            self._violation(
                ReasonCode.SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
                "subscription identifiers are not supported",
            )
            return
        for subscription in subscribe.subscriptions:
            share_group, _ = split_shared_subscription(subscription.topic_filter)
            if share_group is not None and subscription.no_local:
                self._violation(
                    ReasonCode.PROTOCOL_ERROR, "No Local on a shared subscription"
                )  # [MQTT-3.8.3-4]
                return
        failure = ReasonCode.UNSPECIFIED_ERROR if not v5 else None
        codes: list[int] = []
        new_subscriptions: list[tuple[str, SubscriptionOptions, bool]] = []
        saves: list[asyncio.Future[Any]] = []
        if len(subscribe.subscriptions) > limits.subscriptions_per_subscribe:
            # AWS: at most 8 filters per SUBSCRIBE; nothing of this packet is applied.
            code = failure or ReasonCode.QUOTA_EXCEEDED
            self.send(
                Suback(
                    packet_id=subscribe.packet_id,
                    reason_codes=(code,) * len(subscribe.subscriptions),
                )
            )
            return
        for subscription in subscribe.subscriptions:
            refusal = self._check_subscription(subscription, principal, session)
            if refusal is not None:
                codes.append(failure or refusal)
                continue
            granted = min(subscription.qos, 1)  # AWS: QoS 2 requests are granted QoS 1
            options = SubscriptionOptions(
                qos=granted,
                no_local=subscription.no_local,
                retain_as_published=subscription.retain_as_published,
                retain_handling=subscription.retain_handling,
            )
            is_new = broker.index.add(session.client_id, subscription.topic_filter, options)
            codes.append(granted)
            new_subscriptions.append((subscription.topic_filter, options, is_new))
            if session.persistent:
                save = partial(
                    persistence.save_subscription,
                    session.client_id,
                    subscription.topic_filter,
                    options,
                )
                saved = broker.writer.submit(save)
                assert saved is not None
                saves.append(saved)
        suback = Suback(packet_id=subscribe.packet_id, reason_codes=tuple(codes))
        retained_reads: list[tuple[str, SubscriptionOptions]] = []
        for topic_filter, options, is_new in new_subscriptions:
            if options.retain_handling == 2 or (options.retain_handling == 1 and not is_new):
                continue
            # Counted now, so live copies routed from here on are remembered (see deliver).
            session.retained_reads_pending += 1
            retained_reads.append((topic_filter, options))
        if saves:
            # A persistent session's subscription is acknowledged once it is committed: a
            # crash right after the SUBACK must not lose it. (MQTT 5.0 section 3.8.4 lets
            # matching PUBLISHes go out before the SUBACK.)
            broker.spawn(self._acknowledge_after(saves, suback, retained_reads))
        else:
            self._acknowledge_subscribe(suback, retained_reads)

    async def _acknowledge_after(
        self,
        saves: list[asyncio.Future[Any]],
        suback: Suback,
        retained_reads: list[tuple[str, SubscriptionOptions]],
    ) -> None:
        try:
            await asyncio.gather(*saves)
        finally:
            if self.closed:
                session = self.session
                if session is not None:
                    session.retained_reads_pending -= len(retained_reads)
                    if session.retained_reads_pending == 0:
                        session.live_retained_seen.clear()
            else:
                self._acknowledge_subscribe(suback, retained_reads)

    def _acknowledge_subscribe(
        self, suback: Suback, retained_reads: list[tuple[str, SubscriptionOptions]]
    ) -> None:
        self.send(suback)
        session = self.session
        assert session is not None
        for topic_filter, options in retained_reads:
            self.broker.spawn(self.broker.deliver_retained(session, topic_filter, options))

    def _check_subscription(
        self, subscription: Subscription, principal: Principal, session: Session
    ) -> ReasonCode | None:
        broker = self.broker
        limits = broker.config.limits
        topic_filter = subscription.topic_filter
        try:
            validate_topic_filter(topic_filter, limits=broker.topic_limits)
        except InvalidTopicError:
            return ReasonCode.TOPIC_FILTER_INVALID
        existing = broker.index.subscriptions_of(session.client_id)
        if topic_filter not in existing and len(existing) >= limits.subscriptions_per_connection:
            return ReasonCode.QUOTA_EXCEEDED  # AWS: 50 subscriptions per connection
        if not self.allowed("iot:Subscribe", broker.topicfilter_arn(topic_filter)):
            return ReasonCode.NOT_AUTHORIZED
        return None

    def _on_unsubscribe(self, unsubscribe: Unsubscribe) -> None:
        session = self.session
        assert session is not None
        codes: list[int] = []
        for topic_filter in unsubscribe.topic_filters:
            removed = self.broker.index.remove(session.client_id, topic_filter)
            codes.append(ReasonCode.SUCCESS if removed else ReasonCode.NO_SUBSCRIPTION_EXISTED)
            if removed and session.persistent:
                client_id = session.client_id
                self.broker.writer.submit(
                    partial(persistence.delete_subscription, client_id, topic_filter), wait=False
                )
        reason_codes = tuple(codes) if self.protocol_level == MQTT_5 else ()
        self.send(Unsuback(packet_id=unsubscribe.packet_id, reason_codes=reason_codes))

    # --- DISCONNECT and wills ---------------------------------------------------------------
    def _on_disconnect(self, disconnect: Disconnect) -> None:
        # 0x04 "Disconnect with Will Message" asks for the will anyway.
        self.state.clean_disconnect = (
            disconnect.reason_code != ReasonCode.DISCONNECT_WITH_WILL_MESSAGE
        )
        session = self.session
        interval = disconnect.properties.session_expiry_interval
        if session is not None and interval is not None:
            if session.expiry_interval == 0 and interval > 0:
                # [MQTT-3.14.2-2]: a session that had no expiry cannot be given one now.
                self.state.clean_disconnect = False
                self._violation(ReasonCode.PROTOCOL_ERROR, "session expiry set at DISCONNECT")
                return
            session.expiry_interval = min(
                interval, self.broker.config.limits.session_expiry_max_seconds
            )
        self.closed = True
        self.transport.close()

    def _schedule_will(self, session: Session, will: Will) -> None:
        broker = self.broker
        principal = self.principal
        client_id = session.client_id
        context = dict(self.policy_context)

        def fire() -> None:
            session.will_handle = None
            session.pending_will = None
            broker.spawn(_publish_will(broker, will, client_id, principal, context))

        delay = (will.properties.will_delay_interval or 0) if self.protocol_level == MQTT_5 else 0
        if delay and session.persistent:
            session.pending_will = fire
            session.will_handle = broker.loop.call_later(min(delay, session.expiry_interval), fire)
        else:
            fire()


async def _publish_will(
    broker: Broker,
    will: Will,
    client_id: str,
    principal: Principal | None,
    context: dict[str, Any],
) -> None:
    """[MQTT-3.1.2-8]: the will is published when the connection ends without DISCONNECT."""
    if principal is not None:
        arn = broker.topic_arn(will.topic)
        context = context or {"iot:ClientId": client_id}
        if not broker.authorizer(principal, "iot:Publish", arn, context):
            return
        if will.retain and not broker.authorizer(principal, "iot:RetainPublish", arn, context):
            return
    message = Message(
        topic=will.topic,
        payload=will.payload,
        qos=will.qos,
        retain=will.retain,
        properties=_forwarded_properties(will.properties),
        sender=client_id,
    )
    try:
        await broker.publish(message, actor=store.Actor(kind=SetByKind.WILL, name=client_id))
    except Exception as error:
        logger.warning("%s: will message not published: %s", client_id, error)


def _sniff_connect_level(first_bytes: bytes) -> int | None:
    """The protocol level byte of a CONNECT that failed to decode, when it can be read:
    so an MQTT 5 client gets its CONNACK reason code even for a malformed CONNECT."""
    if len(first_bytes) < 2 or first_bytes[0] != 0x10:
        return None
    position = 1
    while position < len(first_bytes) and first_bytes[position] & 0x80 and position < 4:
        position += 1
    position += 1  # past the last Remaining Length byte
    name = first_bytes[position : position + 6]
    if name != b"\x00\x04MQTT" or len(first_bytes) <= position + 6:
        return None
    return first_bytes[position + 6]


def _is_utf8(payload: bytes) -> bool:
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
