"""Statements on the runs table: insert, read, list, and the guarded status changes.

Every status change is guarded by the status (and, for a worker's writes, the attempt and
worker) it may change from, so a late or duplicate write changes nothing. Which change may
follow which is the engine's transition table (`taskloom.engine.states`); the store suite
proves these statements can make no change the table does not allow.
"""

from __future__ import annotations

from typing import Any

from ...types import FINAL_STATUSES
from ..records import (
    AttemptStarts,
    FinishedRun,
    IdempotentRun,
    NewRun,
    RunCancel,
    RunFilter,
    RunFinish,
    RunGuard,
    RunRecord,
    RunRelease,
    RunReschedule,
    Suspension,
)
from .base import SessionBase
from .rows import RowReader, astuple, columns, field_names

NEW_RUN_COLUMNS = (*field_names(NewRun), "updated_at")

INSERT_RUN = (
    f"INSERT INTO runs ({', '.join(NEW_RUN_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(NEW_RUN_COLUMNS))})"
)
SELECT_RUN = f"SELECT {columns(RunRecord)} FROM runs WHERE id = :id"
SELECT_IDEMPOTENT = """
SELECT id, idempotency_expires_at FROM runs WHERE task_id = :task_id AND idempotency_key = :key
"""
CLEAR_IDEMPOTENCY = "UPDATE runs SET idempotency_key = NULL WHERE id = :id"
RESET_IDEMPOTENCY = """
UPDATE runs SET idempotency_key = NULL WHERE task_id = :task_id AND idempotency_key = :key
"""
GUARD_COLUMNS = columns(RunGuard)
SELECT_GUARD = f"SELECT {GUARD_COLUMNS} FROM runs WHERE id = :id"
SELECT_GUARDS = f"SELECT {GUARD_COLUMNS} FROM runs WHERE id IN (:ids)"
SELECT_FINISHED = f"SELECT {columns(FinishedRun)} FROM runs WHERE id = :id"
# The final statuses, spelled out once for the statements below (from the enum, not input).
FINAL = "(" + ", ".join(f"'{status.value}'" for status in sorted(FINAL_STATUSES)) + ")"

