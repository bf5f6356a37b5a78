"""Hostile input to the console and the policy admin, in-process (Django test client).

Tables:

* `CSRF_ROWS`: every write without (or with a forged) CSRF token: 403, nothing changed.
* `CREATE_ROWS` / `EDIT_ROWS`: bad form input (oversize, invalid JSON when declared JSON,
  bad topics, ...): the error shown on the re-rendered form, nothing stored or changed.
* `XSS_ROWS`: `<script>` and attribute-breaking input in payloads, topics, user properties,
  content types, searches and policies, rendered inert on every page that shows them.
* `ADMIN_ROWS`: invalid policy JSON, invalid policies, a sixth policy version: the error on
  the admin form, no policy or policy version created.
* `TEST_CLIENT_ROWS`: hostile requests to the MQTT test client's WebSocket consumer, with a
  real broker in the test's event loop: the refusal the page shows, nothing stored.

Each row ends by checking that the console still serves the same user (the list page).
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from console.consumers_test_client import KEY_DESCRIPTION
from console.routing import websocket_urlpatterns
from console.views.links import CREATE_URL, LIST_URL, delete_url, detail_url, edit_url
from retained import access, runtime, store
from retained.broker.service import start_broker
from retained.models import AccessKey, Policy, PolicyVersion, RetainedMessage
from retained.policies import create_policy, create_policy_version
from retained.store import MessageProperties
from tests.admin.conftest import page_form_data
from tests.console.conftest import make_user, put
from tests.support.server import free_port

MAX_PAYLOAD = 128 * 1024
CSRF_FAILED = "CSRF verification failed"
# Breaks out of an attribute and out of text: must show up escaped, never as markup.
HOSTILE = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
HOSTILE_TOPIC_LEVEL = HOSTILE.replace("/", "|")  # a topic level cannot hold '/'
RAW_MARKUP = ("<script>alert(1)", "<img src=x onerror")
ESCAPED = "&lt;script&gt;alert(1)"
ARN = "arn:aws:iot:us-east-1:123456789012"
POLICY_CHANGELIST = "admin:retained_policy_changelist"
POLICY_ADD = "admin:retained_policy_add"
TEST_AUTHORIZATION = "admin:retained_policy_test_authorization"


def policy_document(sid: str = "Publish", action: str = "iot:Publish") -> str:
    statement = {"Sid": sid, "Effect": "Allow", "Action": action, "Resource": f"{ARN}:topic/*"}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


@pytest.fixture(autouse=True)
def fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def fresh_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    """A policy snapshot of this test's own database (see tests/console/conftest.py)."""
    monkeypatch.setattr(access, "_snapshot", None)
    monkeypatch.setattr(access, "_decisions", {})


@pytest.fixture
def writer(db: None) -> User:
    """May do everything through its policy (not a superuser: the policy gate is used)."""
    return make_user("writer", ("iot:*", "*"))


@pytest.fixture
def root(db: None) -> User:
    user = User.objects.create_superuser("root", password="pw-root")
    access.reload()
    return user


def logged_in(user: User, *, csrf_checks: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf_checks)
    client.force_login(user)
    return client


def new_topic() -> str:
    return f"hostile/{uuid.uuid4().hex[:16]}"


def assert_nothing_stored(marker: str) -> None:
    """No retained message at `marker`, nor at any topic holding its unique part."""
    unique_part = marker.rsplit("/", 1)[-1]
    stored = list(
        RetainedMessage.objects.filter(topic__contains=unique_part).values_list("topic", flat=True)
    )
    assert stored == [], f"stored despite the refusal: {stored!r}"


def assert_unchanged(before: store.StoredMessage) -> None:
    after = store.get_retained(before.topic, touch=False)
    assert after is not None, "the stored message is gone"
    assert (after.payload, after.qos, after.last_modified_ms, after.properties) == (
        before.payload,
        before.qos,
        before.last_modified_ms,
        before.properties,
    )


def assert_console_healthy(client: Client) -> None:
    response = client.get(LIST_URL)
    assert response.status_code == 200


def form(topic: str, **fields: Any) -> dict[str, Any]:
    """A valid create/edit form, with `fields` changed."""
    data = {"topic": topic, "payload": "hello", "qos": "0", "base_modified_ms": "0"}
    return data | fields


