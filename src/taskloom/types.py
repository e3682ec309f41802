"""Leaf data types shared by every layer: run statuses, run and attempt records.

This module imports nothing from taskloom.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeAlias

JSON: TypeAlias = Any
"""A value that round-trips through JSON (dict, list, str, int, float, bool, None)."""


class RunStatus(StrEnum):
    """The public status of a run, as Trigger.dev names them."""

    PENDING_VERSION = "PENDING_VERSION"
    DELAYED = "DELAYED"
    QUEUED = "QUEUED"
    DEQUEUED = "DEQUEUED"
    EXECUTING = "EXECUTING"
    WAITING = "WAITING"
    COMPLETED = "COMPLETED"
    CANCELED = "CANCELED"
    FAILED = "FAILED"
    CRASHED = "CRASHED"
    SYSTEM_FAILURE = "SYSTEM_FAILURE"
    EXPIRED = "EXPIRED"
    TIMED_OUT = "TIMED_OUT"

    @property
    def is_final(self) -> bool:
        """True when nothing will ever change this run again."""
        return self in FINAL_STATUSES


FINAL_STATUSES: frozenset[RunStatus] = frozenset(
    {
        RunStatus.COMPLETED,
        RunStatus.CANCELED,
        RunStatus.FAILED,
        RunStatus.CRASHED,
        RunStatus.SYSTEM_FAILURE,
        RunStatus.EXPIRED,
        RunStatus.TIMED_OUT,
    }
)
QUEUED_STATUSES = frozenset({RunStatus.QUEUED, RunStatus.PENDING_VERSION, RunStatus.DELAYED})
EXECUTING_STATUSES = frozenset({RunStatus.EXECUTING, RunStatus.DEQUEUED})


def ms_to_datetime(ms: int | None) -> datetime | None:
    """Milliseconds since the epoch (as stored) to an aware UTC datetime."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@dataclass(frozen=True, slots=True)
class RunError:
    """A failure as recorded on an attempt or a run."""

    type: str
    message: str
    stack: str = ""
    code: str = ""

    def to_json(self) -> dict[str, str]:
        return {"type": self.type, "message": self.message, "stack": self.stack, "code": self.code}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> RunError | None:
        if not data:
            return None
        return cls(
            type=str(data.get("type", "Error")),
            message=str(data.get("message", "")),
            stack=str(data.get("stack", "")),
            code=str(data.get("code", "")),
        )

    def __str__(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type


@dataclass(frozen=True, slots=True)
class Attempt:
    """One execution of a run's function with its hooks."""

    run_id: str
    number: int
    status: str
    worker_id: str | None
    started_at: datetime | None
    finished_at: datetime | None
    error: RunError | None

    @property
    def duration_ms(self) -> int | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return int((self.finished_at - self.started_at).total_seconds() * 1000)


@dataclass(frozen=True, slots=True)
class Run:
    """A snapshot of one triggered execution of a task, as `runs.retrieve` returns it."""

    id: str
    task_id: str
    status: RunStatus
    payload: JSON
    output: JSON
    error: RunError | None
    attempt_count: int
    tags: list[str]
    metadata: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    parent_run_id: str | None
    root_run_id: str | None
    queue: str = ""
    concurrency_key: str | None = None
    idempotency_key: str | None = None
    max_attempts: int = 1
    machine: str = "small-1x"
    max_duration: int | None = None
    ttl: int | None = None
    delay_until: datetime | None = None
    priority: float = 0.0
    depth: int = 0
    batch_id: str | None = None
    is_test: bool = False
    replayed_from: str | None = None
    updated_at: datetime | None = None
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def duration_ms(self) -> int | None:
        """Wall time from the first attempt's start to the end (or to now while running)."""
        if self.started_at is None:
            return None
        end = self.finished_at or datetime.now(tz=UTC)
        return int((end - self.started_at).total_seconds() * 1000)

    @property
    def is_queued(self) -> bool:
        return self.status in QUEUED_STATUSES

    @property
    def is_executing(self) -> bool:
        return self.status in EXECUTING_STATUSES

    @property
    def is_waiting(self) -> bool:
        return self.status is RunStatus.WAITING

    @property
    def is_completed(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def is_success(self) -> bool:
        return self.status is RunStatus.COMPLETED

    @property
    def is_failed(self) -> bool:
        return self.status in FINAL_STATUSES and self.status is not RunStatus.COMPLETED

    @property
    def is_cancelled(self) -> bool:
        return self.status is RunStatus.CANCELED


@dataclass(frozen=True, slots=True)
class QueueDetails:
    """A queue as `queues.retrieve` / `queues.list` return it."""

    name: str
    type: str  # "task" (a task's own queue) or "custom" (declared with queue())
    running: int
    queued: int
    paused: bool
    concurrency_limit: int | None  # the limit in force
    base_concurrency_limit: int | None  # the code's value
    override_concurrency_limit: int | None
    overridden_at: datetime | None
    total_concurrency_limit: int | None


@dataclass(frozen=True, slots=True)
class RunEvent:
    """One event of a run, as `runs.events` returns them, oldest first.

    `kind` is "log", "span_start", "span_end", "hook", ... and `data` its JSON (a log's
    `level`, `message` and `attributes`, ...); `ts` is milliseconds since the epoch.
    """

    id: int
    run_id: str
    attempt: int | None
    ts: int
    kind: str
    data: dict[str, Any]

    @property
    def at(self) -> datetime:
        """`ts` as an aware UTC datetime."""
        return datetime.fromtimestamp(self.ts / 1000, tz=UTC)
