"""Edit, create and delete: policy-gated retained publishes, CSRF, conflicts, escaping."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from console.views.links import delete_url, detail_url, edit_url
from retained import services, store
from retained.models import SetByKind
from retained.store import MessageProperties
from tests.console.conftest import XSS, client_for, make_user, put

pytestmark = pytest.mark.django_db


def form_values(html: str) -> dict[str, str]:
    """The edit form's current values, as a browser would submit them."""
    import html as html_module

    values: dict[str, str] = {}
    for name, value in re.findall(
        r'<input type="(?:hidden|text)" name="(\w+)" value="([^"]*)"', html
    ):
        values[name] = html_module.unescape(value)
    for name, value in re.findall(r'<textarea name="(\w+)"[^>]*>\n?(.*?)</textarea>', html, re.S):
        values[name] = html_module.unescape(value)
    checked = re.search(r'name="qos" value="(\d)"[^>]*checked', html)
    if checked:
        values["qos"] = checked.group(1)
    if re.search(r'name="is_json"[^>]*checked', html):
        values["is_json"] = "on"
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    if token:
        values["csrfmiddlewaretoken"] = token.group(1)
    return values


@pytest.fixture
def client(writer: User) -> Client:
    return client_for(writer)


def payload_of(topic: str) -> bytes | None:
    stored = store.get_retained(topic, touch=False)
    return None if stored is None else stored.payload


def later(seconds: int = 1) -> Any:
    return timezone.now() + timedelta(seconds=seconds)


# --- edit -----------------------------------------------------------------------------------


def test_edit_form_starts_from_the_stored_message(client: Client) -> None:
    put(
        "e/1",
        '{"a": 1}',
        qos=1,
        properties=MessageProperties(
            content_type="application/json", user_properties=(("k", "v"),)
        ),
    )
    response = client.get(edit_url("e/1"))
    assert response.status_code == 200
    values = form_values(response.content.decode())
    assert values["payload"] == '{"a": 1}'
    assert values["qos"] == "1"
    assert values["content_type"] == "application/json"
    assert values["user_properties"] == "k=v"
    assert values["is_json"] == "on"
    stored = store.get_retained("e/1", touch=False)
    assert stored is not None
    assert int(values["base_modified_ms"]) == stored.last_modified_ms
    assert "At most 131072 bytes" in response.content.decode()


def test_edit_publishes_a_retained_message_as_the_console_user(client: Client) -> None:
    put(
        "e/2", "old", properties=MessageProperties(message_expiry_interval=3600, response_topic="r")
    )
    values = form_values(client.get(edit_url("e/2")).content.decode())
    values.update(
        payload="new\r\nline",
        qos="1",
        content_type="text/plain",
        user_properties="a=1\nb = 2=3\n\n",
    )
    response = client.post(edit_url("e/2"), values)
    assert response.status_code == 302
    assert response["Location"] == detail_url("e/2")
    stored = store.get_retained("e/2", touch=False)
    assert stored is not None
    assert stored.payload == b"new\nline"
    assert stored.qos == 1
    assert stored.set_by == store.Actor(kind=SetByKind.CONSOLE, name="writer")
    assert stored.properties.content_type == "text/plain"
    assert stored.properties.user_properties == (("a", "1"), ("b", "2=3"))
    # Properties the form does not edit are kept.
    assert stored.properties.message_expiry_interval == 3600
    assert stored.properties.response_topic == "r"
    assert "Saved." in client.get(detail_url("e/2")).content.decode()


