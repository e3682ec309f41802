"""One attempt inside an executor: build the context, run the task, decide what happens next.

The attempt starts from the claimed run the supervisor sent (a `ClaimedRun`, its JSON
fields still bytes) and ends with an `AttemptResult` (see `report`), which the executor
sends back to the supervisor.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..clock import now_ms
from ..config import Config
from ..engine.engine import Engine
from ..engine.records import ClaimedRun, RecordedWait
from ..machines import resolve_machine
from ..types import RunStatus, ms_to_datetime
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
from .report import AttemptError, AttemptResult, Event, failed
from .sink import current_sink
from .steps import AttemptRuntime, current_attempt


def recorded_waits(waits: Iterable[RecordedWait]) -> dict[int, RecordedWait]:
    """The recorded waits of a replayed run, by sequence number."""
    return {wait.seq: wait for wait in waits}


__all__ = ["AttemptRunner", "AttemptSink", "AttemptState", "build_context", "error_dict"]


@dataclass(slots=True)
class AttemptSink:
    """Collects one attempt's events; the executor ships them in batches."""

    run_id: str
    attempt: int
    events: list[Event] = field(default_factory=list)

    def emit(self, kind: str, data: dict[str, Any]) -> None:
        """Record one event (at `data["ts"]` when given, else now)."""
        self.events.append(Event(data.get("ts") or now_ms(), kind, data))

    def take(self) -> list[Event]:
        """The events collected since the last call."""
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
    asyncio_task: asyncio.Task[AttemptResult] | None = None
    cancel_reason: str | None = None
    runner: AttemptRunner | None = None


@functools.lru_cache(maxsize=16)
def _machine_info(name: str) -> MachineInfo:
    preset = resolve_machine(name, what="machine of a claimed run")
    return MachineInfo(name=preset.name, cpu=preset.cpu, memory=preset.memory_gb)


def build_context(
    run: ClaimedRun, environment: str, task: TaskDefinition[Any, Any], signal: CancelSignal
) -> Context:
    """The Context of an attempt of a claimed run, in `environment`."""
    attempt = AttemptInfo(number=run.attempt, started_at=ms_to_datetime(now_ms()))
    created = ms_to_datetime(run.created_at)
    assert created is not None
    machine = _machine_info(run.machine)
    return Context(
        run=RunInfo(
            id=run.id,
            attempt=attempt,
            tags=tuple(orjson.loads(run.tags) or ()) if run.tags else (),
            is_test=run.is_test,
            is_replay=run.replayed_from is not None,
            created_at=created,
            idempotency_key=run.idempotency_key,
            max_attempts=run.max_attempts,
            max_duration=run.max_duration,
            parent_run_id=run.parent_run_id,
            root_run_id=run.root_run_id,
            depth=run.depth,
            replayed_from=run.replayed_from,
        ),
        attempt=attempt,
        task=TaskInfo(id=task.id, file_path=task.file_path),
        queue=QueueInfo(name=run.queue),
        machine=machine,
        environment=EnvironmentInfo(type=environment),
        signal=signal,
    )


class AttemptRunner:
    """Runs one attempt of a task with the run's locked settings; its durable steps go
    through `engine` (the executor's, one per process).

    `suspend(seq)` asks the supervisor to suspend the run while it waits for its wait
    `seq` (0: for any pending wait); `request_kill(status)` asks it to stop the executor
    (a sync attempt that cannot be interrupted).
    """

    def __init__(
        self,
        task: TaskDefinition[Any, Any],
        run: ClaimedRun,
        environment: str,
        state: AttemptState,
        config: Config,
        threads: Executor,
        request_kill: Callable[[str], None] | None = None,
        suspend: Callable[[int], None] | None = None,
        *,
        engine: Engine,
    ) -> None:
        self.task = task
        self.engine = engine
        self.claimed = run
        self.environment = environment
        self.state = state
        self.config = config
        self.threads = threads
        self.request_kill = request_kill or (lambda status: None)
        self.suspend = suspend or (lambda seq: None)
        self.lifecycle: Lifecycle | None = None
        self.runtime: AttemptRuntime | None = None

    async def run(self) -> AttemptResult:
        """Execute the attempt; never raises (except CancelledError when cancelled)."""
        sink = self.state.sink
        sink_token = current_sink.set(sink)
        claimed = self.claimed
        ctx = build_context(claimed, self.environment, self.task, self.state.signal)
        ctx_token = current_context.set(ctx)
        try:
            payload = orjson.loads(memoryview(claimed.payload))
            if self.task.schema is not None:
                try:
                    payload = self.task.schema(payload)
                except Exception as error:
                    return _failed(error, retry_at=None, code="TASK_PAYLOAD_PARSE_ERROR")
            self.lifecycle = Lifecycle(
                self.task,
                claimed,
                payload,
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
                recorded=recorded_waits(claimed.waits),
                suspend=self.suspend,
                on_wait=lifecycle.fire_wait,
                on_resume=lifecycle.fire_resume,
                is_async=self.task.is_async,
                queue_ts=claimed.sort_key,
            )
            metadata = orjson.loads(claimed.metadata) if claimed.metadata else None
            if isinstance(metadata, dict):
                self.runtime.metadata = metadata
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
) -> AttemptResult:
    return failed(
        AttemptError.of(error, code=code),
        retry_at=retry_at,
        status=status.value,
        attempt_status=attempt_status,
    )
