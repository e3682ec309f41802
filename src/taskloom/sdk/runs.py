"""The `runs` namespace: read, list, cancel, replay, reschedule and wait for runs, read their
events and change their metadata from outside them. Every call goes through the client."""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator, Iterable
from datetime import datetime, timedelta
from typing import Any

from ..clock import now_ms
from ..durations import parse_duration
from ..errors import InvalidOptionError
from ..types import Run, RunEvent, RunStatus
from .client import RunQuery, current_client
from .handles import RunHandle
from .polling import apoll_until_final, poll_until_final
from .polling import subscribe as _subscribe

MAX_LIST_LIMIT = 1000


def _id(run: str | RunHandle | Run) -> str:
    return run if isinstance(run, str) else run.id


def _statuses(status: str | RunStatus | Iterable[str | RunStatus] | None) -> tuple[str, ...]:
    if status is None:
        return ()
    values = [status] if isinstance(status, str) else list(status)
    result = []
    for value in values:
        try:
            result.append(RunStatus(str(value).upper()).value)
        except ValueError:
            valid = ", ".join(s.value for s in RunStatus)
            raise InvalidOptionError(f"unknown run status {value!r}; valid: {valid}") from None
    return tuple(result)


def _since_ms(since: datetime | timedelta | str | float | None) -> int | None:
    if since is None:
        return None
    if isinstance(since, datetime):
        if since.tzinfo is None:
            raise InvalidOptionError(f"since must be an aware datetime, got {since!r}")
        return int(since.timestamp() * 1000)
    seconds = parse_duration(since, what="runs.list(since=...)")
    return now_ms() - round(seconds * 1000)


class Runs:
    """Operations on runs. Every sync method has an `a`-prefixed async twin."""

    def retrieve(self, run: str | RunHandle | Run) -> Run:
        """A run by id (or handle), with its attempts. RunNotFoundError if it does not exist."""
        return current_client().run_retrieve(_id(run))

    def list(
        self,
        *,
        status: str | RunStatus | Iterable[str | RunStatus] | None = None,
        task: str | Iterable[str] | None = None,
        tag: str | None = None,
        since: datetime | timedelta | str | float | None = None,
        limit: int = 50,
    ) -> list[Run]:
        """Runs, newest first. `since` is a datetime or a duration ("1h") back from now."""
        if (
            isinstance(limit, bool)
            or not isinstance(limit, int)
            or not (1 <= limit <= MAX_LIST_LIMIT)
        ):
            raise InvalidOptionError(
                f"limit must be an integer from 1 to {MAX_LIST_LIMIT}, got {limit!r}"
            )
        tasks = () if task is None else ((task,) if isinstance(task, str) else tuple(task))
        query = RunQuery(
            statuses=_statuses(status),
            task_ids=tasks,
            tag=tag,
            since_ms=_since_ms(since),
            limit=limit,
        )
        return current_client().run_list(query)

    def cancel(self, run: str | RunHandle | Run) -> Run:
        """Cancel a run that has not finished; returns it afterwards.

        Queued and delayed runs are cancelled at once. An executing run is marked
        CANCELED and its worker stops the attempt. Final runs are left as they are.
        """
        return current_client().run_cancel(_id(run)).run

    def replay(self, run: str | RunHandle | Run) -> RunHandle:
        """Trigger a new run of the same task with the same payload and tags."""
        return RunHandle.of(current_client().run_replay(_id(run)))

    def reschedule(self, run: str | RunHandle | Run, *, delay: Any) -> Run:
        """Move a DELAYED run's start (`delay` as for trigger: "1h", seconds, datetime)."""
        return current_client().run_reschedule(_id(run), delay)

    def events(
        self, run: str | RunHandle | Run, *, after_id: int = 0, limit: int = 1000
    ) -> builtins.list[RunEvent]:
        """A run's events (log lines, span starts and ends, hook calls), oldest first;
        page through long logs with `after_id=<the last id seen>`.

        >>> [e.data["message"] for e in runs.events(handle) if e.kind == "log"]  # doctest: +SKIP
        """
        return current_client().run_events(_id(run), after_id=after_id, limit=limit)

    def update_metadata(
        self, run: str | RunHandle | Run, metadata: dict[str, Any]
    ) -> dict[str, Any]:
        """Replace a run's metadata from outside the run (JSON, at most 256 KB); returns
        it as stored. A run that is executing keeps its own copy: what it sets later
        (`metadata.set(...)`) is applied over the stored metadata when it is written."""
        if not isinstance(metadata, dict):
            raise InvalidOptionError(f"runs.update_metadata needs a dict, got {metadata!r}")
        return current_client().run_metadata_update(_id(run), [["replace", None, metadata]])

    def poll(self, run: str | RunHandle | Run, timeout: float | None = None) -> Run:
        """Wait until the run is final and return it (RunTimeoutError after `timeout`)."""
        return poll_until_final(_id(run), timeout)

    async def subscribe(self, run: str | RunHandle | Run) -> AsyncIterator[Run]:
        """Yield the run now and after every change until it is final: each status it
        passes through (a retried run shows QUEUED, DEQUEUED, EXECUTING again), and each
        metadata update. Snapshots of moments it has moved past show that moment's status
        and attempt, without a later output or error."""
        async for snapshot in _subscribe(_id(run)):
            yield snapshot

    async def aretrieve(self, run: str | RunHandle | Run) -> Run:
        """Async twin of `retrieve`."""
        return await asyncio.to_thread(self.retrieve, run)

    async def alist(self, **filters: Any) -> builtins.list[Run]:
        """Async twin of `list`."""
        return await asyncio.to_thread(lambda: self.list(**filters))

    async def acancel(self, run: str | RunHandle | Run) -> Run:
        """Async twin of `cancel`."""
        return await asyncio.to_thread(self.cancel, run)

    async def areplay(self, run: str | RunHandle | Run) -> RunHandle:
        """Async twin of `replay`."""
        return await asyncio.to_thread(self.replay, run)

    async def areschedule(self, run: str | RunHandle | Run, *, delay: Any) -> Run:
        """Async twin of `reschedule`."""
        return await asyncio.to_thread(lambda: self.reschedule(run, delay=delay))

    async def apoll(self, run: str | RunHandle | Run, timeout: float | None = None) -> Run:
        """Async twin of `poll`."""
        return await apoll_until_final(_id(run), timeout)

    async def aevents(
        self, run: str | RunHandle | Run, *, after_id: int = 0, limit: int = 1000
    ) -> builtins.list[RunEvent]:
        """Async twin of `events`."""
        return await asyncio.to_thread(lambda: self.events(run, after_id=after_id, limit=limit))

    async def aupdate_metadata(
        self, run: str | RunHandle | Run, metadata: dict[str, Any]
    ) -> dict[str, Any]:
        """Async twin of `update_metadata`."""
        return await asyncio.to_thread(self.update_metadata, run, metadata)


runs = Runs()
