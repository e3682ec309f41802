"""What waiting on child runs, batches and tokens returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import SubtaskUnwrapError, WaitpointTimeoutError
from ..types import RunError
from .handles import RunHandle


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
class BatchHandle:
    """A triggered batch: its id and a handle per item, in item order."""

    batch_id: str
    runs: list[RunHandle]

    @property
    def run_count(self) -> int:
        return len(self.runs)


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
