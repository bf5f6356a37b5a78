"""URLs and DOM ids of topics.

A topic may hold any character but NUL: '/', '%', '?', '#', spaces, '$', non-ASCII. Links
percent-encode it with `quote(topic, safe="/")`, so the path reads like the topic, and the
`topic` path converter (console/urls.py) takes everything after the prefix, decoded once.
Browsers resolve "." and ".." path segments (also written %2E), so a topic with such a level
is encoded as ONE segment (its '/' as %2F), which the server decodes to the same topic.
Django's reverse() would quote a second time, so these links are built here instead.
"""

from __future__ import annotations

import hashlib
from urllib.parse import quote

DETAIL_PREFIX = "/retained/"
EDIT_PREFIX = "/edit/retained/"
DELETE_PREFIX = "/delete/retained/"
DOWNLOAD_PREFIX = "/download/retained/"
LIST_URL = "/retained/"
CREATE_URL = "/create/retained/"


def quote_topic(topic: str) -> str:
    """The topic as a URL path tail (see the module docstring)."""
    if any(level in (".", "..") for level in topic.split("/")):
        return quote(topic, safe="")
    return quote(topic, safe="/")


def detail_url(topic: str) -> str:
    return DETAIL_PREFIX + quote_topic(topic)


def edit_url(topic: str) -> str:
    return EDIT_PREFIX + quote_topic(topic)


def delete_url(topic: str) -> str:
    return DELETE_PREFIX + quote_topic(topic)


def download_url(topic: str) -> str:
    return DOWNLOAD_PREFIX + quote_topic(topic)


def row_dom_id(topic: str) -> str:
    """A stable, HTML-safe id for the topic's row (the page and the live updates agree)."""
    return "row-" + hashlib.sha1(topic.encode("utf-8"), usedforsecurity=False).hexdigest()[:16]
