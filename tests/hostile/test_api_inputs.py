"""Hostile input to the data-plane HTTP API, against a real `manage.py serve`.

Two tables:

* `RAW_ROWS`: requests signed with botocore's own SigV4 signer (`SigV4Auth` on an
  `AWSRequest`), then sent as they are, or tampered with after signing, over a plain
  `http.client` connection. Each row asserts the HTTP status, the `x-amzn-ErrorType`
  header and a `message` naming the problem.
* `BOTO_ROWS`: what a boto3 `iot-data` client (parameter validation off: botocore only
  checks minimums) can be made to send; each asserts the modeled botocore exception class.

Every row then checks that nothing was stored under its marker topic and that the server is
healthy (tests/hostile/conftest.py).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import http.client
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any
from unittest import mock
from urllib.parse import quote

import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials as BotoCredentials
from botocore.exceptions import ClientError

from tests.conftest import Credentials, iot_data_client
from tests.hostile.conftest import REGION, Referee, new_marker
from tests.support.server import ServerProcess

MAX_PAYLOAD = 128 * 1024
UNAUTHORIZED = (401, "UnauthorizedException")
INVALID = (400, "InvalidRequestException")
NOT_FOUND = (404, "ResourceNotFoundException")
NOT_ALLOWED = (405, "MethodNotAllowedException")
TOO_LARGE = (413, "RequestEntityTooLargeException")


def b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


@dataclass(frozen=True)
class Wire:
    """An HTTP request exactly as it goes on the wire (path and query still encoded)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    @property
    def target(self) -> str:
        return self.path + ("?" + self.query if self.query else "")


@dataclass(frozen=True)
class Request:
    """What to sign. In `path` and `query`, `{m}` is the row's marker topic, percent-encoded
    as botocore encodes a topic label ('/' as %2F)."""

    method: str = "POST"
    path: str = "/topics/{m}"
    query: str = "qos=1&retain=true"
    body: bytes = b"hostile"
    headers: dict[str, str] = field(default_factory=dict)
    service: str = "iotdata"
    region: str = REGION
    minutes_off: int = 0  # the signer's clock, off by this much
    secret_suffix: str = ""  # appended to the secret: a wrong key
    access_key_id: str | None = None  # instead of the real one
    tamper: Callable[[Wire], Wire] | None = None  # applied after signing


def sign(request: Request, *, base_url: str, credentials: Credentials, marker: str) -> Wire:
    encoded = quote(marker, safe="")
    path = request.path.replace("{m}", encoded)
    query = request.query.replace("{m}", encoded)
    url = base_url + path + ("?" + query if query else "")
    aws_request = AWSRequest(
        method=request.method, url=url, data=request.body, headers=dict(request.headers)
    )
    signer = SigV4Auth(
        BotoCredentials(
            request.access_key_id or credentials.access_key_id,
            credentials.secret_access_key + request.secret_suffix,
        ),
        request.service,
        request.region,
    )
    with _clock(request.minutes_off):
        signer.add_auth(aws_request)
    wire = Wire(
        method=request.method,
        path=path,
        query=query,
        headers={name: str(value) for name, value in aws_request.headers.items()},
        body=request.body,
    )
    return request.tamper(wire) if request.tamper is not None else wire


@contextlib.contextmanager
def _clock(minutes_off: int) -> Iterator[None]:
    """The signers' clock off by `minutes_off`: botocore's own SigV4Auth and, since boto3
    clients sign with it when awscrt is installed, botocore.crt's CrtSigV4Auth."""
    if not minutes_off:
        yield
        return
    when = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes_off)

    def skewed(remove_tzinfo: bool = True) -> dt.datetime:
        return when.replace(tzinfo=None) if remove_tzinfo else when

    with contextlib.ExitStack() as patches:
        patches.enter_context(mock.patch.object(botocore.auth, "get_current_datetime", skewed))
        crt_auth = sys.modules.get("botocore.crt.auth")
        if crt_auth is not None and hasattr(crt_auth, "get_current_datetime"):
            patches.enter_context(mock.patch.object(crt_auth, "get_current_datetime", skewed))
        yield


@dataclass(frozen=True)
class Answer:
    status: int
    error_type: str | None
    message: str


