"""The only caller of the channel layer: retained-message events -> the "retained" group,
and those events -> the htmx out-of-band fragments that keep open console pages current.

The store emits RetainedChanged after commit, on whatever thread committed (the broker's
writer thread, a Django view thread). This forwards each event, as a plain dict, onto the
event loop that serves the console's WebSockets, so consumers in that process (or, with a
Redis channel layer, in any process) refresh their rows.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from channels.layers import get_channel_layer
from django.template.loader import render_to_string

from console.views import gate
from console.views.hints import PublishHints
from console.views.listing import SORTS, ListPage, ListState, RowView, fetch_page
from console.views.retained_detail import detail_context, validate_topic
from retained import access, events, store
from retained.access import Principal

logger = logging.getLogger(__name__)

RETAINED_GROUP = "retained"
# One channel-layer message carries up to this many events ("retained.changed.batch"): a
# group_send per event cost the broker's loop a fifth of its time at 10,000 writes/s.
EVENTS_PER_MESSAGE = 500

# The partials a live update sends: the same ones the pages include.
ROW_TEMPLATE = "console/retained/_row.html"
ROW_INSERT_TEMPLATE = "console/retained/_row_insert.html"
RESULTS_BODY_TEMPLATE = "console/retained/_results_body.html"
PAGER_TEMPLATE = "console/retained/_pager.html"
TOTAL_TEMPLATE = "console/retained/_total.html"
CHANGES_BAR_TEMPLATE = "console/retained/_changes_bar.html"
DETAIL_BODY_TEMPLATE = "console/retained/_detail_body.html"
DELETED_BANNER_TEMPLATE = "console/retained/_deleted_banner.html"


def install(loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    """Start forwarding retained events to the channel layer; returns the undo function.

    Events arrive on the committing thread, often thousands per batch: they are queued and
    the loop is woken once per burst, not once per event.
    """
    layer = get_channel_layer()
    if layer is None:
        return lambda: None
    pending: deque[dict[str, Any]] = deque()
    scheduled = threading.Event()

    async def drain() -> None:
        scheduled.clear()
        while pending:
            batch = [pending.popleft() for _ in range(min(len(pending), EVENTS_PER_MESSAGE))]
            try:
                await layer.group_send(
                    RETAINED_GROUP, {"type": "retained.changed.batch", "events": batch}
                )
            except Exception:
                logger.exception("could not forward retained events to the channel layer")

    def wake() -> None:
        loop.create_task(drain())

    def forward(event: events.RetainedChanged) -> None:
        pending.append(event.as_message())
        if not scheduled.is_set():
            scheduled.set()
            loop.call_soon_threadsafe(wake)

    return events.subscribe(forward)


async def join(channel_name: str) -> None:
    """Put a consumer's channel in the "retained" group."""
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_add(RETAINED_GROUP, channel_name)


async def leave(channel_name: str) -> None:
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_discard(RETAINED_GROUP, channel_name)


# --- events -> fragments ---------------------------------------------------------------------
#
# A watcher is what one open page needs to stay current. Its methods are synchronous (they
# read the store and render templates); consumers call them through database_sync_to_async.
# `sync()` renders the page's live parts once (on connect and on every reconnect, so nothing
# missed while disconnected stays stale); `update(events)` renders what a batch of
# retained.changed events changed ([] for nothing), None when the user may no longer watch.
#
# Each fragment goes out as its own WebSocket message: htmx parses a message inside a
# <template>, where a table row after a non-table element (or the reverse) is dropped by
# the HTML parser, so a row and the total count must not share a message.


class Watcher(Protocol):
    def allowed(self) -> bool: ...

    def sync(self) -> list[str]: ...

    def update(self, events: list[dict[str, Any]]) -> list[str] | None: ...


def _render(template: str, context: dict[str, Any]) -> str:
    return render_to_string(template, context).strip()