def test_edit_goes_through_services_publish(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    put("e/svc", "old")
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr(services, "publish", lambda *args, **kwargs: calls.append((args, kwargs)))
    values = form_values(client.get(edit_url("e/svc")).content.decode())
    values["payload"] = "via broker"
    assert client.post(edit_url("e/svc"), values).status_code == 302
    ((args, kwargs),) = calls
    assert args == ("e/svc", b"via broker")
    assert kwargs["retain"] is True
    assert kwargs["actor"] == store.Actor(kind=SetByKind.CONSOLE, name="writer")


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"payload": "{not json", "is_json": "on"}, "Not valid JSON"),
        ({"payload": "[1,", "content_type": "application/json"}, "Not valid JSON"),
        ({"payload": ""}, "use Delete"),
        ({"user_properties": "no equals sign"}, "Line 1 is not name=value"),
        ({"user_properties": "=value"}, "Line 1 is not name=value"),
    ],
)
def test_edit_validation(client: Client, changes: dict[str, str], error: str) -> None:
    put("e/v", "keep")
    values = form_values(client.get(edit_url("e/v")).content.decode())
    values.pop("is_json", None)
    values.update(changes)
    response = client.post(edit_url("e/v"), values)
    assert response.status_code == 200
    assert error in response.content.decode()
    assert payload_of("e/v") == b"keep"


def test_edit_accepts_json_when_asked_to_check(client: Client) -> None:
    put("e/j", "x")
    values = form_values(client.get(edit_url("e/j")).content.decode())
    values.update(payload='{"ok": [1, 2]}', is_json="on")
    assert client.post(edit_url("e/j"), values).status_code == 302


def test_edit_payload_size_limit(client: Client, settings: Any) -> None:
    settings.RETAINED_LIMITS = dataclasses.replace(settings.RETAINED_LIMITS, max_payload_bytes=8)
    put("e/big", "small")
    page = client.get(edit_url("e/big")).content.decode()
    assert "At most 8 bytes" in page
    values = form_values(page)
    values["payload"] = "ééééé"  # 10 bytes of UTF-8
    response = client.post(edit_url("e/big"), values)
    assert response.status_code == 200
    assert "The payload is 10 bytes; the limit is 8 bytes." in response.content.decode()


def test_edit_conflict_shows_both_versions_and_saves_nothing(client: Client) -> None:
    put("e/c", '{"v": 1,\n"who": "first"}')
    values = form_values(client.get(edit_url("e/c")).content.decode())
    put(
        "e/c",
        '{"v": 2,\n"who": "device"}',
        now=later(),
        actor=store.Actor(kind=SetByKind.MQTT, name="dev-9"),
    )
    values["payload"] = '{"v": 3,\n"who": "me"}'
    response = client.post(edit_url("e/c"), values)
    assert response.status_code == 409
    html = response.content.decode()
    assert "changed since you opened the form" in html
    assert "MQTT client <code>dev-9</code>" in html
    assert "Stored now" in html
    assert "Your version" in html
    assert '<span class="diff-remove">-{&quot;v&quot;: 2,</span>' in html
    assert '<span class="diff-add">+{&quot;v&quot;: 3,</span>' in html
    assert "Overwrite with my version" in html
    assert payload_of("e/c") == b'{"v": 2,\n"who": "device"}'
    # Choosing to overwrite: the form now carries the version the user has seen.
    again = form_values(html)
    assert again["payload"] == values["payload"]
    assert response.status_code == 409
    assert client.post(edit_url("e/c"), again).status_code == 302
    assert payload_of("e/c") == b'{"v": 3,\n"who": "me"}'


def test_edit_conflict_when_deleted_meanwhile(client: Client) -> None:
    put("e/d", "one")
    values = form_values(client.get(edit_url("e/d")).content.decode())
    store.clear_retained("e/d", actor=store.Actor(kind=SetByKind.MQTT, name="dev"))
    values["payload"] = "two"
    response = client.post(edit_url("e/d"), values)
    assert response.status_code == 409
    html = response.content.decode()
    assert "deleted since you opened the form" in html
    assert store.get_retained("e/d", touch=False) is None
    assert client.post(edit_url("e/d"), form_values(html)).status_code == 302
    assert payload_of("e/d") == b"two"


def test_editing_a_missing_message_is_404(client: Client) -> None:
    assert client.get(edit_url("nothing/here")).status_code == 404


def test_binary_payload_warning(client: Client) -> None:
    put("e/bin", b"\xff\xfe")
    html = client.get(edit_url("e/bin")).content.decode()
    assert "binary (2 bytes)" in html