def send(server: ServerProcess, wire: Wire) -> Answer:
    connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
    try:
        connection.request(wire.method, wire.target, body=wire.body, headers=wire.headers)
        response = connection.getresponse()
        raw = response.read()
        error_type = response.getheader("x-amzn-ErrorType")
    finally:
        connection.close()
    try:
        message = str(json.loads(raw).get("message", ""))
    except ValueError:
        message = raw.decode(errors="replace")
    return Answer(response.status, error_type, message)


# --- tampering after signing ------------------------------------------------------------------


def drop_header(name: str) -> Callable[[Wire], Wire]:
    def tamper(wire: Wire) -> Wire:
        headers = {k: v for k, v in wire.headers.items() if k.lower() != name.lower()}
        return replace(wire, headers=headers)

    return tamper


def set_header(name: str, value: str) -> Callable[[Wire], Wire]:
    def tamper(wire: Wire) -> Wire:
        headers = {k: v for k, v in wire.headers.items() if k.lower() != name.lower()}
        return replace(wire, headers=headers | {name: value})

    return tamper


def edit_authorization(old: str, new: str) -> Callable[[Wire], Wire]:
    def tamper(wire: Wire) -> Wire:
        authorization = wire.headers["Authorization"]
        assert old in authorization
        return set_header("Authorization", authorization.replace(old, new, 1))(wire)

    return tamper


def with_body(body: bytes) -> Callable[[Wire], Wire]:
    return lambda wire: replace(wire, body=body)


def with_query(query: str) -> Callable[[Wire], Wire]:
    return lambda wire: replace(wire, query=query)


def with_path(path: str) -> Callable[[Wire], Wire]:
    return lambda wire: replace(wire, path=path)


def scope_date_of_yesterday(wire: Wire) -> Wire:
    today = wire.headers["X-Amz-Date"][:8]
    yesterday = (dt.datetime.strptime(today, "%Y%m%d") - dt.timedelta(days=1)).strftime("%Y%m%d")
    return edit_authorization(f"/{today}/", f"/{yesterday}/")(wire)


def signed_headers_without_host(wire: Wire) -> Wire:
    authorization = wire.headers["Authorization"]
    start = authorization.index("SignedHeaders=") + len("SignedHeaders=")
    end = authorization.index(",", start)
    names = [name for name in authorization[start:end].split(";") if name != "host"]
    return set_header(
        "Authorization", authorization[:start] + ";".join(names) + authorization[end:]
    )(wire)


def publish(query: str = "qos=1&retain=true", **kwargs: Any) -> Request:
    return Request(query=query, **kwargs)


def publish_to(path: str, **kwargs: Any) -> Request:
    return Request(path=path, **kwargs)


def get(path: str = "/retainedMessage/{m}", **kwargs: Any) -> Request:
    return Request(method="GET", path=path, query="", body=b"", **kwargs)


def list_(query: str) -> Request:
    return Request(method="GET", path="/retainedMessage", query=query, body=b"")


def user_properties(header: str) -> Request:
    return publish(headers={"x-amz-mqtt5-user-properties": header})


FORGED_TOKEN = base64.urlsafe_b64encode(b'{"v":1,"after":"a"}').decode().rstrip("=") + ".AAAA"
TOPIC_257 = "{m}%2F" + "x" * 232  # the marker is 24 bytes: 24 + 1 + 232 = 257
TOPIC_8_SLASHES = "{m}" + "%2Fa" * 7

