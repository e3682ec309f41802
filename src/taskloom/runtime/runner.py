"""One attempt inside an executor: build the context, run the task, decide what happens next.

The result is a plain dict sent back to the supervisor:
`{"ok": True, "output": "<json>"}` or
`{"ok": False, "error": {...}, "retry_at": ms | None, "status": final status,
  "attempt_status": ...}`.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from ..clock import now_ms
from ..config import Config
from ..engine.engine import Engine
from ..engine.records import RecordedWait
from ..machines import resolve_machine
from ..types import RunStatus, ms_to_datetime
from .attempt import AttemptRuntime, current_attempt
from .capture import flush_partial
from .context import (
    AttemptInfo,
    CancelSignal,
    Context,
    EnvironmentInfo,
    MachineInfo,
    QueueInfo,
    RunInfo,
    TaskInfo,
    current_context,
)
from .definition import TaskDefinition
from .failures import error_dict
from .lifecycle import Lifecycle
from .sink import current_sink


def recorded_waits(raw: Any) -> dict[int, RecordedWait]:
    """Recorded waits from a start message: [[seq, kind, waitpoint_id, status, result]]."""
    found: dict[int, RecordedWait] = {}
    for seq, kind, waitpoint_id, status, result in raw or []:
        data = None if result is None else result.encode()
        found[seq] = RecordedWait(seq, kind, waitpoint_id, status, data)
    return found


__all__ = ["AttemptRunner", "AttemptSink", "AttemptState", "build_context", "error_dict"]


@dataclass(slots=True)
class AttemptSink:
    """Collects one attempt's events; the executor ships them in batches."""

    run_id: str
    attempt: int
    events: list[list[Any]] = field(default_factory=list)

    def emit(self, kind: str, data: dict[str, Any]) -> None:
        self.events.append([data.get("ts") or now_ms(), kind, data])

    def take(self) -> list[list[Any]]:
        events, self.events = self.events, []
        return events


@dataclass(slots=True)
class AttemptState:
    """What the executor tracks about a running attempt."""

    run_id: str
    attempt: int
    task: TaskDefinition[Any, Any] | None
    signal: CancelSignal
    sink: AttemptSink
    started_at: int
    asyncio_task: asyncio.Task[dict[str, Any]] | None = None
    cancel_reason: str | None = None
    runner: AttemptRunner | None = None


@functools.lru_cache(maxsize=16)
def _machine_info(name: str) -> MachineInfo:
    preset = resolve_machine(name, what="machine of a claimed run")
    return MachineInfo(name=preset.name, cpu=preset.cpu, memory=preset.memory_gb)


def build_context(
    start: dict[str, Any], task: TaskDefinition[Any, Any], signal: CancelSignal
) -> Context:
    """The Context of an attempt, from the supervisor's start message."""
    attempt = AttemptInfo(number=start["attempt"], started_at=ms_to_datetime(now_ms()))
    created = ms_to_datetime(start["created_at"])
    assert created is not None
    machine = _machine_info(start["machine"])
    return Context(
        run=RunInfo(
            id=start["id"],
            attempt=attempt,
            tags=tuple(start.get("tags") or ()),
            is_test=bool(start.get("is_test")),
            is_replay=start.get("replayed_from") is not None,
            created_at=created,
            idempotency_key=start.get("idempotency_key"),
            max_attempts=start["max_attempts"],
            max_duration=start.get("max_duration"),
            parent_run_id=start.get("parent_run_id"),
            root_run_id=start.get("root_run_id"),
            depth=start.get("depth", 0),
            replayed_from=start.get("replayed_from"),
        ),
        attempt=attempt,
        task=TaskInfo(id=task.id, file_path=task.file_path),
        queue=QueueInfo(name=start["queue"]),
        machine=machine,
        environment=EnvironmentInfo(type=start.get("environment", "DEVELOPMENT")),
        signal=signal,
    )


class AttemptRunner:
    """Runs one attempt of a task with the run's locked settings; its durable steps go
    through `engine` (the executor's, one per process)."""

    def __init__(
        self,
        task: TaskDefinition[Any, Any],
        start: dict[str, Any],
        state: AttemptState,
        config: Config,
        threads: Executor,
        request_kill: Callable[[str], None] | None = None,
        send: Callable[[list[Any]], None] | None = None,
        *,
        engine: Engine,
    ) -> None:
        self.task = task
        self.engine = engine
        self.start = start
        self.state = state
        self.config = config
        self.threads = threads
        self.request_kill = request_kill or (lambda status: None)
        self.send = send or (lambda message: None)
        self.lifecycle: Lifecycle | None = None
        self.runtime: AttemptRuntime | None = None

    async def run(self) -> dict[str, Any]:
        """Execute the attempt; never raises (except CancelledError when cancelled)."""
        sink = self.state.sink
        sink_token = current_sink.set(sink)
        ctx = build_context(self.start, self.task, self.state.signal)
        ctx_token = current_context.set(ctx)
        try:
            if self.task.schema is not None:
                try:
                    self.start["payload"] = self.task.schema(self.start["payload"])
                except Exception as error:
                    return _failed(error, retry_at=None, code="TASK_PAYLOAD_PARSE_ERROR")
            self.lifecycle = Lifecycle(
                self.task,
                self.start,
                ctx,
                self.config,
                self.threads,
                sink.emit,
                self.request_kill,
            )
            if self.state.cancel_reason is not None:  # cancelled before it began
                self.lifecycle.cancel_reason = self.state.cancel_reason
            lifecycle = self.lifecycle
            self.runtime = AttemptRuntime(
                ctx,
                engine=self.engine,
                recorded=recorded_waits(self.start.get("waits")),
                send=self.send,
                on_wait=lifecycle.fire_wait,
                on_resume=lifecycle.fire_resume,
                is_async=self.task.is_async,
                queue_ts=self.start.get("queue_ts"),
            )
            if isinstance(self.start.get("metadata"), dict):
                self.runtime.metadata = dict(self.start["metadata"])
            runtime_token = current_attempt.set(self.runtime)
            try:
                return await lifecycle.execute()
            finally:
                current_attempt.reset(runtime_token)
        finally:
            flush_partial(sink)
            current_context.reset(ctx_token)
            current_sink.reset(sink_token)

    def cancel(self, reason: str) -> None:
        """Cancel the attempt (on_cancel hooks get the configured grace period)."""
        if self.lifecycle is not None:
            self.lifecycle.cancel(reason, self.config.cancel_grace_seconds)


def _failed(
    error: BaseException,
    *,
    retry_at: int | None,
    status: RunStatus = RunStatus.FAILED,
    attempt_status: str = "FAILED",
    code: str = "",
) -> dict[str, Any]:
    return {
        "ok": False,
        "error": error_dict(error, code=code),
        "retry_at": retry_at,
        "status": status.value,
        "attempt_status": attempt_status,
    }
