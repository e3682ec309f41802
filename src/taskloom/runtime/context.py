"""`Context`: what a run knows about itself, and the cancel signal.

A Context is frozen at attempt start (as Trigger.dev's `ctx`). `ctx.signal` is live.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from datetime import datetime
from typing import Any

import msgspec


class CancelSignal:
    """Fires when the run is cancelled or exceeds its max duration.

    Check `signal.aborted` in a loop, or `await signal.wait()`; both work from async code
    and (`aborted` only) from sync code running in a thread. The executor fires it from
    its event loop thread.
    """

    __slots__ = ("_aborted", "_reason", "_waiters")

    def __init__(self) -> None:
        self._aborted = False
        self._reason: str | None = None
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] | None = None

    @property
    def aborted(self) -> bool:
        """True once the signal has fired."""
        return self._aborted

    @property
    def reason(self) -> str | None:
        """Why it fired ("cancel: ..." or "max_duration: ..."), None before."""
        return self._reason

    def abort(self, reason: str) -> None:
        """Fire the signal (called by the executor). Later calls keep the first reason."""
        if self._aborted:
            return
        self._reason = reason
        self._aborted = True
        waiters, self._waiters = self._waiters or [], None
        for loop, future in waiters:
            loop.call_soon_threadsafe(_resolve, future)

    async def wait(self) -> str:
        """Wait until the signal fires; return its reason."""
        if not self._aborted:
            loop = asyncio.get_running_loop()
            future: asyncio.Future[None] = loop.create_future()
            if self._waiters is None:
                self._waiters = []
            self._waiters.append((loop, future))
            await future
        return self._reason or ""

    def __repr__(self) -> str:
        return f"CancelSignal(aborted={self._aborted}, reason={self._reason!r})"


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class AttemptInfo(msgspec.Struct, frozen=True):
    """`ctx.attempt` and `ctx.run.attempt`."""

    number: int
    started_at: datetime | None = None


class RunInfo(msgspec.Struct, frozen=True):
    """`ctx.run`."""

    id: str
    attempt: AttemptInfo
    tags: tuple[str, ...]
    is_test: bool
    is_replay: bool
    created_at: datetime
    idempotency_key: str | None
    max_attempts: int
    max_duration: int | None
    parent_run_id: str | None
    root_run_id: str | None
    depth: int = 0
    replayed_from: str | None = None


class TaskInfo(msgspec.Struct, frozen=True):
    """`ctx.task`."""

    id: str
    file_path: str | None = None


class QueueInfo(msgspec.Struct, frozen=True):
    """`ctx.queue`."""

    name: str


class MachineInfo(msgspec.Struct, frozen=True):
    """`ctx.machine`: the preset the attempt runs on (vCPU and GB of memory)."""

    name: str
    cpu: float
    memory: float


class EnvironmentInfo(msgspec.Struct, frozen=True):
    """`ctx.environment`."""

    type: str


class Context(msgspec.Struct, frozen=True):
    """Everything a run knows about itself. Passed as `ctx` to `run` and to hooks."""

    run: RunInfo
    attempt: AttemptInfo
    task: TaskInfo
    queue: QueueInfo
    machine: MachineInfo
    environment: EnvironmentInfo
    signal: CancelSignal
    init: Any = None


current_context: ContextVar[Context | None] = ContextVar("taskloom_context", default=None)


def get_context() -> Context | None:
    """The Context of the run executing in this task or thread, if any."""
    return current_context.get()
