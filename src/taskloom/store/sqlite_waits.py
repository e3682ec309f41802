"""Waitpoints on SQLite: registering waits, completing waitpoints, finishing child runs.

All functions take the caller's connection inside a write transaction. When a waitpoint
completes, every wait on it records the result, and each run WAITING on one of them goes
back to its queue (at its original queue timestamp, with `suspended` still set, so it
continues its attempt: on its own worker when that one still holds it, else by replay).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

import orjson

from ..ids import new_id
from .records import NewWaitpoint, RecordedWait, WaitpointRecord, WaitRef

FINAL = ("COMPLETED", "CANCELED", "FAILED", "CRASHED", "SYSTEM_FAILURE", "EXPIRED", "TIMED_OUT")

INSERT_WAITPOINT = """
INSERT INTO waitpoints (id, kind, status, resume_at, target_id, idempotency_key,
    idempotency_expires_at, tags, created_at)
VALUES (?, ?, 'WAITING', ?, ?, ?, ?, ?, ?)
"""
SELECT_WAITPOINT = """
SELECT id, kind, status, resume_at, target_id, idempotency_key, tags, output, is_error,
    created_at, completed_at
FROM waitpoints WHERE id = ?
"""
SELECT_WAITPOINT_BY_KEY = """
SELECT id, idempotency_expires_at FROM waitpoints WHERE idempotency_key = ?
"""
CLEAR_WAITPOINT_KEY = "UPDATE waitpoints SET idempotency_key = NULL WHERE id = ?"
SELECT_RUN_WAIT = """
SELECT seq, kind, waitpoint_id, status, result FROM run_waits
WHERE run_id = ? AND attempt = ? AND seq = ?
"""
SELECT_RUN_WAITS = """
SELECT seq, kind, waitpoint_id, status, result FROM run_waits
WHERE run_id = ? AND attempt = ? ORDER BY seq
"""
INSERT_RUN_WAIT = """
INSERT INTO run_waits (run_id, attempt, seq, kind, waitpoint_id, status, result, delivered,
    created_at, completed_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
COMPLETE_WAITPOINT = """
UPDATE waitpoints SET status = ?, output = ?, is_error = ?, completed_at = ?
WHERE id = ? AND status = 'WAITING'
"""
COMPLETE_RUN_WAITS = """
UPDATE run_waits SET status = 'COMPLETED', result = ?, completed_at = ?
WHERE waitpoint_id = ? AND status = 'PENDING'
RETURNING run_id
"""
REQUEUE_WAITING = """
UPDATE runs SET status = 'QUEUED', available_at = ?, updated_at = ?
WHERE id = ? AND status = 'WAITING'
"""
SELECT_DUE = """
SELECT id, kind FROM waitpoints
WHERE status = 'WAITING' AND resume_at IS NOT NULL AND resume_at <= ?
ORDER BY resume_at LIMIT ?
"""
NEXT_WAITPOINT_DUE = """
SELECT MIN(resume_at) FROM waitpoints WHERE status = 'WAITING' AND resume_at IS NOT NULL
"""
SELECT_UNDELIVERED = """
SELECT seq, kind, waitpoint_id, status, result FROM run_waits
WHERE run_id = ? AND attempt = ? AND status = 'COMPLETED' AND delivered = 0 ORDER BY seq
"""
MARK_DELIVERED = """
UPDATE run_waits SET delivered = 1
WHERE run_id = ? AND attempt = ? AND status = 'COMPLETED' AND delivered = 0
"""
HAS_PENDING = "SELECT 1 FROM run_waits WHERE run_id = ? AND attempt = ? AND status = 'PENDING'"
IS_RUNNING_ON = """
SELECT 1 FROM runs
WHERE id = ? AND attempt = ? AND worker_id = ? AND status IN ('DEQUEUED', 'EXECUTING')
"""
SUSPEND_RUN = """
UPDATE runs SET status = 'WAITING', suspended = 1, resume_worker = ?, updated_at = ?
WHERE id = ? AND attempt = ? AND worker_id = ? AND status IN ('DEQUEUED', 'EXECUTING')
"""
MARK_WAITED = "UPDATE runs SET waited = 1 WHERE id = ?"
SELECT_FINISHED = """
SELECT id, task_id, status, output, error, waited FROM runs WHERE id = ?
"""
SELECT_BATCHES_OF = "SELECT DISTINCT batch_id FROM batch_items WHERE run_id = ?"
BUMP_BATCH = """
UPDATE batches SET completed_count = completed_count + 1 WHERE id = ?
RETURNING completed_count, run_count
"""
SELECT_BATCH_RESULTS = """
SELECT r.id, r.task_id, r.status, r.output, r.error
FROM batch_items AS b JOIN runs AS r ON r.id = b.run_id
WHERE b.batch_id = ? ORDER BY b.position
"""
INSERT_BATCH = """
INSERT INTO batches (id, parent_run_id, run_count, completed_count, created_at)
VALUES (?, ?, ?, ?, ?)
"""
INSERT_BATCH_ITEM = "INSERT INTO batch_items (batch_id, position, run_id) VALUES (?, ?, ?)"
SELECT_OPEN_WAITPOINTS_FOR = """
SELECT id FROM waitpoints WHERE status = 'WAITING' AND kind = ? AND target_id = ?
"""


def waitpoint_insert(conn: sqlite3.Connection, waitpoint: NewWaitpoint, now: int) -> str:
    """Create a waitpoint, or return the live one holding its idempotency key."""
    key = waitpoint.idempotency_key
    if key is not None:
        found = conn.execute(SELECT_WAITPOINT_BY_KEY, (key,)).fetchone()
        if found is not None:
            if found[1] is None or found[1] > now:
                return str(found[0])
            conn.execute(CLEAR_WAITPOINT_KEY, (found[0],))
    conn.execute(
        INSERT_WAITPOINT,
        (
            waitpoint.id,
            waitpoint.kind,
            waitpoint.resume_at,
            waitpoint.target_id,
            key,
            waitpoint.idempotency_expires_at,
            None if waitpoint.tags is None else waitpoint.tags.decode(),
            now,
        ),
    )
    return waitpoint.id


def run_wait_get(conn: sqlite3.Connection, ref: WaitRef) -> RecordedWait | None:
    row = conn.execute(SELECT_RUN_WAIT, (ref.run_id, ref.attempt, ref.seq)).fetchone()
    return None if row is None else RecordedWait(*row)


def run_waits_list(conn: sqlite3.Connection, run_id: str, attempt: int) -> list[RecordedWait]:
    return [RecordedWait(*row) for row in conn.execute(SELECT_RUN_WAITS, (run_id, attempt))]


def run_wait_insert(
    conn: sqlite3.Connection,
    ref: WaitRef,
    kind: str,
    waitpoint_id: str | None,
    now: int,
    *,
    result: bytes | None = None,
) -> RecordedWait:
    """Record a wait at its sequence number: completed at once when its waitpoint is done
    (or when `result` is given: a step that needs no waiting)."""
    status = "PENDING" if result is None else "COMPLETED"
    if result is None and waitpoint_id is not None:
        row = conn.execute(SELECT_WAITPOINT, (waitpoint_id,)).fetchone()
        if row is not None and row[2] != "WAITING":
            status, result = "COMPLETED", _waitpoint_result(row[1], row[2], row[7], row[8])
    conn.execute(
        INSERT_RUN_WAIT,
        (
            ref.run_id,
            ref.attempt,
            ref.seq,
            kind,
            waitpoint_id,
            status,
            result,
            # Completed at once: the call that records it returns the result to the run
            # itself, so it is delivered (a suspension must not hand it over again).
            1 if status == "COMPLETED" else 0,
            now,
            now if status == "COMPLETED" else None,
        ),
    )
    return RecordedWait(ref.seq, kind, waitpoint_id, status, result)


def _waitpoint_result(kind: str, status: str, output: bytes | None, is_error: int) -> bytes:
    """What a wait on a completed waitpoint returns."""
    if kind == "DURATION":
        return b'{"ok":true}'
    if status == "TIMED_OUT":
        return output or b'{"ok":false}'
    return output or b"null"


def complete_waitpoints(
    conn: sqlite3.Connection, completions: Iterable[tuple[str, str, bytes, bool]], now: int
) -> list[str]:
    """Complete waitpoints (id, status, result, is_error); return the runs put back in
    their queues."""
    requeued: list[str] = []
    for waitpoint_id, status, result, is_error in completions:
        updated = conn.execute(
            COMPLETE_WAITPOINT, (status, result, 1 if is_error else 0, now, waitpoint_id)
        ).rowcount
        if not updated:
            continue
        for (run_id,) in conn.execute(COMPLETE_RUN_WAITS, (result, now, waitpoint_id)).fetchall():
            if conn.execute(REQUEUE_WAITING, (now, now, run_id)).rowcount:
                requeued.append(run_id)
    return requeued


def complete_due(conn: sqlite3.Connection, now: int, limit: int) -> list[str]:
    """Complete duration waits whose time came and time out tokens; return requeued runs."""
    completions: list[tuple[str, str, bytes, bool]] = []
    for waitpoint_id, kind in conn.execute(SELECT_DUE, (now, limit)).fetchall():
        if kind == "DURATION":
            completions.append((waitpoint_id, "COMPLETED", b'{"ok":true}', False))
        else:
            error = orjson.dumps(
                {
                    "ok": False,
                    "error": {
                        "type": "WaitpointTimeoutError",
                        "message": f"waitpoint {waitpoint_id} timed out before it was completed",
                    },
                }
            )
            completions.append((waitpoint_id, "TIMED_OUT", error, True))
    return complete_waitpoints(conn, completions, now)


def next_due(conn: sqlite3.Connection) -> int | None:
    value = conn.execute(NEXT_WAITPOINT_DUE).fetchone()[0]
    return None if value is None else int(value)


def suspend(
    conn: sqlite3.Connection, run_id: str, attempt: int, worker_id: str, now: int
) -> list[RecordedWait] | None:
    """Make a run WAITING, unless some of its waits already completed: then return those
    (marked delivered) and leave the run running. None means it now waits.

    Only a run this worker is running: a late request (parallel waits send one per wait)
    for a run that waits already, or is back in its queue, hands nothing over (the claim
    that resumes it does), so no result is marked delivered to a parked coroutine."""
    if conn.execute(IS_RUNNING_ON, (run_id, attempt, worker_id)).fetchone() is None:
        return []
    ready = [RecordedWait(*r) for r in conn.execute(SELECT_UNDELIVERED, (run_id, attempt))]
    if ready:
        conn.execute(MARK_DELIVERED, (run_id, attempt))
        return ready
    if conn.execute(HAS_PENDING, (run_id, attempt)).fetchone() is None:
        return []  # nothing to wait for (the waits were delivered already)
    conn.execute(SUSPEND_RUN, (worker_id, now, run_id, attempt, worker_id))
    return None


def take_undelivered(conn: sqlite3.Connection, run_id: str, attempt: int) -> list[RecordedWait]:
    """Completed waits not yet handed to the run (marked delivered now)."""
    ready = [RecordedWait(*r) for r in conn.execute(SELECT_UNDELIVERED, (run_id, attempt))]
    if ready:
        conn.execute(MARK_DELIVERED, (run_id, attempt))
    return ready


def run_result(row: tuple[Any, ...]) -> dict[str, Any]:
    """A child run's result as a wait returns it: ok, id, task_id, output or error."""
    run_id, task_id, status, output, error = row[:5]
    if status == "COMPLETED":
        return {
            "ok": True,
            "id": run_id,
            "task_id": task_id,
            "output": orjson.Fragment(output or b"null"),
        }
    stored = orjson.loads(error) if error else {"type": "Error", "message": status}
    stored["status"] = status
    return {"ok": False, "id": run_id, "task_id": task_id, "error": stored}


def runs_finished(conn: sqlite3.Connection, run_ids: Iterable[str], now: int) -> list[str]:
    """Runs reached a final status: complete the waits on them and on their batches.
    Returns the runs put back in their queues."""
    completions: list[tuple[str, str, bytes, bool]] = []
    for run_id in run_ids:
        row = conn.execute(SELECT_FINISHED, (run_id,)).fetchone()
        if row is None or row[2] not in FINAL:
            continue
        if not row[5]:
            continue  # nobody waits for this run
        result = orjson.dumps(run_result(row))
        for (waitpoint_id,) in conn.execute(SELECT_OPEN_WAITPOINTS_FOR, ("RUN", run_id)):
            completions.append((waitpoint_id, "COMPLETED", result, False))
        for (batch_id,) in conn.execute(SELECT_BATCHES_OF, (run_id,)).fetchall():
            counts = conn.execute(BUMP_BATCH, (batch_id,)).fetchone()
            if counts is not None and counts[0] >= counts[1]:
                completions.extend(batch_completions(conn, batch_id))
    return complete_waitpoints(conn, completions, now) if completions else []


def batch_completions(
    conn: sqlite3.Connection, batch_id: str
) -> list[tuple[str, str, bytes, bool]]:
    """Completions for the waitpoints on a batch whose items are all final."""
    results = [run_result(row) for row in conn.execute(SELECT_BATCH_RESULTS, (batch_id,))]
    payload = orjson.dumps({"id": batch_id, "runs": results})
    return [
        (waitpoint_id, "COMPLETED", payload, False)
        for (waitpoint_id,) in conn.execute(SELECT_OPEN_WAITPOINTS_FOR, ("BATCH", batch_id))
    ]


def waitpoint_get(conn: sqlite3.Connection, waitpoint_id: str) -> WaitpointRecord | None:
    row = conn.execute(SELECT_WAITPOINT, (waitpoint_id,)).fetchone()
    if row is None:
        return None
    values = list(row)
    values[6] = None if values[6] is None else str(values[6]).encode()
    values[8] = bool(values[8])
    return WaitpointRecord(*values)


def record_trigger(
    conn: sqlite3.Connection, ref: WaitRef, result: dict[str, Any], now: int
) -> RecordedWait:
    """Record that a run triggered children at this sequence number (replays reuse them)."""
    return run_wait_insert(conn, ref, "trigger", None, now, result=orjson.dumps(result))


def wait_for_run(conn: sqlite3.Connection, ref: WaitRef, run_id: str, now: int) -> RecordedWait:
    """A RUN waitpoint on a child run and the parent's wait on it (complete at once when
    the child is final already, as for an idempotency key that found a finished run)."""
    conn.execute(MARK_WAITED, (run_id,))
    waitpoint_id = new_id("waitpoint")
    waitpoint_insert(conn, NewWaitpoint(waitpoint_id, "RUN", target_id=run_id), now)
    row = conn.execute(SELECT_FINISHED, (run_id,)).fetchone()
    if row is not None and row[2] in FINAL:
        result = orjson.dumps(run_result(row))
        complete_waitpoints(conn, [(waitpoint_id, "COMPLETED", result, False)], now)
    return run_wait_insert(conn, ref, "task", waitpoint_id, now)


def batch_create(
    conn: sqlite3.Connection,
    batch_id: str,
    parent_run_id: str | None,
    run_ids: list[str],
    ref: WaitRef | None,
    *,
    wait: bool,
    now: int,
) -> RecordedWait | None:
    """Record a batch's items; with `wait`, a BATCH waitpoint and the parent's wait on it."""
    distinct = list(dict.fromkeys(run_ids))
    final = 0
    for run_id in distinct:
        row = conn.execute(SELECT_FINISHED, (run_id,)).fetchone()
        if row is not None and row[2] in FINAL:
            final += 1
        elif wait:
            conn.execute(MARK_WAITED, (run_id,))
    conn.execute(INSERT_BATCH, (batch_id, parent_run_id, len(distinct), final, now))
    conn.executemany(
        INSERT_BATCH_ITEM, [(batch_id, index, run_id) for index, run_id in enumerate(run_ids)]
    )
    if not wait:
        if ref is None:
            return None
        return record_trigger(conn, ref, {"batch_id": batch_id, "runs": run_ids}, now)
    assert ref is not None
    waitpoint_id = new_id("waitpoint")
    waitpoint_insert(conn, NewWaitpoint(waitpoint_id, "BATCH", target_id=batch_id), now)
    if final == len(distinct):
        complete_waitpoints(conn, batch_completions(conn, batch_id), now)
    return run_wait_insert(conn, ref, "batch", waitpoint_id, now)


def batch_item_ids(conn: sqlite3.Connection, batch_id: str) -> list[str]:
    rows = conn.execute(
        "SELECT run_id FROM batch_items WHERE batch_id = ? ORDER BY position", (batch_id,)
    )
    return [row[0] for row in rows]
