"""What SDK calls made inside a run need from the attempt running them.

The executor binds one `AttemptRuntime` per attempt into `current_attempt`. Every wait and
every child trigger made by the run takes the next sequence number; what it did is
recorded in the store under (run, attempt, sequence number), so that a run replayed from
the top (its worker died while it waited) gets each completed wait's result at once and
finds the children it already triggered, instead of doing them again.

Those steps talk to the engine the attempt was given (`AttemptRuntime.engine`: whoever
runs the attempt provides it, the worker's executor one per process), never to the
sdk's client.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from ..engine.engine import Engine
from ..engine.records import RecordedWait, WaitRef
from ..errors import AbortTaskRunError, TaskloomError
from .context import Context


class NonDeterminismError(AbortTaskRunError):
    """A replayed run took another path than the first time (a different wait at the same
    point). Code between waits must make the same waits in the same order when re-run."""


class WaitOutsideRunError(TaskloomError):
    """A wait (or trigger_and_wait) was called outside an async run."""


@dataclass(frozen=True, slots=True)
class WaitInfo:
    """What `on_wait` / `on_resume` hooks receive as `wait`."""

    type: str  # "duration", "task", "batch" or "token"
    seq: int
    date: Any = None  # duration: when it ends (datetime)
    run_id: str | None = None  # task
    batch_id: str | None = None  # batch
    run_count: int | None = None  # batch
    token: str | None = None  # token id


class AttemptRuntime:
    """One attempt's sequence numbers, recorded waits and pending wait futures, and the
    engine its durable steps (waits, child runs, tokens, metadata) go through.

    `suspend(seq)` tells the supervisor the attempt waits for its wait `seq` (0: for any
    of its pending waits), so that the run is suspended unless that wait completed.
    """

    def __init__(
        self,
        ctx: Context,
        *,
        engine: Engine,
        recorded: Mapping[int, RecordedWait],
        suspend: Callable[[int], None],
        on_wait: Callable[[WaitInfo], Awaitable[None]],
        on_resume: Callable[[WaitInfo], Awaitable[None]],
        is_async: bool,
        queue_ts: int | None = None,
    ) -> None:
        self.ctx = ctx
        self.engine = engine
        self.run_id = ctx.run.id
        self.attempt = ctx.attempt.number
        self.recorded = dict(recorded)
        self.suspend = suspend
        self.on_wait = on_wait
        self.on_resume = on_resume
        self.is_async = is_async
        self.queue_ts = queue_ts
        self._seq = 0
        self._lock = threading.Lock()
        self._pending: dict[int, asyncio.Future[bytes]] = {}
        # Results that arrived before their call began to wait for them (see `deliver`).
        self._arrived: dict[int, bytes] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.metadata: dict[str, Any] = {}
        self.self_ops: list[list[Any]] = []
        self.parent_ops: list[list[Any]] = []
        self.root_ops: list[list[Any]] = []
        self.tags: list[str] = list(ctx.run.tags)
        self.tags_dirty = False

    # -- sequence numbers -----------------------------------------------------------
    def next_ref(self) -> WaitRef:
        """The next wait or child call's place in the run (or the one reserved for the
        call running now, see `run_with_reserved_step`)."""
        reserved = reserved_step.get()
        if reserved is not None and reserved.run_id == self.run_id:
            reserved_step.set(None)
            return reserved
        with self._lock:
            self._seq += 1
            return WaitRef(self.run_id, self.attempt, self._seq)

    def replayed(self, ref: WaitRef, kind: str) -> RecordedWait | None:
        """What this call did the first time, if the run is replaying; raises when the
        run now asks for another kind of wait at the same point."""
        found = self.recorded.get(ref.seq)
        if found is not None and found.kind != kind:
            raise NonDeterminismError(
                f"run {self.run_id} replayed differently: at step {ref.seq} it first made a "
                f"{found.kind!r} call and now a {kind!r} call. Code between waits must make "
                "the same waits and child calls in the same order when a run is replayed."
            )
        return found

    # -- waiting --------------------------------------------------------------------
    def require_async(self, what: str) -> None:
        """Waits need an async run (they park its coroutine)."""
        if not self.is_async:
            raise WaitOutsideRunError(
                f"{what} needs an async task: task {self.ctx.task.id!r} is a sync function, "
                "which cannot wait without holding its worker slot. Make its run `async def`."
            )

    async def wait_for(self, recorded: RecordedWait, info: WaitInfo) -> bytes:
        """Wait until a recorded wait completes (at once if it has); return its result."""
        if recorded.status == "COMPLETED":
            self.recorded[recorded.seq] = recorded
            return recorded.result or b"null"
        arrived = self._arrived.pop(recorded.seq, None)
        if arrived is not None:  # it completed and was delivered already
            return arrived
        loop = asyncio.get_running_loop()
        self.loop = loop
        future: asyncio.Future[bytes] = loop.create_future()
        self._pending[recorded.seq] = future
        await self.on_wait(info)
        self.suspend(recorded.seq)
        try:
            result = await future
        finally:
            self._pending.pop(recorded.seq, None)
        await self.on_resume(info)
        return result

    def deliver(self, completed: Iterable[RecordedWait]) -> None:
        """Completed waits (from the supervisor): wake their waiters with their results."""
        for wait in completed:
            result = wait.result or b"null"
            future = self._pending.get(wait.seq)
            if future is None:
                # Its call recorded the wait (in a thread) but has not begun to wait yet,
                # as happens with parallel waits: the store counts the result as delivered,
                # so keep it for the call instead of dropping it.
                self._arrived[wait.seq] = result
            elif not future.done():
                future.set_result(result)
        if any(not f.done() for f in self._pending.values()):
            # Still waiting on something else (parallel waits): wait again.
            self.suspend(0)

    @property
    def waiting(self) -> bool:
        """True while some wait of this attempt is pending."""
        return any(not f.done() for f in self._pending.values())


current_attempt: ContextVar[AttemptRuntime | None] = ContextVar(
    "taskloom_attempt_runtime", default=None
)
reserved_step: ContextVar[WaitRef | None] = ContextVar("taskloom_reserved_step", default=None)

T = TypeVar("T")


async def run_with_reserved_step(fn: Callable[[], T]) -> T:
    """Run a blocking SDK call in a thread; inside a run, its step is taken now, before
    awaiting, so calls made in parallel (`asyncio.gather`) keep their order on replay."""
    runtime = current_attempt.get()
    if runtime is None:
        return await asyncio.to_thread(fn)
    context = contextvars.copy_context()
    context.run(reserved_step.set, runtime.next_ref())
    return await asyncio.get_running_loop().run_in_executor(None, context.run, fn)


def attempt_runtime(what: str) -> AttemptRuntime:
    """The runtime of the run calling `what`, or a clear error outside a run."""
    runtime = current_attempt.get()
    if runtime is None:
        raise WaitOutsideRunError(
            f"{what} can only be called inside a run (from a task's run function or its "
            "hooks, executed by a worker)"
        )
    return runtime


def decode(result: bytes) -> Any:
    """A recorded result's JSON."""
    return orjson.loads(result)
