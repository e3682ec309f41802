"""Statements on waits: waitpoints (the one blocking primitive), the waits each run made by
sequence number with their recorded results, and batches of runs.

What a completed waitpoint means for the runs waiting on it (requeueing them, counting a
batch's final runs, shaping a child run's result) is the engine's
(`taskloom.engine.waitpoints`); these are the reads and guarded writes it composes.
"""

from __future__ import annotations

from typing import Any

from ..records import (
    BatchCount,
    DueWaitpoint,
    FinishedRun,
    NewBatch,
    NewRunWait,
    NewWaitpoint,
    RecordedWait,
    RunWaitRecord,
    WaitpointRecord,
    WaitpointsDone,
    WaitRef,
)
from .base import SessionBase
from .rows import RowReader, columns

INSERT_WAITPOINT = """
INSERT INTO waitpoints (id, kind, status, resume_at, target_id, idempotency_key,
    idempotency_expires_at, tags, created_at)
VALUES (:id, :kind, 'WAITING', :resume_at, :target_id, :idempotency_key,
    :idempotency_expires_at, :tags, :now)
"""
SELECT_WAITPOINT = f"SELECT {columns(WaitpointRecord)} FROM waitpoints WHERE id = :id"
SELECT_WAITPOINT_BY_KEY = """
SELECT id, idempotency_expires_at FROM waitpoints WHERE idempotency_key = :key
"""
CLEAR_WAITPOINT_KEY = "UPDATE waitpoints SET idempotency_key = NULL WHERE id = :id"
# Statements over a list of ids take positional parameters: the values, then the ids.
COMPLETE_WAITPOINTS = """
UPDATE waitpoints SET status = ?, output = ?, is_error = ?, completed_at = ?
WHERE status = 'WAITING' AND id IN (:ids)
RETURNING id
"""
SELECT_DUE = """
SELECT id, kind FROM waitpoints
WHERE status = 'WAITING' AND resume_at IS NOT NULL AND resume_at <= :now
ORDER BY resume_at LIMIT :limit
"""
NEXT_WAITPOINT_DUE = """
SELECT MIN(resume_at) FROM waitpoints WHERE status = 'WAITING' AND resume_at IS NOT NULL
"""
SELECT_OPEN_FOR = """
SELECT id FROM waitpoints WHERE status = 'WAITING' AND kind = :kind AND target_id = :target
"""

RUN_WAIT_COLUMNS = columns(RecordedWait)
SELECT_RUN_WAIT = f"""
SELECT {RUN_WAIT_COLUMNS} FROM run_waits
WHERE run_id = :run_id AND attempt = :attempt AND seq = :seq
"""
SELECT_RUN_WAITS = f"""
SELECT {RUN_WAIT_COLUMNS} FROM run_waits
WHERE run_id = :run_id AND attempt = :attempt ORDER BY seq
"""
INSERT_RUN_WAIT = """
INSERT INTO run_waits (run_id, attempt, seq, kind, waitpoint_id, status, result, delivered,
    created_at, completed_at)
VALUES (:run_id, :attempt, :seq, :kind, :waitpoint_id, :status, :result, :delivered,
    :now, :completed_at)
"""
COMPLETE_RUN_WAITS = """
UPDATE run_waits SET status = 'COMPLETED', result = ?, completed_at = ?
WHERE status = 'PENDING' AND waitpoint_id IN (:ids)
RETURNING run_id
"""
ID_CHUNK = 500
SELECT_UNDELIVERED = f"""
SELECT {RUN_WAIT_COLUMNS} FROM run_waits
WHERE run_id = :run_id AND attempt = :attempt AND status = 'COMPLETED' AND delivered = 0
ORDER BY seq
"""
MARK_DELIVERED = """
UPDATE run_waits SET delivered = 1
WHERE run_id = :run_id AND attempt = :attempt AND status = 'COMPLETED' AND delivered = 0
"""
# Over many (run, attempt) pairs at once: `(:ids)` becomes the runs' ids (what the
# primary key is searched by), `(:pairs)` `(?, ?), (?, ?), ...`.
SELECT_UNDELIVERED_OF = f"""
SELECT {columns(RunWaitRecord)} FROM run_waits
WHERE run_id IN (:ids) AND (run_id, attempt) IN (VALUES (:pairs))
    AND status = 'COMPLETED' AND delivered = 0
ORDER BY run_id, seq
"""
MARK_DELIVERED_OF = """
UPDATE run_waits SET delivered = 1
WHERE run_id IN (:ids) AND (run_id, attempt) IN (VALUES (:pairs))
    AND status = 'COMPLETED' AND delivered = 0
"""
HAS_PENDING = """
SELECT 1 FROM run_waits WHERE run_id = :run_id AND attempt = :attempt AND status = 'PENDING'
"""

