"""Watching one run: a snapshot now, then one after every change, until it is final.

The first snapshot and the event cursor are read in one consistent read, so every event
after the cursor is a change after that snapshot: nothing is missed or shown twice. Each
status event yields the run as it is, with the status (and attempt) of that moment: a run
already further along shows, in the snapshot of an earlier moment, neither its output nor
its error nor its finish time. A metadata change yields the run again. A status event
that records several changes in one transaction (`via`) yields a snapshot for each.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson

from ..types import Run, RunStatus
from .events import METADATA, STATUS

if TYPE_CHECKING:
    from .engine import Engine


def at_moment(run: Run, status: RunStatus, attempt: int | None) -> Run:
    """`run` with the status (and attempt) a status event recorded."""
    if run.status is status:
        return run
    moment: dict[str, Any] = {"status": status}
    if attempt is not None:
        moment["attempt_count"] = attempt
    if not status.is_final:
        moment.update(output=None, error=None, finished_at=None)
    return dataclasses.replace(run, **moment)


async def watch_run(engine: Engine, run_id: str) -> AsyncIterator[Run]:
    """Yield the run now and after each of its changes, until it is final."""
    cursor, first = await asyncio.to_thread(engine.retrieve_with_cursor, run_id)
    yield first
    if first.is_completed:
        return
    status, attempt = first.status, first.attempt_count
    with engine.feed.subscribe(run_id, after_id=cursor) as subscription:
        async for event in subscription:
            if event.kind == STATUS:
                data = orjson.loads(event.data)
                attempt = event.attempt if event.attempt is not None else attempt
                passed = [RunStatus(s) for s in data.get("via", ())]
                status = RunStatus(data["status"])
            elif event.kind == METADATA:
                passed = []
            else:
                continue
            current = await asyncio.to_thread(engine.retrieve, run_id)
            for moment in passed:  # statuses it went through within one transaction
                yield at_moment(current, moment, attempt)
            snapshot = at_moment(current, status, attempt)
            yield snapshot
            if snapshot.is_completed:
                return
