"""One attempt inside an executor: build the context, run the task, decide what happens next.

The result is a plain dict sent back to the supervisor:
`{"ok": True, "output": "<json>"}` or
`{"ok": False, "error": {...}, "retry_at": ms | None, "status": final status,
  "attempt_status": ...}`.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import random
import traceback
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..config import Config
from ..errors import (
    AbortTaskRunError,
    CompleteTaskWithOutput,
    OutOfMemoryError,
    TaskRunCancelledError,
)
from ..machines import resolve_machine
from ..retry import Retry, next_attempt_at
from ..sdk.capture import flush_partial
from ..sdk.context import (
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
from ..sdk.runtime import current_sink, now_ms
from ..sdk.task import Task
from ..types import RunStatus, ms_to_datetime

STACK_LIMIT = 16_000


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
    task: Task[Any, Any] | None
    signal: CancelSignal
    sink: AttemptSink
    started_at: int
    asyncio_task: asyncio.Task[dict[str, Any]] | None = None
    cancel_reason: str | None = None


def error_dict(error: BaseException, *, code: str = "") -> dict[str, str]:
    """A stored error for an exception, with its traceback."""
    stack = "".join(traceback.format_exception(error))
    return {
        "type": type(error).__name__,
        "message": str(error),
        "stack": stack[-STACK_LIMIT:],
        "code": code,
    }


@functools.lru_cache(maxsize=16)
def _machine_info(name: str) -> MachineInfo:
    preset = resolve_machine(name, what="machine of a claimed run")
    return MachineInfo(name=preset.name, cpu=preset.cpu, memory=preset.memory_gb)


def build_context(start: dict[str, Any], task: Task[Any, Any], signal: CancelSignal) -> Context:
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


class AttemptRunner:
    """Runs one attempt of a task with the run's locked settings."""

    def __init__(
        self,
        task: Task[Any, Any],
        start: dict[str, Any],
        state: AttemptState,
        config: Config,
        threads: Executor,
    ) -> None:
        self.task = task
        self.start = start
        self.state = state
        self.config = config
        self.threads = threads

    @property
    def policy(self) -> Retry:
        """The retry policy locked on the run (parsed only when an attempt fails)."""
        return Retry.from_json(self.start["retry"]).with_max_attempts(self.start["max_attempts"])

    def default_retry_at(self) -> int | None:
        """When the next attempt starts by the retry policy, None when none remains."""
        return next_attempt_at(now_ms(), self.start["attempt"], self.policy, random.random)

    async def run(self) -> dict[str, Any]:
        """Execute the attempt; never raises (except CancelledError when cancelled)."""
        sink_token = current_sink.set(self.state.sink)
        signal = self.state.signal
        ctx = build_context(self.start, self.task, signal)
        ctx_token = current_context.set(ctx)
        try:
            return await self._execute(ctx)
        finally:
            flush_partial(self.state.sink)
            current_context.reset(ctx_token)
            current_sink.reset(sink_token)

    async def _execute(self, ctx: Context) -> dict[str, Any]:
        payload = self.start["payload"]
        if self.task.schema is not None:
            try:
                payload = self.task.schema(payload)
            except Exception as error:
                return _failed(error, retry_at=None, code="TASK_PAYLOAD_PARSE_ERROR")
        try:
            output = await self._call_run(payload, ctx)
        except CompleteTaskWithOutput as early:
            output = early.output
        except asyncio.CancelledError:
            if self.state.cancel_reason is None:
                raise
            return _cancelled(self.state.cancel_reason)
        except AbortTaskRunError as error:
            return _failed(error, retry_at=None)
        except OutOfMemoryError as error:
            return _failed(
                error,
                retry_at=None,
                status=RunStatus.CRASHED,
                attempt_status="CRASHED",
                code="TASK_PROCESS_OOM",
            )
        except Exception as error:
            if self.state.cancel_reason is not None:
                return _cancelled(self.state.cancel_reason)
            return _failed(error, retry_at=self.default_retry_at())
        if self.state.cancel_reason is not None:
            return _cancelled(self.state.cancel_reason)
        return self._serialise_output(output)

    async def _call_run(self, payload: Any, ctx: Context) -> Any:
        run = self.task.run
        args = (payload, ctx) if self.task.takes_context else (payload,)
        if self.task.is_async:
            return await run(*args)
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        return await loop.run_in_executor(self.threads, lambda: context.run(run, *args))

    def _serialise_output(self, output: Any) -> dict[str, Any]:
        try:
            data = orjson.dumps(output)
        except TypeError as error:
            problem: Exception = TypeError(
                f"task {self.task.id!r} returned a value of type {type(output).__name__} that "
                f"is not JSON serialisable ({error})"
            )
            return _failed(problem, retry_at=self.default_retry_at(), code="TASK_OUTPUT_ERROR")
        limit = self.config.output_limit_bytes
        if len(data) > limit:
            too_large = ValueError(
                f"task {self.task.id!r} returned {len(data):,} bytes of output, over the limit "
                f"of {limit:,} bytes"
            )
            return _failed(too_large, retry_at=None, code="TASK_OUTPUT_TOO_LARGE")
        return {"ok": True, "output": data.decode()}


def _cancelled(reason: str) -> dict[str, Any]:
    return _failed(
        TaskRunCancelledError(reason),
        retry_at=None,
        status=RunStatus.CANCELED,
        attempt_status="CANCELED",
        code="TASK_RUN_CANCELLED",
    )
