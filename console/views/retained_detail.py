"""A retained message: its payload (JSON / text / hex), properties and who set it; the raw
download. The live part of the page is the partial the detail consumer re-renders."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET

from console.views import gate, links
from console.views.htmx import vary_on_htmx, wants_fragment
from console.views.payloads import MODES, view_payload
from console.views.timefmt import exact_utc, relative
from retained import store
from retained.models import SetByKind
from retained.topics import InvalidTopicError

DETAIL_WS_URL = "/ws/retained/detail/"
PAYLOAD_FORMATS = {0: "0 — unspecified bytes", 1: "1 — UTF-8 character data"}


def validate_topic(topic: str) -> str | None:
    """The reason `topic` cannot hold a retained message, or None."""
    try:
        store.validate_topic(topic, limits=settings.RETAINED_LIMITS)
    except InvalidTopicError as error:
        return str(error)
    return None


def not_found(request: HttpRequest, topic: str, reason: str = "") -> HttpResponse:
    context = {"nav": "retained", "topic": topic, "reason": reason, "create_url": links.CREATE_URL}
    return render(request, "console/retained/missing.html", context, status=404)


def detail_context(message: store.StoredMessage, mode: str | None) -> dict[str, Any]:
    """What the live part of the detail page shows (shared by the view and the consumer)."""
    now = timezone.now()
    properties = message.properties
    payload = view_payload(message.payload, mode)
    last_modified = datetime.fromtimestamp(message.last_modified_ms / 1000, tz=UTC)
    expires_at = message.expires_at
    return {
        "message": message,
        "topic": message.topic,
        "payload": payload,
        "mode_links": [
            (choice, label, ok, links.detail_url(message.topic) + "?view=" + choice)
            for choice, label, ok in payload.choices
        ],
        "last_modified": last_modified,
        "last_modified_relative": relative(last_modified, now),
        "last_modified_exact": exact_utc(last_modified),
        "expires_relative": relative(expires_at, now) if expires_at else "",
        "expires_exact": exact_utc(expires_at) if expires_at else "",
        "retention_days": settings.RETAINED_LIMITS.retention_days,
        "set_by_label": SetByKind(message.set_by.kind).label,
        "set_by_name": message.set_by.name,
        "payload_format": ""
        if properties.payload_format_indicator is None
        else PAYLOAD_FORMATS.get(properties.payload_format_indicator, ""),
        "correlation_hex": properties.correlation_data.hex(" ")
        if properties.correlation_data is not None
        else "",
        "remaining_expiry": message.remaining_expiry_seconds(now),
        "ws_url": DETAIL_WS_URL + "?" + _ws_query(message.topic, payload.mode),
    }


def _ws_query(topic: str, mode: str) -> str:
    return urlencode({"topic": topic, "view": mode})


@login_required
@require_GET
def retained_detail(request: HttpRequest, topic: str) -> HttpResponse:
    reason = validate_topic(topic)
    if reason:
        return not_found(request, topic, reason)
    permission = gate.check(request.user, [gate.GET], gate.resource_of(topic))
    if not permission.allowed:
        return gate.forbidden(request, permission)
    message = store.get_retained(topic)
    if message is None:
        return not_found(request, topic)
    if request.GET.get("download"):
        return _download(message)
    mode = request.GET.get("view")
    context = detail_context(message, mode if mode in MODES else None)
    write = gate.check(request.user, gate.WRITE, gate.resource_of(topic))
    context.update(
        {
            "nav": "retained",
            "write": write,
            "edit_url": links.edit_url(topic),
            "delete_url": links.delete_url(topic),
            "download_url": links.download_url(topic),
        }
    )
    template = (
        "console/retained/_detail_live.html"
        if wants_fragment(request)
        else "console/retained/detail.html"
    )
    return vary_on_htmx(render(request, template, context))


@login_required
@require_GET
def retained_download(request: HttpRequest, topic: str) -> HttpResponse:
    reason = validate_topic(topic)
    if reason:
        return not_found(request, topic, reason)
    permission = gate.check(request.user, [gate.GET], gate.resource_of(topic))
    if not permission.allowed:
        return gate.forbidden(request, permission)
    message = store.get_retained(topic)
    if message is None:
        return not_found(request, topic)
    return _download(message)


def download_filename(topic: str) -> str:
    """A file name from the topic's last level, safe on any file system."""
    last = topic.rstrip("/").rsplit("/", 1)[-1] or "payload"
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", last).strip("._") or "payload"
    return cleaned[:100] + ".bin"


def _download(message: store.StoredMessage) -> HttpResponse:
    response = HttpResponse(message.payload, content_type="application/octet-stream")
    disposition = content_disposition_header(
        as_attachment=True, filename=download_filename(message.topic)
    )
    response["Content-Disposition"] = disposition or "attachment"
    response["Content-Length"] = str(len(message.payload))
    return response