# --- CSRF ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CsrfRow:
    """A POST made without a valid CSRF token; `forged`: a token is sent, but not the one
    the CSRF cookie holds."""

    url: Callable[[str], str]  # the topic -> the URL
    data: Callable[[str, int], dict[str, Any]]  # (topic, version) -> form data
    forged: bool = False


CSRF_ROWS = [
    pytest.param(CsrfRow(lambda t: CREATE_URL, lambda t, v: form(t)), id="create-without-token"),
    pytest.param(
        CsrfRow(lambda t: CREATE_URL, lambda t, v: form(t), forged=True), id="create-forged-token"
    ),
    pytest.param(
        CsrfRow(edit_url, lambda t, v: form(t, payload="changed", base_modified_ms=str(v))),
        id="edit-without-token",
    ),
    pytest.param(
        CsrfRow(delete_url, lambda t, v: {"base_modified_ms": str(v)}),
        id="delete-without-token",
    ),
]


@pytest.mark.parametrize("row", CSRF_ROWS)
def test_console_write_without_csrf_token(row: CsrfRow, writer: User) -> None:
    existing = put(new_topic(), "original")
    topic = existing.topic if row.url(existing.topic) != CREATE_URL else new_topic()
    client = logged_in(writer, csrf_checks=True)
    data = row.data(topic, existing.last_modified_ms)
    if row.forged:
        client.get(CREATE_URL)  # sets the CSRF cookie
        data["csrfmiddlewaretoken"] = "x" * 64

    response = client.post(row.url(topic), data)

    assert response.status_code == 403
    assert CSRF_FAILED in response.content.decode()
    if topic != existing.topic:
        assert_nothing_stored(topic)
    assert_unchanged(existing)
    assert_console_healthy(client)


@pytest.mark.parametrize(
    "action", ["add-policy", "new-policy-version"], ids=["admin-add-policy", "admin-new-version"]
)
def test_admin_write_without_csrf_token(action: str, root: User) -> None:
    policy = create_policy("hostile-csrf", policy_document())
    client = logged_in(root, csrf_checks=True)
    if action == "add-policy":
        url = reverse(POLICY_ADD)
        data = {"name": "sneaky", "document": policy_document(), "_save": "1"}
    else:
        url = reverse("admin:retained_policy_change", args=[policy.pk])
        data = {"name": policy.name, "new_version_document": policy_document(action="iot:*")}

    response = client.post(url, data)

    assert response.status_code == 403
    assert CSRF_FAILED in response.content.decode()
    assert list(Policy.objects.values_list("name", flat=True)) == ["hostile-csrf"]
    assert list(PolicyVersion.objects.values_list("version_id", flat=True)) == [1]
    assert client.get(reverse(POLICY_CHANGELIST)).status_code == 200


# --- create and edit forms ------------------------------------------------------------------


@dataclass(frozen=True)
class FormRow:
    fields: Callable[[str], dict[str, Any]]  # the topic -> form fields to change
    error: str  # shown on the re-rendered form (HTML-escaped there)
    status: int = 200


