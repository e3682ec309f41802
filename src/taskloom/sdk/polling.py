"""Waiting for a run to change, by polling the client (`run_retrieve`) with a growing
interval."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from ..errors import TaskloomError
from ..types import Run
from .client import current_client

FIRST_INTERVAL = 0.005
MAX_INTERVAL = 0.25


class RunTimeoutError(TaskloomError, TimeoutError):
    """A wait for a run to finish ran out of time."""


def _timeout_error(run: Run, timeout: float) -> RunTimeoutError:
    return RunTimeoutError(
        f"run {run.id} of task {run.task_id!r} is still {run.status.value} after {timeout} s"
    )


def poll_until_final(run_id: str, timeout: float | None) -> Run:
    """Block until the run is final; RunTimeoutError after `timeout` seconds."""
    client = current_client()
    deadline = None if timeout is None else time.monotonic() + timeout
    interval = FIRST_INTERVAL
    while True:
        run = client.run_retrieve(run_id)
        if run.is_completed:
            return run
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _timeout_error(run, timeout or 0)
            interval = min(interval, left)
        time.sleep(interval)
        interval = min(interval * 1.5, MAX_INTERVAL)


async def apoll_until_final(run_id: str, timeout: float | None) -> Run:
    """Async twin of `poll_until_final`."""
    deadline = None if timeout is None else time.monotonic() + timeout
    interval = FIRST_INTERVAL
    while True:
        run = await asyncio.to_thread(current_client().run_retrieve, run_id)
        if run.is_completed:
            return run
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _timeout_error(run, timeout or 0)
            interval = min(interval, left)
        await asyncio.sleep(interval)
        interval = min(interval * 1.5, MAX_INTERVAL)


async def subscribe(run_id: str) -> AsyncIterator[Run]:
    """Yield the run now and after every change (every status it passes through, from the
    engine's event log), until it is final."""
    async for snapshot in current_client().run_watch(run_id):
        yield snapshot
