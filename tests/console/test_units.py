"""Pure helpers of the console: payload views, user properties, links, times, list state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import pytest
from django import forms
from django.urls import resolve

from console.forms import format_user_properties, parse_user_properties
from console.views.hints import split_host
from console.views.links import detail_url, quote_topic, row_dom_id
from console.views.listing import ListState, Search, decode_cursor, encode_cursor
from console.views.payloads import hex_dump, looks_like_json, unified_diff, view_payload
from console.views.timefmt import exact_utc, relative

NOW = datetime(2025, 1, 31, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("payload", "requested", "mode", "available"),
    [
        (b'{"a": 1}', None, "json", ("json", "text", "hex")),
        (b'{"a": 1}', "text", "text", ("json", "text", "hex")),
        (b'{"a": 1}', "hex", "hex", ("json", "text", "hex")),
        (b"[1, 2]", None, "json", ("json", "text", "hex")),
        (b"42", None, "json", ("json", "text", "hex")),
        (b"hello", None, "text", ("text", "hex")),
        (b"hello", "json", "text", ("text", "hex")),  # not JSON: the automatic choice
        (b"bell\x07", None, "hex", ("text", "hex")),
        (b"\xff\x00", None, "hex", ("hex",)),
        (b"\xff\x00", "text", "hex", ("hex",)),
        ("héllo wörld".encode(), None, "text", ("text", "hex")),
        (b"  ", None, "text", ("text", "hex")),
    ],
)
def test_view_payload_chooses(
    payload: bytes, requested: str | None, mode: str, available: tuple[str, ...]
) -> None:
    view = view_payload(payload, requested)
    assert view.mode == mode
    assert view.available == available
    assert view.size == len(payload)


def test_pretty_json_keeps_unicode_and_order() -> None:
    assert (
        view_payload('{"b": "é", "a": [1]}'.encode()).content
        == '{\n  "b": "é",\n  "a": [\n    1\n  ]\n}'
    )


def test_hex_dump() -> None:
    assert hex_dump(b"") == ""
    dump = hex_dump(bytes(range(0x3E, 0x50)))
    first, second = dump.splitlines()
    assert first == "00000000  3e 3f 40 41 42 43 44 45 46 47 48 49 4a 4b 4c 4d  >?@ABCDEFGHIJKLM"
    assert second == "00000010  4e 4f                                            NO"
    assert hex_dump(b"\x00\x7f\x80").endswith("...")


@pytest.mark.parametrize(
    ("text", "content_type", "expected"),
    [
        ("{}", "", True),
        ("  [1]", "", True),
        ("x", "application/json", True),
        ("x", "Application/JSON ", True),
        ("x", "text/plain", False),
        ("", "", False),
    ],
)
def test_looks_like_json(text: str, content_type: str, expected: bool) -> None:
    assert looks_like_json(text, content_type) is expected


def test_unified_diff_kinds() -> None:
    lines = unified_diff("a\nb\nc", "a\nB\nc")
    assert [line.kind for line in lines] == [
        "file",
        "file",
        "hunk",
        "context",
        "remove",
        "add",
        "context",
    ]
    assert unified_diff("same", "same") == []


@pytest.mark.parametrize(
    ("text", "pairs"),
    [
        ("", ()),
        ("a=1", (("a", "1"),)),
        ("a=1\r\nb=2\n\n", (("a", "1"), ("b", "2"))),
        ("a = x=y ", (("a", "x=y"),)),
        ("k=\nk=again", (("k", ""), ("k", "again"))),
        ("é=ü", (("é", "ü"),)),
    ],
)
def test_parse_user_properties(text: str, pairs: tuple[tuple[str, str], ...]) -> None:
    assert parse_user_properties(text) == pairs
    assert parse_user_properties(format_user_properties(pairs)) == pairs


@pytest.mark.parametrize("text", ["novalue", "=x", "a=1\n  \nbad line", "a\x00=b"])
def test_parse_user_properties_refuses(text: str) -> None:
    with pytest.raises(forms.ValidationError):
        parse_user_properties(text)


@pytest.mark.parametrize(
    ("topic", "quoted"),
    [
        ("a/b", "a/b"),
        ("a b/%x?y/é", "a%20b/%25x%3Fy/%C3%A9"),
        ("#/+", "%23/%2B"),
        ("$SYS/x", "%24SYS/x"),
        ("/a//b/", "/a//b/"),
        ("a/../b", "a%2F..%2Fb"),
        ("./x", ".%2Fx"),
        ("a/.../b", "a/.../b"),
        ("line\nbreak", "line%0Abreak"),
    ],
)
def test_topic_links_round_trip(topic: str, quoted: str) -> None:
    assert quote_topic(topic) == quoted
    url = detail_url(topic)
    # The server decodes the path once; the converter takes the rest verbatim.
    assert resolve(unquote(url)).kwargs == {"topic": topic}


def test_row_ids_are_stable_and_safe() -> None:
    assert row_dom_id("a/b") == row_dom_id("a/b")
    assert row_dom_id("a/b") != row_dom_id("a/c")
    assert row_dom_id("<x>").startswith("row-")
    assert len(row_dom_id("x")) == 20


@pytest.mark.parametrize(
    ("delta", "words"),
    [
        (timedelta(seconds=3), "just now"),
        (timedelta(seconds=45), "45 seconds ago"),
        (timedelta(minutes=1, seconds=5), "1 minute ago"),
        (timedelta(hours=5), "5 hours ago"),
        (timedelta(days=1), "1 day ago"),
        (timedelta(days=400), "1 year ago"),
        (-timedelta(minutes=10), "in 10 minutes"),
        (-timedelta(seconds=2), "in a few seconds"),
    ],
)
def test_relative_times(delta: timedelta, words: str) -> None:
    assert relative(NOW - delta, NOW) == words


def test_exact_utc() -> None:
    assert exact_utc(NOW + timedelta(microseconds=123456)) == "2025-01-31 12:00:00.123 UTC"


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("example.com:8000", "example.com"),
        ("example.com", "example.com"),
        ("[::1]:8000", "[::1]"),
        ("::1", "::1"),
    ],
)
def test_split_host(host: str, name: str) -> None:
    assert split_host(host) == name


@pytest.mark.parametrize(
    ("text", "topic_filter"),
    [
        ("", ""),
        ("kitchen", ""),
        ("home/#", "home/#"),
        ("+/temp", "+/temp"),
        ("#", "#"),
        ("a#", ""),  # not a valid filter: a substring
        ("a/#/b", ""),
        ("$share/g/a/#", ""),
    ],
)
def test_search_kind(text: str, topic_filter: str) -> None:
    search = Search.parse(text)
    assert search.topic_filter == topic_filter
    assert search.contains == ("" if topic_filter else text)


def test_list_state_parsing_and_urls() -> None:
    state = ListState.parse({"q": " a&b ", "sort": "-updated", "size": "50", "cursor": "c"})
    assert state == ListState(q="a&b", sort="-updated", size=50, cursor="c")
    assert state.url() == "/retained/?q=a%26b&sort=-updated&size=50&cursor=c"
    assert state.ws_url() == "/ws/retained/?q=a%26b&sort=-updated&size=50&cursor=c"
    assert ListState.parse({}).url() == "/retained/"
    assert ListState.parse({"size": "x", "sort": "nope"}) == ListState()
    assert state.sort_url("updated") == "/retained/?q=a%26b&sort=updated&size=50"
    assert ListState().sort_url("topic") == "/retained/?sort=-topic"


def test_cursors_are_signed_and_bound_to_the_sort() -> None:
    cursor = encode_cursor("topic", ("a/b",), backwards=False)
    assert encode_cursor("topic", ("a/b",), backwards=False) == cursor  # stable
    assert decode_cursor(cursor, "topic") == (False, ("a/b",))
    assert decode_cursor(cursor, "-topic") is None
    assert decode_cursor(cursor[:-2] + "xx", "topic") is None
    assert decode_cursor("garbage", "topic") is None
    timed = encode_cursor("-updated", (123, 7), backwards=True)
    assert decode_cursor(timed, "-updated") == (True, (123, 7))