OVERSIZE = "x" * (MAX_PAYLOAD + 1)
OVERSIZE_MULTIBYTE = "é" * (MAX_PAYLOAD // 2 + 1)  # under the limit in characters, over in bytes

SHARED_FORM_ROWS = {
    "payload-128KB+1": FormRow(
        lambda t: {"payload": OVERSIZE},
        "The payload is 131073 bytes; the limit is 131072 bytes.",
    ),
    "payload-128KB+2-multibyte": FormRow(
        lambda t: {"payload": OVERSIZE_MULTIBYTE},
        "The payload is 131074 bytes; the limit is 131072 bytes.",
    ),
    "payload-empty": FormRow(
        lambda t: {"payload": ""}, "The payload is empty. An empty retained payload deletes"
    ),
    "invalid-json-declared-json": FormRow(
        lambda t: {"payload": '{"a": 1,}', "is_json": "on"}, "Not valid JSON: Expecting"
    ),
    "invalid-json-content-type-json": FormRow(
        lambda t: {"payload": "{'single': 'quotes'}", "content_type": "application/json"},
        "Not valid JSON: Expecting",
    ),
    "qos-2": FormRow(
        lambda t: {"qos": "2"}, "Select a valid choice. 2 is not one of the available choices."
    ),
    "user-property-without-equals": FormRow(
        lambda t: {"user_properties": "ok=1\nbroken"}, "Line 2 is not name=value: broken"
    ),
    "user-property-nul": FormRow(
        lambda t: {"user_properties": "a=b\x00c"}, "Null characters are not allowed."
    ),
    "content-type-nul": FormRow(
        lambda t: {"content_type": "text/plain\x00"},
        "Null characters are not allowed.",
    ),
}

CREATE_ONLY_ROWS = {
    "topic-wildcard-plus": FormRow(
        lambda t: {"topic": t + "/+"}, "topic name contains the wildcard character '+'"
    ),
    "topic-wildcard-hash": FormRow(
        lambda t: {"topic": t + "/#"}, "topic name contains the wildcard character '#'"
    ),
    "topic-$aws": FormRow(lambda t: {"topic": "$aws/" + t}, "reserved prefix '$aws/'"),
    "topic-nul": FormRow(lambda t: {"topic": t + "\x00"}, "Null characters are not allowed."),
    "topic-257-bytes": FormRow(
        lambda t: {"topic": t + "/" + "x" * (256 - len(t))}, "topic is longer than 256 bytes (257)"
    ),
    "topic-8-slashes": FormRow(lambda t: {"topic": t + "/a" * 7}, "topic has more than 7 '/' (8)"),
}

CREATE_ROWS = [
    pytest.param(row, id=f"create-{name}")
    for name, row in (SHARED_FORM_ROWS | CREATE_ONLY_ROWS).items()
]
EDIT_ROWS = [pytest.param(row, id=f"edit-{name}") for name, row in SHARED_FORM_ROWS.items()]


@pytest.mark.parametrize("row", CREATE_ROWS)
def test_create_form_refuses(row: FormRow, writer: User) -> None:
    topic = new_topic()
    client = logged_in(writer)

    response = client.post(CREATE_URL, form(topic) | row.fields(topic))

    assert response.status_code == row.status
    assert escape(row.error) in response.content.decode()
    assert_nothing_stored(topic)
    assert_console_healthy(client)


@pytest.mark.parametrize("row", EDIT_ROWS)
def test_edit_form_refuses(row: FormRow, writer: User) -> None:
    existing = put(new_topic(), '{"kept": true}')
    client = logged_in(writer)
    data = form(existing.topic, base_modified_ms=str(existing.last_modified_ms))

    response = client.post(edit_url(existing.topic), data | row.fields(existing.topic))

    assert response.status_code == row.status
    assert escape(row.error) in response.content.decode()
    assert_unchanged(existing)
    assert_console_healthy(client)


def test_request_body_over_django_upload_limit(writer: User) -> None:
    """Beyond DATA_UPLOAD_MAX_MEMORY_SIZE Django refuses the body before any view runs."""
    topic = new_topic()
    client = logged_in(writer)
    payload = "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)

    response = client.post(CREATE_URL, form(topic, payload=payload))

    assert response.status_code == 400
    assert_nothing_stored(topic)
    assert_console_healthy(client)


# --- rendered inert -----------------------------------------------------------------------


def hostile_message() -> store.StoredMessage:
    """A stored message with hostile markup in every field a page shows."""
    return put(
        f"x/{uuid.uuid4().hex[:8]}/{HOSTILE_TOPIC_LEVEL}",
        HOSTILE,
        properties=MessageProperties(
            content_type=HOSTILE,
            user_properties=((HOSTILE, HOSTILE),),
            response_topic="r/" + HOSTILE_TOPIC_LEVEL,
            correlation_data=HOSTILE.encode(),
        ),
    )


@dataclass(frozen=True)
class XssRow:
    """`page` renders (with a client of a user who may see everything) what is checked;
    `shown`: the hostile text is on the page (escaped), not merely absent."""

    page: Callable[[Client, store.StoredMessage], str]
    shown: bool = True
    as_root: bool = False


def html_of(
    client: Client,
    url: str,
    data: dict[str, str] | None = None,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> str:
    response = client.get(url, data, headers=headers)
    assert response.status_code == status, url
    return response.content.decode()


def created_with_error(client: Client, message: store.StoredMessage) -> str:
    topic = f"x/{HOSTILE_TOPIC_LEVEL}/+"  # refused: a wildcard
    response = client.post(CREATE_URL, form(topic, payload=HOSTILE, user_properties="a=" + HOSTILE))
    assert response.status_code == 200
    assert_nothing_stored(topic)
    return response.content.decode()


def admin_policy(name: str, *, description: str = "", sid: str = "Publish") -> Policy:
    policy = create_policy(name, policy_document(sid=sid), description=description)
    create_policy_version(policy, policy_document(sid=sid, action="iot:*"), set_as_default=False)
    return policy


def admin_changelist(client: Client, message: store.StoredMessage) -> str:
    admin_policy(HOSTILE, description=HOSTILE)
    return html_of(client, reverse(POLICY_CHANGELIST))


def admin_change_page(client: Client, message: store.StoredMessage) -> str:
    policy = admin_policy("hostile-doc", description=HOSTILE, sid=HOSTILE.replace('"', "'"))
    return html_of(client, reverse("admin:retained_policy_change", args=[policy.pk]))


def admin_add_with_errors(client: Client, message: store.StoredMessage) -> str:
    document = policy_document(sid="s", action=HOSTILE.replace('"', "'"))  # unknown action
    response = client.post(reverse(POLICY_ADD), {"name": "x", "document": document})
    assert response.status_code == 200
    assert not Policy.objects.filter(name="x").exists()
    return response.content.decode()


def admin_test_authorization(client: Client, message: store.StoredMessage) -> str:
    query = {
        "principal_type": "anonymous",
        "resource_kind": "auto",
        "action": "iot:Publish",
        "resource": "x/" + HOSTILE_TOPIC_LEVEL,
        "client_id": HOSTILE,
    }
    return html_of(client, reverse(TEST_AUTHORIZATION), query)


XSS_ROWS = [
    pytest.param(XssRow(lambda c, m: html_of(c, LIST_URL)), id="list"),
    pytest.param(XssRow(lambda c, m: html_of(c, LIST_URL, {"q": HOSTILE})), id="list-search"),
    pytest.param(
        XssRow(
            lambda c, m: html_of(
                c, LIST_URL, {"q": "x/+/" + HOSTILE_TOPIC_LEVEL, "sort": "-updated"}
            )
        ),
        id="list-search-filter",
    ),
    pytest.param(
        XssRow(lambda c, m: html_of(c, LIST_URL, headers={"HX-Request": "true"})),
        id="list-fragment",
    ),
    pytest.param(XssRow(lambda c, m: html_of(c, detail_url(m.topic))), id="detail"),
    pytest.param(
        XssRow(lambda c, m: html_of(c, detail_url(m.topic), {"view": "text"})),
        id="detail-text-view",
    ),
    pytest.param(
        XssRow(lambda c, m: html_of(c, detail_url(m.topic), {"view": "json"})),
        id="detail-json-view",
    ),
    pytest.param(XssRow(lambda c, m: html_of(c, edit_url(m.topic))), id="edit"),
    pytest.param(XssRow(lambda c, m: html_of(c, delete_url(m.topic))), id="delete-confirmation"),
    pytest.param(
        XssRow(lambda c, m: html_of(c, CREATE_URL, {"topic": HOSTILE})), id="create-prefilled-topic"
    ),
    pytest.param(XssRow(created_with_error), id="create-refused-with-errors"),
    pytest.param(
        XssRow(lambda c, m: html_of(c, detail_url(m.topic + "-gone"), status=404)),
        id="missing-topic-page",
    ),
    pytest.param(
        XssRow(lambda c, m: html_of(c, "/test/", {"topic": HOSTILE}), shown=False),
        id="test-client-page",
    ),
    pytest.param(XssRow(admin_changelist, as_root=True), id="admin-policy-list"),
    pytest.param(XssRow(admin_change_page, as_root=True), id="admin-policy-change"),
    pytest.param(XssRow(admin_add_with_errors, as_root=True), id="admin-policy-add-errors"),
    pytest.param(XssRow(admin_test_authorization, as_root=True), id="admin-test-authorization"),
]


@pytest.mark.parametrize("row", XSS_ROWS)
def test_hostile_markup_is_rendered_inert(row: XssRow, writer: User, root: User) -> None:
    message = hostile_message()
    client = logged_in(root if row.as_root else writer)

    html = row.page(client, message)

    for markup in RAW_MARKUP:
        assert markup not in html
    if row.shown:
        assert ESCAPED in html
    assert_console_healthy(client)


def test_test_client_script_inserts_text_only() -> None:
    """The test client renders messages (pushed as JSON) in the browser: with textContent
    only, never as HTML (the e2e tests watch it happen in chromium)."""
    script = (Path(settings.BASE_DIR) / "static" / "console" / "test_client.js").read_text()
    script = re.sub(r"/\*.*?\*/", "", script, flags=re.S)
    code = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("//"))
    sinks = re.findall(r"\b(innerHTML|outerHTML|insertAdjacentHTML|document\.write)\b", code)
    assert sinks == []
    assert "textContent" in code


# --- policy admin ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AdminRow:
    """A policy add (`new_version` False) or a new version of the policy `devices`."""

    document: str
    errors: list[str]
    new_version: bool = False
    versions_before: int = 1


INVALID_SEMANTICS = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allowed", "Action": "iot:Publsh", "Resource": f"{ARN}:topic/a"}],
    }
)
SEMANTIC_ERRORS = [
    'Statement[0].Effect: unknown Effect "Allowed"; did you mean "Allow"?',
    'Statement[0].Action: unknown action "iot:Publsh"; did you mean "iot:Publish"?',
]
OVERSIZE_DOCUMENT = policy_document(sid="x" * 2100)

