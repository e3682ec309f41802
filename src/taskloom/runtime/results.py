"""What triggering and waiting give back: triggered runs and batches, child results, tokens.

Plain values, the same whether the call was a durable step inside a run (`runtime`) or
went through the sdk's client outside one. The public sdk re-exports them
(`taskloom.TaskRunResult`, `taskloom.Token`, ...) and wraps triggered runs in handles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import SubtaskUnwrapError, WaitpointTimeoutError
from ..types import RunError


@dataclass(frozen=True, slots=True)
class TriggeredRun:
    """A run a trigger resolved to: its id and task, and `is_cached` when an idempotency
    key (or a replayed step) matched a run made before."""

    id: str
    task_id: str
    is_cached: bool = False


@dataclass(frozen=True, slots=True)
class TriggeredBatch:
    """A triggered batch: its id and its runs, in item order."""

    id: str
    runs: list[TriggeredRun] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TaskRunResult:
    """A child run's end: `ok` with `output`, or not with `error` (it does not raise)."""

    ok: bool
    id: str
    task_id: str
    output: Any = None
    error: RunError | None = None
    status: str = "COMPLETED"

    def unwrap(self) -> Any:
        """The output, or SubtaskUnwrapError when the child did not succeed."""
        if not self.ok:
            raise SubtaskUnwrapError(self.task_id, self.id, self.error)
        return self.output

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskRunResult:
        """A result as a completed RUN waitpoint records it."""
        if data.get("ok"):
            return cls(True, data["id"], data["task_id"], data.get("output"))
        error = data.get("error") or {}
        return cls(
            False,
            data["id"],
            data["task_id"],
            error=RunError.from_json(error),
            status=str(error.get("status", "FAILED")),
        )


@dataclass(frozen=True, slots=True)
class BatchResult:
    """A batch's results, in item order."""

    id: str
    runs: list[TaskRunResult] = field(default_factory=list)

    def __iter__(self) -> Any:
        return iter(self.runs)

    def __len__(self) -> int:
        return len(self.runs)

    def __getitem__(self, index: int) -> TaskRunResult:
        return self.runs[index]


@dataclass(frozen=True, slots=True)
class Token:
    """A waitpoint token: complete it with `wait.complete_token(token.id, data)`."""

    id: str
    url: str | None = None
    is_cached: bool = False

    def __str__(self) -> str:
        return self.id


@dataclass(frozen=True, slots=True)
class WaitTokenResult:
    """A token wait's end: `ok` with `output`, or `error` (a WaitpointTimeoutError)."""

    ok: bool
    output: Any = None
    error: WaitpointTimeoutError | None = None

    def unwrap(self) -> Any:
        """The output, or the WaitpointTimeoutError."""
        if not self.ok:
            raise self.error or WaitpointTimeoutError("the token timed out")
        return self.output