SELECT_LIVE_CHILDREN = f"""
SELECT id FROM runs WHERE parent_run_id = :id AND status NOT IN {FINAL}
"""
CANCEL_RUN = f"""
UPDATE runs SET status = 'CANCELED', finished_at = :now, updated_at = :now, error = :error
WHERE id = :run_id AND status = :status AND status NOT IN {FINAL}
"""
RESCHEDULE_RUN = """
UPDATE runs SET delay_until = :delay_until, available_at = :delay_until,
    queue_ts = :delay_until, sort_key = :delay_until - priority_ms, updated_at = :now
WHERE id = :run_id AND status = 'DELAYED'
"""
PROMOTE_DELAYED = """
UPDATE runs SET
    status = 'QUEUED',
    queue_ts = delay_until,
    sort_key = delay_until - priority_ms,
    available_at = delay_until,
    expires_at = CASE WHEN ttl_ms IS NOT NULL AND ttl_ms > 0 THEN :now + ttl_ms END,
    updated_at = :now
WHERE id IN (
    SELECT id FROM runs WHERE status = 'DELAYED' AND delay_until <= :now
    ORDER BY delay_until LIMIT :limit
)
RETURNING id, attempt
"""
EXPIRE_RUNS = """
UPDATE runs SET status = 'EXPIRED', finished_at = :now, updated_at = :now,
    idempotency_key = NULL
WHERE id IN (
    SELECT id FROM runs
    WHERE status = 'QUEUED' AND expires_at IS NOT NULL AND expires_at <= :now
    LIMIT :limit
)
RETURNING id, attempt
"""
NEXT_DELAYED = "SELECT MIN(delay_until) FROM runs WHERE status = 'DELAYED'"
NEXT_EXPIRY = """
SELECT MIN(expires_at) FROM runs WHERE status = 'QUEUED' AND expires_at IS NOT NULL
"""
# The statements of a worker's tick take positional parameters (the hot path).
START_ATTEMPT = """
UPDATE runs SET status = 'EXECUTING', started_at = COALESCE(started_at, ?), updated_at = ?
WHERE id = ? AND attempt = ? AND worker_id = ? AND status = 'DEQUEUED'
"""
FINISH_ATTEMPT = """
UPDATE runs SET
    status = ?1,
    output = ?2,
    error = ?3,
    available_at = COALESCE(?4, available_at),
    finished_at = ?5,
    started_at = COALESCE(started_at, ?6),
    worker_id = CASE WHEN ?1 = 'QUEUED' THEN NULL ELSE worker_id END,
    attempt = attempt - ?7 * (1 - suspended),
    idempotency_key = CASE WHEN ?8 = 1 THEN NULL ELSE idempotency_key END,
    machine = COALESCE(?9, machine),
    suspended = CASE WHEN ?7 = 1 THEN suspended ELSE 0 END,
    resume_worker = NULL,
    updated_at = ?10
WHERE id = ?11 AND attempt = ?12 AND worker_id = ?13
    AND status IN ('DEQUEUED', 'EXECUTING')
    AND ?1 IN ('QUEUED', 'COMPLETED', 'FAILED', 'CRASHED', 'SYSTEM_FAILURE', 'TIMED_OUT',
        'CANCELED')
"""
RELEASE_RUN = """
UPDATE runs SET status = 'QUEUED', worker_id = NULL, attempt = attempt - 1 + suspended,
    resume_worker = NULL, updated_at = :now,
    isolate = CASE WHEN :isolate = 1 THEN 1 ELSE isolate END
WHERE id = :run_id AND worker_id = :worker_id AND status IN ('DEQUEUED', 'EXECUTING')
"""
SUSPEND_RUN = """
UPDATE runs SET status = 'WAITING', suspended = 1, resume_worker = :worker_id, updated_at = :now
WHERE id = :run_id AND attempt = :attempt AND worker_id = :worker_id
    AND status IN ('DEQUEUED', 'EXECUTING')
"""
REQUEUE_WAITING = """
UPDATE runs SET status = 'QUEUED', available_at = ?1, updated_at = ?1
WHERE status = 'WAITING' AND id IN (:ids)
RETURNING id, attempt
"""
UNPARK_RUN = "UPDATE runs SET resume_worker = NULL WHERE id = :id AND resume_worker = :worker_id"
UNPARK_DEAD = """
UPDATE runs SET resume_worker = NULL WHERE resume_worker IN (
    SELECT id FROM workers WHERE status != 'RUNNING'
)
"""
MARK_WAITED = "UPDATE runs SET waited = 1 WHERE id = :id"
SET_TAGS = "UPDATE runs SET tags = :tags WHERE id = :id"
SELECT_METADATA = "SELECT metadata FROM runs WHERE id = :id"
SET_METADATA = "UPDATE runs SET metadata = :metadata WHERE id = :id"

# Fragments of run_list, combined in a fixed order; values are always bound.
LIST_BASE = f"SELECT {columns(RunRecord)} FROM runs WHERE 1 = 1"
LIST_STATUSES = " AND status IN (:statuses)"
LIST_TASKS = " AND task_id IN (:task_ids)"
LIST_SINCE = " AND created_at >= ?"
LIST_BEFORE = " AND id < ?"
LIST_ORDER = " ORDER BY id DESC LIMIT ?"

GUARD_CHUNK = 500

RUNS = RowReader(RunRecord)
GUARDS = RowReader(RunGuard)
FINISHED = RowReader(FinishedRun)
IDEMPOTENT = RowReader(IdempotentRun)


_KEY = NEW_RUN_COLUMNS.index("concurrency_key")
_TAGS = NEW_RUN_COLUMNS.index("tags")
_IS_TEST = NEW_RUN_COLUMNS.index("is_test")


def insert_params(run: NewRun, now: int) -> list[Any]:
    """The parameters of INSERT_RUN for one run (the trigger hot path: positional)."""
    params = [*astuple(run), now]
    params[_KEY] = run.concurrency_key or ""
    params[_TAGS] = None if run.tags is None else run.tags.decode()
    params[_IS_TEST] = 1 if run.is_test else 0
    return params


def _placeholders(count: int) -> str:
    return "(" + ",".join("?" * count) + ")"


