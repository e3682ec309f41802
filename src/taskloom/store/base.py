"""The store interface: every durable read and write taskloom makes goes through it.

Nothing outside `taskloom.store` speaks SQL. Each dialect (SQLite now, PostgreSQL
later) is a subclass; the same suite in `tests/store/` runs against every one.
Method names are `noun_verb`. Times are integers in ms since the epoch; callers pass
`now` so time stays injectable in tests.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

from .records import (
    AttemptOutcome,
    AttemptRecord,
    EventRecord,
    InsertResult,
    LapsedAttempt,
    NewEvent,
    NewRun,
    NewWaitpoint,
    QueueDeclaration,
    QueueRecord,
    RecordedWait,
    RunFilter,
    RunRecord,
    TaskDefinitionRecord,
    TickResult,
    WaitpointRecord,
    WaitRef,
    WorkerInfo,
    WorkerTick,
)

MetadataMerge = Callable[[bytes | None, list[list[Any]]], bytes | None]
"""The engine's rule for metadata: stored JSON and operations -> new JSON, or None."""


class Store(abc.ABC):
    """Durable state of runs, attempts, events, workers and leaders."""

    url: str

    # -- schema -----------------------------------------------------------------
    @abc.abstractmethod
    def migrate(self) -> list[str]:
        """Apply pending numbered migrations; return the names applied."""

    @abc.abstractmethod
    def schema_version(self) -> int:
        """The highest migration number applied (0 for an empty database)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections. The store may be reopened by using it again."""

    # -- runs -------------------------------------------------------------------
    @abc.abstractmethod
    def run_insert(self, run: NewRun, now: int) -> InsertResult:
        """Create a run, or return the live run holding the same (task, idempotency key)."""

    @abc.abstractmethod
    def run_get(self, run_id: str) -> RunRecord | None:
        """One run by id."""

    @abc.abstractmethod
    def run_list(self, filters: RunFilter) -> list[RunRecord]:
        """Runs matching the filters, newest first."""

    @abc.abstractmethod
    def run_cancel(self, run_id: str, now: int, reason: str) -> str | None:
        """Cancel a run that is not final; return the status it had (None if missing).

        Queued and delayed runs become CANCELED at once. A run held by a worker becomes
        CANCELED too, and a cancel signal is left for its worker, which stops the attempt.
        """

    @abc.abstractmethod
    def run_metadata_apply(
        self,
        run_id: str,
        *,
        tags: bytes | None,
        changes: list[tuple[str, list[list[Any]]]],
        merge: MetadataMerge,
    ) -> list[str]:
        """Set a run's tags (when given) and apply metadata operations to runs (the run, its
        parent, its root) in one transaction: `merge(stored, operations)` gives each run's
        new metadata, or None to refuse the change. Returns the refused runs' ids."""

    @abc.abstractmethod
    def idempotency_key_reset(self, task_id: str, key: str) -> bool:
        """Clear a task's idempotency key from the run holding it; True when one did."""

    @abc.abstractmethod
    def run_reschedule(self, run_id: str, delay_until: int, now: int) -> bool:
        """Move a DELAYED run's start; False when the run is not DELAYED."""

    @abc.abstractmethod
    def runs_promote_delayed(self, now: int, limit: int) -> int:
        """Move DELAYED runs whose time has come into their queues; return how many."""

    @abc.abstractmethod
    def runs_expire(self, now: int, limit: int) -> list[str]:
        """End unstarted runs past their TTL as EXPIRED; return their ids."""

    @abc.abstractmethod
    def run_next_due(self, now: int) -> int | None:
        """The earliest future time a delayed run, retry or expiry is due, if any."""

    # -- attempts and events --------------------------------------------------
    @abc.abstractmethod
    def attempt_list(self, run_id: str) -> list[AttemptRecord]:
        """The attempts of a run, in order."""

    @abc.abstractmethod
    def event_list(self, run_id: str, after_id: int = 0, limit: int = 1000) -> list[EventRecord]:
        """A run's events in order, after the given event id."""

    @abc.abstractmethod
    def events_append(self, events: list[NewEvent]) -> None:
        """Append events (from outside a worker tick)."""

    # -- workers ----------------------------------------------------------------
    @abc.abstractmethod
    def worker_register(self, worker: WorkerInfo, now: int) -> None:
        """Record a live worker."""

    @abc.abstractmethod
    def worker_heartbeat(self, worker_id: str, now: int) -> bool:
        """Renew a worker's lease; False when it was declared dead (its runs rescued)."""

    @abc.abstractmethod
    def worker_stop(self, worker_id: str, now: int) -> None:
        """Mark a worker stopped after it released everything it held."""

    @abc.abstractmethod
    def worker_tick(self, tick: WorkerTick) -> TickResult:
        """One transaction: apply starts and outcomes (fenced), append events, claim runs."""

    @abc.abstractmethod
    def runs_release(
        self, worker_id: str, run_ids: list[str], now: int, *, isolate: bool = False
    ) -> list[str]:
        """Put runs a worker holds back in their queues without using an attempt.

        With `isolate`, their next attempt runs alone in its executor: they shared an
        executor that crashed, and the one that crashed it is not known yet.
        """

    @abc.abstractmethod
    def attempts_lapsed(self, now: int, lease_ms: int, limit: int) -> list[LapsedAttempt]:
        """Attempts held by workers whose heartbeat is older than the lease."""

    @abc.abstractmethod
    def workers_reap(self, now: int, lease_ms: int) -> list[str]:
        """Mark workers without a heartbeat for a lease as dead; return their ids."""

    @abc.abstractmethod
    def attempts_finish(self, outcomes: list[AttemptOutcome]) -> list[str]:
        """Apply outcomes decided outside a tick (rescues, cancels); return the applied runs."""

    # -- leaders and task catalog ---------------------------------------------
    @abc.abstractmethod
    def leader_elect(self, name: str, holder: str, now: int, ttl_ms: int) -> bool:
        """Take or keep the named leadership for ttl_ms; True when `holder` leads."""

    @abc.abstractmethod
    def leader_resign(self, name: str, holder: str) -> None:
        """Give up a leadership held by `holder`."""

    @abc.abstractmethod
    def task_catalog_upsert(self, tasks: list[TaskDefinitionRecord]) -> None:
        """Record task definitions announced by a worker."""

    @abc.abstractmethod
    def task_catalog_get(self, task_id: str) -> TaskDefinitionRecord | None:
        """A task definition announced by some worker."""

    @abc.abstractmethod
    def task_catalog_list(self) -> list[TaskDefinitionRecord]:
        """Every announced task definition."""

    # -- waits ------------------------------------------------------------------
    @abc.abstractmethod
    def wait_register(
        self,
        ref: WaitRef,
        kind: str,
        waitpoint: NewWaitpoint | None,
        waitpoint_id: str | None,
        now: int,
        *,
        result: bytes | None = None,
    ) -> RecordedWait:
        """Record a run's wait at its sequence number, creating `waitpoint` if given, or on
        an existing `waitpoint_id` (a token); with `result`, a step done at once. Returns
        what was recorded before, if anything (a replay or a re-attach), and COMPLETED at
        once when the waitpoint is done."""

    @abc.abstractmethod
    def run_waits_list(self, run_id: str, attempt: int) -> list[RecordedWait]:
        """The waits an attempt of a run made, by sequence number."""

    @abc.abstractmethod
    def run_trigger_child(
        self, child: NewRun, ref: WaitRef | None, *, wait: bool, now: int
    ) -> tuple[InsertResult, RecordedWait | None]:
        """Trigger a child run from inside a run, recorded at `ref` (a replay finds the same
        child); with `wait`, the parent's wait on it in the same transaction."""

    @abc.abstractmethod
    def batch_insert(
        self,
        batch_id: str,
        parent_run_id: str | None,
        runs: list[NewRun],
        ref: WaitRef | None,
        *,
        wait: bool,
        now: int,
    ) -> tuple[list[InsertResult], RecordedWait | None]:
        """Insert a batch of runs in one transaction (all or none), optionally waited on."""

    @abc.abstractmethod
    def waitpoint_create(self, waitpoint: NewWaitpoint, now: int) -> WaitpointRecord:
        """Create a waitpoint (a token), or return the one holding its idempotency key."""

    @abc.abstractmethod
    def waitpoint_get(self, waitpoint_id: str) -> WaitpointRecord | None:
        """One waitpoint."""

    @abc.abstractmethod
    def token_complete(self, waitpoint_id: str, output: bytes, now: int) -> tuple[bool, list[str]]:
        """Complete a waiting token with `output`; (False, []) when it is done or unknown.
        Returns the runs put back in their queues."""

    @abc.abstractmethod
    def waitpoints_complete_due(self, now: int, limit: int) -> list[str]:
        """Complete duration waits whose time came, time out tokens; return requeued runs."""

    @abc.abstractmethod
    def runs_unpark(self, run_ids: list[str], worker_id: str) -> None:
        """A worker lost the coroutines of these waiting runs: they continue by replay."""

    # -- queues -----------------------------------------------------------------
    @abc.abstractmethod
    def queues_declare(self, queues: list[QueueDeclaration], now: int) -> None:
        """Record queues as code declares them (limits from code; overrides and pauses kept)."""

    @abc.abstractmethod
    def queue_list(self) -> list[QueueRecord]:
        """Every known queue with its running and queued counts."""

    @abc.abstractmethod
    def queue_get(self, name: str) -> QueueRecord | None:
        """One queue with its counts."""

    @abc.abstractmethod
    def queue_set_paused(self, name: str, paused: bool, now: int) -> bool:
        """Pause (no new starts) or resume a queue; False when it is unknown."""

    @abc.abstractmethod
    def queue_override_limit(self, name: str, limit: int | None, now: int) -> bool:
        """Override a queue's limit (None: back to the code's value); False when unknown."""
