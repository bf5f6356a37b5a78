"""Channels consumers: one per open list or detail page, pushing htmx out-of-band fragments.

A consumer is thin: it checks the session user, builds the page's watcher from the query
string the page put on the WebSocket URL, joins the "retained" group through console.live,
and hands batches of retained.changed events to the watcher (in a worker thread, since it
reads the store). Events are coalesced for a moment so a burst costs one page query.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from urllib.parse import parse_qsl

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from console import live
from console.views.gate import principal_of
from console.views.hints import PublishHints
from console.views.listing import ListState
from console.views.payloads import MODES

logger = logging.getLogger(__name__)

# Long enough to gather a burst into one update, short enough to stay well under a second.
COALESCE_SECONDS = 0.1
MAX_PENDING_EVENTS = 10_000
POLICY_CLOSE_CODE = 4403


class LiveConsumer(AsyncWebsocketConsumer):
    """Shared life cycle of the live pages; subclasses say which watcher they need."""

    watcher: live.Watcher

    async def connect(self) -> None:
        self.pending: list[dict[str, Any]] = []
        self.overflowed = False
        self.flusher: asyncio.Task[None] | None = None
        self.joined = False
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close()
            return
        self.watcher = self.make_watcher(user, dict(parse_qsl(self.query_string())))
        if not await database_sync_to_async(self.watcher.allowed)():
            await self.close(code=POLICY_CLOSE_CODE)
            return
        await live.join(self.channel_name)
        self.joined = True
        await self.accept()
        await self.send_fragments(await database_sync_to_async(self.watcher.sync)())

    def make_watcher(self, user: Any, params: dict[str, str]) -> live.Watcher:
        raise NotImplementedError

    def query_string(self) -> str:
        raw = self.scope.get("query_string", b"")
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)

    def header(self, name: bytes) -> str:
        for key, value in self.scope.get("headers", []):
            if key.lower() == name:
                return bytes(value).decode("latin-1")
        return ""

    async def disconnect(self, code: int) -> None:
        if getattr(self, "joined", False):
            await live.leave(self.channel_name)
            self.joined = False
        flusher = getattr(self, "flusher", None)
        if flusher is not None:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The pages only listen."""

    async def retained_changed_batch(self, message: dict[str, Any]) -> None:
        """Events from console.live, several per channel-layer message."""
        room = MAX_PENDING_EVENTS - len(self.pending)
        events = message["events"]
        self.pending.extend(events[: max(room, 0)])
        if len(events) > room:
            self.overflowed = True  # too far behind: the next flush re-renders everything
        if self.flusher is None or self.flusher.done():
            self.flusher = asyncio.create_task(self.flush())

    async def flush(self) -> None:
        while self.pending:
            await asyncio.sleep(COALESCE_SECONDS)
            batch, self.pending = self.pending, []
            resync, self.overflowed = self.overflowed, False
            try:
                if resync and await database_sync_to_async(self.watcher.allowed)():
                    fragments: list[str] | None = await database_sync_to_async(self.watcher.sync)()
                else:
                    fragments = await database_sync_to_async(self.watcher.update)(batch)
            except Exception:
                logger.exception("could not render a live update")
                continue
            if fragments is None:  # no longer allowed to watch this page
                await self.close(code=POLICY_CLOSE_CODE)
                return
            await self.send_fragments(fragments)

    async def send_fragments(self, fragments: list[str]) -> None:
        """One message per fragment (see console.live: rows must travel alone)."""
        for fragment in fragments:
            await self.send(text_data=fragment)


class RetainedListConsumer(LiveConsumer):
    """/ws/retained/?q=&sort=&size=&cursor= (the list page's own query string)."""

    def make_watcher(self, user: Any, params: dict[str, str]) -> live.Watcher:
        hints = PublishHints.for_host(
            self.header(b"host"), secure=self.scope.get("scheme") == "wss"
        )
        return live.ListWatcher(
            state=ListState.parse(params), principal=principal_of(user), hints=hints
        )


class RetainedDetailConsumer(LiveConsumer):
    """/ws/retained/detail/?topic=&view="""

    def make_watcher(self, user: Any, params: dict[str, str]) -> live.Watcher:
        mode = params.get("view", "")
        return live.DetailWatcher(
            topic=params.get("topic", ""),
            mode=mode if mode in MODES else "",
            principal=principal_of(user),
        )
