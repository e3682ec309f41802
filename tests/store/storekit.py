"""Builders shared by the store suite (imported by the test modules and by spawned processes).

Everything here speaks only the store (through `StoreOps`, the engine's transactions)
and its records, so the same helpers serve every backend. Times are explicit integers (ms
since the epoch): nothing sleeps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import orjson

from storeops import StoreOps
from taskloom.ids import new_id
from taskloom.store import open_store
from taskloom.store.records import (
    AttemptOutcome,
    AttemptStart,
    ClaimedRun,
    NewRun,
    TickResult,
    WorkerInfo,
    WorkerTick,
)

T0 = 1_700_000_000_000
"""The suite's 'now': every test counts from here."""

LEASE_MS = 30_000
RETRY_JSON = orjson.dumps(
    {
        "max_attempts": 3,
        "factor": 2,
        "min_timeout_ms": 1000,
        "max_timeout_ms": 60000,
        "randomize": False,
        "out_of_memory": None,
    }
)


def new_run(
    *,
    task_id: str = "store-task",
    now: int = T0,
    priority_ms: int = 0,
    delay_until: int | None = None,
    ttl_ms: int | None = None,
    **overrides: Any,
) -> NewRun:
    """A run as `build_new_run` would shape it: queued at `now`, or DELAYED until a time.

    `sort_key` is `queue_ts - priority_ms` and `expires_at` is `now + ttl_ms` for a run
    that enters its queue at once (a delayed run's TTL starts when it is promoted).
    """
    queue_ts = now if delay_until is None else delay_until
    fields: dict[str, Any] = {
        "id": new_id("run"),
        "task_id": task_id,
        "queue": f"task/{task_id}",
        "status": "QUEUED" if delay_until is None else "DELAYED",
        "payload": b'{"n":1}',
        "max_attempts": 3,
        "retry": RETRY_JSON,
        "machine": "small-1x",
        "created_at": now,
        "queue_ts": queue_ts,
        "sort_key": queue_ts - priority_ms,
        "available_at": queue_ts,
        "priority_ms": priority_ms,
        "delay_until": delay_until,
        "ttl_ms": ttl_ms,
        "expires_at": now + ttl_ms if ttl_ms and delay_until is None else None,
    }
    fields.update(overrides)
    return NewRun(**fields)


def insert(store: StoreOps, run: NewRun, now: int | None = None) -> str:
    """Insert a run that must be new; return its id."""
    result = store.run_insert(run, run.created_at if now is None else now)
    assert result.created, f"{run.id} was expected to be new, found {result.run_id}"
    return result.run_id


def register(store: StoreOps, worker_id: str, now: int = T0, concurrency: int = 10) -> str:
    """Register a live worker; return its id."""
    store.worker_register(
        WorkerInfo(
            id=worker_id,
            hostname="test-host",
            pid=4242,
            concurrency=concurrency,
            started_at=now,
            tasks=("store-task",),
        ),
        now,
    )
    return worker_id


def tick(store: StoreOps, worker_id: str, now: int, **fields: Any) -> TickResult:
    """One worker tick with the given starts / outcomes / events / claim_limit."""
    return store.worker_tick(WorkerTick(worker_id=worker_id, now=now, **fields))


def claim(store: StoreOps, worker_id: str, now: int, limit: int = 100) -> list[ClaimedRun]:
    """Claim up to `limit` runs for a worker."""
    return tick(store, worker_id, now, claim_limit=limit).claimed


def claim_one(store: StoreOps, worker_id: str, now: int) -> ClaimedRun:
    """Claim exactly one run (the test arranged for one to be ready)."""
    claimed = claim(store, worker_id, now, limit=1)
    assert len(claimed) == 1, f"expected one run to claim at {now}, got {claimed}"
    return claimed[0]


def start(store: StoreOps, worker_id: str, run: ClaimedRun, now: int) -> TickResult:
    """Record that a claimed run's attempt began executing."""
    return tick(store, worker_id, now, starts=[AttemptStart(run.id, run.attempt, now)])


def outcome(
    run: ClaimedRun | str,
    attempt: int,
    worker_id: str,
    status: str,
    *,
    finished_at: int,
    attempt_status: str | None = None,
    **fields: Any,
) -> AttemptOutcome:
    """An attempt outcome for a run (a ClaimedRun or a run id)."""
    run_id = run if isinstance(run, str) else run.id
    return AttemptOutcome(
        run_id=run_id,
        attempt=attempt,
        worker_id=worker_id,
        status=status,
        attempt_status=attempt_status or status,
        finished_at=finished_at,
        **fields,
    )


def with_changes(run: NewRun, **changes: Any) -> NewRun:
    """A copy of a NewRun with other values (and, by default, a fresh id)."""
    changes.setdefault("id", new_id("run"))
    return msgspec.structs.replace(run, **changes)


# -- backends ------------------------------------------------------------------------


@dataclass
class Backend:
    """How the suite reaches one kind of database."""

    name: str
    dialect: str
    new_url: Callable[[Path], str]
    """A URL to a new, empty database (tmp_path is the place for files)."""
    hold_write_lock: Callable[[str], contextlib.AbstractContextManager[None]]
    """A context that keeps the database's write lock taken by another connection."""
    prepare: Callable[[], None] = lambda: None
    """Called before each test: skip/fail with `require_service` when unavailable."""


@dataclass
class StoreFactory:
    """Opens stores on the test's database (or on new ones) and closes them afterwards."""

    backend: Backend
    directory: Path
    url: str
    _opened: list[StoreOps] = field(default_factory=list)

    def open(self, url: str | None = None, *, busy_timeout_ms: int = 5000) -> StoreOps:
        """Another `StoreOps` (its own connection) on the test database, or on `url`."""
        opened = open_store(url or self.url, root=self.directory, busy_timeout_ms=busy_timeout_ms)
        store = StoreOps(opened)
        self._opened.append(store)
        return store

    def fresh(self) -> StoreOps:
        """A migrated store on a brand-new empty database (e.g. one per hypothesis example)."""
        store = self.open(self.backend.new_url(self.directory))
        store.migrate()
        return store

    def hold_write_lock(self) -> contextlib.AbstractContextManager[None]:
        return self.backend.hold_write_lock(self.url)

    def close_all(self) -> None:
        for store in self._opened:
            store.close()


# -- run in spawned processes (must be importable by module name) -------------------


@dataclass(frozen=True)
class KeyedInsert:
    """What one contending process triggers: a run of `task_id` with idempotency `key`."""

    url: str
    task_id: str
    key: str
    now: int


def insert_keyed_in_process(job: KeyedInsert, barrier: Any, results: Any) -> None:
    """Open the store afresh, wait for every contender, then trigger one keyed run."""
    store = StoreOps(open_store(job.url, root=Path("/")))
    try:
        run = new_run(
            task_id=job.task_id,
            now=job.now,
            idempotency_key=job.key,
            idempotency_expires_at=job.now + 60_000,
        )
        barrier.wait(timeout=60)
        result = store.run_insert(run, job.now)
        results.put((result.run_id, result.created))
    finally:
        store.close()
