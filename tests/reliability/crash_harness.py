"""Crash durability: acknowledged writes survive SIGKILL.

Writer threads stream writes at a real `manage.py serve` process through its three doors:

* MQTT (paho-mqtt): QoS 1 PUBLISH, acknowledged by a PUBACK with a success code;
* the HTTP API (boto3 `iot-data` Publish, SigV4): acknowledged by HTTP 200;
* the console's edit and create forms (a logged-in session, CSRF token, the form's
  `base_modified_ms` conflict token): acknowledged by the redirect to the message's page.

Writes go to three kinds of topics:

* distinct: a new topic per write, retained. It must afterwards hold exactly that payload;
* hot: a small shared set of retained topics that every writer keeps overwriting;
* live: non-retained QoS 1 publishes (MQTT and HTTP only).

Distinct and live topics lie under `<prefix>/q/`, the filter of persistent-session
subscribers (MQTT 3.1.1 clean session 0, and MQTT 5 with a Session Expiry Interval) that
are offline while the writers run: every acknowledged write there must reach each of them
when they reconnect (duplicates allowed, loss not).

A kill loop opens the writers' gate for a random while, SIGKILLs the server, closes the gate
(waiting for every write in progress to end, acknowledged or failed), restarts the server
and verifies, through GetRetainedMessage and the subscribers' reconnections, everything
acknowledged since the previous check. A final pass re-reads every acknowledged topic.

The hot-topic rule ("that payload or a later acknowledged one") with interleaved writers:
every write W is an interval [start, end] in this process's monotonic clock (end: the
acknowledgement, the refusal, or the moment the writer saw the connection fail; an
unacknowledged write can only have been applied before that). The stored payload must be
one the harness wrote, and no acknowledged write W' may have started after the stored
write W ended: such a W' is ordered after W, so had it been kept, W could not be there.
A topic with an acknowledged write and nothing stored is a loss too.
"""

from __future__ import annotations

import contextlib
import enum
import http.client
import itertools
import math
import os
import random
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import quote, urlencode

import boto3
import paho.mqtt.client as paho
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties as PahoProperties

from tests.conftest import Credentials, create_credentials
from tests.support.server import ServerProcess

HOST = "127.0.0.1"
KINDS = ("mqtt", "http", "console")
# Rate limits are off in these servers (every write must be able to go through).
ZERO_RATE_LIMITS = {
    "RETAINED_RETAINED_PUBLISHES_PER_SECOND": "0",
    "RETAINED_RETAINED_PUBLISHES_PER_TOPIC_PER_SECOND": "0",
    "RETAINED_GET_RETAINED_PER_SECOND": "0",
    "RETAINED_LIST_RETAINED_PER_SECOND": "0",
}
OPERATION_TIMEOUT = 10.0  # the longest one write may wait for its acknowledgement
SESSION_EXPIRY_SECONDS = 3600


class Outcome(enum.Enum):
    PENDING = "pending"
    ACKED = "acknowledged"  # PUBACK success / HTTP 200 / the console's redirect
    REFUSED = "refused"  # the server answered no: nothing was written
    UNKNOWN = "unknown"  # the connection failed first: written or not


@dataclass(eq=False)
class Write:
    kind: str
    writer: str
    topic: str
    payload: bytes
    retain: bool
    hot: bool
    epoch: int
    start: float
    end: float = math.inf
    outcome: Outcome = Outcome.PENDING
    error: str = ""  # why the outcome is UNKNOWN, when an exception said so

    @property
    def acked(self) -> bool:
        return self.outcome is Outcome.ACKED


class Ledger:
    """Every write of the run, in the order they started (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.writes: list[Write] = []
        self.by_payload: dict[bytes, Write] = {}

    def begin(self, write: Write) -> Write:
        with self._lock:
            self.writes.append(write)
            self.by_payload[write.payload] = write
        return write

    @staticmethod
    def finish(write: Write, outcome: Outcome) -> None:
        write.end = time.monotonic()
        write.outcome = outcome

    def snapshot(self) -> list[Write]:
        with self._lock:
            return list(self.writes)


class Gate:
    """Writers pass it for each write; the kill loop closes it and waits for them to leave."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._open = False
        self._inside = 0
        self.stopped = False

    def open(self) -> None:
        with self._condition:
            self._open = True
            self._condition.notify_all()

    def close(self) -> None:
        with self._condition:
            self._open = False
            while self._inside:
                self._condition.wait()

    def stop(self) -> None:
        with self._condition:
            self.stopped = True
            self._open = False
            self._condition.notify_all()
            while self._inside:
                self._condition.wait()

    @contextlib.contextmanager
    def passage(self) -> Iterator[bool]:
        """Yields True once the gate is open (False when the run is over)."""
        with self._condition:
            while not self._open and not self.stopped:
                self._condition.wait()
            if self.stopped:
                yield False
                return
            self._inside += 1
        try:
            yield True
        finally:
            with self._condition:
                self._inside -= 1
                self._condition.notify_all()


