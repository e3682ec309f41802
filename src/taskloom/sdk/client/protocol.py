"""`Client`: the one seam every public sdk call made outside a run goes through.

`LocalClient` implements it over the engine (this process writes to the database); an
HTTP client will implement it over a taskloom server's API (`TASKLOOM_API_URL`). Methods
are named noun_verb so each maps to one endpoint (`task_trigger` to
`POST /api/v1/tasks/{task_id}/trigger`, `run_cancel` to `POST /api/v1/runs/{id}/cancel`,
...), and what crosses the seam is public values (`Run`, `QueueDetails`, `RunEvent`,
`Token`) or the small dataclasses below, never store records, so both sides serialise
them the same way.

The sdk checks what it can before it calls a client (payload schemas of tasks defined in
this process, option shapes, limits); a client may check again, as a server must.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from ...errors import WaitpointTimeoutError
from ...runtime.results import Token, TriggeredBatch, TriggeredRun
from ...runtime.wait import TokenOptions
from ...types import QueueDetails, Run, RunEvent, RunStatus

__all__ = [
    "BatchItem",
    "Cancellation",
    "Client",
    "MetadataOperation",
    "RunQuery",
    "TokenDetails",
    "TokenOptions",
    "TriggeredBatch",
    "TriggeredRun",
]

MetadataOperation = list[Any]
"""One metadata change, `[kind, key, value]`: kind is set, delete, append, remove,
increment or replace (key None), as `metadata.set(...)` and friends make them."""


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One run of a batch: the task's id, the payload (checked against the task's schema
    when the task is defined in this process) and the trigger options."""

    task_id: str
    payload: Any = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RunQuery:
    """What `runs.list` asks for, checked: every filter optional, combined with AND.

    `statuses`: RunStatus values; `since_ms`: created at or after (ms since the epoch);
    `limit`: 1 to 1,000 runs, newest first.
    """

    statuses: tuple[str, ...] = ()
    task_ids: tuple[str, ...] = ()
    tag: str | None = None
    since_ms: int | None = None
    limit: int = 50


@dataclass(frozen=True, slots=True)
class Cancellation:
    """What cancelling did: the status the run had (`previous_status`; a final one means
    there was nothing to cancel) and the run afterwards."""

    previous_status: RunStatus
    run: Run


@dataclass(frozen=True, slots=True)
class TokenDetails:
    """A waitpoint token as `wait.retrieve_token` returns it.

    `status` is "WAITING", "COMPLETED" (then `output` is the completion's data) or
    "TIMED_OUT" (then `error` is a WaitpointTimeoutError).
    """

    id: str
    status: str
    output: Any = None
    error: WaitpointTimeoutError | None = None
    idempotency_key: str | None = None
    tags: list[str] = field(default_factory=list)
    created_at: datetime | None = None
    completed_at: datetime | None = None
    timeout_at: datetime | None = None
    url: str | None = None

    @property
    def is_completed(self) -> bool:
        """True once it was completed or timed out."""
        return self.status != "WAITING"


class Client(Protocol):
    """Every public operation made outside a run. See `LocalClient` for the engine's."""

    # -- triggering ---------------------------------------------------------------------
    def task_trigger(self, task_id: str, payload: Any, options: Mapping[str, Any]) -> TriggeredRun:
        """Trigger one run of a task by id (`POST /tasks/{task_id}/trigger`). `options`
        are `trigger()`'s keyword arguments; the payload is JSON."""
        ...

    def batch_trigger(self, items: Sequence[BatchItem]) -> TriggeredBatch:
        """Trigger up to 1,000 runs, of one task or several, all or none
        (`POST /tasks/{task_id}/batch`)."""
        ...

    # -- runs ---------------------------------------------------------------------------
    def run_retrieve(self, run_id: str) -> Run:
        """A run with its attempts; RunNotFoundError if there is none (`GET /runs/{id}`)."""
        ...

    def run_list(self, query: RunQuery) -> list[Run]:
        """Runs matching `query`, newest first (`GET /runs`)."""
        ...

    def run_cancel(self, run_id: str) -> Cancellation:
        """Cancel a run unless it is final (`POST /runs/{id}/cancel`)."""
        ...

    def run_replay(self, run_id: str) -> TriggeredRun:
        """A new run of the same task, payload and tags (`POST /runs/{id}/replay`)."""
        ...

    def run_reschedule(self, run_id: str, delay: Any) -> Run:
        """Move a DELAYED run's start; `delay` as trigger's (`POST /runs/{id}/reschedule`)."""
        ...

    def run_events(self, run_id: str, *, after_id: int = 0, limit: int = 1000) -> list[RunEvent]:
        """A run's events in order, after an event id (`GET /runs/{id}/events`)."""
        ...

    def run_watch(self, run_id: str) -> AsyncIterator[Run]:
        """The run now and after every change (each status it passes through, and each
        metadata update), until it is final: what `runs.subscribe` yields."""
        ...

    def run_metadata_update(
        self, run_id: str, operations: Sequence[MetadataOperation]
    ) -> dict[str, Any]:
        """Change a run's metadata from outside it; return the metadata afterwards
        (`PUT /runs/{id}/metadata`). PayloadError when it would grow over 256 KB."""
        ...

    # -- queues -------------------------------------------------------------------------
    def queue_list(self) -> list[QueueDetails]:
        """Every queue workers have declared (`GET /queues`)."""
        ...

    def queue_retrieve(self, name: str) -> QueueDetails:
        """One queue (`GET /queues/{name}`)."""
        ...

    def queue_pause(self, name: str) -> QueueDetails:
        """Start nothing new from a queue (`POST /queues/{name}/pause`)."""
        ...

    def queue_resume(self, name: str) -> QueueDetails:
        """Start runs from a queue again (`POST /queues/{name}/resume`)."""
        ...

    def queue_override_limit(self, name: str, limit: int) -> QueueDetails:
        """Replace a queue's concurrency limit (`POST /queues/{name}/concurrency/override`)."""
        ...

    def queue_reset_limit(self, name: str) -> QueueDetails:
        """Back to the limit in the code (`POST /queues/{name}/concurrency/reset`)."""
        ...

    # -- waitpoint tokens ---------------------------------------------------------------
    def token_create(self, options: TokenOptions) -> Token:
        """A token (or the one holding its idempotency key) (`POST /waitpoints/tokens`)."""
        ...

    def token_retrieve(self, token_id: str) -> TokenDetails:
        """A token and how it ended (`GET /waitpoints/tokens/{id}`)."""
        ...

    def token_complete(self, token_id: str, data: Any) -> bool:
        """Complete a token with JSON `data`; False when it was completed or timed out
        already (`POST /waitpoints/tokens/{id}/complete`)."""
        ...

    # -- idempotency keys ---------------------------------------------------------------
    def idempotency_key_reset(self, task_id: str, key: str) -> bool:
        """Forget a task's idempotency key; True when a run held it
        (`POST /idempotency-keys/reset`)."""
        ...

    def close(self) -> None:
        """Release what the client holds (a database connection, an HTTP session)."""
        ...
