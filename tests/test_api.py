"""The data-plane API through boto3's real `iot-data` client against a live `serve` process."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import botocore.auth
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.conftest import Credentials, create_credentials, iot_data_client
from tests.support.server import ServerProcess


def unique(prefix: str = "t") -> str:
    return f"{prefix}/{uuid.uuid4().hex[:12]}"


def all_topics(iot: Any) -> dict[str, int]:
    """Every stored topic with its lastModifiedTime: the 'nothing changed' snapshot."""
    topics: dict[str, int] = {}
    for page in iot.get_paginator("list_retained_messages").paginate(
        PaginationConfig={"PageSize": 200}
    ):
        for item in page["retainedTopics"]:
            topics[item["topic"]] = item["lastModifiedTime"]
    return topics


def unvalidated(server: ServerProcess, credentials: Credentials) -> Any:
    """A boto3 client that sends what we ask (botocore only checks minimums anyway)."""
    return iot_data_client(
        server,
        credentials,
        config=Config(parameter_validation=False, retries={"max_attempts": 1}),
    )


def test_publish_retained_then_get_round_trips_payload_and_user_properties(iot: Any) -> None:
    topic = unique("devices") + "/config"
    payload = bytes(range(256)) + "température".encode()
    iot.publish(
        topic=topic,
        qos=1,
        retain=True,
        payload=payload,
        userProperties=json.dumps(
            [{"deviceName": "alpha"}, {"deviceCnt": "45"}, {"deviceName": "beta"}]
        ),
    )

    message = iot.get_retained_message(topic=topic)

    assert message["topic"] == topic
    assert message["payload"] == payload
    assert message["qos"] == 1
    assert json.loads(message["userProperties"]) == [
        {"deviceName": "alpha"},
        {"deviceCnt": "45"},
        {"deviceName": "beta"},
    ]
    now_ms = dt.datetime.now(dt.UTC).timestamp() * 1000
    assert abs(message["lastModifiedTime"] - now_ms) < 60_000


def test_get_without_user_properties_has_none(iot: Any) -> None:
    topic = unique()
    iot.publish(topic=topic, retain=True, payload=b"plain")
    message = iot.get_retained_message(topic=topic)
    assert message.get("userProperties") is None
    assert message["qos"] == 0


def test_replace_keeps_one_message_per_topic(iot: Any) -> None:
    topic = unique()
    iot.publish(topic=topic, retain=True, qos=0, payload=b"first")
    iot.publish(topic=topic, retain=True, qos=1, payload=b"second")
    message = iot.get_retained_message(topic=topic)
    assert (message["payload"], message["qos"]) == (b"second", 1)
    assert sum(1 for t in all_topics(iot) if t == topic) == 1


def test_publish_without_retain_leaves_the_stored_message(iot: Any) -> None:
    topic = unique()
    iot.publish(topic=topic, retain=True, payload=b"kept")
    iot.publish(topic=topic, retain=False, payload=b"live only")
    assert iot.get_retained_message(topic=topic)["payload"] == b"kept"


def test_empty_payload_deletes(iot: Any) -> None:
    topic = unique()
    iot.publish(topic=topic, retain=True, payload=b"soon gone")
    iot.publish(topic=topic, retain=True, payload=b"")
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.get_retained_message(topic=topic)
    assert topic not in all_topics(iot)


@pytest.mark.parametrize(
    "topic",
    [
        "a/b/c",
        "/leading/slash",
        "trailing/",
        "a//empty//levels",
        "$SYS/broker/uptime",
        "$custom",
        "with spaces/and  more",
        "caf\u00e9/\u6e29\u5ea6/\U0001f600",
        "percent%2Fnot-a-slash/100%",
        "query?like=1&x=y",
        "semi;colon,comma=equals&amp",
        "dots/./and/../kept",
    ],
    ids=lambda t: t.encode("unicode_escape").decode()[:30],
)
def test_topics_with_special_characters_round_trip(iot: Any, topic: str) -> None:
    iot.publish(topic=topic, retain=True, payload=topic.encode())
    assert iot.get_retained_message(topic=topic)["payload"] == topic.encode()
    assert topic in all_topics(iot)
    iot.publish(topic=topic, retain=True, payload=b"")


def test_list_paginates_1050_topics_at_page_size_200(
    start_server: Any,
) -> None:
    server = start_server()
    credentials = create_credentials(server)
    iot = iot_data_client(server, credentials)
    topics = [f"fleet/{i // 100:02d}/device-{i:04d}" for i in range(1050)]

    def publish(topic: str) -> None:
        iot.publish(topic=topic, retain=True, qos=1, payload=topic.encode())

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(publish, topics))

    pages = list(
        iot.get_paginator("list_retained_messages").paginate(PaginationConfig={"PageSize": 200})
    )

    assert [len(page["retainedTopics"]) for page in pages] == [200, 200, 200, 200, 200, 50]
    listed = [item["topic"] for page in pages for item in page["retainedTopics"]]
    assert listed == sorted(topics)
    assert all("nextToken" in page for page in pages[:-1])
    assert "nextToken" not in pages[-1]
    first = pages[0]["retainedTopics"][0]
    assert first["payloadSize"] == len(first["topic"].encode())
    assert first["qos"] == 1


def test_quota_refuses_new_topics_but_replacements_and_deletes_work(start_server: Any) -> None:
    server = start_server(RETAINED_MAX_RETAINED_MESSAGES="3")
    iot = iot_data_client(server, create_credentials(server))
    for name in ("q/1", "q/2", "q/3"):
        iot.publish(topic=name, retain=True, payload=b"x")

    with pytest.raises(iot.exceptions.ThrottlingException):
        iot.publish(topic="q/4", retain=True, payload=b"x")

    iot.publish(topic="q/1", retain=True, payload=b"replaced")
    assert iot.get_retained_message(topic="q/1")["payload"] == b"replaced"
    iot.publish(topic="q/2", retain=True, payload=b"")
    iot.publish(topic="q/4", retain=True, payload=b"now fits")
    assert sorted(all_topics(iot)) == ["q/1", "q/3", "q/4"]


def _set_header(name: str, value: str) -> Any:
    def handler(request: Any, **_: Any) -> None:
        request.headers[name] = value

    return handler


BAD_INPUTS: list[tuple[str, str, dict[str, Any], str, str]] = [
    # (id, operation, params, exception class, message fragment)
    (
        "maxResults-0",
        "list_retained_messages",
        {"maxResults": 0},
        "InvalidRequestException",
        "maxResults",
    ),
    (
        "maxResults-201",
        "list_retained_messages",
        {"maxResults": 201},
        "InvalidRequestException",
        "maxResults",
    ),
    (
        "bad-nextToken",
        "list_retained_messages",
        {"nextToken": "not-a-token"},
        "InvalidRequestException",
        "nextToken",
    ),
    (
        "forged-nextToken",
        "list_retained_messages",
        {
            "nextToken": base64.urlsafe_b64encode(b'{"v":1,"after":"a"}').decode().rstrip("=")
            + ".AAAA"
        },
        "InvalidRequestException",
        "nextToken",
    ),
    (
        "qos-2",
        "publish",
        {"topic": "ok/topic", "qos": 2, "retain": True, "payload": b"x"},
        "InvalidRequestException",
        "qos",
    ),
    (
        "retain-wildcard-plus",
        "publish",
        {"topic": "a/+/c", "retain": True, "payload": b"x"},
        "InvalidRequestException",
        "wildcard",
    ),
    (
        "retain-wildcard-hash",
        "publish",
        {"topic": "a/#", "retain": True, "payload": b"x"},
        "InvalidRequestException",
        "wildcard",
    ),
    (
        "topic-257-bytes",
        "publish",
        {"topic": "t" * 257, "retain": True, "payload": b"x"},
        "InvalidRequestException",
        "256 bytes",
    ),
    (
        "topic-8-slashes",
        "publish",
        {"topic": "a/b/c/d/e/f/g/h/i", "retain": True, "payload": b"x"},
        "InvalidRequestException",
        "/",
    ),
    (
        "retain-to-$aws",
        "publish",
        {"topic": "$aws/things/x/shadow", "retain": True, "payload": b"x"},
        "InvalidRequestException",
        "$aws",
    ),
    (
        "payload-over-128KB",
        "publish",
        {"topic": "big/payload", "retain": True, "payload": b"x" * (128 * 1024 + 1)},
        "RequestEntityTooLargeException",
        "131072",
    ),
    (
        "get-wildcard",
        "get_retained_message",
        {"topic": "a/+"},
        "InvalidRequestException",
        "wildcard",
    ),
    (
        "get-missing",
        "get_retained_message",
        {"topic": "no/such/topic"},
        "ResourceNotFoundException",
        "no/such/topic",
    ),
    (
        "messageExpiry-negative",
        "publish",
        {"topic": "ok/topic", "retain": True, "payload": b"x", "messageExpiry": -1},
        "InvalidRequestException",
        "messageExpiry",
    ),
    (
        "payload-format-utf8-but-binary",
        "publish",
        {
            "topic": "ok/topic",
            "retain": True,
            "payload": b"\xff\xfe",
            "payloadFormatIndicator": "UTF8_DATA",
        },
        "InvalidRequestException",
        "UTF-8",
    ),
    (
        "payload-format-unknown",
        "publish",
        {"topic": "ok/topic", "retain": True, "payload": b"x", "payloadFormatIndicator": "MAYBE"},
        "InvalidRequestException",
        "payload-format",
    ),
    (
        "user-properties-not-array",
        "publish",
        {"topic": "ok/topic", "retain": True, "payload": b"x", "userProperties": '{"a":"b"}'},
        "InvalidRequestException",
        "array",
    ),
    (
        "user-properties-number",
        "publish",
        {"topic": "ok/topic", "retain": True, "payload": b"x", "userProperties": '[{"a":1}]'},
        "InvalidRequestException",
        "string",
    ),
]


@pytest.mark.parametrize(
    ("operation", "params", "error", "fragment"),
    [pytest.param(*row[1:], id=row[0]) for row in BAD_INPUTS],
)
def test_bad_input_is_refused_and_changes_nothing(
    server: ServerProcess,
    credentials: Credentials,
    iot: Any,
    operation: str,
    params: dict[str, Any],
    error: str,
    fragment: str,
) -> None:
    client = unvalidated(server, credentials)
    before = all_topics(iot)

    with pytest.raises(ClientError) as caught:
        getattr(client, operation)(**params)

    assert caught.value.response["Error"]["Code"] == error
    assert isinstance(caught.value, getattr(client.exceptions, error))
    assert fragment in caught.value.response["Error"]["Message"]
    assert all_topics(iot) == before


@pytest.mark.parametrize(
    ("header", "value", "fragment"),
    [
        ("x-amz-mqtt5-user-properties", "%%%not base64%%%", "base64"),
        ("x-amz-mqtt5-user-properties", base64.b64encode(b"[{not json").decode(), "JSON"),
        ("x-amz-mqtt5-correlation-data", "***", "base64"),
    ],
    ids=["user-properties-bad-base64", "user-properties-bad-json", "correlation-data-bad-base64"],
)
def test_bad_headers_are_refused_and_change_nothing(
    server: ServerProcess,
    credentials: Credentials,
    iot: Any,
    header: str,
    value: str,
    fragment: str,
) -> None:
    client = unvalidated(server, credentials)
    client.meta.events.register("before-sign.iot-data.Publish", _set_header(header, value))
    topic = unique("headers")
    before = all_topics(iot)

    with pytest.raises(client.exceptions.InvalidRequestException) as caught:
        client.publish(topic=topic, retain=True, payload=b"x")

    assert fragment in caught.value.response["Error"]["Message"]
    assert all_topics(iot) == before


def test_wrong_secret_is_unauthorized(
    server: ServerProcess, credentials: Credentials, iot: Any
) -> None:
    wrong = credentials.with_wrong_secret()
    client = iot_data_client(server, wrong)
    topic = unique()
    with pytest.raises(client.exceptions.UnauthorizedException) as caught:
        client.publish(topic=topic, retain=True, payload=b"x")
    assert "signature" in caught.value.response["Error"]["Message"].lower()
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.get_retained_message(topic=topic)


def test_unknown_access_key_is_unauthorized(server: ServerProcess) -> None:
    client = iot_data_client(server, Credentials("AKIRUNKNOWNUNKNOWN00", "x" * 40))
    with pytest.raises(client.exceptions.UnauthorizedException):
        client.list_retained_messages()


@pytest.mark.parametrize("minutes", [-20, 20], ids=["20-min-behind", "20-min-ahead"])
def test_expired_or_future_date_is_unauthorized(
    server: ServerProcess,
    credentials: Credentials,
    iot: Any,
    monkeypatch: pytest.MonkeyPatch,
    minutes: int,
) -> None:
    skewed = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(minutes=minutes)
    # botocore signs with awscrt's signer when awscrt is installed (awsiotsdk brings it), and
    # that one reads the clock itself: use botocore's Python signer, whose clock is patched.
    monkeypatch.setitem(botocore.auth.AUTH_TYPE_MAPS, "v4", botocore.auth.SigV4Auth)
    client = iot_data_client(server, credentials)
    topic = unique()
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: skewed)
    with pytest.raises(client.exceptions.UnauthorizedException) as caught:
        client.publish(topic=topic, retain=True, payload=b"x")
    monkeypatch.undo()
    assert "time" in caught.value.response["Error"]["Message"].lower()
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.get_retained_message(topic=topic)


def test_deactivated_key_is_unauthorized(server: ServerProcess) -> None:
    credentials = create_credentials(server, "deactivated-user")
    client = iot_data_client(server, credentials)
    client.list_retained_messages()
    server.manage(
        "shell",
        "--no-imports",
        "-c",
        "from retained.models import AccessKey; "
        f"AccessKey.objects.filter(access_key_id={credentials.access_key_id!r}).update(is_active=False)",
    )
    # Another process changed the key: the server's key cache notices within its 5 s TTL.
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        try:
            client.list_retained_messages()
        except client.exceptions.UnauthorizedException:
            return
        time.sleep(0.5)
    pytest.fail("a deactivated access key was still accepted after 8 s")


def test_wrong_method_is_method_not_allowed(
    server: ServerProcess, credentials: Credentials
) -> None:
    client = iot_data_client(server, credentials)

    def to_delete(request: Any, **_: Any) -> None:
        request.method = "DELETE"

    client.meta.events.register("before-sign.iot-data.ListRetainedMessages", to_delete)
    with pytest.raises(client.exceptions.MethodNotAllowedException):
        client.list_retained_messages()
