"""Group commit: one thread applies the broker's database work in batches.

The event loop never blocks on the database. Retained writes and session operations are
queued in arrival order; the thread takes everything queued (up to a batch size), applies it
in ONE transaction, commits, then resolves each caller's future in order. A QoS 1 PUBACK is
sent only when its future resolves, i.e. after the commit.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import close_old_connections, connection, transaction

from retained import store

logger = logging.getLogger(__name__)

_STOP = object()


@dataclass(slots=True)
class _Item:
    future: asyncio.Future[Any] | None
    retained: store.RetainedWrite | None = None
    operation: Callable[[], Any] | None = None
    notify: Callable[[], None] | None = None


class DatabaseWriter:
    def __init__(self, loop: asyncio.AbstractEventLoop, *, max_batch: int = 2000) -> None:
        self._loop = loop
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="retained-db-writer", daemon=True)
        self.batches = 0
        self.items = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Apply everything queued so far, then stop the thread."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout)

    def submit_retained(
        self, write: store.RetainedWrite, *, notify: Callable[[], None] | None = None
    ) -> asyncio.Future[Any]:
        """Future of store.Written | None (cleared) | the store's refusal (an Exception).
        `notify` is called on the loop once per batch that resolved any of its writes (after
        all of that batch's futures are set): cheaper than a done-callback per future."""
        future: asyncio.Future[Any] = self._loop.create_future()
        self._queue.put(_Item(future=future, retained=write, notify=notify))
        return future

    def submit(
        self, operation: Callable[[], Any], *, wait: bool = True
    ) -> asyncio.Future[Any] | None:
        """Run `operation` inside the next batch's transaction; its result or exception."""
        future: asyncio.Future[Any] | None = self._loop.create_future() if wait else None
        self._queue.put(_Item(future=future, operation=operation))
        return future

    def _run(self) -> None:
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                batch = [first]
                stop = False
                while len(batch) < self._max_batch:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop = True
                        break
                    batch.append(item)
                self._apply(batch)
                if stop:
                    return
        finally:
            connection.close()

    def _apply(self, batch: list[_Item]) -> None:
        close_old_connections()
        results: list[Any] = [None] * len(batch)
        try:
            with transaction.atomic():
                pending: list[int] = []
                for index, item in enumerate(batch):
                    if item.retained is not None:
                        pending.append(index)
                        continue
                    self._flush_retained(batch, pending, results)
                    pending = []
                    results[index] = self._run_operation(item)
                self._flush_retained(batch, pending, results)
        except Exception as error:  # the commit itself failed: nothing in the batch is durable
            logger.exception("database batch of %d failed", len(batch))
            results = [error] * len(batch)
        self.batches += 1
        self.items += len(batch)
        self._loop.call_soon_threadsafe(_resolve, batch, results)

    @staticmethod
    def _flush_retained(batch: list[_Item], indexes: list[int], results: list[Any]) -> None:
        if not indexes:
            return
        writes = [batch[i].retained for i in indexes]
        outcomes = store.set_retained_many([w for w in writes if w is not None])
        for index, outcome in zip(indexes, outcomes, strict=True):
            results[index] = outcome

    @staticmethod
    def _run_operation(item: _Item) -> Any:
        assert item.operation is not None
        try:
            with transaction.atomic():
                return item.operation()
        except Exception as error:
            logger.exception("database operation failed")
            return error


def _resolve(batch: list[_Item], results: list[Any]) -> None:
    notify: dict[Callable[[], None], None] = {}
    for item, result in zip(batch, results, strict=True):
        if item.future is not None and not item.future.done():
            item.future.set_result(result)
        if item.notify is not None:
            notify[item.notify] = None
    for callback in notify:
        try:
            callback()
        except Exception:
            logger.exception("a commit callback failed")