INSERT_BATCH = """
INSERT INTO batches (id, parent_run_id, run_count, completed_count, created_at)
VALUES (:id, :parent_run_id, :run_count, :completed_count, :now)
"""
INSERT_BATCH_ITEM = """
INSERT INTO batch_items (batch_id, position, run_id) VALUES (:batch_id, :position, :run_id)
"""
SELECT_BATCHES_OF = "SELECT DISTINCT batch_id FROM batch_items WHERE run_id = :run_id"
BUMP_BATCH = """
UPDATE batches SET completed_count = completed_count + 1 WHERE id = :id
RETURNING completed_count, run_count
"""
SELECT_BATCH_RESULTS = """
SELECT r.id, r.task_id, r.status, r.output, r.error, r.waited
FROM batch_items AS b JOIN runs AS r ON r.id = b.run_id
WHERE b.batch_id = :id ORDER BY b.position
"""
SELECT_BATCH_ITEMS = """
SELECT run_id FROM batch_items WHERE batch_id = :id ORDER BY position
"""

WAITPOINTS = RowReader(WaitpointRecord)
RUN_WAITS = RowReader(RecordedWait)
RUN_WAITS_OF = RowReader(RunWaitRecord)
DUE = RowReader(DueWaitpoint)
FINISHED = RowReader(FinishedRun)
COUNTS = RowReader(BatchCount)


def _ref(ref: WaitRef) -> dict[str, object]:
    return {"run_id": ref.run_id, "attempt": ref.attempt, "seq": ref.seq}