@dataclass
class ListWatcher:
    """An open list page: its search, sort, page size and cursor, and the rows it shows."""

    state: ListState
    principal: Principal
    hints: PublishHints
    page: ListPage | None = None
    total: int | None = None
    changes_elsewhere: int = 0

    def allowed(self) -> bool:
        access.refresh_if_stale()
        return gate.evaluate(self.principal, [gate.LIST], gate.LIST_RESOURCE).allowed

    def sync(self) -> list[str]:
        self.total = store.count_retained()
        self.page = fetch_page(self.state)
        return [self._body(self.page), self._pager(self.page), self._total(), self._changes_bar()]

    def update(self, events: list[dict[str, Any]]) -> list[str] | None:
        if not self.allowed():
            return None
        if self.page is None:
            return self.sync()
        search = self.state.search
        shown = self.page.topics
        affected = False
        elsewhere = 0
        for event in events:
            topic = event.get("topic", "")
            if topic in shown:
                affected = True
            elif search.may_match(topic):
                if event.get("change") == "set" and self._in_window(event):
                    affected = True
                else:
                    elsewhere += 1
        parts: list[str] = []
        total = store.count_retained()
        if total != self.total:
            self.total = total
            parts.append(self._total())
        if affected:
            fresh = fetch_page(self.state)
            parts.extend(self._diff(self.page, fresh))
            self.page = fresh
        if elsewhere:
            self.changes_elsewhere += elsewhere
            parts.append(self._changes_bar())
        return parts

    def _in_window(self, event: dict[str, Any]) -> bool:
        """Could a topic set just now belong between this page's first and last rows?
        (Errs towards yes: a yes only costs one page query.)"""
        assert self.page is not None
        rows = self.page.rows
        if not rows:
            return True
        order, ascending = SORTS[self.state.sort]
        if order == "topic":
            value: Any = event.get("topic", "")
            first: Any = rows[0].topic
            last: Any = rows[-1].topic
        else:
            value = event.get("last_modified_ms") or 0
            first, last = rows[0].last_modified_ms, rows[-1].last_modified_ms
        if not ascending:
            value, first, last = _Reversed(value), _Reversed(first), _Reversed(last)
        after_first = self.page.prev_cursor is None or value >= first
        before_last = self.page.next_cursor is None or value <= last
        return bool(after_first and before_last)

    def _diff(self, old: ListPage, new: ListPage) -> list[str]:
        """Row by row: removed rows deleted, new rows inserted after their predecessor,
        changed rows replaced (all with the row partial the page renders)."""
        parts: list[str] = []
        if not old.rows or not new.rows:
            return [self._body(new), self._pager(new)]
        before = {row.topic: row for row in old.rows}
        kept = {
            row.topic
            for row in new.rows
            if row.topic in before and before[row.topic].key == row.key
        }
        for row in old.rows:
            if row.topic not in kept:
                parts.append(_render(ROW_TEMPLATE, {"row": row, "oob": "delete"}))
        previous: RowView | None = None
        for row in new.rows:
            if row.topic not in kept:
                target = f"afterend:#{previous.dom_id}" if previous else "afterbegin:#retained-rows"
                parts.append(_render(ROW_INSERT_TEMPLATE, {"row": row, "target": target}))
            elif before[row.topic] != row:
                parts.append(_render(ROW_TEMPLATE, {"row": row, "oob": "true", "flash": True}))
            previous = row
        if (old.prev_cursor, old.next_cursor, old.budget_exhausted) != (
            new.prev_cursor,
            new.next_cursor,
            new.budget_exhausted,
        ):
            parts.append(self._pager(new))
        return parts

    def _body(self, page: ListPage) -> str:
        return _render(
            RESULTS_BODY_TEMPLATE,
            {
                "page": page,
                "state": self.state,
                "total": self.total,
                "hints": self.hints,
                "oob": True,
            },
        )

    def _pager(self, page: ListPage) -> str:
        return _render(PAGER_TEMPLATE, {"page": page, "oob": True})

    def _total(self) -> str:
        return _render(TOTAL_TEMPLATE, {"total": self.total, "oob": True})

    def _changes_bar(self) -> str:
        return _render(
            CHANGES_BAR_TEMPLATE,
            {"changes": self.changes_elsewhere, "state": self.state, "oob": True},
        )


@dataclass
class DetailWatcher:
    """An open detail page: one topic, shown one way (JSON / text / hex)."""

    topic: str
    mode: str
    principal: Principal
    deleted: bool = False

    def allowed(self) -> bool:
        if validate_topic(self.topic) is not None:
            return False
        access.refresh_if_stale()
        resource = gate.resource_of(self.topic)
        return gate.evaluate(self.principal, [gate.GET], resource).allowed

    def sync(self) -> list[str]:
        message = store.get_retained(self.topic, touch=False)
        if message is None:
            self.deleted = True
            return [_render(DELETED_BANNER_TEMPLATE, {"deleted": True, "oob": True})]
        return self._message(message, flash=False)

    def update(self, events: list[dict[str, Any]]) -> list[str] | None:
        if not any(event.get("topic") == self.topic for event in events):
            return []
        if not self.allowed():
            return None
        message = store.get_retained(self.topic, touch=False)
        if message is None:
            if self.deleted:
                return []
            self.deleted = True
            return [_render(DELETED_BANNER_TEMPLATE, {"deleted": True, "oob": True})]
        return self._message(message, flash=True)

    def _message(self, message: store.StoredMessage, *, flash: bool) -> list[str]:
        parts = []
        if self.deleted:
            self.deleted = False
            parts.append(_render(DELETED_BANNER_TEMPLATE, {"deleted": False, "oob": True}))
        context = detail_context(message, self.mode)
        parts.append(_render(DETAIL_BODY_TEMPLATE, {**context, "oob": True, "flash": flash}))
        return parts


class _Reversed:
    """Wraps a value so comparisons run backwards (descending sorts)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __ge__(self, other: _Reversed) -> bool:
        return bool(self.value <= other.value)

    def __le__(self, other: _Reversed) -> bool:
        return bool(self.value >= other.value)