ADMIN_ROWS = [
    pytest.param(
        AdminRow('{"Version": "2012-10-17",\n "Statement": [}', ["invalid JSON: Expecting value"]),
        id="add-invalid-json",
    ),
    pytest.param(AdminRow("", ["This field is required."]), id="add-empty-document"),
    pytest.param(
        AdminRow("[]", ["a policy document must be a JSON object, not a list"]), id="add-json-array"
    ),
    pytest.param(AdminRow(INVALID_SEMANTICS, SEMANTIC_ERRORS), id="add-invalid-policy"),
    pytest.param(
        AdminRow(OVERSIZE_DOCUMENT, ["characters long without whitespace; the limit is 2048"]),
        id="add-document-over-2048",
    ),
    pytest.param(
        AdminRow(
            '{"Version": "2012-10-17", "Statement": ',
            ["invalid JSON: Expecting value"],
            new_version=True,
        ),
        id="version-invalid-json",
    ),
    pytest.param(
        AdminRow(INVALID_SEMANTICS, SEMANTIC_ERRORS, new_version=True), id="version-invalid-policy"
    ),
    pytest.param(
        AdminRow(
            policy_document(action="iot:Receive"),
            ["policy 'devices' already has 5 versions; delete a non-default version first"],
            new_version=True,
            versions_before=5,
        ),
        id="sixth-version",
    ),
]