@dataclass(frozen=True)
class Topics:
    prefix: str
    hot_count: int = 8

    @property
    def queue_filter(self) -> str:
        return f"{self.prefix}/q/#"

    def hot(self, index: int) -> str:
        return f"{self.prefix}/hot/{index}"

    def all_hot(self) -> list[str]:
        return [self.hot(index) for index in range(self.hot_count)]

    def distinct(self, writer: str, sequence: int) -> str:
        return f"{self.prefix}/q/{writer}/{sequence}"

    def live(self, writer: str, sequence: int) -> str:
        return f"{self.prefix}/q/{writer}/live/{sequence}"

    def queued(self, topic: str) -> bool:
        return topic.startswith(f"{self.prefix}/q/")


# --------------------------------------------------------------------------- writers


class Writer(threading.Thread):
    """One client streaming writes while the gate is open; subclasses say how to send."""

    kind = ""
    can_publish_live = True

    def __init__(
        self,
        harness: CrashHarness,
        name: str,
        *,
        weights: tuple[float, float, float] = (0.4, 0.4, 0.2),
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.harness = harness
        self.random = random.Random(f"{harness.seed}-{name}")
        self.sequence = itertools.count(1)
        distinct, hot, live = weights
        self.weights = (distinct, hot, live if self.can_publish_live else 0.0)
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            while True:
                with self.harness.gate.passage() as open_:
                    if not open_:
                        break
                    self.write_once()
        except BaseException as error:  # reported by the harness, never swallowed
            self.failure = error
        finally:
            self.close()

    def write_once(self) -> None:
        harness = self.harness
        topics = harness.topics
        sequence = next(self.sequence)
        (target,) = self.random.choices(("distinct", "hot", "live"), weights=self.weights)
        if target == "distinct":
            topic, retain = topics.distinct(self.name, sequence), True
        elif target == "hot":
            topic, retain = topics.hot(self.random.randrange(topics.hot_count)), True
        else:
            topic, retain = topics.live(self.name, sequence), False
        payload = f"{self.name}:{sequence}:{uuid.uuid4().hex[:8]}".encode()
        write = harness.ledger.begin(
            Write(
                kind=self.kind,
                writer=self.name,
                topic=topic,
                payload=payload,
                retain=retain,
                hot=target == "hot",
                epoch=harness.epoch,
                start=time.monotonic(),
            )
        )
        try:
            outcome = self.send(write)
        except Exception as error:  # the connection broke (or the harness did: see report)
            outcome = Outcome.UNKNOWN
            write.error = type(error).__name__
        Ledger.finish(write, outcome)
        if outcome is Outcome.UNKNOWN:
            self.reset()
            time.sleep(0.05)  # the server is down: do not spin

    def prepare(self) -> None:
        """Before the first write (the server is up)."""

    def send(self, write: Write) -> Outcome:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget the connection (the next write opens a new one)."""

    def close(self) -> None:
        self.reset()


class _PahoConnection:
    """One paho connection, never reconnected: a write on it either gets its PUBACK or
    sees the connection drop."""

    def __init__(self, port: int, client_id: str, *, v5: bool, clean: bool = True) -> None:
        self.v5 = v5
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            clean_session=None if v5 else clean,
            reconnect_on_failure=False,
        )
        self._condition = threading.Condition()
        self.pubacks: dict[int, int] = {}
        self.subacks: dict[int, list[int]] = {}
        self.connack: int | None = None
        self.lost = False
        self.on_message: Callable[[paho.MQTTMessage], None] | None = None
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.port = port

    def _notify(self, change: Callable[[], None]) -> None:
        with self._condition:
            change()
            self._condition.notify_all()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._notify(lambda: setattr(self, "connack", int(reason.value)))

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self._notify(lambda: setattr(self, "lost", True))

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        self._notify(lambda: self.pubacks.__setitem__(mid, int(reason.value)))

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        self._notify(lambda: self.subacks.__setitem__(mid, [int(c.value) for c in codes]))

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        if self.on_message is not None:
            self.on_message(message)

    def _wait_for(self, ready: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._condition:
            while not ready():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.lost:
                    return ready()
                self._condition.wait(min(remaining, 0.1))
            return True

    def open(self, *, clean: bool = True, session_expiry: int | None = None) -> bool:
        properties = None
        if self.v5:
            properties = PahoProperties(PacketTypes.CONNECT)
            if session_expiry is not None:
                properties.SessionExpiryInterval = session_expiry
            self.client.connect(HOST, self.port, 30, clean_start=clean, properties=properties)
        else:
            self.client.connect(HOST, self.port, 30)
        self.client.loop_start()
        return self._wait_for(lambda: self.connack is not None, OPERATION_TIMEOUT) and (
            self.connack == 0
        )

    def publish(self, topic: str, payload: bytes, *, retain: bool) -> Outcome:
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            return Outcome.UNKNOWN
        mid = info.mid
        if not self._wait_for(lambda: mid in self.pubacks, OPERATION_TIMEOUT):
            return Outcome.UNKNOWN
        code = self.pubacks.pop(mid)
        return Outcome.ACKED if code < 0x80 else Outcome.REFUSED

    def subscribe(self, topic_filter: str) -> list[int]:
        result, mid = self.client.subscribe(topic_filter, 1)
        if result != paho.MQTT_ERR_SUCCESS or mid is None:
            raise RuntimeError(f"SUBSCRIBE {topic_filter!r} failed: {result}")
        if not self._wait_for(lambda: mid in self.subacks, OPERATION_TIMEOUT):
            raise RuntimeError(f"no SUBACK for {topic_filter!r}")
        return self.subacks.pop(mid)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if not self.lost:
                self.client.disconnect()
                self._wait_for(lambda: self.lost, 2.0)
        self.client.loop_stop()


class MqttWriter(Writer):
    kind = "mqtt"

    def __init__(self, harness: CrashHarness, name: str, *, v5: bool, **kwargs: Any) -> None:
        super().__init__(harness, name, **kwargs)
        self.v5 = v5
        self.connections = itertools.count(1)
        self.connection: _PahoConnection | None = None

    def send(self, write: Write) -> Outcome:
        if self.connection is None:
            connection = _PahoConnection(
                self.harness.server.mqtt_port,
                f"{self.name}-{next(self.connections)}",
                v5=self.v5,
            )
            self.connection = connection
            if not connection.open():
                write.error = "CONNECT failed"
                return Outcome.UNKNOWN
        outcome = self.connection.publish(write.topic, write.payload, retain=write.retain)
        if outcome is Outcome.UNKNOWN:
            write.error = "lost before PUBACK" if self.connection.lost else "no PUBACK in time"
        return outcome

    def reset(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def iot_data(server: ServerProcess, credentials: Credentials) -> Any:
    """A boto3 iot-data client that never retries (one request, one outcome)."""
    return boto3.client(
        "iot-data",
        endpoint_url=server.base_url,
        region_name="us-east-1",
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        config=Config(
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=2,
            read_timeout=OPERATION_TIMEOUT,
        ),
    )


class HttpWriter(Writer):
    kind = "http"

    def __init__(self, harness: CrashHarness, name: str, **kwargs: Any) -> None:
        super().__init__(harness, name, **kwargs)
        self.client = iot_data(harness.server, harness.credentials)

    def send(self, write: Write) -> Outcome:
        try:
            self.client.publish(
                topic=write.topic, qos=1, retain=write.retain, payload=write.payload
            )
        except ClientError as error:
            status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
            write.error = f"HTTP {status}"
            return Outcome.REFUSED if 400 <= status < 500 else Outcome.UNKNOWN
        except BotoCoreError as error:
            write.error = type(error).__name__
            return Outcome.UNKNOWN
        return Outcome.ACKED


class _FormInputs(HTMLParser):
    """The name -> value of every <input> of a page (hidden fields among them)."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "input":
            attributes = dict(attrs)
            name = attributes.get("name")
            if name:
                self.values[name] = attributes.get("value") or ""


def form_inputs(html: str) -> dict[str, str]:
    parser = _FormInputs()
    parser.feed(html)
    return parser.values


class ConsoleSession:
    """A signed-in console user over plain HTTP: session and CSRF cookies kept by hand."""

    def __init__(self, server: ServerProcess, username: str, password: str) -> None:
        self.server = server
        self.username = username
        self.password = password
        self.cookies: dict[str, str] = {}
        self.connection: http.client.HTTPConnection | None = None

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], str]:
        if self.connection is None:
            self.connection = http.client.HTTPConnection(
                HOST, self.server.http_port, timeout=OPERATION_TIMEOUT
            )
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            self.connection.request(method, path, body=body, headers=headers)
            response = self.connection.getresponse()
            text = response.read().decode("utf-8", "replace")
        except Exception:
            self.connection.close()
            self.connection = None
            raise
        for header in response.headers.get_all("Set-Cookie") or []:
            cookie = SimpleCookie()
            cookie.load(header)
            for name, morsel in cookie.items():
                self.cookies[name] = morsel.value
        return response.status, {k.lower(): v for k, v in response.getheaders()}, text

    def log_in(self) -> None:
        status, _, page = self.request("GET", "/accounts/login/")
        if status != 200:
            raise RuntimeError(f"login page answered {status}")
        form = {
            "username": self.username,
            "password": self.password,
            "csrfmiddlewaretoken": form_inputs(page)["csrfmiddlewaretoken"],
            "next": "/retained/",
        }
        status, headers, _ = self.request("POST", "/accounts/login/", form)
        if status != 302 or "login" in headers.get("location", ""):
            raise RuntimeError(f"console login failed ({status})")

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def console_path(prefix: str, topic: str) -> str:
    return prefix + quote(topic, safe="/")


