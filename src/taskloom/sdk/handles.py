"""`RunHandle`: what `trigger()` returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import RunFailedError
from ..runtime.results import TriggeredRun
from ..types import Run
from .client import current_client
from .polling import apoll_until_final, poll_until_final


@dataclass(frozen=True, slots=True)
class RunHandle:
    """A triggered run: its id, and ways to wait for its output.

    `is_cached` is True when an idempotency key matched an existing run.
    """

    id: str
    task_id: str
    is_cached: bool = False

    @classmethod
    def of(cls, triggered: TriggeredRun) -> RunHandle:
        """The handle of a run a trigger (inside a run, or through the client) made."""
        return cls(triggered.id, triggered.task_id, triggered.is_cached)

    def retrieve(self) -> Run:
        """The run as it is now."""
        return current_client().run_retrieve(self.id)

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the run to finish and return its output.

        Raises RunFailedError (with `.run`) when it ended in any status but COMPLETED,
        and RunTimeoutError when `timeout` seconds pass first.
        """
        return _output(poll_until_final(self.id, timeout))

    async def aresult(self, timeout: float | None = None) -> Any:
        """Async twin of `result`."""
        return _output(await apoll_until_final(self.id, timeout))

    def __str__(self) -> str:
        return self.id


def _output(run: Run) -> Any:
    if not run.is_success:
        raise RunFailedError(run)
    return run.output
