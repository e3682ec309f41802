"""Errors users see and errors task code may raise. Imports nothing internal but types."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .types import Run, RunError


class TaskloomError(Exception):
    """Base class of every error taskloom raises on purpose."""


class InvalidOptionError(TaskloomError, ValueError):
    """A task option, trigger option or configuration value is malformed or out of range."""


class UnknownTaskError(TaskloomError, LookupError):
    """No task with this id is defined in this process or registered by a worker."""


class RunNotFoundError(TaskloomError, LookupError):
    """No run with this id exists in the store."""


class PayloadError(InvalidOptionError):
    """A payload (or output) is not JSON serialisable or is over the size limit."""


class StoreBusyError(TaskloomError):
    """The database stayed locked by another process for longer than the busy timeout."""


class RunFailedError(TaskloomError):
    """Raised by `RunHandle.result()` when the run ended in a status other than COMPLETED."""

    def __init__(self, run: Run) -> None:
        self.run = run
        detail = f": {run.error}" if run.error else ""
        super().__init__(f"run {run.id} of task {run.task_id!r} ended {run.status.value}{detail}")


class AbortTaskRunError(TaskloomError):
    """Raise inside a run to fail it at once, without retrying."""


class CompleteTaskWithOutput(TaskloomError):
    """Raise inside a run to end it successfully with `output`."""

    def __init__(self, output: Any = None) -> None:
        self.output = output
        super().__init__("run completed early with an output")


class OutOfMemoryError(TaskloomError):
    """Raise inside a run to treat the failure as out-of-memory (see `retry.out_of_memory`)."""


class SubtaskUnwrapError(TaskloomError):
    """Raised by `TaskRunResult.unwrap()` when the child run did not succeed."""

    def __init__(self, task_id: str, run_id: str, cause: RunError | None) -> None:
        self.task_id = task_id
        self.run_id = run_id
        self.cause_error = cause
        super().__init__(f"child run {run_id} of task {task_id!r} failed: {cause}")


class WaitpointTimeoutError(TaskloomError):
    """A wait for a token ended because its timeout passed."""


class TaskRunCancelledError(TaskloomError):
    """The run was cancelled while this code was running."""


class MaxDurationExceededError(TaskloomError):
    """The attempt used more compute time than the run's `max_duration`."""