class RunStatements(SessionBase):
    """The runs table."""

    # -- insert and read --------------------------------------------------------------
    def run_insert(self, run: NewRun, now: int) -> None:
        """Insert a run (the caller resolved its idempotency key first)."""
        self.run(INSERT_RUN, insert_params(run, now))

    def runs_insert(self, runs: list[NewRun], now: int) -> None:
        """Insert several runs with one statement."""
        self.run_many(INSERT_RUN, [insert_params(run, now) for run in runs])

    def run_get(self, run_id: str) -> RunRecord | None:
        """One run by id."""
        return RUNS.one(self.run(SELECT_RUN, {"id": run_id}))

    def run_list(self, filters: RunFilter) -> list[RunRecord]:
        """Runs matching the filters, newest first."""
        query = LIST_BASE
        params: list[Any] = []
        if filters.statuses:
            query += LIST_STATUSES.replace("(:statuses)", _placeholders(len(filters.statuses)))
            params.extend(filters.statuses)
        if filters.task_ids:
            query += LIST_TASKS.replace("(:task_ids)", _placeholders(len(filters.task_ids)))
            params.extend(filters.task_ids)
        if filters.tag is not None:
            query += self.list_tag_filter()
            params.append(filters.tag)
        if filters.since_ms is not None:
            query += LIST_SINCE
            params.append(filters.since_ms)
        if filters.before_id is not None:
            query += LIST_BEFORE
            params.append(filters.before_id)
        query += LIST_ORDER
        params.append(filters.limit)
        return RUNS.all(self.run(query, params))

    def list_tag_filter(self) -> str:
        """The run_list fragment keeping runs that have a tag (one positional parameter):
        each dialect spells it with its own JSON functions."""
        raise NotImplementedError

    def run_guard(self, run_id: str) -> RunGuard | None:
        """What a guarded change of a run checks (status, holder, attempt)."""
        return GUARDS.one(self.run(SELECT_GUARD, {"id": run_id}))

    def run_guards(self, run_ids: list[str]) -> dict[str, RunGuard]:
        """The guards of several runs, read in chunks of one statement each."""
        found: dict[str, RunGuard] = {}
        for start in range(0, len(run_ids), GUARD_CHUNK):
            chunk = run_ids[start : start + GUARD_CHUNK]
            query = SELECT_GUARDS.replace("(:ids)", _placeholders(len(chunk)))
            for guard in GUARDS.all(self.run(query, chunk)):
                found[guard.id] = guard
        return found

    def run_finished_get(self, run_id: str) -> FinishedRun | None:
        """A run's status and result, as the waits on it receive it."""
        return FINISHED.one(self.run(SELECT_FINISHED, {"id": run_id}))

    def runs_live_children(self, run_id: str) -> list[str]:
        """The children of a run that are not final."""
        return self.column(SELECT_LIVE_CHILDREN, {"id": run_id})

    # -- idempotency keys -------------------------------------------------------------
    def run_idempotent_find(self, task_id: str, key: str) -> IdempotentRun | None:
        """The run holding a task's idempotency key, if any."""
        return IDEMPOTENT.one(self.run(SELECT_IDEMPOTENT, {"task_id": task_id, "key": key}))

    def run_idempotency_clear(self, run_id: str) -> None:
        """Forget a run's idempotency key (it expired)."""
        self.run(CLEAR_IDEMPOTENCY, {"id": run_id})

    def idempotency_key_reset(self, task_id: str, key: str) -> bool:
        """Clear a task's idempotency key from the run holding it; True when one did."""
        cursor = self.run(RESET_IDEMPOTENCY, {"task_id": task_id, "key": key})
        return cursor.rowcount > 0

    # -- status changes ---------------------------------------------------------------
    def run_cancel(self, cancel: RunCancel) -> bool:
        """CANCELED, unless the run left the status it was read in (or is final)."""
        params = {
            "run_id": cancel.run_id,
            "status": cancel.status,
            "error": cancel.error,
            "now": cancel.now,
        }
        return self.run(CANCEL_RUN, params).rowcount == 1

    def run_reschedule(self, change: RunReschedule) -> bool:
        """Move a DELAYED run's start; False when the run is not DELAYED."""
        params = {"run_id": change.run_id, "delay_until": change.delay_until, "now": change.now}
        return self.run(RESCHEDULE_RUN, params).rowcount == 1

    def runs_promote_delayed(self, now: int, limit: int) -> list[tuple[str, int]]:
        """DELAYED runs due by `now` become QUEUED (oldest first); their (id, attempt)."""
        rows = self.run(PROMOTE_DELAYED, {"now": now, "limit": limit}).fetchall()
        return [(row[0], row[1]) for row in rows]

    def runs_expire(self, now: int, limit: int) -> list[tuple[str, int]]:
        """QUEUED runs past their TTL become EXPIRED (their key cleared); (id, attempt)."""
        rows = self.run(EXPIRE_RUNS, {"now": now, "limit": limit}).fetchall()
        return [(row[0], row[1]) for row in rows]

    def run_next_delay(self) -> int | None:
        """When the earliest DELAYED run is due."""
        value = self.scalar(NEXT_DELAYED)
        return None if value is None else int(value)

    def run_next_expiry(self) -> int | None:
        """When the earliest QUEUED run with a TTL expires."""
        value = self.scalar(NEXT_EXPIRY)
        return None if value is None else int(value)

    def runs_start(self, started: AttemptStarts) -> None:
        """DEQUEUED runs whose attempt began become EXECUTING (fenced to the worker)."""
        worker_id, now = started.worker_id, started.now
        self.run_many(
            START_ATTEMPT,
            [(s.started_at, now, s.run_id, s.attempt, worker_id) for s in started.starts],
        )

    def runs_finish(self, finishes: list[RunFinish]) -> None:
        """End attempts as decided (fenced by attempt and worker)."""
        self.run_many(
            FINISH_ATTEMPT,
            [
                (
                    f.status,
                    f.output,
                    f.error,
                    f.retry_at,
                    f.finished_at,
                    f.started_at,
                    1 if f.released else 0,
                    1 if f.clear_idempotency_key else 0,
                    f.machine,
                    f.now,
                    f.run_id,
                    f.attempt,
                    f.worker_id,
                )
                for f in finishes
            ],
        )

    def runs_release(self, release: RunRelease) -> list[str]:
        """Runs a worker holds go back to QUEUED without using an attempt; the released."""
        released = []
        for run_id in release.run_ids:
            params = {
                "run_id": run_id,
                "worker_id": release.worker_id,
                "isolate": 1 if release.isolate else 0,
                "now": release.now,
            }
            if self.run(RELEASE_RUN, params).rowcount == 1:
                released.append(run_id)
        return released

    def run_suspend(self, suspension: Suspension, now: int) -> bool:
        """A held run becomes WAITING, its coroutine parked on its worker."""
        params = {
            "run_id": suspension.run_id,
            "attempt": suspension.attempt,
            "worker_id": suspension.worker_id,
            "now": now,
        }
        return self.run(SUSPEND_RUN, params).rowcount == 1

    def runs_requeue_waiting(self, run_ids: list[str], now: int) -> list[tuple[str, int]]:
        """WAITING runs whose waits completed go back to their queues; (id, attempt) of
        each that did."""
        requeued: list[tuple[str, int]] = []
        for start in range(0, len(run_ids), GUARD_CHUNK):
            chunk = run_ids[start : start + GUARD_CHUNK]
            query = REQUEUE_WAITING.replace("(:ids)", _placeholders(len(chunk)))
            requeued.extend((row[0], row[1]) for row in self.run(query, (now, *chunk)))
        return requeued

    # -- other columns ----------------------------------------------------------------
    def runs_unpark(self, run_ids: list[str], worker_id: str) -> None:
        """These waiting runs no longer have a coroutine on `worker_id`: replay anywhere."""
        self.run_many(UNPARK_RUN, [{"id": run_id, "worker_id": worker_id} for run_id in run_ids])

    def runs_unpark_dead(self) -> None:
        """Waiting runs parked on workers that stopped or died continue by replay."""
        self.run(UNPARK_DEAD)

    def run_mark_waited(self, run_id: str) -> None:
        """A RUN waitpoint waits for this run to end."""
        self.run(MARK_WAITED, {"id": run_id})

    def run_tags_set(self, run_id: str, tags: bytes) -> None:
        """Replace a run's tags (JSON list)."""
        self.run(SET_TAGS, {"id": run_id, "tags": tags.decode()})

    def run_metadata_get(self, run_id: str) -> tuple[bytes | None] | None:
        """A run's metadata as a one-tuple, or None when the run does not exist."""
        row = self.run(SELECT_METADATA, {"id": run_id}).fetchone()
        return None if row is None else (row[0],)

    def run_metadata_set(self, run_id: str, metadata: bytes) -> None:
        """Replace a run's metadata (JSON object)."""
        self.run(SET_METADATA, {"id": run_id, "metadata": metadata})
