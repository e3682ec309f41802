"""What triggering batches, waiting on child runs and batches, and tokens return.

The values (`TaskRunResult`, `BatchResult`, `Token`, `WaitTokenResult`, `TokenDetails`)
are the runtime's and the client's; `BatchHandle` holds run handles.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..runtime.results import BatchResult, TaskRunResult, Token, TriggeredBatch, WaitTokenResult
from .client import TokenDetails
from .handles import RunHandle

__all__ = [
    "BatchHandle",
    "BatchResult",
    "TaskRunResult",
    "Token",
    "TokenDetails",
    "WaitTokenResult",
]


@dataclass(frozen=True, slots=True)
class BatchHandle:
    """A triggered batch: its id and a handle per item, in item order."""

    batch_id: str
    runs: list[RunHandle]

    @classmethod
    def of(cls, triggered: TriggeredBatch) -> BatchHandle:
        """The handle of a batch a trigger (inside a run, or through the client) made."""
        return cls(triggered.id, [RunHandle.of(run) for run in triggered.runs])

    @property
    def run_count(self) -> int:
        return len(self.runs)