class WaitStatements(SessionBase):
    """Waitpoints, the waits of runs, and batches."""

    # -- waitpoints -------------------------------------------------------------------
    def waitpoint_insert(self, waitpoint: NewWaitpoint, now: int) -> None:
        """Create a WAITING waitpoint."""
        self.run(
            INSERT_WAITPOINT,
            {
                "id": waitpoint.id,
                "kind": waitpoint.kind,
                "resume_at": waitpoint.resume_at,
                "target_id": waitpoint.target_id,
                "idempotency_key": waitpoint.idempotency_key,
                "idempotency_expires_at": waitpoint.idempotency_expires_at,
                "tags": None if waitpoint.tags is None else waitpoint.tags.decode(),
                "now": now,
            },
        )

    def waitpoint_get(self, waitpoint_id: str) -> WaitpointRecord | None:
        """One waitpoint."""
        return WAITPOINTS.one(self.run(SELECT_WAITPOINT, {"id": waitpoint_id}))

    def waitpoint_by_key(self, key: str) -> tuple[str, int | None] | None:
        """The waitpoint holding an idempotency key: (id, when the key expires)."""
        row = self.run(SELECT_WAITPOINT_BY_KEY, {"key": key}).fetchone()
        return None if row is None else (str(row[0]), row[1])

    def waitpoint_key_clear(self, waitpoint_id: str) -> None:
        """Forget a waitpoint's idempotency key (it expired)."""
        self.run(CLEAR_WAITPOINT_KEY, {"id": waitpoint_id})

    def waitpoints_complete(self, done: WaitpointsDone) -> list[str]:
        """Complete the WAITING ones of these waitpoints; the ids completed now."""
        values = (done.status, done.result, 1 if done.is_error else 0, done.now)
        return self._each_chunk(COMPLETE_WAITPOINTS, values, done.ids)

    def waitpoints_due(self, now: int, limit: int) -> list[DueWaitpoint]:
        """WAITING waitpoints whose resume time has come, oldest first."""
        return DUE.all(self.run(SELECT_DUE, {"now": now, "limit": limit}))

    def waitpoint_next_due(self) -> int | None:
        """When the earliest waiting waitpoint with a resume time is due."""
        value = self.scalar(NEXT_WAITPOINT_DUE)
        return None if value is None else int(value)

    def waitpoints_open_for(self, kind: str, target_id: str) -> list[str]:
        """WAITING waitpoints of a kind on a target (a run, a batch)."""
        return self.column(SELECT_OPEN_FOR, {"kind": kind, "target": target_id})

    # -- the waits of runs ------------------------------------------------------------
    def run_wait_get(self, ref: WaitRef) -> RecordedWait | None:
        """The wait a run made at a sequence number, if it made one."""
        return RUN_WAITS.one(self.run(SELECT_RUN_WAIT, _ref(ref)))

    def run_waits_list(self, run_id: str, attempt: int) -> list[RecordedWait]:
        """The waits an attempt of a run made, by sequence number."""
        params = {"run_id": run_id, "attempt": attempt}
        return RUN_WAITS.all(self.run(SELECT_RUN_WAITS, params))

    def run_wait_insert(self, wait: NewRunWait) -> None:
        """Record a wait at its sequence number (a completed one counts as delivered: the
        call that records it returns the result to the run itself)."""
        done = wait.status == "COMPLETED"
        self.run(
            INSERT_RUN_WAIT,
            {
                **_ref(wait.ref),
                "kind": wait.kind,
                "waitpoint_id": wait.waitpoint_id,
                "status": wait.status,
                "result": wait.result,
                "delivered": 1 if done else 0,
                "now": wait.now,
                "completed_at": wait.now if done else None,
            },
        )

    def run_waits_complete(self, done: WaitpointsDone) -> list[str]:
        """Record the result on every pending wait on these waitpoints; the runs that
        waited."""
        return self._each_chunk(COMPLETE_RUN_WAITS, (done.result, done.now), done.ids)

    def _each_chunk(self, statement: str, values: tuple[Any, ...], ids: list[str]) -> list[str]:
        """Run a statement ending in `IN (:ids)` over chunks of ids; its first column."""
        found: list[str] = []
        for start in range(0, len(ids), ID_CHUNK):
            chunk = ids[start : start + ID_CHUNK]
            query = statement.replace("(:ids)", "(" + ",".join("?" * len(chunk)) + ")")
            found.extend(str(row[0]) for row in self.run(query, (*values, *chunk)))
        return found

    def run_waits_take_undelivered(self, run_id: str, attempt: int) -> list[RecordedWait]:
        """Completed waits not yet handed to the run (marked delivered now)."""
        params = {"run_id": run_id, "attempt": attempt}
        ready = RUN_WAITS.all(self.run(SELECT_UNDELIVERED, params))
        if ready:
            self.run(MARK_DELIVERED, params)
        return ready

    def run_waits_take_undelivered_of(
        self, attempts: list[tuple[str, int]]
    ) -> dict[str, list[RecordedWait]]:
        """`run_waits_take_undelivered` for many (run, attempt) pairs at once, by run."""
        found: dict[str, list[RecordedWait]] = {}
        for start in range(0, len(attempts), ID_CHUNK):
            chunk = attempts[start : start + ID_CHUNK]
            ids = ",".join("?" * len(chunk))
            pairs = "), (".join("?, ?" for _ in chunk)
            values = [run_id for run_id, _ in chunk] + [v for pair in chunk for v in pair]
            select = SELECT_UNDELIVERED_OF.replace(":ids", ids).replace(":pairs", pairs)
            for wait in RUN_WAITS_OF.all(self.run(select, values)):
                found.setdefault(wait.run_id, []).append(wait.recorded())
            self.run(MARK_DELIVERED_OF.replace(":ids", ids).replace(":pairs", pairs), values)
        return found

    def run_waits_pending(self, run_id: str, attempt: int) -> bool:
        """True when an attempt has a wait that is not complete."""
        params = {"run_id": run_id, "attempt": attempt}
        return self.run(HAS_PENDING, params).fetchone() is not None

    # -- batches ----------------------------------------------------------------------
    def batch_insert(self, batch: NewBatch) -> None:
        """A batch and its items in order (`completed_count`: items final already)."""
        self.run(
            INSERT_BATCH,
            {
                "id": batch.id,
                "parent_run_id": batch.parent_run_id,
                "run_count": len(dict.fromkeys(batch.run_ids)),
                "completed_count": batch.completed_count,
                "now": batch.now,
            },
        )
        self.run_many(
            INSERT_BATCH_ITEM,
            [
                {"batch_id": batch.id, "position": position, "run_id": run_id}
                for position, run_id in enumerate(batch.run_ids)
            ],
        )

    def batches_of(self, run_id: str) -> list[str]:
        """The batches a run belongs to."""
        return self.column(SELECT_BATCHES_OF, {"run_id": run_id})

    def batch_count_final(self, batch_id: str) -> BatchCount | None:
        """Count one more of a batch's runs as final; the counts after."""
        return COUNTS.one(self.run(BUMP_BATCH, {"id": batch_id}))

    def batch_results(self, batch_id: str) -> list[FinishedRun]:
        """A batch's runs in item order, with their status and result."""
        return FINISHED.all(self.run(SELECT_BATCH_RESULTS, {"id": batch_id}))

    def batch_item_ids(self, batch_id: str) -> list[str]:
        """A batch's run ids in item order."""
        return self.column(SELECT_BATCH_ITEMS, {"id": batch_id})
