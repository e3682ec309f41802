"""Row-level work of the SQLite store inside a transaction: inserting runs, applying
fenced attempt outcomes, and turning rows into records. Used by `sqlite.SqliteStore`."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

import orjson

from . import sqlite_sql as sql
from . import sqlite_waits as waits
from .records import (
    AttemptOutcome,
    InsertResult,
    NewEvent,
    NewRun,
    QueueRecord,
    RecordedWait,
    RunRecord,
)

HELD = ("DEQUEUED", "EXECUTING")
FINAL = frozenset(waits.FINAL)
GUARD_CHUNK = 500


def insert_params(run: NewRun, now: int) -> tuple[Any, ...]:
    return (
        run.id,
        run.task_id,
        run.queue,
        run.concurrency_key or "",
        run.status,
        run.payload,
        run.max_attempts,
        run.retry,
        run.machine,
        run.max_duration,
        run.ttl_ms,
        run.priority_ms,
        run.queue_ts,
        run.sort_key,
        run.available_at,
        run.delay_until,
        run.expires_at,
        run.idempotency_key,
        run.idempotency_expires_at,
        None if run.tags is None else run.tags.decode(),
        run.metadata,
        run.parent_run_id,
        run.root_run_id,
        run.depth,
        run.batch_id,
        int(run.is_test),
        run.replayed_from,
        run.created_at,
        now,
    )


def insert_run(conn: sqlite3.Connection, run: NewRun, now: int) -> InsertResult:
    """Insert a run inside a transaction, or resolve its idempotency key to a live run."""
    key = run.idempotency_key
    if key is not None:
        found = conn.execute(sql.SELECT_IDEMPOTENT, (run.task_id, key)).fetchone()
        if found is not None:
            if found[1] is None or found[1] > now:
                return InsertResult(found[0], False)
            conn.execute(sql.CLEAR_IDEMPOTENCY, (found[0],))
    conn.execute(sql.INSERT_RUN, insert_params(run, now))
    return InsertResult(run.id, True)


def child_of(conn: sqlite3.Connection, recorded: RecordedWait) -> str:
    """The child run id a recorded trigger or task wait refers to."""
    if recorded.kind == "trigger":
        return str(orjson.loads(recorded.result or b"{}")["id"])
    found = waits.waitpoint_get(conn, recorded.waitpoint_id or "")
    return "" if found is None else str(found.target_id)


def batch_of(conn: sqlite3.Connection, recorded: RecordedWait) -> str:
    if recorded.kind == "trigger":
        return str(orjson.loads(recorded.result or b"{}")["batch_id"])
    found = waits.waitpoint_get(conn, recorded.waitpoint_id or "")
    return "" if found is None else str(found.target_id)


def queue_record(row: tuple[Any, ...], running: int, queued: int) -> QueueRecord:
    name, kind, limit, key_total, override, overridden_at, paused, updated_at = row
    return QueueRecord(
        name,
        kind,
        limit,
        key_total,
        override,
        overridden_at,
        bool(paused),
        updated_at,
        running,
        queued,
    )


def json_text(text: str) -> bytes:
    return orjson.dumps(text)[1:-1]


def run_record(row: tuple[Any, ...]) -> RunRecord:
    values = list(row)
    tags = values[21]
    if isinstance(tags, str):
        values[21] = tags.encode()
    values[3] = values[3] or None  # concurrency key '' means none
    values[27] = bool(values[27])
    values[34] = bool(values[34])
    return RunRecord(*values)


def insert_events(conn: sqlite3.Connection, events: Iterable[NewEvent]) -> None:
    conn.executemany(
        sql.INSERT_EVENT, [(e.run_id, e.attempt, e.ts, e.kind, e.data) for e in events]
    )


def guards_of(conn: sqlite3.Connection, run_ids: list[str]) -> dict[str, tuple[Any, ...]]:
    """(attempt, worker_id, status) of each run, read in chunks of one statement each."""
    found: dict[str, tuple[Any, ...]] = {}
    for start in range(0, len(run_ids), GUARD_CHUNK):
        chunk = run_ids[start : start + GUARD_CHUNK]
        query = sql.SELECT_GUARDS_PREFIX + ",".join("?" * len(chunk)) + ")"
        for row in conn.execute(query, chunk):
            found[row[0]] = row[1:]
    return found


def finish_attempts(
    conn: sqlite3.Connection, outcomes: list[AttemptOutcome], now: int
) -> tuple[list[str], list[str]]:
    """Apply fenced outcomes. Inside the caller's write transaction, so the guard read and
    the update see the same rows; the update repeats the guard anyway."""
    applied: list[str] = []
    rejected: list[str] = []
    if not outcomes:
        return applied, rejected
    guards = guards_of(conn, [o.run_id for o in outcomes])
    waited: list[str] = []
    updates = []
    attempt_rows = []
    for o in outcomes:
        found = guards.get(o.run_id)
        if found is None or found[0] != o.attempt or found[1] != o.worker_id:
            rejected.append(o.run_id)
            continue
        del guards[o.run_id]  # decided: another outcome for this run in the batch is stale
        status = found[2]
        if status in HELD:
            if found[3] and o.status in FINAL:
                # Someone waits for this run, which ends now. (Not for a run cancelled
                # while held: the cancel already completed those waits and counted it in
                # its batches, and counting it twice would end a batch early.)
                waited.append(o.run_id)
            updates.append(
                (
                    o.status,
                    o.output,
                    o.error,
                    o.retry_at,
                    None if o.status == "QUEUED" else o.finished_at,
                    o.started_at,
                    o.status,
                    1 if o.released else 0,
                    1 if o.clear_idempotency_key else 0,
                    o.machine,
                    1 if o.released else 0,
                    now,
                    o.run_id,
                    o.attempt,
                    o.worker_id,
                )
            )
        elif status != "CANCELED":
            rejected.append(o.run_id)
            continue
        # (A run cancelled while executing is already final: only its attempt is recorded.)
        applied.append(o.run_id)
        if not o.released:
            attempt_rows.append(
                (
                    o.run_id,
                    o.attempt,
                    o.attempt_status,
                    o.worker_id,
                    o.started_at,
                    o.finished_at,
                    o.error,
                )
            )
    if updates:
        conn.executemany(sql.FINISH_ATTEMPT, updates)
    if attempt_rows:
        conn.executemany(sql.INSERT_ATTEMPT, attempt_rows)
    if waited:
        waits.runs_finished(conn, waited, now)
    return applied, rejected