def test_edit_needs_publish_and_retain_publish(reader: User, db: None) -> None:
    put("e/p", "x")
    response = client_for(reader).get(edit_url("e/p"))
    assert response.status_code == 403
    html = response.content.decode()
    assert "iot:Publish" in html
    assert "iot:RetainPublish" in html
    assert client_for(reader).post(edit_url("e/p"), {"payload": "y", "qos": "0"}).status_code == 403
    publisher = make_user("pub-only", ("iot:Publish", "*"))
    html = client_for(publisher).get(edit_url("e/p")).content.decode()
    assert '<code class="action">iot:RetainPublish</code>' in html
    assert '<code class="action">iot:Publish</code>' not in html


def test_edit_enforces_csrf(writer: User) -> None:
    put("e/csrf", "x")
    client = client_for(writer, enforce_csrf_checks=True)
    page = client.get(edit_url("e/csrf")).content.decode()
    values = form_values(page)
    values["payload"] = "changed"
    token = values.pop("csrfmiddlewaretoken")
    assert client.post(edit_url("e/csrf"), values).status_code == 403
    assert payload_of("e/csrf") == b"x"
    values["csrfmiddlewaretoken"] = token
    assert client.post(edit_url("e/csrf"), values).status_code == 302


def test_edit_page_escapes_everything(client: Client) -> None:
    topic = "x/" + XSS.replace("/", "|")
    put(topic, XSS, properties=MessageProperties(content_type=XSS, user_properties=((XSS, XSS),)))
    html = client.get(edit_url(topic)).content.decode()
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    values = form_values(html)
    put(topic, XSS + "!", now=later())
    conflict = client.post(edit_url(topic), values).content.decode()
    assert "<script>alert" not in conflict


# --- create ---------------------------------------------------------------------------------


def test_create_form_takes_the_topic_from_the_query(client: Client) -> None:
    html = client.get("/create/retained/?topic=a/b%20c").content.decode()
    assert 'value="a/b c"' in html
    assert "Create retained message" in html