class ConsoleWriter(Writer):
    """Edits an existing message through its edit form, creates new ones through the
    create form; retries once on a conflict (someone wrote since the form was read)."""

    kind = "console"
    can_publish_live = False

    def __init__(self, harness: CrashHarness, name: str, **kwargs: Any) -> None:
        super().__init__(harness, name, **kwargs)
        username, password = harness.console_login
        self.session = ConsoleSession(harness.server, username, password)
        self.logged_in = False

    def prepare(self) -> None:
        self.session.log_in()
        self.logged_in = True

    def send(self, write: Write) -> Outcome:
        if not self.logged_in:
            self.session.log_in()
            self.logged_in = True
        edit = console_path("/edit/retained/", write.topic)
        status, _, page = self.session.request("GET", edit)
        if status == 404:
            path, fields = "/create/retained/", {"topic": write.topic, "base_modified_ms": "0"}
            status, _, page = self.session.request("GET", path)
        else:
            path, fields = edit, {}
        if status != 200:
            return self._failed(write, status)
        form = {
            "payload": write.payload.decode(),
            "qos": "1",
            "content_type": "",
            "user_properties": "",
            "base_modified_ms": "0",
        }
        for _attempt in range(2):
            inputs = form_inputs(page)
            form["csrfmiddlewaretoken"] = inputs["csrfmiddlewaretoken"]
            form["base_modified_ms"] = inputs.get("base_modified_ms", "0")
            form.update(fields)
            status, headers, page = self.session.request("POST", path, form)
            if status == 302:
                location = headers.get("location", "")
                if location.endswith(console_path("/retained/", write.topic)):
                    return Outcome.ACKED
                self.logged_in = False
                return Outcome.REFUSED
            if status != 409:
                return self._failed(write, status)
            fields = {}  # the conflict page carries the stored version to rebase on
        return Outcome.REFUSED

    @staticmethod
    def _failed(write: Write, status: int) -> Outcome:
        write.error = f"HTTP {status}"
        return Outcome.UNKNOWN if status >= 500 else Outcome.REFUSED

    def reset(self) -> None:
        self.session.close()


