"""The event feed: run events delivered to subscribers in this process, as they happen.

Every change is journaled in the store (`events`), by whichever process made it; the feed
reads that log after a cursor and hands each event to the subscriptions it matches. So a
subscriber sees every status a run passes through, in order, whether a worker in another
process or this process made the change. One reader thread per engine runs while anyone
subscribes: it looks again at once when this process's engine commits a change (`kick`),
and otherwise every `poll_seconds` (changes made by other processes).

    with engine.feed.subscribe(run_id) as subscription:
        async for event in subscription:
            ...
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Self

from ..store.records import EventRecord

log = logging.getLogger("taskloom.internal.feed")

BATCH = 1000


class Subscription:
    """Events of one run (or of every run) from a cursor on, as an async iterator."""

    def __init__(self, feed: EventFeed, run_id: str | None, after_id: int) -> None:
        self.feed = feed
        self.run_id = run_id
        self.after_id = after_id
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[EventRecord | BaseException] | None = None
        self._pending: list[EventRecord | BaseException] = []
        self._lock = threading.Lock()

    def deliver(self, item: EventRecord | BaseException) -> None:
        """Hand an event (or the error that stopped the feed) to the subscriber."""
        with self._lock:
            if self._queue is None or self._loop is None:
                self._pending.append(item)
                return
            loop, queue = self._loop, self._queue
        loop.call_soon_threadsafe(queue.put_nowait, item)

    def __aiter__(self) -> AsyncIterator[EventRecord]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[EventRecord]:
        with self._lock:
            self._loop = asyncio.get_running_loop()
            self._queue = asyncio.Queue()
            for item in self._pending:
                self._queue.put_nowait(item)
            self._pending.clear()
            queue = self._queue
        while True:
            item = await queue.get()
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        """Stop receiving events."""
        self.feed.unsubscribe(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class EventFeed:
    """Reads the run event log after a cursor and delivers to subscriptions."""

    def __init__(
        self,
        read_after: Callable[[int, int], list[EventRecord]],
        last_id: Callable[[], int],
        *,
        poll_seconds: float = 0.05,
    ) -> None:
        self._read_after = read_after
        self._last_id = last_id
        self.poll_seconds = poll_seconds
        self._subscriptions: set[Subscription] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._cursor = 0

    def subscribe(self, run_id: str | None = None, *, after_id: int | None = None) -> Subscription:
        """Events of `run_id` (None: every run) after `after_id` (default: from now on)."""
        start = self._last_id() if after_id is None else after_id
        subscription = Subscription(self, run_id, start)
        with self._lock:
            self._subscriptions.add(subscription)
            if self._thread is None or not self._thread.is_alive():
                self._cursor = start
                self._thread = threading.Thread(target=self._run, name="taskloom-feed", daemon=True)
                self._thread.start()
            else:
                self._cursor = min(self._cursor, start)
        self._wake.set()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Forget a subscription (the reader stops when none is left)."""
        with self._lock:
            self._subscriptions.discard(subscription)
        self._wake.set()

    def kick(self) -> None:
        """This process committed events: read them now rather than at the next poll."""
        if self._subscriptions:
            self._wake.set()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._subscriptions:
                    self._thread = None
                    return
                cursor = self._cursor
            try:
                events = self._read_after(cursor, BATCH)
            except Exception as error:  # the store is gone or broken: tell subscribers
                log.exception("the event feed could not read events")
                self._fail(error)
                return
            if events:
                self._dispatch(events)
            if len(events) < BATCH:
                self._wake.wait(self.poll_seconds)
                self._wake.clear()

    def _dispatch(self, events: list[EventRecord]) -> None:
        with self._lock:
            subscriptions = list(self._subscriptions)
            self._cursor = events[-1].id
        for event in events:
            for subscription in subscriptions:
                if event.id > subscription.after_id and (
                    subscription.run_id is None or subscription.run_id == event.run_id
                ):
                    subscription.after_id = event.id
                    subscription.deliver(event)

    def _fail(self, error: BaseException) -> None:
        with self._lock:
            subscriptions = list(self._subscriptions)
            self._subscriptions.clear()
            self._thread = None
        for subscription in subscriptions:
            subscription.deliver(error)
