"""The embedded store: one SQLite file through the standard library.

WAL journal, `synchronous=FULL` by default, `BEGIN IMMEDIATE` for every write, one
connection per process (re-opened after a fork). SQLite's own busy handler sleeps a
whole millisecond or more between tries, which halves throughput when a producer and
a worker share the file, so the connection has no busy timeout and `_write` retries
with short, growing sleeps up to the configured busy timeout instead.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..errors import StoreBusyError
from . import sqlite_rows as row_ops
from . import sqlite_sql as sql
from . import sqlite_waits as waits
from .base import MetadataMerge, Store
from .migrate import load_migrations
from .records import (
    AttemptOutcome,
    AttemptRecord,
    ClaimedRun,
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
    RunSignal,
    TaskDefinitionRecord,
    TickResult,
    WaitpointRecord,
    WaitRef,
    WorkerInfo,
    WorkerTick,
)
from .sqlite_claim import Claimer

T = TypeVar("T")

SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")


def _is_busy(error: sqlite3.OperationalError) -> bool:
    text = str(error)
    return "locked" in text or "busy" in text


class SqliteStore(Store):
    """The store on one SQLite file."""

    dialect = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "FULL",
        busy_timeout_ms: int = 5000,
    ) -> None:
        mode = synchronous.upper()
        if mode not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}, got {synchronous!r}")
        self.path = Path(path).absolute()
        self.url = f"sqlite:///{self.path}"
        self.synchronous = mode
        self.busy_timeout_ms = busy_timeout_ms
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._claimer = Claimer()

    # -- connection and transactions ------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=0
            )
            self._retry_busy(lambda: conn.execute("PRAGMA journal_mode=WAL"), "open")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")  # validated above
            conn.execute("PRAGMA temp_store=MEMORY")
            conn.execute("PRAGMA cache_size=-16000")
            self._conn = conn
            self._pid = os.getpid()
        return self._conn

    def _retry_busy(self, action: Callable[[], T], what: str) -> T:
        delay = 0.00002
        deadline: float | None = None
        while True:
            try:
                return action()
            except sqlite3.OperationalError as error:
                if not _is_busy(error):
                    raise
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.busy_timeout_ms / 1000
                if now >= deadline:
                    raise StoreBusyError(
                        f"the database {self.path} stayed locked by another process for "
                        f"{self.busy_timeout_ms} ms ({what}); nothing was written"
                    ) from error
                time.sleep(delay)
                delay = min(delay * 2, 0.001)

    def _write(self, body: Callable[[sqlite3.Connection], T], what: str = "write") -> T:
        """Run `body` in one `BEGIN IMMEDIATE` transaction, retrying while the file is busy."""
        with self._lock:
            conn = self._connection()

            def attempt() -> T:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    result = body(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                return result

            return self._retry_busy(attempt, what)

    def _read(self, body: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            conn = self._connection()
            return self._retry_busy(lambda: body(conn), "read")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    # -- schema ---------------------------------------------------------------------
    def migrate(self) -> list[str]:
        migrations = load_migrations("sqlite")

        def body(conn: sqlite3.Connection) -> list[str]:
            conn.execute(sql.CREATE_MIGRATIONS_TABLE)
            current = conn.execute(sql.SELECT_SCHEMA_VERSION).fetchone()[0]
            applied: list[str] = []
            for migration in migrations:
                if migration.version <= current:
                    continue
                for statement in migration.statements:
                    conn.execute(statement)
                conn.execute(
                    sql.INSERT_MIGRATION,
                    (migration.version, migration.name, time.time_ns() // 1_000_000),
                )
                applied.append(f"{migration.version:04d}_{migration.name}")
            return applied

        return self._write(body, "migrate")

    def schema_version(self) -> int:
        def body(conn: sqlite3.Connection) -> int:
            exists = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
            ).fetchone()
            if not exists:
                return 0
            return int(conn.execute(sql.SELECT_SCHEMA_VERSION).fetchone()[0])

        return self._read(body)

    # -- runs -----------------------------------------------------------------------
    def run_insert(self, run: NewRun, now: int) -> InsertResult:
        if run.idempotency_key is None:
            # One statement is its own transaction: no BEGIN/COMMIT round trips.
            params = row_ops.insert_params(run, now)
            with self._lock:
                conn = self._connection()
                self._retry_busy(lambda: conn.execute(sql.INSERT_RUN, params), "trigger")
            return InsertResult(run.id, True)
        return self._write(lambda conn: row_ops.insert_run(conn, run, now), "trigger")

    def run_get(self, run_id: str) -> RunRecord | None:
        row = self._read(lambda conn: conn.execute(sql.SELECT_RUN, (run_id,)).fetchone())
        return None if row is None else row_ops.run_record(row)

    def run_list(self, filters: RunFilter) -> list[RunRecord]:
        query = sql.LIST_BASE
        params: list[Any] = []
        if filters.statuses:
            query += f" AND status IN ({','.join('?' * len(filters.statuses))})"
            params.extend(filters.statuses)
        if filters.task_ids:
            query += f" AND task_id IN ({','.join('?' * len(filters.task_ids))})"
            params.extend(filters.task_ids)
        if filters.tag is not None:
            query += sql.LIST_TAG
            params.append(filters.tag)
        if filters.since_ms is not None:
            query += sql.LIST_SINCE
            params.append(filters.since_ms)
        if filters.before_id is not None:
            query += sql.LIST_BEFORE
            params.append(filters.before_id)
        query += sql.LIST_ORDER
        params.append(filters.limit)
        rows = self._read(lambda conn: conn.execute(query, params).fetchall())
        return [row_ops.run_record(row) for row in rows]

    def run_cancel(self, run_id: str, now: int, reason: str) -> str | None:
        error = b'{"type":"TaskRunCancelledError","message":"' + row_ops.json_text(reason) + b'"}'

        def cancel_one(conn: sqlite3.Connection, target: str, why: bytes) -> str | None:
            found = conn.execute(sql.SELECT_STATUS, (target,)).fetchone()
            if found is None:
                return None
            status, worker_id, resume_worker = found
            if status in row_ops.FINAL:
                return str(status)
            holder = worker_id if status in row_ops.HELD else resume_worker
            if holder is not None:  # the worker running it (or holding it while it waits)
                conn.execute(sql.INSERT_SIGNAL, (holder, target, "cancel", reason, now))
            conn.execute(sql.CANCEL_RUN, (now, now, why, target, status))
            children = [row[0] for row in conn.execute(sql.SELECT_LIVE_CHILDREN, (target,))]
            child_error = (
                b'{"type":"TaskRunCancelledError","message":"its parent run '
                + target.encode()
                + b' was cancelled"}'
            )
            for child in children:
                cancel_one(conn, child, child_error)
            waits.runs_finished(conn, [target], now)
            return str(status)

        return self._write(lambda conn: cancel_one(conn, run_id, error), "cancel")

    def run_metadata_apply(
        self,
        run_id: str,
        *,
        tags: bytes | None,
        changes: list[tuple[str, list[list[Any]]]],
        merge: MetadataMerge,
    ) -> list[str]:
        def body(conn: sqlite3.Connection) -> list[str]:
            if tags is not None:
                conn.execute(sql.SET_TAGS, (tags.decode(), run_id))
            refused = []
            for target, operations in changes:
                row = conn.execute(sql.SELECT_METADATA, (target,)).fetchone()
                if row is None:
                    continue
                updated = merge(row[0], operations)
                if updated is None:
                    refused.append(target)
                    continue
                conn.execute(sql.SET_METADATA, (updated, target))
            return refused

        return self._write(body, "metadata")

    def idempotency_key_reset(self, task_id: str, key: str) -> bool:
        return self._write(
            lambda conn: conn.execute(sql.RESET_IDEMPOTENCY, (task_id, key)).rowcount > 0,
            "reset idempotency key",
        )

    def run_reschedule(self, run_id: str, delay_until: int, now: int) -> bool:
        def body(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                sql.RESCHEDULE_RUN,
                (delay_until, delay_until, delay_until, delay_until, now, run_id),
            )
            return cursor.rowcount == 1

        return self._write(body, "reschedule")

    def runs_promote_delayed(self, now: int, limit: int) -> int:
        return self._write(
            lambda conn: conn.execute(sql.PROMOTE_DELAYED, (now, now, now, limit)).rowcount,
            "promote",
        )

    def runs_expire(self, now: int, limit: int) -> list[str]:
        def body(conn: sqlite3.Connection) -> list[str]:
            ids = [row[0] for row in conn.execute(sql.EXPIRE_RUNS, (now, now, now, limit))]
            if ids:
                waits.runs_finished(conn, ids, now)
            return ids

        return self._write(body, "expire")

    def run_next_due(self, now: int) -> int | None:
        def body(conn: sqlite3.Connection) -> int | None:
            times = [
                conn.execute(sql.NEXT_DELAYED).fetchone()[0],
                conn.execute(sql.NEXT_EXPIRY).fetchone()[0],
                waits.next_due(conn),
            ]
            present = [t for t in times if t is not None]
            return min(present) if present else None

        return self._read(body)

    # -- attempts and events --------------------------------------------------------
    def attempt_list(self, run_id: str) -> list[AttemptRecord]:
        rows = self._read(lambda conn: conn.execute(sql.SELECT_ATTEMPTS, (run_id,)).fetchall())
        return [AttemptRecord(*row) for row in rows]

    def event_list(self, run_id: str, after_id: int = 0, limit: int = 1000) -> list[EventRecord]:
        rows = self._read(
            lambda conn: conn.execute(sql.SELECT_EVENTS, (run_id, after_id, limit)).fetchall()
        )
        return [EventRecord(*row) for row in rows]

    def events_append(self, events: list[NewEvent]) -> None:
        if events:
            self._write(lambda conn: row_ops.insert_events(conn, events), "events")

    # -- workers --------------------------------------------------------------------
    def worker_register(self, worker: WorkerInfo, now: int) -> None:
        tasks = ",".join(worker.tasks).encode()
        params = (
            worker.id,
            worker.hostname,
            worker.pid,
            worker.concurrency,
            tasks,
            worker.started_at,
            now,
        )
        self._write(lambda conn: conn.execute(sql.REGISTER_WORKER, params), "register")

    def worker_heartbeat(self, worker_id: str, now: int) -> bool:
        return self._write(
            lambda conn: conn.execute(sql.HEARTBEAT, (now, worker_id)).rowcount == 1, "heartbeat"
        )

    def worker_stop(self, worker_id: str, now: int) -> None:
        def body(conn: sqlite3.Connection) -> None:
            conn.execute(sql.STOP_WORKER, (now, worker_id))
            conn.execute(sql.UNPARK_DEAD)  # runs waiting on it continue elsewhere

        self._write(body, "stop")

    def worker_tick(self, tick: WorkerTick) -> TickResult:
        now = tick.now
        worker_id = tick.worker_id

        def body(conn: sqlite3.Connection) -> TickResult:
            alive = conn.execute(sql.HEARTBEAT, (now, worker_id)).rowcount == 1
            if tick.starts:
                conn.executemany(
                    sql.START_ATTEMPT,
                    [(s.started_at, now, s.run_id, s.attempt, worker_id) for s in tick.starts],
                )
            applied, rejected = row_ops.finish_attempts(conn, tick.outcomes, now)
            if tick.events:
                row_ops.insert_events(conn, tick.events)
            ready: dict[str, list[RecordedWait]] = {}
            suspended: list[str] = []
            for item in tick.suspends:
                found = waits.suspend(conn, item.run_id, item.attempt, item.worker_id, now)
                if found is None:
                    suspended.append(item.run_id)
                else:
                    ready[item.run_id] = found
            signals: list[RunSignal] = []
            if tick.read_signals:
                rows = conn.execute(sql.SELECT_SIGNALS, (worker_id,)).fetchall()
                if rows:
                    conn.execute(sql.DELETE_SIGNALS, (worker_id, rows[-1][0]))
                    signals = [RunSignal(*row) for row in rows]
            claimed: list[ClaimedRun] = []
            if alive and tick.claim_limit > 0:
                claimed = self._claimer.claim(
                    conn, worker_id, now, tick.claim_limit, tick.environment_limit
                )
            return TickResult(claimed, applied, rejected, signals, alive, ready, suspended)

        return self._write(body, "worker tick")

    def runs_release(
        self, worker_id: str, run_ids: list[str], now: int, *, isolate: bool = False
    ) -> list[str]:
        flag = 1 if isolate else 0

        def body(conn: sqlite3.Connection) -> list[str]:
            released = []
            for run_id in run_ids:
                params = (now, flag, run_id, worker_id)
                if conn.execute(sql.RELEASE_RUN, params).rowcount == 1:
                    released.append(run_id)
            return released

        return self._write(body, "release")

    def workers_reap(self, now: int, lease_ms: int) -> list[str]:
        def body(conn: sqlite3.Connection) -> list[str]:
            dead = [row[0] for row in conn.execute(sql.REAP_WORKERS, (now, now - lease_ms))]
            if dead:
                conn.execute(sql.UNPARK_DEAD)  # their waiting runs continue elsewhere
            return dead

        return self._write(body, "reap")

    def attempts_lapsed(self, now: int, lease_ms: int, limit: int) -> list[LapsedAttempt]:
        rows = self._read(
            lambda conn: conn.execute(sql.SELECT_LAPSED, (now - lease_ms, limit)).fetchall()
        )
        return [LapsedAttempt(*row) for row in rows]

    def attempts_finish(self, outcomes: list[AttemptOutcome]) -> list[str]:
        if not outcomes:
            return []
        now = max(o.finished_at for o in outcomes)
        return self._write(lambda conn: row_ops.finish_attempts(conn, outcomes, now)[0], "finish")

    # -- leaders and task catalog ---------------------------------------------------
    def leader_elect(self, name: str, holder: str, now: int, ttl_ms: int) -> bool:
        def body(conn: sqlite3.Connection) -> bool:
            conn.execute(sql.ELECT_LEADER, (name, holder, now + ttl_ms, now))
            row = conn.execute("SELECT holder FROM leaders WHERE name = ?", (name,)).fetchone()
            return row is not None and row[0] == holder

        return self._write(body, "leader election")

    def leader_resign(self, name: str, holder: str) -> None:
        self._write(lambda conn: conn.execute(sql.RESIGN_LEADER, (name, holder)), "resign")

    def task_catalog_upsert(self, tasks: list[TaskDefinitionRecord]) -> None:
        rows = [(t.id, t.definition, t.file_path, t.updated_at) for t in tasks]
        self._write(lambda conn: conn.executemany(sql.UPSERT_TASK, rows), "task catalog")

    def task_catalog_get(self, task_id: str) -> TaskDefinitionRecord | None:
        row = self._read(lambda conn: conn.execute(sql.SELECT_TASK, (task_id,)).fetchone())
        return None if row is None else TaskDefinitionRecord(*row)

    def task_catalog_list(self) -> list[TaskDefinitionRecord]:
        rows = self._read(lambda conn: conn.execute(sql.SELECT_TASKS).fetchall())
        return [TaskDefinitionRecord(*row) for row in rows]

    # -- waits ----------------------------------------------------------------------
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
        def body(conn: sqlite3.Connection) -> RecordedWait:
            existing = waits.run_wait_get(conn, ref)
            if existing is not None:
                return existing
            target = waitpoint_id
            if waitpoint is not None:
                target = waits.waitpoint_insert(conn, waitpoint, now)
            return waits.run_wait_insert(conn, ref, kind, target, now, result=result)

        return self._write(body, "wait")

    def run_waits_list(self, run_id: str, attempt: int) -> list[RecordedWait]:
        return self._read(lambda conn: waits.run_waits_list(conn, run_id, attempt))

    def run_trigger_child(
        self, child: NewRun, ref: WaitRef | None, *, wait: bool, now: int
    ) -> tuple[InsertResult, RecordedWait | None]:
        def body(conn: sqlite3.Connection) -> tuple[InsertResult, RecordedWait | None]:
            if ref is not None:
                existing = waits.run_wait_get(conn, ref)
                if existing is not None:
                    return InsertResult(row_ops.child_of(conn, existing), False), existing
            result = row_ops.insert_run(conn, child, now)
            if wait:
                assert ref is not None
                return result, waits.wait_for_run(conn, ref, result.run_id, now)
            if ref is None:
                return result, None
            return result, waits.record_trigger(conn, ref, {"id": result.run_id}, now)

        return self._write(body, "trigger child")

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
        def body(conn: sqlite3.Connection) -> tuple[list[InsertResult], RecordedWait | None]:
            if ref is not None:
                existing = waits.run_wait_get(conn, ref)
                if existing is not None:
                    items = waits.batch_item_ids(conn, row_ops.batch_of(conn, existing))
                    return [InsertResult(i, False) for i in items], existing
            results = [row_ops.insert_run(conn, run, now) for run in runs]
            ids = [r.run_id for r in results]
            recorded = waits.batch_create(
                conn, batch_id, parent_run_id, ids, ref, wait=wait, now=now
            )
            return results, recorded

        return self._write(body, "batch")

    def waitpoint_create(self, waitpoint: NewWaitpoint, now: int) -> WaitpointRecord:
        def body(conn: sqlite3.Connection) -> WaitpointRecord:
            found = waits.waitpoint_get(conn, waits.waitpoint_insert(conn, waitpoint, now))
            assert found is not None
            return found

        return self._write(body, "waitpoint")

    def waitpoint_get(self, waitpoint_id: str) -> WaitpointRecord | None:
        return self._read(lambda conn: waits.waitpoint_get(conn, waitpoint_id))

    def token_complete(self, waitpoint_id: str, output: bytes, now: int) -> tuple[bool, list[str]]:
        result = b'{"ok":true,"output":' + output + b"}"

        def body(conn: sqlite3.Connection) -> tuple[bool, list[str]]:
            found = waits.waitpoint_get(conn, waitpoint_id)
            if found is None or found.kind != "TOKEN" or found.status != "WAITING":
                return False, []
            completions = [(waitpoint_id, "COMPLETED", result, False)]
            return True, waits.complete_waitpoints(conn, completions, now)

        return self._write(body, "complete token")

    def waitpoints_complete_due(self, now: int, limit: int) -> list[str]:
        return self._write(lambda conn: waits.complete_due(conn, now, limit), "waitpoints")

    def runs_unpark(self, run_ids: list[str], worker_id: str) -> None:
        def body(conn: sqlite3.Connection) -> None:
            conn.executemany(sql.UNPARK_RUN, [(run_id, worker_id) for run_id in run_ids])

        if run_ids:
            self._write(body, "unpark")

    # -- queues ---------------------------------------------------------------------
    def queues_declare(self, queues: list[QueueDeclaration], now: int) -> None:
        rows = [(q.name, q.kind, q.concurrency_limit, q.key_total_limit, now) for q in queues]
        if rows:
            self._write(lambda conn: conn.executemany(sql.DECLARE_QUEUE, rows), "queues")

    def queue_list(self) -> list[QueueRecord]:
        def body(conn: sqlite3.Connection) -> list[QueueRecord]:
            running = dict(conn.execute(sql.COUNT_RUNNING).fetchall())
            queued = dict(conn.execute(sql.COUNT_QUEUED).fetchall())
            return [
                row_ops.queue_record(row, running.get(row[0], 0), queued.get(row[0], 0))
                for row in conn.execute(sql.SELECT_QUEUES)
            ]

        return self._read(body)

    def queue_get(self, name: str) -> QueueRecord | None:
        def body(conn: sqlite3.Connection) -> QueueRecord | None:
            row = conn.execute(sql.SELECT_QUEUE, (name,)).fetchone()
            if row is None:
                return None
            running = conn.execute(sql.COUNT_RUNNING_ONE, (name,)).fetchone()[0]
            queued = conn.execute(sql.COUNT_QUEUED_ONE, (name,)).fetchone()[0]
            return row_ops.queue_record(row, running, queued)

        return self._read(body)

    def queue_set_paused(self, name: str, paused: bool, now: int) -> bool:
        params = (1 if paused else 0, now, name)
        return self._write(
            lambda conn: conn.execute(sql.PAUSE_QUEUE, params).rowcount == 1, "pause queue"
        )

    def queue_override_limit(self, name: str, limit: int | None, now: int) -> bool:
        params = (limit, None if limit is None else now, now, name)
        return self._write(
            lambda conn: conn.execute(sql.OVERRIDE_QUEUE_LIMIT, params).rowcount == 1,
            "queue limit",
        )