def test_create_publishes(client: Client) -> None:
    response = client.post(
        "/create/retained/",
        {
            "topic": "new/topic é",
            "payload": '{"x": 1}',
            "qos": "1",
            "content_type": "application/json",
            "base_modified_ms": "0",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == detail_url("new/topic é")
    stored = store.get_retained("new/topic é", touch=False)
    assert stored is not None
    assert stored.qos == 1
    assert stored.properties.content_type == "application/json"
    assert stored.set_by == store.Actor(kind=SetByKind.CONSOLE, name="writer")


@pytest.mark.parametrize(
    ("topic", "error"),
    [
        ("a/+/b", "wildcard"),
        ("a/#", "wildcard"),
        ("$aws/things/t/shadow", "reserved"),
        ("", "This field is required"),
        ("/".join("x" * 9), "more than 7"),
    ],
)
def test_create_validates_the_topic(client: Client, topic: str, error: str) -> None:
    response = client.post(
        "/create/retained/", {"topic": topic, "payload": "x", "qos": "0", "base_modified_ms": "0"}
    )
    assert response.status_code == 200
    assert error in response.content.decode()


def test_create_on_an_existing_topic_is_a_conflict(client: Client) -> None:
    put("exists", "theirs")
    data = {"topic": "exists", "payload": "mine", "qos": "0", "base_modified_ms": "0"}
    response = client.post("/create/retained/", data)
    assert response.status_code == 409
    html = response.content.decode()
    assert "changed since you opened the form" in html
    assert payload_of("exists") == b"theirs"
    assert client.post("/create/retained/", form_values(html)).status_code == 302
    assert payload_of("exists") == b"mine"


def test_create_checks_the_policy_on_the_topic(db: None) -> None:
    user = make_user(
        "scoped",
        ("iot:ListRetainedMessages", "*"),
        (["iot:Publish", "iot:RetainPublish"], "arn:aws:iot:us-east-1:123456789012:topic/mine/*"),
    )
    client = client_for(user)
    ok = client.post(
        "/create/retained/",
        {"topic": "mine/a", "payload": "x", "qos": "0", "base_modified_ms": "0"},
    )
    assert ok.status_code == 302
    refused = client.post(
        "/create/retained/",
        {"topic": "theirs/a", "payload": "x", "qos": "0", "base_modified_ms": "0"},
    )
    assert refused.status_code == 403
    assert "iot:Publish and iot:RetainPublish" in refused.content.decode()
    assert store.get_retained("theirs/a", touch=False) is None


def test_create_enforces_csrf(writer: User) -> None:
    client = client_for(writer, enforce_csrf_checks=True)
    response = client.post(
        "/create/retained/", {"topic": "c", "payload": "x", "qos": "0", "base_modified_ms": "0"}
    )
    assert response.status_code == 403
    assert store.get_retained("c", touch=False) is None


def test_create_escapes_the_topic(client: Client) -> None:
    response = client.post(
        "/create/retained/",
        {"topic": XSS + "+", "payload": XSS, "qos": "0", "base_modified_ms": "0"},
    )
    assert "<script>alert" not in response.content.decode()


# --- delete ---------------------------------------------------------------------------------


def test_delete_confirms_then_publishes_an_empty_retained_payload(client: Client) -> None:
    stored = put("d/1", "bye", qos=1)
    page = client.get(delete_url("d/1"))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Delete retained message" in html
    assert f'name="base_modified_ms" value="{stored.last_modified_ms}"' in html
    response = client.post(delete_url("d/1"), {"base_modified_ms": str(stored.last_modified_ms)})
    assert response.status_code == 302
    assert response["Location"] == "/retained/"
    assert store.get_retained("d/1", touch=False) is None
    assert "Deleted." in client.get("/retained/").content.decode()


def test_delete_goes_through_services_publish(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = put("d/svc", "x")
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setattr(services, "publish", lambda *args, **kwargs: calls.append((args, kwargs)))
    client.post(delete_url("d/svc"), {"base_modified_ms": str(stored.last_modified_ms)})
    ((args, kwargs),) = calls
    assert args == ("d/svc", b"")
    assert kwargs["retain"] is True
    assert kwargs["actor"].kind == SetByKind.CONSOLE


def test_delete_of_a_message_changed_meanwhile_asks_again(client: Client) -> None:
    stored = put("d/2", "one")
    put("d/2", "two", now=later())
    response = client.post(delete_url("d/2"), {"base_modified_ms": str(stored.last_modified_ms)})
    assert response.status_code == 409
    assert "changed since you opened this page" in response.content.decode()
    assert payload_of("d/2") == b"two"


def test_delete_of_a_missing_message(client: Client) -> None:
    assert client.get(delete_url("d/none")).status_code == 404
    response = client.post(delete_url("d/none"), {"base_modified_ms": "1"})
    assert response.status_code == 302


def test_delete_needs_publish_and_retain_publish(reader: User) -> None:
    stored = put("d/3", "x")
    client = client_for(reader)
    assert client.get(delete_url("d/3")).status_code == 403
    response = client.post(delete_url("d/3"), {"base_modified_ms": str(stored.last_modified_ms)})
    assert response.status_code == 403
    assert "iot:RetainPublish" in response.content.decode()
    assert store.get_retained("d/3", touch=False) is not None


def test_delete_enforces_csrf(writer: User) -> None:
    stored = put("d/4", "x")
    client = client_for(writer, enforce_csrf_checks=True)
    response = client.post(delete_url("d/4"), {"base_modified_ms": str(stored.last_modified_ms)})
    assert response.status_code == 403
    assert store.get_retained("d/4", touch=False) is not None


def test_delete_page_escapes_the_topic(client: Client) -> None:
    topic = "x/" + XSS.replace("/", "|")
    put(topic)
    assert "<script>alert" not in client.get(delete_url(topic)).content.decode()