@pytest.mark.parametrize("row", ADMIN_ROWS)
def test_policy_admin_refuses(row: AdminRow, root: User) -> None:
    policy = create_policy("devices", policy_document())
    for _ in range(row.versions_before - 1):
        create_policy_version(policy, policy_document(), set_as_default=False)
    client = logged_in(root)
    if row.new_version:
        url = reverse("admin:retained_policy_change", args=[policy.pk])
        data = page_form_data(client, url) | {
            "new_version_document": row.document,
            "set_as_default": "on",
        }
        field_name = "new_version_document"
    else:
        url = reverse(POLICY_ADD)
        data = {"name": "hostile", "document": row.document, "_save": "1"}
        field_name = "document"

    response = client.post(url, data)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors[field_name]
    for expected in row.errors:
        assert any(expected in error for error in errors), errors
    content = response.content.decode()
    for error in errors:
        assert escape(error) in content
    assert list(Policy.objects.values_list("name", flat=True)) == ["devices"]
    assert policy.versions.count() == row.versions_before
    assert policy.versions.get(is_default=True).version_id == 1
    assert client.get(reverse(POLICY_CHANGELIST)).status_code == 200


# --- the MQTT test client's WebSocket -------------------------------------------------------

WS_PATH = "/ws/test-client/"
WS_TIMEOUT = 5.0


@dataclass(frozen=True)
class WsRow:
    """What the page sends (`frame`: a raw text frame; else a JSON request) and the refusal
    it gets back (None: the page's socket must still work afterwards, checked by a publish)."""

    request: Callable[[str], dict[str, Any]] | None = None
    frame: str | bytes | None = None
    reason: str | None = None