# --------------------------------------------------------------------------- subscribers


class PersistentSubscriber:
    """A persistent session subscribed to the queue filter, online only while draining."""

    def __init__(self, harness: CrashHarness, name: str, *, v5: bool) -> None:
        self.harness = harness
        self.name = name
        self.client_id = f"{harness.topics.prefix.replace('/', '-')}-{name}"
        self.v5 = v5
        self.received: set[bytes] = set()
        self.lost: set[bytes] = set()  # acknowledged, and missing when it reconnected
        self.deliveries = 0
        self._lock = threading.Lock()

    def _connect(self, *, clean: bool) -> _PahoConnection:
        connection = _PahoConnection(
            self.harness.server.mqtt_port, self.client_id, v5=self.v5, clean=clean
        )
        connection.on_message = self._on_message
        expiry = SESSION_EXPIRY_SECONDS if self.v5 else None
        if not connection.open(clean=clean, session_expiry=expiry):
            connection.close()
            raise RuntimeError(f"{self.name}: CONNECT refused ({connection.connack})")
        return connection

    def _on_message(self, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.received.add(bytes(message.payload))
            self.deliveries += 1

    def subscribe(self) -> None:
        # 3.1.1: clean session 0 is what makes the session persistent (a new client id, so
        # nothing old is resumed); MQTT 5: a fresh start, kept by the Session Expiry Interval.
        connection = self._connect(clean=self.v5)
        try:
            codes = connection.subscribe(self.harness.topics.queue_filter)
            if codes != [1]:
                raise RuntimeError(f"{self.name}: SUBACK {codes}")
        finally:
            connection.close()

    def drain(self, expected: set[bytes], timeout: float) -> set[bytes]:
        """Reconnect (session kept) and take deliveries until every `expected` payload is
        in, or `timeout`; then go offline again. The expected payloads still missing."""
        connection = self._connect(clean=False)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                with self._lock:
                    missing = expected - self.received
                if not missing:
                    time.sleep(0.1)  # let the rest of the backlog in: it must not pile up
                    break
                time.sleep(0.02)
        finally:
            connection.close()
        with self._lock:
            return expected - self.received


# --------------------------------------------------------------------------- the harness


@dataclass
class Report:
    kills: int = 0
    seconds: float = 0.0
    restart_seconds: float = 0.0  # of `seconds`: waiting for the server to be healthy again
    verify_seconds: float = 0.0  # of `seconds`: reading back and draining the sessions
    acknowledged: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    unknown: Counter[str] = field(default_factory=Counter)
    # Acknowledged writes found where they belong at every check after them (retained:
    # GetRetainedMessage; live and distinct: delivered to the persistent sessions).
    verified: Counter[str] = field(default_factory=Counter)
    lost: Counter[str] = field(default_factory=Counter)
    hot_checks: int = 0  # hot-topic states checked (topics x restarts)
    queued_expected: Counter[str] = field(default_factory=Counter)  # per subscriber
    queued_delivered: Counter[str] = field(default_factory=Counter)
    queued_lost: Counter[str] = field(default_factory=Counter)
    deliveries: Counter[str] = field(default_factory=Counter)  # duplicates included
    unknown_causes: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    @property
    def total_lost(self) -> int:
        return sum(self.lost.values())

    def lines(self) -> list[str]:
        out = [
            f"kills: {self.kills}   run time: {self.seconds:.1f} s (restarts "
            f"{self.restart_seconds:.1f} s, checks {self.verify_seconds:.1f} s)"
        ]
        out.append(
            f"{'kind':<10}{'acknowledged':>14}{'verified':>10}{'lost':>6}"
            f"{'refused':>9}{'unknown':>9}"
        )
        for kind in KINDS:
            out.append(
                f"{kind:<10}{self.acknowledged[kind]:>14}{self.verified[kind]:>10}"
                f"{self.lost[kind]:>6}{self.refused[kind]:>9}{self.unknown[kind]:>9}"
            )
        causes = ", ".join(f"{name} {count}" for name, count in self.unknown_causes.items())
        out.append(f"unknown outcomes came from: {causes or '-'}")
        out.append(f"hot-topic states checked: {self.hot_checks}")
        for name in sorted(self.queued_expected):
            out.append(
                f"persistent session {name}: acknowledged {self.queued_expected[name]}, "
                f"delivered {self.queued_delivered[name]} ({self.deliveries[name]} deliveries "
                f"with duplicates), lost {self.queued_lost[name]}"
            )
        out.append(f"Lost: {self.total_lost}")
        out.extend(f"  {problem}" for problem in self.problems[:20])
        return out


def stale_writes(history: Iterable[Write], stored: Write | None) -> list[Write]:
    """The acknowledged writes of one topic that the stored state has lost.

    With nothing stored, every acknowledged write; otherwise those that started after the
    stored write ended (so were ordered after it, and should have replaced it)."""
    acked = [write for write in history if write.acked]
    if stored is None:
        return acked
    return [write for write in acked if write is not stored and write.start > stored.end]


def admin_login(server: ServerProcess) -> tuple[str, str]:
    values = {}
    for line in (server.data_dir / "admin-credentials.txt").read_text().splitlines():
        key, _, value = line.partition(":")
        values[key.strip()] = value.strip()
    return values["username"], values["password"]


class CrashHarness:
    def __init__(
        self,
        server: ServerProcess,
        *,
        mqtt_writers: int = 2,
        http_writers: int = 1,
        console_writers: int = 1,
        hot_topics: int = 8,
        min_delay: float = 0.3,
        max_delay: float = 1.5,
        seed: int | str | None = None,
        readers: int = 4,
        log: Callable[[str], None] = print,
    ) -> None:
        """`server` must have been started once (and use ZERO_RATE_LIMITS)."""
        self.server = server
        self.seed = seed if seed is not None else uuid.uuid4().hex[:8]
        self.random = random.Random(f"{self.seed}-kills")
        self.topics = Topics(prefix=f"crash/{self.seed}", hot_count=hot_topics)
        self.min_delay = min_delay
        self.max_delay = max_delay
        self.readers = readers
        self.log = log
        self.ledger = Ledger()
        self.gate = Gate()
        self.epoch = 0
        self.credentials = create_credentials(server, f"crash-{self.seed}")
        self.console_login = admin_login(server)
        self.subscribers = [
            PersistentSubscriber(self, "mqtt311", v5=False),
            PersistentSubscriber(self, "mqtt5", v5=True),
        ]
        self.writers: list[Writer] = []
        for index in range(mqtt_writers):
            self.writers.append(MqttWriter(self, f"mqtt{index}", v5=index % 2 == 1))
        for index in range(http_writers):
            self.writers.append(HttpWriter(self, f"http{index}"))
        for index in range(console_writers):
            self.writers.append(ConsoleWriter(self, f"console{index}"))
        self._checked = 0  # ledger index up to which acknowledged writes were verified
        self._lost: set[Write] = set()
        self.report = Report()

    # --- the loop -----------------------------------------------------------------------
    def run(self, kills: int, *, max_seconds: float | None = None) -> Report:
        """SIGKILL the server `kills` times (fewer if `max_seconds` runs out first, which
        the report shows), verifying after every restart, then a full final check."""
        started = time.monotonic()
        for subscriber in self.subscribers:
            subscriber.subscribe()
        self._sync_point()
        for writer in self.writers:
            writer.prepare()
            writer.start()
        try:
            for _ in range(kills):
                if max_seconds is not None and time.monotonic() - started > max_seconds:
                    break
                self.epoch += 1
                self.gate.open()
                time.sleep(self.random.uniform(self.min_delay, self.max_delay))
                self.kill()
                self.gate.close()
                restarting = time.monotonic()
                self.server.start()
                verifying = time.monotonic()
                self.verify(new_only=True)
                self.report.restart_seconds += verifying - restarting
                self.report.verify_seconds += time.monotonic() - verifying
                acked = sum(1 for write in self.ledger.snapshot() if write.acked)
                self.log(
                    f"kill {self.report.kills}: {acked} writes acknowledged so far, "
                    f"{self.report.total_lost} lost"
                )
            verifying = time.monotonic()
            self.verify(new_only=False)
            self.report.verify_seconds += time.monotonic() - verifying
        finally:
            self.gate.stop()
            for writer in self.writers:
                writer.join(timeout=OPERATION_TIMEOUT * 2)
        for writer in self.writers:
            if writer.failure is not None:
                self.report.problems.append(f"{writer.name} crashed: {writer.failure!r}")
        self.report.seconds = time.monotonic() - started
        self._count_outcomes()
        return self.report

    def kill(self) -> None:
        process = self.server.process
        assert process is not None, "the server is not running"
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        self.server.process = None
        self.report.kills += 1

    def _sync_point(self) -> None:
        """A retained QoS 1 publish: its PUBACK comes after the commit of everything the
        broker queued before it (the subscriptions just made)."""
        connection = _PahoConnection(self.server.mqtt_port, f"crash-{self.seed}-sync", v5=False)
        try:
            if not connection.open():
                raise RuntimeError("sync client could not connect")
            topic = f"{self.topics.prefix}/sync"
            if connection.publish(topic, b"sync", retain=True) is not Outcome.ACKED:
                raise RuntimeError("sync publish was not acknowledged")
        finally:
            connection.close()

    # --- verification ---------------------------------------------------------------------
    def verify(self, *, new_only: bool) -> None:
        """Distinct topics acknowledged since the last check (all of them with
        `new_only=False`), every hot topic, and every persistent subscriber."""
        writes = self.ledger.snapshot()
        assert all(write.outcome is not Outcome.PENDING for write in writes), "gate leaked"
        to_check = writes[self._checked :] if new_only else writes
        self._checked = len(writes)
        distinct = [w for w in to_check if w.acked and w.retain and not w.hot]
        topics = sorted({w.topic for w in distinct} | set(self.topics.all_hot()))
        stored = self._read_retained(topics)
        for write in distinct:
            if stored.get(write.topic) != write.payload:
                self._lose(
                    write,
                    f"distinct {write.topic!r}: stored {stored.get(write.topic)!r}, "
                    f"acknowledged {write.payload!r}",
                )
        history: dict[str, list[Write]] = {}
        for write in writes:
            if write.hot:
                history.setdefault(write.topic, []).append(write)
        for topic in self.topics.all_hot():
            self.report.hot_checks += 1
            payload = stored.get(topic)
            current = self.ledger.by_payload.get(payload) if payload is not None else None
            if payload is not None and (current is None or current.topic != topic):
                self.report.problems.append(f"hot {topic!r} holds a foreign payload {payload!r}")
                current = None
            elif current is not None and current.outcome is Outcome.REFUSED:
                self.report.problems.append(f"hot {topic!r} holds a refused write {payload!r}")
            for write in stale_writes(history.get(topic, []), current):
                self._lose(
                    write, f"hot {topic!r}: acknowledged {write.payload!r}, stored {payload!r}"
                )
        self._drain_subscribers(writes)

    def _lose(self, write: Write, problem: str) -> None:
        """Count a lost acknowledged write once, however many checks see it."""
        if write in self._lost:
            return
        self._lost.add(write)
        self.report.lost[write.kind] += 1
        self.report.problems.append(f"{problem} ({write.kind}, epoch {write.epoch})")

    def _read_retained(self, topics: list[str]) -> dict[str, bytes | None]:
        if not topics:
            return {}
        local = threading.local()

        def get(topic: str) -> tuple[str, bytes | None]:
            client = getattr(local, "client", None)
            if client is None:
                client = local.client = iot_data(self.server, self.credentials)
            try:
                response = client.get_retained_message(topic=topic)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                    return topic, None
                raise
            return topic, bytes(response["payload"])

        with ThreadPoolExecutor(max_workers=self.readers) as pool:
            return dict(pool.map(get, topics))

    def _drain_subscribers(self, writes: list[Write]) -> None:
        queued = {w.payload for w in writes if w.acked and self.topics.queued(w.topic)}
        for subscriber in self.subscribers:
            # Messages found missing at an earlier check are not waited for again.
            expected = queued - subscriber.lost
            missing = subscriber.drain(expected, timeout=max(5.0, len(expected) / 500))
            subscriber.lost |= missing
            name = subscriber.name
            self.report.queued_expected[name] = len(queued)
            self.report.queued_delivered[name] = len(queued - subscriber.lost)
            self.report.queued_lost[name] = len(subscriber.lost)
            self.report.deliveries[name] = subscriber.deliveries
            for payload in sorted(missing):
                write = self.ledger.by_payload[payload]
                self._lose(write, f"{name}: acknowledged {write.topic!r} never delivered")

    def _count_outcomes(self) -> None:
        for write in self.ledger.snapshot():
            if write.outcome is Outcome.ACKED:
                self.report.acknowledged[write.kind] += 1
                if write not in self._lost:
                    self.report.verified[write.kind] += 1
            elif write.outcome is Outcome.REFUSED:
                self.report.refused[write.kind] += 1
            else:
                self.report.unknown[write.kind] += 1
                self.report.unknown_causes[write.error or "no answer"] += 1
