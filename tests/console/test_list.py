"""Manage > Retained messages: the list page and its htmx fragment."""

from __future__ import annotations

import html as html_module
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from console.views.links import row_dom_id
from retained.models import RetainedMessage
from retained.store import MessageProperties
from tests.console.conftest import XSS, client_for, put

pytestmark = pytest.mark.django_db


def topics_in(html: str) -> list[str]:
    """The topics of the rows, in order (unescaped from the link text)."""
    return [
        html_module.unescape(match)
        for match in re.findall(r'<td class="topic"><a href="[^"]*">([^<]*)</a>', html)
    ]


def next_url(html: str) -> str | None:
    match = re.search(r'rel="next" href="([^"]*)"', html)
    return match.group(1).replace("&amp;", "&") if match else None


def prev_url(html: str) -> str | None:
    match = re.search(r'rel="prev" href="([^"]*)"', html)
    return match.group(1).replace("&amp;", "&") if match else None


@pytest.fixture
def client(reader: User) -> Client:
    return client_for(reader)


def test_full_page_and_htmx_fragment(client: Client) -> None:
    put("sensors/1/temperature")
    page = client.get("/retained/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "<html" in html
    assert 'id="results"' in html
    assert 'ws-connect="/ws/retained/"' in html
    assert f'<tr id="{row_dom_id("sensors/1/temperature")}"' in html
    assert "HX-Request" in page["Vary"]

    fragment = client.get("/retained/", HTTP_HX_REQUEST="true")
    assert fragment.status_code == 200
    body = fragment.content.decode()
    assert "<html" not in body
    assert body.lstrip().startswith('<section id="results"')
    # The same row partial renders in both.
    row = re.search(r"<tr id=.*?</tr>", html, re.S)
    assert row is not None
    assert row.group(0) in body


def test_history_restore_gets_the_whole_page(client: Client) -> None:
    response = client.get(
        "/retained/", HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true"
    )
    assert "<html" in response.content.decode()


def test_columns(client: Client) -> None:
    put("a/expiring", "12345", qos=1, properties=MessageProperties(message_expiry_interval=3600))
    html = client.get("/retained/").content.decode()
    for header in ("Topic", "QoS", "Payload size", "Last updated", "Expires"):
        assert header in html
    assert '<a href="/retained/a/expiring">a/expiring</a>' in html
    assert '<td class="num">1</td>' in html
    assert "5 B" in html
    assert "just now" in html
    assert re.search(r'title="\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC"', html)
    assert "in 59 minutes" in html or "in 1 hour" in html


def test_total_count_is_the_maintained_counter(client: Client) -> None:
    for index in range(3):
        put(f"t/{index}")
    with CaptureQueriesContext(connection) as queries:
        html = client.get("/retained/?size=10").content.decode()
    assert '<span id="retained-total" class="total">3</span>' in html
    sql = " ".join(query["sql"].upper() for query in queries.captured_queries)
    assert "COUNT(" not in sql
    assert "OFFSET" not in sql


def test_empty_state_shows_how_to_publish_here(client: Client) -> None:
    html = client.get("/retained/", HTTP_HOST="console.example:8790").content.decode()
    assert "No retained messages yet" in html
    assert "mosquitto_pub -h console.example -p 1883 -t devices/thermostat-1/config -r" in html
    assert "aws iot-data publish --endpoint-url http://console.example:8790" in html
    assert "--retain" in html


def test_empty_state_uses_the_runtime_mqtt_port(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from retained import runtime

    monkeypatch.setattr(runtime, "mqtt_port", lambda: 18890, raising=False)
    html = client.get("/retained/").content.decode()
    assert "-p 18890" in html


def test_keyset_pages_forward_and_back(client: Client) -> None:
    topics = [f"page/{index:02d}" for index in range(23)]
    for topic in topics:
        put(topic)
    first = client.get("/retained/?size=10").content.decode()
    assert topics_in(first) == topics[:10]
    assert prev_url(first) is None
    second_url = next_url(first)
    assert second_url is not None
    assert "cursor=" in second_url
    second = client.get(second_url).content.decode()
    assert topics_in(second) == topics[10:20]
    third_url = next_url(second)
    assert third_url is not None
    third = client.get(third_url).content.decode()
    assert topics_in(third) == topics[20:]
    assert next_url(third) is None
    back = prev_url(third)
    assert back is not None
    assert topics_in(client.get(back).content.decode()) == topics[10:20]
    back_again = prev_url(second)
    assert back_again is not None
    first_again = client.get(back_again).content.decode()
    assert topics_in(first_again) == topics[:10]
    assert prev_url(first_again) is None


def test_keyset_survives_inserts_before_the_cursor(client: Client) -> None:
    for index in range(12):
        put(f"k/{index:02d}")
    first = client.get("/retained/?size=10").content.decode()
    put("k/00a")  # lands on page one after page one was shown
    second = client.get(next_url(first) or "").content.decode()
    assert topics_in(second) == ["k/10", "k/11"]


@pytest.mark.parametrize("size", [10, 25, 50, 100])
def test_page_sizes(client: Client, size: int) -> None:
    RetainedMessage.objects.all().delete()
    for index in range(size + 1):
        put(f"s/{index:03d}")
    html = client.get(f"/retained/?size={size}").content.decode()
    assert len(topics_in(html)) == size
    assert next_url(html) is not None


def test_unknown_page_size_and_sort_fall_back(client: Client) -> None:
    put("x")
    assert client.get("/retained/?size=7&sort=bogus").status_code == 200


def test_forged_cursor_is_ignored(client: Client) -> None:
    for index in range(3):
        put(f"f/{index}")
    html = client.get("/retained/?cursor=eyJrIjpbInoiXX0:forged").content.decode()
    assert topics_in(html) == ["f/0", "f/1", "f/2"]


def test_cursor_past_the_end_shows_the_last_page(client: Client) -> None:
    for index in range(12):
        put(f"e/{index:02d}")
    first = client.get("/retained/?size=10").content.decode()
    url = next_url(first)
    RetainedMessage.objects.filter(topic__in=["e/10", "e/11"]).delete()
    html = client.get(url or "").content.decode()
    assert topics_in(html) == [f"e/{index:02d}" for index in range(10)]


def test_sort_by_topic_and_by_last_update(client: Client) -> None:
    now = timezone.now()
    put("b", now=now - timedelta(seconds=30))
    put("c", now=now - timedelta(seconds=20))
    put("a", now=now - timedelta(seconds=10))
    assert topics_in(client.get("/retained/").content.decode()) == ["a", "b", "c"]
    assert topics_in(client.get("/retained/?sort=-topic").content.decode()) == ["c", "b", "a"]
    assert topics_in(client.get("/retained/?sort=updated").content.decode()) == ["b", "c", "a"]
    assert topics_in(client.get("/retained/?sort=-updated").content.decode()) == ["a", "c", "b"]


def test_sort_links_flip_the_direction(client: Client) -> None:
    put("a")
    html = client.get("/retained/").content.decode()
    assert 'aria-sort="ascending"' in html
    assert 'href="/retained/?sort=-topic"' in html
    assert 'href="/retained/?sort=updated"' in html


def test_sort_by_update_pages_with_equal_times(client: Client) -> None:
    now = timezone.now()
    topics = [f"same/{index:02d}" for index in range(15)]
    for topic in topics:
        put(topic, now=now)  # identical last_modified_ms: the row id breaks the tie
    first = client.get("/retained/?sort=updated&size=10").content.decode()
    second = client.get(next_url(first) or "").content.decode()
    shown = topics_in(first) + topics_in(second)
    assert sorted(shown) == topics
    assert len(set(shown)) == 15
    back = client.get(prev_url(second) or "").content.decode()
    assert topics_in(back) == topics_in(first)


def test_search_by_substring(client: Client) -> None:
    for topic in ("home/kitchen/temp", "home/garage/door", "office/kitchen/temp", "x%y", "x_y"):
        put(topic)
    html = client.get("/retained/?q=kitchen").content.decode()
    assert topics_in(html) == ["home/kitchen/temp", "office/kitchen/temp"]
    assert "Topics containing" in html
    # LIKE wildcards are literal.
    assert topics_in(client.get("/retained/?q=%25").content.decode()) == ["x%y"]
    assert topics_in(client.get("/retained/?q=_").content.decode()) == ["x_y"]
    assert topics_in(client.get("/retained/?q=KITCHEN").content.decode()) == [
        "home/kitchen/temp",
        "office/kitchen/temp",
    ]


def test_search_by_mqtt_filter(client: Client) -> None:
    for topic in ("sport/tennis/p1", "sport/tennis/p2", "sports/x", "sport", "sport/", "$SYS/x"):
        put(topic)
    assert topics_in(client.get("/retained/?q=sport/%23").content.decode()) == [
        "sport",
        "sport/",
        "sport/tennis/p1",
        "sport/tennis/p2",
    ]
    assert topics_in(client.get("/retained/?q=sport/%2B").content.decode()) == ["sport/"]
    assert topics_in(client.get("/retained/?q=%2B/tennis/%2B").content.decode()) == [
        "sport/tennis/p1",
        "sport/tennis/p2",
    ]
    everything = topics_in(client.get("/retained/?q=%23").content.decode())
    assert "$SYS/x" not in everything
    assert len(everything) == 5
    assert "Matching the MQTT topic filter" in client.get("/retained/?q=%23").content.decode()


def test_invalid_filter_is_a_substring_search(client: Client) -> None:
    put("a/bc")
    html = client.get("/retained/?q=b%23").content.decode()  # "b#" is not a valid filter
    assert topics_in(html) == []
    assert "Topics containing" in html


def test_filter_search_pages(client: Client) -> None:
    for index in range(15):
        put(f"dev/{index:02d}/state")
        put(f"dev/{index:02d}/other")
    first = client.get("/retained/?q=dev/%2B/state&size=10").content.decode()
    assert topics_in(first) == [f"dev/{index:02d}/state" for index in range(10)]
    second = client.get(next_url(first) or "").content.decode()
    assert topics_in(second) == [f"dev/{index:02d}/state" for index in range(10, 15)]
    assert next_url(second) is None


def test_no_match_message(client: Client) -> None:
    put("a")
    html = client.get("/retained/?q=zzz").content.decode()
    assert "No retained message topic contains" in html


def test_payload_topic_and_query_are_escaped(client: Client) -> None:
    put("x/" + XSS.replace("/", "|"), XSS)
    html = client.get("/retained/?q=" + XSS.replace("/", "%2F")).content.decode()
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)" in html
    listing = client.get("/retained/").content.decode()
    assert "<script>alert" not in listing
    assert "x/&lt;script&gt;alert(1)&lt;|script&gt;" in listing


def test_list_needs_list_retained_messages(nobody: User) -> None:
    response = client_for(nobody).get("/retained/")
    assert response.status_code == 403
    html = response.content.decode()
    assert "iot:ListRetainedMessages" in html
    assert "Not allowed" in html


def test_create_action_is_offered(client: Client) -> None:
    assert 'href="/create/retained/"' in client.get("/retained/").content.decode()
