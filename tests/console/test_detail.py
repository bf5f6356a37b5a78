"""A retained message's page: payload viewer, properties, who set it, download, gating."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import resolve

from console.views.links import detail_url, download_url, edit_url
from retained.models import SetByKind
from retained.store import Actor, MessageProperties
from tests.console.conftest import XSS, client_for, make_user, put

pytestmark = pytest.mark.django_db

ODD_TOPICS = [
    "a b/%x?y/é",
    "/leading/slash",
    "trailing/",
    "a//b",
    "$SYS/broker",
    "100%/done?yes=1&no=2",
    "dots/../x/./y",
    "emoji/🌡️/temp",
    "semi;colon/quote'\"",
]


@pytest.fixture
def client(reader: User) -> Client:
    return client_for(reader)


def test_detail_shows_the_message(client: Client) -> None:
    put(
        "devices/t1/config",
        '{"mode":"auto","target":21.5}',
        qos=1,
        actor=Actor(kind=SetByKind.API, name="AKIAEXAMPLE"),
        properties=MessageProperties(
            content_type="application/json",
            payload_format_indicator=1,
            user_properties=(("source", "lab"), ("source", "again")),
            message_expiry_interval=600,
            response_topic="devices/t1/reply",
            correlation_data=b"\x01\x02",
        ),
    )
    response = client.get("/retained/devices/t1/config")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<h1 class="topic-title">devices/t1/config</h1>' in html
    assert "<dt>QoS</dt><dd>1</dd>" in html
    assert "29 bytes" in html
    # Pretty JSON chosen automatically.
    assert "&quot;mode&quot;: &quot;auto&quot;,\n  &quot;target&quot;: 21.5" in html
    assert 'aria-current="true">JSON</a>' in html
    # Who set it and when.
    assert "API access key <code>AKIAEXAMPLE</code>" in html
    assert " UTC</span>" in html
    # MQTT 5 properties.
    assert "<code>application/json</code>" in html
    assert "1 — UTF-8 character data" in html
    assert "<code>devices/t1/reply</code>" in html
    assert "<code>01 02</code>" in html
    assert "600 s (" in html
    assert "s remaining)" in html
    assert html.count("<code>source</code>") == 2
    assert "<code>again</code>" in html
    # Live.
    assert 'ws-connect="/ws/retained/detail/?topic=devices%2Ft1%2Fconfig&amp;view=json"' in html


def test_detail_htmx_fragment_switches_the_viewer(client: Client) -> None:
    put("p", '{"a": [1, 2]}')
    full = client.get("/retained/p?view=hex").content.decode()
    assert "<html" in full
    fragment = client.get("/retained/p?view=hex", HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in fragment
    assert fragment.lstrip().startswith('<section id="detail-live"')
    assert "00000000  7b 22 61 22" in fragment
    assert 'aria-current="true">Hex</a>' in fragment
    assert "view=hex" in fragment  # the live socket keeps the chosen view
    text = client.get("/retained/p?view=text").content.decode()
    assert "{&quot;a&quot;: [1, 2]}" in text


def test_binary_payload_is_a_hex_dump(client: Client) -> None:
    put("bin", b"ab\x00\x01\xff")
    html = client.get("/retained/bin").content.decode()
    assert "00000000  61 62 00 01 ff" in html
    assert "ab..." in html
    assert 'title="The payload is not JSON"' in html
    assert 'title="The payload is not Text"' in html


def test_unreadable_text_defaults_to_hex_but_text_is_offered(client: Client) -> None:
    put("ctl", "a\x07b")
    html = client.get("/retained/ctl").content.decode()
    assert 'aria-current="true">Hex</a>' in html
    assert ">Text</a>" in html


@pytest.mark.parametrize("topic", ODD_TOPICS)
def test_odd_topics_round_trip_through_the_detail_url(client: Client, topic: str) -> None:
    put(topic, "v")
    url = detail_url(topic)
    assert "?" not in url
    assert "#" not in url
    assert " " not in url
    response = client.get(url)
    assert response.status_code == 200, url
    assert response.context["topic"] == topic
    list_html = client.get("/retained/").content.decode()
    assert f'href="{url}"' in list_html


def test_a_topic_with_hash_round_trips_too(client: Client) -> None:
    # '#' is a wildcard, never in a stored topic; its URL must still reach the view intact.
    topic = "a/#/b?c d%é"
    url = detail_url(topic)
    assert "#" not in url
    assert "?" not in url
    assert resolve(unquote(url)).kwargs == {"topic": topic}
    response = client.get(url)
    assert response.status_code == 404
    assert response.context["topic"] == topic


def test_a_wildcard_topic_is_not_found(client: Client) -> None:
    response = client.get(detail_url("a/#"))
    assert response.status_code == 404
    assert "Not a topic name" in response.content.decode()


def test_missing_message_is_404_with_a_create_link(client: Client) -> None:
    response = client.get("/retained/no/such")
    assert response.status_code == 404
    html = response.content.decode()
    assert "No retained message" in html
    assert "/create/retained/?topic=no%2Fsuch" in html


def test_expired_message_is_gone(client: Client) -> None:
    from datetime import timedelta

    from django.utils import timezone

    put(
        "old",
        "x",
        properties=MessageProperties(message_expiry_interval=1),
        now=timezone.now() - timedelta(seconds=5),
    )
    assert client.get("/retained/old").status_code == 404


def test_escaping_in_detail(client: Client) -> None:
    topic = "x/" + XSS.replace("/", "|")
    put(
        topic,
        '{"k": "' + XSS.replace("/", "\\/") + '"}',
        properties=MessageProperties(
            content_type=XSS,
            user_properties=((XSS, XSS),),
            response_topic="r/" + XSS.replace("/", "|"),
        ),
    )
    html = client.get(detail_url(topic)).content.decode()
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    text_view = client.get(detail_url(topic) + "?view=text").content.decode()
    assert "<script>alert" not in text_view


def test_download_raw_payload(client: Client) -> None:
    put("files/firmware.bin", b"\x00\x01binary\xff")
    for url in (
        download_url("files/firmware.bin"),
        detail_url("files/firmware.bin") + "?download=1",
    ):
        response = client.get(url)
        assert response.status_code == 200
        assert response["Content-Type"] == "application/octet-stream"
        assert response["Content-Disposition"] == 'attachment; filename="firmware.bin.bin"'
        assert response.content == b"\x00\x01binary\xff"


def test_download_name_of_an_odd_topic(client: Client) -> None:
    put("a b/é?", b"z")
    response = client.get(download_url("a b/é?"))
    assert response.status_code == 200
    assert 'filename="payload.bin"' in response["Content-Disposition"]


def test_detail_needs_get_retained_message_on_the_topic(db: None) -> None:
    user = make_user(
        "partial",
        ("iot:ListRetainedMessages", "*"),
        ("iot:GetRetainedMessage", "arn:aws:iot:us-east-1:123456789012:topic/public/*"),
    )
    put("public/a")
    put("private/a")
    client = client_for(user)
    assert client.get("/retained/public/a").status_code == 200
    response = client.get("/retained/private/a")
    assert response.status_code == 403
    html = response.content.decode()
    assert "iot:GetRetainedMessage" in html
    assert "arn:aws:iot:us-east-1:123456789012:topic/private/a" in html
    assert client.get(download_url("private/a")).status_code == 403
    assert client.get(detail_url("private/a") + "?download=1").status_code == 403


def test_read_only_user_sees_disabled_actions_with_tooltips(client: Client) -> None:
    put("ro")
    html = client.get("/retained/ro").content.decode()
    assert f'href="{edit_url("ro")}"' not in html
    assert "disabled" in html
    tooltip = 'title="Not allowed: your policies do not grant iot:Publish and iot:RetainPublish"'
    assert html.count(tooltip) >= 4  # Edit and Delete, on the button and its wrapper


def test_writer_sees_enabled_actions(writer: User) -> None:
    put("rw")
    html = client_for(writer).get("/retained/rw").content.decode()
    assert 'href="/edit/retained/rw"' in html
    assert 'href="/delete/retained/rw"' in html
    assert "disabled title=" not in html


def test_reading_the_detail_counts_as_an_access(client: Client) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from retained.models import RetainedMessage

    put("touched")
    RetainedMessage.objects.filter(topic="touched").update(
        last_accessed_at=timezone.now() - timedelta(days=10)
    )
    client.get("/retained/touched")
    row = RetainedMessage.objects.get(topic="touched")
    assert row.last_accessed_at > timezone.now() - timedelta(minutes=1)
