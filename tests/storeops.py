"""The store's transactions as the engine composes them, with explicit times.

The store suite (tests/store) and the tests below the engine's facade drive a real store
through the engine's own transaction functions (`taskloom.engine.inserting`,
`cancelling`, `ticking`, `waitpoints`, `maintenance`, ...) at times they choose, instead of
through the facade's clock. `StoreOps(store)` offers each of those transactions as one
method; nothing here decides anything the engine does not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from taskloom.engine import cancelling, inserting, maintenance, ticking, waitpoints
from taskloom.engine.events import Journal, journaled
from taskloom.engine.metadata import apply_changes
from taskloom.engine.workers import worker_stop
from taskloom.store.base import Store
from taskloom.store.records import (
    AttemptOutcome,
    AttemptRecord,
    EventPage,
    EventRecord,
    InsertResult,
    LapsedAttempt,
    LeaderTerm,
    NewEvent,
    NewRun,
    NewWaitpoint,
    QueueChange,
    QueueDeclaration,
    QueueRecord,
    RecordedWait,
    RunFilter,
    RunRecord,
    RunRelease,
    RunReschedule,
    TaskDefinitionRecord,
    TickResult,
    WaitpointRecord,
    WaitRef,
    WorkerInfo,
    WorkerTick,
)
from taskloom.store.sql.session import Session

T = TypeVar("T")


class StoreOps:
    """A store and the engine's transactions on it, one method each."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.url = store.url

    def _write(self, now: int, body: Callable[[Session, Journal], T], what: str = "test") -> T:
        return self.store.write(journaled(now, body), what)

    def _read(self, body: Callable[[Session], T]) -> T:
        return self.store.read(body)

    # -- schema ---------------------------------------------------------------------
    def migrate(self) -> list[str]:
        return self.store.migrate()

    def schema_version(self) -> int:
        return self.store.schema_version()

    def close(self) -> None:
        self.store.close()

    # -- runs -------------------------------------------------------------------------
    def run_insert(self, run: NewRun, now: int) -> InsertResult:
        return self.store.write(lambda s: inserting.insert_run(s, run, now), "trigger")

    def run_get(self, run_id: str) -> RunRecord | None:
        return self._read(lambda s: s.run_get(run_id))

    def run_list(self, filters: RunFilter) -> list[RunRecord]:
        return self._read(lambda s: s.run_list(filters))

    def run_cancel(self, run_id: str, now: int, reason: str) -> str | None:
        return self._write(now, lambda s, j: cancelling.cancel_run(s, run_id, reason, j))

    def run_metadata_apply(
        self,
        run_id: str,
        *,
        tags: bytes | None,
        changes: list[tuple[str, list[list[Any]]]],
        now: int = 0,
    ) -> list[str]:
        listed = None if tags is None else orjson.loads(tags)
        return self._write(now, lambda s, j: apply_changes(s, run_id, listed, changes, j))

    def idempotency_key_reset(self, task_id: str, key: str) -> bool:
        return self.store.execute(lambda s: s.idempotency_key_reset(task_id, key), "reset")

    def run_reschedule(self, run_id: str, delay_until: int, now: int) -> bool:
        change = RunReschedule(run_id, delay_until, now)
        return self.store.execute(lambda s: s.run_reschedule(change), "reschedule")

    def runs_promote_delayed(self, now: int, limit: int) -> int:
        return self._write(now, lambda s, j: maintenance.promote_delayed(s, j, limit))

    def runs_expire(self, now: int, limit: int) -> list[str]:
        return self._write(now, lambda s, j: maintenance.expire(s, j, limit))

    def run_next_due(self, now: int) -> int | None:
        return self._read(maintenance.next_due)

    # -- attempts and events ----------------------------------------------------------
    def attempt_list(self, run_id: str) -> list[AttemptRecord]:
        return self._read(lambda s: s.attempt_list(run_id))

    def event_list(
        self, run_id: str, after_id: int = 0, limit: int = 1000, *, kinds: tuple[str, ...] = ()
    ) -> list[EventRecord]:
        """A run's events; with `kinds`, only those kinds (e.g. what executors reported,
        without the status changes the engine journals)."""
        page = EventPage(run_id, after_id, limit)
        events = self._read(lambda s: s.event_list(page))
        return [e for e in events if e.kind in kinds] if kinds else events

    def events_append(self, events: list[NewEvent]) -> None:
        self.store.write(lambda s: s.events_append(events), "events")

    # -- workers ----------------------------------------------------------------------
    def worker_register(self, worker: WorkerInfo, now: int) -> None:
        self.store.execute(lambda s: s.worker_register(worker, now), "register")

    def worker_heartbeat(self, worker_id: str, now: int) -> bool:
        return self.store.execute(lambda s: s.worker_heartbeat(worker_id, now), "heartbeat")

    def worker_stop(self, worker_id: str, now: int) -> None:
        self.store.write(lambda s: worker_stop(s, worker_id=worker_id, now=now), "stop")

    def worker_tick(self, tick: WorkerTick) -> TickResult:
        return self.store.write(lambda s: ticking.worker_tick(s, tick), "worker tick")

    def runs_release(
        self, worker_id: str, run_ids: list[str], now: int, *, isolate: bool = False
    ) -> list[str]:
        request = RunRelease(worker_id, run_ids, isolate, now)
        return self._write(now, lambda s, j: ticking.release(s, request, j))

    def attempts_lapsed(self, now: int, lease_ms: int, limit: int) -> list[LapsedAttempt]:
        return self._read(lambda s: s.attempts_lapsed(now - lease_ms, limit))

    def workers_reap(self, now: int, lease_ms: int) -> list[str]:
        return self.store.write(lambda s: maintenance.reap(s, now, lease_ms), "reap")

    def attempts_finish(self, outcomes: list[AttemptOutcome]) -> list[str]:
        if not outcomes:
            return []
        now = max(o.finished_at for o in outcomes)
        return self._write(now, lambda s, j: maintenance.finish(s, j, outcomes))

    # -- leaders and task catalog -----------------------------------------------------
    def leader_elect(self, name: str, holder: str, now: int, ttl_ms: int) -> bool:
        term = LeaderTerm(name, holder, now, ttl_ms)
        return self.store.write(lambda s: s.leader_elect(term), "leader election")

    def leader_resign(self, name: str, holder: str) -> None:
        self.store.execute(lambda s: s.leader_resign(name, holder), "resign")

    def task_catalog_upsert(self, tasks: list[TaskDefinitionRecord]) -> None:
        self.store.write(lambda s: s.task_catalog_upsert(tasks), "task catalog")

    def task_catalog_get(self, task_id: str) -> TaskDefinitionRecord | None:
        return self._read(lambda s: s.task_catalog_get(task_id))

    def task_catalog_list(self) -> list[TaskDefinitionRecord]:
        return self._read(lambda s: s.task_catalog_list())

    # -- waits ------------------------------------------------------------------------
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
        return self.store.write(
            lambda s: waitpoints.register_wait(
                s, ref, kind, waitpoint, waitpoint_id, now, result=result
            ),
            "wait",
        )

    def run_waits_list(self, run_id: str, attempt: int) -> list[RecordedWait]:
        return self._read(lambda s: s.run_waits_list(run_id, attempt))

    def run_trigger_child(
        self, child: NewRun, ref: WaitRef | None, *, wait: bool, now: int
    ) -> tuple[InsertResult, RecordedWait | None]:
        return self.store.write(
            lambda s: inserting.trigger_child(s, child, ref, wait=wait, now=now), "child"
        )

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
        return self.store.write(
            lambda s: inserting.insert_batch(
                s, batch_id, parent_run_id, runs, ref, wait=wait, now=now
            ),
            "batch",
        )

    def waitpoint_create(self, waitpoint: NewWaitpoint, now: int) -> WaitpointRecord:
        def body(session: Session) -> WaitpointRecord:
            found = session.waitpoint_get(waitpoints.create_waitpoint(session, waitpoint, now))
            assert found is not None
            return found

        return self.store.write(body, "waitpoint")

    def waitpoint_get(self, waitpoint_id: str) -> WaitpointRecord | None:
        return self._read(lambda s: s.waitpoint_get(waitpoint_id))

    def token_complete(self, waitpoint_id: str, output: bytes, now: int) -> tuple[bool, list[str]]:
        return self._write(
            now, lambda s, j: waitpoints.complete_token(s, waitpoint_id, output, now, j)
        )

    def waitpoints_complete_due(self, now: int, limit: int) -> list[str]:
        return self._write(now, lambda s, j: waitpoints.complete_due(s, now, limit, j))

    def runs_unpark(self, run_ids: list[str], worker_id: str) -> None:
        self.store.write(lambda s: s.runs_unpark(run_ids, worker_id), "unpark")

    # -- queues -----------------------------------------------------------------------
    def queues_declare(self, queues: list[QueueDeclaration], now: int) -> None:
        self.store.write(lambda s: s.queues_declare(queues, now), "queues")

    def queue_list(self) -> list[QueueRecord]:
        return self._read(lambda s: s.queue_list())

    def queue_get(self, name: str) -> QueueRecord | None:
        return self._read(lambda s: s.queue_get(name))

    def queue_set_paused(self, name: str, paused: bool, now: int) -> bool:
        change = QueueChange(name, now, paused=paused)
        return self.store.execute(lambda s: s.queue_change(change), "pause")

    def queue_override_limit(self, name: str, limit: int | None, now: int) -> bool:
        change = QueueChange(name, now, limit_override=limit, reset_limit=limit is None)
        return self.store.execute(lambda s: s.queue_change(change), "limit")
