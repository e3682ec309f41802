"""`LocalClient`: the `Client` over an engine, for a process that uses the database itself."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import orjson

from ...engine import metadata as metadata_ops
from ...engine.engine import Engine
from ...engine.records import RunFilter
from ...engine.triggering import RunLinks
from ...errors import InvalidOptionError, PayloadError, WaitpointTimeoutError
from ...runtime import wait as runtime_wait
from ...runtime.results import Token, TriggeredBatch, TriggeredRun
from ...types import QueueDetails, Run, RunEvent, ms_to_datetime
from .protocol import (
    BatchItem,
    Cancellation,
    MetadataOperation,
    RunQuery,
    TokenDetails,
    TokenOptions,
)


class LocalClient:
    """Public operations straight through an engine (this process's store connection).

    Task ids are resolved by the engine, which looks at the tasks defined in this process
    before the ones workers announced. `close` closes the engine.

    >>> client = LocalClient(open_engine(config))  # doctest: +SKIP
    >>> client.run_retrieve("run_...").status  # doctest: +SKIP
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __repr__(self) -> str:
        return f"<LocalClient on {self.engine.config.database_url}>"

    # -- triggering ---------------------------------------------------------------------
    def task_trigger(self, task_id: str, payload: Any, options: Mapping[str, Any]) -> TriggeredRun:
        """Trigger one run of a task by id."""
        spec = self.engine.resolve_spec(task_id)
        result = self.engine.trigger(spec, payload, options)
        return TriggeredRun(result.run_id, spec.id, not result.created)

    def batch_trigger(self, items: Sequence[BatchItem]) -> TriggeredBatch:
        """Trigger several runs in one transaction."""
        resolved = [
            (self.engine.resolve_spec(item.task_id), item.payload, item.options) for item in items
        ]
        batch_id, results, _ = self.engine.batch(resolved, links=RunLinks(), ref=None, wait=False)
        runs = [
            TriggeredRun(result.run_id, spec.id, not result.created)
            for result, (spec, _, _) in zip(results, resolved, strict=True)
        ]
        return TriggeredBatch(batch_id, runs)

    # -- runs ---------------------------------------------------------------------------
    def run_retrieve(self, run_id: str) -> Run:
        """A run with its attempts."""
        return self.engine.retrieve(run_id)

    def run_list(self, query: RunQuery) -> list[Run]:
        """Runs matching `query`, newest first."""
        return self.engine.list_runs(
            RunFilter(
                statuses=query.statuses,
                task_ids=query.task_ids,
                tag=query.tag,
                since_ms=query.since_ms,
                limit=query.limit,
            )
        )

    def run_cancel(self, run_id: str) -> Cancellation:
        """Cancel a run unless it is final."""
        previous = self.engine.cancel(run_id)
        return Cancellation(previous, self.engine.retrieve(run_id))

    def run_replay(self, run_id: str) -> TriggeredRun:
        """A new run of the same task with the same payload and tags."""
        original = self.engine.retrieve(run_id, with_attempts=False)
        result = self.engine.replay(original.id)
        return TriggeredRun(result.run_id, original.task_id)

    def run_reschedule(self, run_id: str, delay: Any) -> Run:
        """Move a DELAYED run's start."""
        return self.engine.reschedule(run_id, delay)

    def run_events(self, run_id: str, *, after_id: int = 0, limit: int = 1000) -> list[RunEvent]:
        """A run's events in order, after an event id."""
        return [
            RunEvent(e.id, e.run_id, e.attempt, e.ts, e.kind, orjson.loads(e.data))
            for e in self.engine.run_events(run_id, after_id, limit)
        ]

    def run_watch(self, run_id: str) -> AsyncIterator[Run]:
        """The run now and after every change, from the engine's event log."""
        return self.engine.watch(run_id)

    def run_metadata_update(
        self, run_id: str, operations: Sequence[MetadataOperation]
    ) -> dict[str, Any]:
        """Apply metadata operations to a run; return its metadata afterwards."""
        run = self.engine.retrieve(run_id, with_attempts=False)  # a clear error if unknown
        changes = [list(operation) for operation in operations]
        metadata_ops.apply_all(dict(run.metadata), changes)  # bad operations fail here
        refused = self.engine.run_metadata_update(run_id, tags=None, changes=[(run_id, changes)])
        if refused:
            raise PayloadError(
                f"the metadata of run {run_id} was not changed: it would be over "
                f"{metadata_ops.METADATA_LIMIT_BYTES:,} bytes"
            )
        return self.engine.retrieve(run_id, with_attempts=False).metadata

    # -- queues -------------------------------------------------------------------------
    def queue_list(self) -> list[QueueDetails]:
        """Every queue workers have declared, with counts."""
        return self.engine.queues.list()

    def queue_retrieve(self, name: str) -> QueueDetails:
        """One queue, with counts."""
        return self.engine.queues.get(name)

    def queue_pause(self, name: str) -> QueueDetails:
        """Pause a queue."""
        return self.engine.queues.pause(name, True)

    def queue_resume(self, name: str) -> QueueDetails:
        """Resume a queue."""
        return self.engine.queues.pause(name, False)

    def queue_override_limit(self, name: str, limit: int) -> QueueDetails:
        """Override a queue's concurrency limit."""
        return self.engine.queues.override_limit(name, limit)

    def queue_reset_limit(self, name: str) -> QueueDetails:
        """Back to the limit declared in code."""
        return self.engine.queues.override_limit(name, None)

    # -- waitpoint tokens ---------------------------------------------------------------
    def token_create(self, options: TokenOptions) -> Token:
        """A token, or the one holding its idempotency key."""
        return runtime_wait.create_token(self.engine, options)

    def token_retrieve(self, token_id: str) -> TokenDetails:
        """A token and how it ended."""
        found = self.engine.waits.get(token_id)
        if found.kind != "TOKEN":
            raise InvalidOptionError(
                f"waitpoint {token_id} is a {found.kind} waitpoint, not a token"
            )
        result = orjson.loads(found.output) if found.output else {}
        error = None
        if found.status == "TIMED_OUT":
            message = (result.get("error") or {}).get("message", f"token {token_id} timed out")
            error = WaitpointTimeoutError(message)
        return TokenDetails(
            id=found.id,
            status=found.status,
            output=result.get("output") if found.status == "COMPLETED" else None,
            error=error,
            idempotency_key=found.idempotency_key,
            tags=orjson.loads(found.tags) if found.tags else [],
            created_at=ms_to_datetime(found.created_at),
            completed_at=ms_to_datetime(found.completed_at),
            timeout_at=ms_to_datetime(found.resume_at),
            url=runtime_wait.token_url(found.id),
        )

    def token_complete(self, token_id: str, data: Any) -> bool:
        """Complete a token; the first completion wins."""
        return self.engine.waits.complete_token(token_id, runtime_wait.token_output(token_id, data))

    # -- idempotency keys ---------------------------------------------------------------
    def idempotency_key_reset(self, task_id: str, key: str) -> bool:
        """Forget a task's idempotency key."""
        return self.engine.reset_idempotency_key(task_id, key)

    def close(self) -> None:
        """Close the engine (its store connection and wake-up socket)."""
        self.engine.close()