def publish_request(**fields: Any) -> Callable[[str], dict[str, Any]]:
    def build(marker: str) -> dict[str, Any]:
        request = {"action": "publish", "topic": marker, "payload": "x", "qos": 1, "retain": True}
        return request | {k: v(marker) if callable(v) else v for k, v in fields.items()}

    return build


# AsyncJsonWebsocketConsumer.receive raises on a frame that is not JSON text; the consumer
# dies without disconnect(): its temporary access key and broker session are left behind.

TEST_CLIENT_ROWS = [
    pytest.param(
        WsRow(publish_request(topic=lambda m: m + "/#"), reason="wildcards"),
        id="ws-publish-wildcard",
    ),
    pytest.param(
        WsRow(publish_request(payload="x" * (MAX_PAYLOAD + 1)), reason="payload is larger"),
        id="ws-publish-128KB+1",
    ),
    pytest.param(
        WsRow(publish_request(topic=lambda m: "$aws/" + m), reason="reserved prefix"),
        id="ws-publish-retained-to-$aws",
    ),
    pytest.param(WsRow(publish_request(qos=2), reason="QoS must be 0 or 1"), id="ws-publish-qos-2"),
    pytest.param(
        WsRow(publish_request(user_properties="no equals sign"), reason="is not name=value"),
        id="ws-publish-bad-user-property",
    ),
    pytest.param(
        WsRow(
            lambda m: {"action": "subscribe", "topic_filter": m + "/a+", "qos": 1},
            reason="invalid topic filter",
        ),
        id="ws-subscribe-a+",
    ),
    pytest.param(
        WsRow(frame='{"action": "publish", "topic": '),
        id="ws-frame-invalid-json",
    ),
    pytest.param(
        WsRow(frame=b"\x00\x01binary"),
        id="ws-frame-binary",
    ),
    pytest.param(WsRow(frame='["not", "an", "object"]'), id="ws-frame-json-array"),
]


async def _next_of_type(
    page: WebsocketCommunicator, kind: str, *, timeout: float = WS_TIMEOUT
) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            message: dict[str, Any] = await page.receive_json_from(timeout=timeout + 1)
            if message["type"] == kind:
                return message


def _with_broker(scenario: Callable[[], Awaitable[None]]) -> None:
    async def main() -> None:
        await sync_to_async(access.reload)()
        running = await start_broker(bind="127.0.0.1", mqtt_port=free_port())
        try:
            await scenario()
        finally:
            await running.stop()
            runtime.set_mqtt_port(None)

    asyncio.run(main())


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("row", TEST_CLIENT_ROWS)
def test_test_client_refuses(row: WsRow) -> None:
    user = User.objects.create_superuser("root", password="pw-root")
    marker = new_topic()

    async def scenario() -> None:
        page = WebsocketCommunicator(URLRouter(websocket_urlpatterns), WS_PATH)
        page.scope["user"] = user
        connected, _ = await page.connect(timeout=WS_TIMEOUT)
        assert connected
        state = await _next_of_type(page, "state")
        while state["state"] != "connected":
            state = await _next_of_type(page, "state")
        if row.frame is not None:
            if isinstance(row.frame, bytes):
                await page.send_to(bytes_data=row.frame)
            else:
                await page.send_to(text_data=row.frame)
            await asyncio.sleep(0.1)
            if page.future.done():  # the consumer is gone; so is its disconnect() clean-up
                pytest.fail(f"the consumer died: {page.future.exception()!r}", pytrace=False)
        else:
            assert row.request is not None
            await page.send_json_to(row.request(marker))
            refusal = await _next_of_type(page, "refused")
            assert row.reason is not None
            assert row.reason in refusal["reason"], refusal
        # The page's socket still works: a good retained publish is acknowledged.
        good = new_topic()
        await page.send_json_to(publish_request()(good))
        published = await _next_of_type(page, "published", timeout=2.0)
        assert published["topic"] == good
        await page.disconnect()

    _with_broker(scenario)

    assert_nothing_stored(marker)
    assert AccessKey.objects.filter(description=KEY_DESCRIPTION).count() == 0
    assert_console_healthy(logged_in(user))