RAW_ROWS: list[Any] = [
    # --- SigV4: missing, malformed, wrong key, wrong scope, wrong time -------------------
    pytest.param(
        publish(tamper=drop_header("Authorization")),
        UNAUTHORIZED,
        "Missing Authentication Token",
        id="no-authorization",
    ),
    pytest.param(
        publish(tamper=set_header("Authorization", "AWS4-HMAC-SHA256 garbage")),
        UNAUTHORIZED,
        "Authorization component 'garbage' is not of the form 'Name=value'",
        id="authorization-garbage",
    ),
    pytest.param(
        publish(tamper=edit_authorization("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1")),
        UNAUTHORIZED,
        "Unsupported signing algorithm",
        id="algorithm-sha1",
    ),
    pytest.param(
        publish(tamper=drop_header("X-Amz-Date")),
        UNAUTHORIZED,
        "X-Amz-Date",
        id="no-x-amz-date",
    ),
    pytest.param(
        publish(access_key_id="AKIAHOSTILEUNKNOWN00"),
        UNAUTHORIZED,
        "unknown or inactive access key 'AKIAHOSTILEUNKNOWN00'",
        id="unknown-access-key",
    ),
    pytest.param(
        publish(secret_suffix="x"),
        UNAUTHORIZED,
        "signature we calculated does not match",
        id="wrong-secret",
    ),
    pytest.param(
        publish(minutes_off=-20), UNAUTHORIZED, "Signature expired", id="date-20-min-behind"
    ),
    pytest.param(
        publish(minutes_off=20), UNAUTHORIZED, "Signature expired", id="date-20-min-ahead"
    ),
    pytest.param(
        publish(tamper=scope_date_of_yesterday),
        UNAUTHORIZED,
        "Date in Credential scope does not match",
        id="scope-date-mismatch",
    ),
    pytest.param(
        publish(service="iot"), UNAUTHORIZED, "scoped to correct service", id="wrong-service"
    ),
    pytest.param(
        publish(region="eu-west-1"), UNAUTHORIZED, "'eu-west-1' is not served", id="wrong-region"
    ),
    pytest.param(
        publish(tamper=signed_headers_without_host),
        UNAUTHORIZED,
        "SignedHeaders must include 'host'",
        id="host-not-signed",
    ),
    # --- SigV4: what was signed is not what arrives --------------------------------------
    pytest.param(
        publish(body=b"signed!", tamper=with_body(b"swapped")),
        UNAUTHORIZED,
        "signature we calculated does not match",
        id="tampered-body",
    ),
    pytest.param(
        publish(tamper=with_query("qos=0&retain=true")),
        UNAUTHORIZED,
        "signature we calculated does not match",
        id="tampered-query",
    ),
    pytest.param(
        publish(tamper=lambda wire: with_path(wire.path + "x")(wire)),
        UNAUTHORIZED,
        "signature we calculated does not match",
        id="tampered-path",
    ),
    pytest.param(
        publish(headers={"x-amz-content-sha256": "0" * 64}),
        UNAUTHORIZED,
        "x-amz-content-sha256' header does not match",
        id="content-sha256-mismatch",
    ),
    pytest.param(
        publish(headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"}),
        UNAUTHORIZED,
        "UNSIGNED-PAYLOAD' is not accepted",
        id="unsigned-payload",
    ),
    # --- ListRetainedMessages parameters -------------------------------------------------
    pytest.param(
        list_("maxResults=0"),
        INVALID,
        "maxResults must be between 1 and 200, got 0",
        id="maxResults-0",
    ),
    pytest.param(
        list_("maxResults=201"),
        INVALID,
        "maxResults must be between 1 and 200, got 201",
        id="maxResults-201",
    ),
    pytest.param(
        list_("maxResults=1_0"),
        INVALID,
        "maxResults must be an integer, got '1_0'",
        id="maxResults-1_0",
    ),
    pytest.param(
        list_("maxResults=%2010"),
        INVALID,
        "maxResults must be an integer, got ' 10'",
        id="maxResults-space",
    ),
    pytest.param(
        list_("maxResults=abc"),
        INVALID,
        "maxResults must be an integer, got 'abc'",
        id="maxResults-abc",
    ),
    pytest.param(
        list_("maxResults="), INVALID, "maxResults must be an integer", id="maxResults-empty"
    ),
    pytest.param(
        list_("nextToken=not-a-token"),
        INVALID,
        "nextToken is not a token this server issued",
        id="nextToken-garbage",
    ),
    pytest.param(
        list_("nextToken=" + FORGED_TOKEN),
        INVALID,
        "nextToken has been altered or belongs to another server",
        id="nextToken-forged",
    ),
    pytest.param(
        list_("maxResults=5&maxResults=6"),
        INVALID,
        "maxResults is given more than once",
        id="maxResults-twice",
    ),
    # --- Publish parameters ----------------------------------------------------------------
    pytest.param(
        publish("qos=2&retain=true"), INVALID, "qos must be between 0 and 1, got 2", id="qos-2"
    ),
    pytest.param(
        publish("qos=-1&retain=true"), INVALID, "qos must be between 0 and 1, got -1", id="qos--1"
    ),
    pytest.param(
        publish("qos=%D9%A1&retain=true"),
        INVALID,
        "qos must be an integer, got '\u0661'",
        id="qos-arabic-indic-one",
    ),
    pytest.param(
        publish("qos=x&retain=true"), INVALID, "qos must be an integer, got 'x'", id="qos-x"
    ),
    pytest.param(
        publish("qos=1&retain=maybe"),
        INVALID,
        "retain must be true or false, got 'maybe'",
        id="retain-maybe",
    ),
    pytest.param(
        publish("qos=1&retain=1"), INVALID, "retain must be true or false, got '1'", id="retain-1"
    ),
    pytest.param(
        publish("qos=1&qos=0&retain=true"), INVALID, "qos is given more than once", id="qos-twice"
    ),
    pytest.param(
        publish("qos=1&retain=true&messageExpiry=-1"),
        INVALID,
        "messageExpiry must be between 0 and 4294967295, got -1",
        id="messageExpiry--1",
    ),
    pytest.param(
        publish("qos=1&retain=true&responseTopic=a%2F%23"),
        INVALID,
        "wildcard",
        id="responseTopic-wildcard",
    ),
    pytest.param(
        publish("qos=1&retain=true&contentType=%FF"),
        INVALID,
        "not valid UTF-8",
        id="query-invalid-utf8",
    ),
    # --- Publish topics: wildcards, empty, limits, reserved --------------------------------
    pytest.param(
        publish_to("/topics/{m}%2F%2B"), INVALID, "wildcard character '+'", id="topic-wildcard-plus"
    ),
    pytest.param(
        publish_to("/topics/{m}%2F%23"), INVALID, "wildcard character '#'", id="topic-wildcard-hash"
    ),
    pytest.param(publish_to("/topics/"), INVALID, "the topic is empty", id="topic-empty"),
    pytest.param(get("/retainedMessage/"), INVALID, "the topic is empty", id="get-topic-empty"),
    pytest.param(
        publish_to("/topics/" + TOPIC_257), INVALID, "longer than 256 bytes", id="topic-257-bytes"
    ),
    pytest.param(
        publish_to("/topics/" + TOPIC_8_SLASHES), INVALID, "more than 7 '/'", id="topic-8-slashes"
    ),
    pytest.param(
        publish_to("/topics/%24aws%2F{m}"), INVALID, "reserved prefix '$aws/'", id="retain-to-$aws"
    ),
    # --- percent-encoding tricks -----------------------------------------------------------
    pytest.param(publish_to("/topics/{m}%00"), INVALID, "null character U+0000", id="publish-%00"),
    pytest.param(get("/retainedMessage/{m}%00"), INVALID, "null character U+0000", id="get-%00"),
    pytest.param(
        publish_to("/topics/{m}%C0%AFx"),
        INVALID,
        "not valid UTF-8",
        id="overlong-utf8-slash-%C0%AF",
    ),
    pytest.param(publish_to("/topics/{m}%FF"), INVALID, "not valid UTF-8", id="invalid-utf8-%FF"),
    pytest.param(
        publish_to("/topics/{m}/../x"), INVALID, "dot segments", id="literal-dot-dot-segment"
    ),
    # botocore signs "/topics/./x" as "/topics/x": acting on topic "./x" would let a request
    # signed for one topic be replayed against another.
    pytest.param(
        publish_to("/topics/./{m}"), INVALID, "dot segments", id="literal-leading-dot-segment"
    ),
    pytest.param(
        publish_to("/topics/../{m}"), INVALID, "dot segments", id="literal-leading-dot-dot-segment"
    ),
    pytest.param(
        publish(tamper=lambda wire: with_path(wire.path.replace("/topics/", "/topics/./"))(wire)),
        INVALID,
        "dot segments",
        id="signed-request-replayed-with-dot-segment",
    ),
    pytest.param(
        publish_to("/topics/{m}//x"), INVALID, "empty or dot segments", id="literal-empty-segment"
    ),
    # Decoded exactly once: "%2F..%2F" is part of a topic name, never a path to climb, and
    # "%252F" is a literal "%2F". Reading the decoded-once name finds nothing there.
    pytest.param(
        get("/retainedMessage/{m}%2F..%2F..%2Fsecret"),
        NOT_FOUND,
        "/../../secret'",
        id="get-%2F..%2F",
    ),
    pytest.param(
        get("/retainedMessage/{m}%252Fx"), NOT_FOUND, "%2Fx'", id="get-double-encoded-slash"
    ),
    pytest.param(get("/retainedMessage/{m}%252B"), NOT_FOUND, "%2B'", id="get-double-encoded-plus"),
    # --- Publish body and MQTT 5 headers ---------------------------------------------------
    pytest.param(
        publish(body=b"x" * (MAX_PAYLOAD + 1)),
        TOO_LARGE,
        "payload is 131073 bytes; the limit is 131072 bytes",
        id="payload-128KB+1",
    ),
    pytest.param(
        user_properties("%%%not base64%%%"),
        INVALID,
        "x-amz-mqtt5-user-properties is not valid base64",
        id="user-properties-bad-base64",
    ),
    pytest.param(
        user_properties(b64("[{not json")),
        INVALID,
        "x-amz-mqtt5-user-properties is not valid JSON",
        id="user-properties-bad-json",
    ),
    pytest.param(
        user_properties(b64('{"a":"b"}')),
        INVALID,
        "must be a JSON array of objects",
        id="user-properties-not-array",
    ),
    pytest.param(
        user_properties(b64('[{"a":1}]')),
        INVALID,
        "user property 'a' must have a string value",
        id="user-properties-number",
    ),
    pytest.param(
        user_properties(b64('[{"a":"b\\u0000"}]')),
        INVALID,
        "must not contain U+0000",
        id="user-properties-nul",
    ),
    pytest.param(
        publish(headers={"x-amz-mqtt5-payload-format-indicator": "MAYBE"}),
        INVALID,
        "payload-format-indicator must be UNSPECIFIED_BYTES or UTF8_DATA",
        id="payload-format-unknown",
    ),
    pytest.param(
        publish(body=b"\xff\xfe", headers={"x-amz-mqtt5-payload-format-indicator": "UTF8_DATA"}),
        INVALID,
        "declared UTF8_DATA but is not valid UTF-8",
        id="payload-format-utf8-but-binary",
    ),
    pytest.param(
        publish(headers={"x-amz-mqtt5-correlation-data": "***"}),
        INVALID,
        "x-amz-mqtt5-correlation-data is not valid base64",
        id="correlation-data-bad-base64",
    ),
    # --- methods ---------------------------------------------------------------------------
    pytest.param(
        Request(method="DELETE", path="/retainedMessage/{m}", query="", body=b""),
        NOT_ALLOWED,
        "DELETE is not allowed here; use GET",
        id="delete-retained-message",
    ),
    pytest.param(
        Request(method="PUT"), NOT_ALLOWED, "PUT is not allowed here; use POST", id="put-topic"
    ),
]


@pytest.mark.parametrize(("request_", "expected", "fragment"), RAW_ROWS)
def test_hostile_http_request(
    request_: Request,
    expected: tuple[int, str],
    fragment: str,
    hostile_server: ServerProcess,
    hostile_credentials: Credentials,
    referee: Referee,
) -> None:
    marker = new_marker()
    wire = sign(
        request_,
        base_url=hostile_server.base_url,
        credentials=hostile_credentials,
        marker=marker,
    )

    answer = send(hostile_server, wire)

    assert (answer.status, answer.error_type) == expected, answer
    assert fragment in answer.message, answer
    referee.assert_healthy()  # first: see test_mqtt_inputs.py
    referee.assert_nothing_stored(marker)


# --- boto3 ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BotoRow:
    operation: str
    params: Callable[[str], dict[str, Any]]  # the marker -> the operation's parameters
    error: str  # the botocore exception class (client.exceptions.<error>)
    fragment: str
    status: int
    client: dict[str, Any] = field(default_factory=dict)  # iot_data_client overrides
    credentials: Callable[[Credentials], Credentials] | None = None
    minutes_off: int = 0


def retained(**extra: Any) -> Callable[[str], dict[str, Any]]:
    return lambda marker: {"topic": marker, "retain": True, "qos": 1, "payload": b"x"} | extra


def to_topic(topic_of: Callable[[str], str]) -> Callable[[str], dict[str, Any]]:
    return lambda marker: {"topic": topic_of(marker), "retain": True, "payload": b"x"}


BOTO_ROWS: list[Any] = [
    pytest.param(
        BotoRow(
            "publish",
            retained(),
            "UnauthorizedException",
            "unknown or inactive access key 'AKIAHOSTILEUNKNOWN00'",
            401,
            credentials=lambda c: Credentials("AKIAHOSTILEUNKNOWN00", c.secret_access_key),
        ),
        id="boto-unknown-access-key",
    ),
    pytest.param(
        BotoRow(
            "publish",
            retained(),
            "UnauthorizedException",
            "signature we calculated does not match",
            401,
            credentials=lambda c: c.with_wrong_secret(),
        ),
        id="boto-wrong-secret",
    ),
    pytest.param(
        BotoRow(
            "publish",
            retained(),
            "UnauthorizedException",
            "Signature expired",
            401,
            minutes_off=-20,
        ),
        id="boto-expired-date",
    ),
    pytest.param(
        BotoRow(
            "publish",
            retained(),
            "UnauthorizedException",
            "'eu-west-1' is not served",
            401,
            client={"region_name": "eu-west-1"},
        ),
        id="boto-wrong-region",
    ),
    pytest.param(
        BotoRow(
            "list_retained_messages",
            lambda m: {"maxResults": 0},
            "InvalidRequestException",
            "maxResults must be between 1 and 200, got 0",
            400,
        ),
        id="boto-maxResults-0",
    ),
    pytest.param(
        BotoRow(
            "list_retained_messages",
            lambda m: {"maxResults": 201},
            "InvalidRequestException",
            "maxResults must be between 1 and 200, got 201",
            400,
        ),
        id="boto-maxResults-201",
    ),
    pytest.param(
        BotoRow(
            "list_retained_messages",
            lambda m: {"nextToken": "not-a-token"},
            "InvalidRequestException",
            "nextToken is not a token this server issued",
            400,
        ),
        id="boto-bad-nextToken",
    ),
    pytest.param(
        BotoRow(
            "publish",
            retained(qos=2),
            "InvalidRequestException",
            "qos must be between 0 and 1, got 2",
            400,
        ),
        id="boto-qos-2",
    ),
    pytest.param(
        BotoRow(
            "publish",
            to_topic(lambda m: m + "/+"),
            "InvalidRequestException",
            "topic name contains the wildcard character '+'",
            400,
        ),
        id="boto-publish-wildcard",
    ),
    pytest.param(
        BotoRow(
            "get_retained_message",
            lambda m: {"topic": m + "/#"},
            "InvalidRequestException",
            "topic name contains the wildcard character '#'",
            400,
        ),
        id="boto-get-wildcard",
    ),
    pytest.param(
        BotoRow(
            "publish",
            retained(payload=b"x" * (MAX_PAYLOAD + 1)),
            "RequestEntityTooLargeException",
            "payload is 131073 bytes; the limit is 131072 bytes",
            413,
        ),
        id="boto-payload-128KB+1",
    ),
    pytest.param(
        BotoRow(
            "publish",
            retained(userProperties="[{not json"),
            "InvalidRequestException",
            "x-amz-mqtt5-user-properties is not valid JSON",
            400,
        ),
        id="boto-user-properties-not-json",
    ),
    pytest.param(
        BotoRow(
            "publish",
            retained(payloadFormatIndicator="MAYBE"),
            "InvalidRequestException",
            "x-amz-mqtt5-payload-format-indicator must be UNSPECIFIED_BYTES or UTF8_DATA",
            400,
        ),
        id="boto-payload-format-unknown",
    ),
]


@pytest.mark.parametrize("row", BOTO_ROWS)
def test_hostile_boto3_call(
    row: BotoRow,
    hostile_server: ServerProcess,
    hostile_credentials: Credentials,
    referee: Referee,
) -> None:
    marker = new_marker()
    credentials = row.credentials(hostile_credentials) if row.credentials else hostile_credentials
    config = Config(parameter_validation=False, retries={"max_attempts": 1})
    client = iot_data_client(hostile_server, credentials, config=config, **row.client)

    with pytest.raises(ClientError) as caught, _clock(row.minutes_off):
        getattr(client, row.operation)(**row.params(marker))

    assert isinstance(caught.value, getattr(client.exceptions, row.error))
    response = caught.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == row.status
    assert response["Error"]["Code"] == row.error
    assert row.fragment in response["Error"]["Message"]
    referee.assert_healthy()  # first: see test_mqtt_inputs.py
    referee.assert_nothing_stored(marker)
