"""The list page's state (search, sort, page size, cursor) and the page it shows.

Shared by the list view and the live layer: the consumer is told the same query string the
page was rendered from, and rebuilds the same page with `fetch_page` when a change may touch
it. Cursors are opaque (signed) keyset positions; a cursor that does not verify, or belongs
to another sort, is ignored (first page).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from urllib.parse import urlencode

from django.conf import settings
from django.core import signing

from console.views.links import LIST_URL, detail_url, row_dom_id
from console.views.timefmt import exact_utc, relative
from retained import store
from retained.store import ConsoleKey, ConsoleRow
from retained.topics import (
    InvalidTopicError,
    is_wildcard_filter,
    topic_matches,
    validate_topic_filter,
)

# sort parameter -> (store order, ascending)
SORTS: dict[str, tuple[str, bool]] = {
    "topic": ("topic", True),
    "-topic": ("topic", False),
    "updated": ("updated", True),
    "-updated": ("updated", False),
}
DEFAULT_SORT = "topic"
PAGE_SIZES = (10, 25, 50, 100)
DEFAULT_PAGE_SIZE = 25
MAX_QUERY_LENGTH = 512
CURSOR_SALT = "console.retained.list-cursor"
WS_URL = "/ws/retained/"


@dataclass(frozen=True, slots=True)
class Search:
    """What the search box asks for: a topic substring, or an MQTT topic filter when the
    text has a '+' or '#' level and is a valid filter."""

    text: str = ""
    topic_filter: str = ""

    @classmethod
    def parse(cls, text: str) -> Search:
        if not text:
            return cls()
        if ("+" in text or "#" in text) and not text.startswith("$share/"):
            try:
                validate_topic_filter(text, limits=store.topic_limits(settings.RETAINED_LIMITS))
            except InvalidTopicError:
                return cls(text=text)
            if is_wildcard_filter(text):
                return cls(text=text, topic_filter=text)
        return cls(text=text)

    @property
    def is_filter(self) -> bool:
        return bool(self.topic_filter)

    @property
    def contains(self) -> str:
        return "" if self.topic_filter else self.text

    def may_match(self, topic: str) -> bool:
        """Could `topic` be in the results? (The substring test is case-insensitive like the
        database's, and errs towards yes: it only decides whether to look again.)"""
        if self.topic_filter:
            return topic_matches(self.topic_filter, topic)
        return not self.text or self.text.casefold() in topic.casefold()


@dataclass(frozen=True, slots=True)
class ListState:
    """The list page as its URL says: ?q=&sort=&size=&cursor="""

    q: str = ""
    sort: str = DEFAULT_SORT
    size: int = DEFAULT_PAGE_SIZE
    cursor: str = ""

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> ListState:
        """Lenient: anything unknown falls back to the default."""
        q = (params.get("q") or "").strip()[:MAX_QUERY_LENGTH]
        sort = params.get("sort") or DEFAULT_SORT
        if sort not in SORTS:
            sort = DEFAULT_SORT
        try:
            size = int(params.get("size") or DEFAULT_PAGE_SIZE)
        except ValueError:
            size = DEFAULT_PAGE_SIZE
        if size not in PAGE_SIZES:
            size = DEFAULT_PAGE_SIZE
        return cls(q=q, sort=sort, size=size, cursor=(params.get("cursor") or "")[:2048])

    @property
    def search(self) -> Search:
        return Search.parse(self.q)

    def params(self) -> dict[str, str]:
        """The non-default values, as query parameters."""
        values: dict[str, str] = {}
        if self.q:
            values["q"] = self.q
        if self.sort != DEFAULT_SORT:
            values["sort"] = self.sort
        if self.size != DEFAULT_PAGE_SIZE:
            values["size"] = str(self.size)
        if self.cursor:
            values["cursor"] = self.cursor
        return values

    def query_string(self) -> str:
        return urlencode(self.params())

    def url(self) -> str:
        query = self.query_string()
        return LIST_URL + ("?" + query if query else "")

    def ws_url(self) -> str:
        query = self.query_string()
        return WS_URL + ("?" + query if query else "")

    def with_cursor(self, cursor: str) -> ListState:
        return replace(self, cursor=cursor)

    def sort_url(self, column: str) -> str:
        """Sorting by `column` ("topic" / "updated"); again on the same column flips it."""
        sort = "-" + column if self.sort == column else column
        return replace(self, sort=sort, cursor="").url()

    def sort_indicator(self, column: str) -> str:
        """The aria-sort value of a column header."""
        if self.sort == column:
            return "ascending"
        if self.sort == "-" + column:
            return "descending"
        return "none"

    @property
    def sort_links(self) -> dict[str, dict[str, str]]:
        """Per sortable column: its URL and aria-sort (templates cannot pass arguments)."""
        return {
            column: {"url": self.sort_url(column), "aria": self.sort_indicator(column)}
            for column in ("topic", "updated")
        }


def encode_cursor(sort: str, key: ConsoleKey, *, backwards: bool) -> str:
    # A plain Signer (no timestamp): the same position always gets the same cursor.
    return signing.Signer(salt=CURSOR_SALT).sign_object(
        {"s": sort, "b": int(backwards), "k": list(key)}
    )


def decode_cursor(cursor: str, sort: str) -> tuple[bool, ConsoleKey] | None:
    """(backwards, key), or None for a cursor this server did not issue for this sort."""
    if not cursor:
        return None
    try:
        data = signing.Signer(salt=CURSOR_SALT).unsign_object(cursor)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or data.get("s") != sort:
        return None
    key = data.get("k")
    order = SORTS[sort][0]
    if order == "topic":
        if not (isinstance(key, list) and len(key) == 1 and isinstance(key[0], str)):
            return None
    elif not (isinstance(key, list) and len(key) == 2 and all(type(k) is int for k in key)):
        return None
    return bool(data.get("b")), tuple(key)


@dataclass(frozen=True, slots=True)
class RowView:
    """One row of the list, as the row partial renders it."""

    topic: str
    qos: int
    payload_size: int
    last_modified_ms: int
    expires_at: datetime | None
    key: ConsoleKey

    @classmethod
    def of(cls, row: ConsoleRow, order: str) -> RowView:
        return cls(
            topic=row.topic,
            qos=row.qos,
            payload_size=row.payload_size,
            last_modified_ms=row.last_modified_ms,
            expires_at=row.expires_at,
            key=row.key(order),
        )

    @property
    def dom_id(self) -> str:
        return row_dom_id(self.topic)

    @property
    def href(self) -> str:
        return detail_url(self.topic)

    @property
    def last_modified(self) -> datetime:
        return datetime.fromtimestamp(self.last_modified_ms / 1000, tz=UTC)

    @property
    def last_modified_relative(self) -> str:
        return relative(self.last_modified)

    @property
    def last_modified_exact(self) -> str:
        return exact_utc(self.last_modified)

    @property
    def expires_relative(self) -> str:
        return relative(self.expires_at) if self.expires_at else ""

    @property
    def expires_exact(self) -> str:
        return exact_utc(self.expires_at) if self.expires_at else ""


@dataclass(frozen=True, slots=True)
class ListPage:
    state: ListState
    rows: tuple[RowView, ...]
    prev_cursor: str | None
    next_cursor: str | None
    budget_exhausted: bool = False

    @property
    def prev_url(self) -> str | None:
        return None if self.prev_cursor is None else self.state.with_cursor(self.prev_cursor).url()

    @property
    def next_url(self) -> str | None:
        return None if self.next_cursor is None else self.state.with_cursor(self.next_cursor).url()

    @property
    def first_url(self) -> str:
        return self.state.with_cursor("").url()

    @property
    def topics(self) -> frozenset[str]:
        return frozenset(row.topic for row in self.rows)


def fetch_page(state: ListState) -> ListPage:
    """The rows the state's URL shows (sync; one or a few indexed queries)."""
    order, ascending = SORTS[state.sort]
    search = state.search
    position = decode_cursor(state.cursor, state.sort)

    def walk(*, forwards: bool, after: ConsoleKey | None) -> store.ConsolePage:
        return store.console_page(
            order=order,
            forwards=forwards,
            limit=state.size,
            after=after,
            contains=search.contains,
            topic_filter=search.topic_filter,
        )

    def encode(key: ConsoleKey | None, *, backwards: bool) -> str | None:
        return None if key is None else encode_cursor(state.sort, key, backwards=backwards)

    def views(rows: list[ConsoleRow]) -> tuple[RowView, ...]:
        return tuple(RowView.of(row, order) for row in rows)

    if position is not None and position[0]:  # a "previous" page: walk backwards from the key
        page = walk(forwards=not ascending, after=position[1])
        rows = list(reversed(page.rows))
        if page.resume_after is None and len(rows) < state.size:
            return fetch_page(state.with_cursor(""))  # reached the start: the first page
        return ListPage(
            state=state,
            rows=views(rows),
            prev_cursor=encode(page.resume_after, backwards=True),
            next_cursor=encode(rows[-1].key(order), backwards=False) if rows else None,
            budget_exhausted=page.budget_exhausted,
        )
    after = position[1] if position is not None else None
    page = walk(forwards=ascending, after=after)
    if after is not None and not page.rows and not page.budget_exhausted:
        # Past the end (rows were deleted since): show the last page instead.
        last = walk(forwards=not ascending, after=None)
        rows = list(reversed(last.rows))
        return ListPage(
            state=state,
            rows=views(rows),
            prev_cursor=encode(last.resume_after, backwards=True),
            next_cursor=None,
        )
    first_key = page.rows[0].key(order) if page.rows else after
    return ListPage(
        state=state,
        rows=views(page.rows),
        prev_cursor=encode(first_key, backwards=True) if after is not None else None,
        next_cursor=encode(page.resume_after, backwards=False),
        budget_exhausted=page.budget_exhausted,
    )
