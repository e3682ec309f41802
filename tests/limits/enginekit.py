"""An engine over a real SQLite file with a FakeClock, and a worker played by the test.

For the tests that need exact control of time and of each claim: the test triggers
through `Engine.trigger` (the same validation and insert as `task.trigger`), claims and
completes through `engine.workers.tick` (what a worker's tick does), and moves delayed and
expired runs with the services' `run_once(now)`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from taskloom.clock import FakeClock
from taskloom.config import Config
from taskloom.engine import outcomes
from taskloom.engine.engine import Engine
from taskloom.engine.spec import TaskSpec
from taskloom.retry import Retry
from taskloom.store import SqliteStore
from taskloom.store.records import (
    AttemptStart,
    ClaimedRun,
    QueueDeclaration,
    WorkerInfo,
    WorkerTick,
)

T0 = 1_700_000_000_000
FAST_RETRY = Retry(max_attempts=3, factor=1, min_timeout_ms=1_000, max_timeout_ms=1_000)


def spec(task_id: str, **fields: Any) -> TaskSpec:
    """A task spec with its own queue unless `queue=` names another."""
    fields.setdefault("queue", f"task/{task_id}")
    fields.setdefault("retry", FAST_RETRY)
    fields.setdefault("machine", "small-1x")
    return TaskSpec(id=task_id, **fields)


@contextmanager
def open_engine(
    tmp_path: Path, specs: list[TaskSpec], clock: FakeClock, **config: Any
) -> Iterator[Engine]:
    """An engine on a fresh database; `config` are `Config` fields (environment PRODUCTION
    unless given)."""
    config.setdefault("environment", "PRODUCTION")
    store = SqliteStore(tmp_path / "taskloom.db")
    store.migrate()
    by_id = {s.id: s for s in specs}
    engine = Engine(
        store, Config(project_root=tmp_path, **config), clock=clock, local_specs=by_id.get
    )
    try:
        yield engine
    finally:
        store.close()
        sock = engine.notifier._socket
        if sock is not None:  # WakeNotifier has no close()
            sock.close()


def declare(engine: Engine, name: str, limit: int | None = None, total: int | None = None) -> None:
    """Declare a queue as a worker does when its task modules declare it."""
    kind = "task" if name.startswith("task/") else "custom"
    engine.workers.announce([], [QueueDeclaration(name, kind, limit, total)])


class FakeWorker:
    """Claims, starts and completes runs through `worker_tick`, at the engine's clock."""

    def __init__(self, engine: Engine, worker_id: str = "worker_test") -> None:
        self.engine = engine
        self.id = worker_id
        now = engine.clock.now_ms()
        engine.workers.register(WorkerInfo(worker_id, "host", 1, 100, now))

    def claim(self, limit: int, environment_limit: int | None = None) -> list[ClaimedRun]:
        now = self.engine.clock.now_ms()
        claimed = self.engine.workers.tick(
            WorkerTick(self.id, now, claim_limit=limit, environment_limit=environment_limit)
        ).claimed
        if claimed:
            starts = [AttemptStart(run.id, run.attempt, now) for run in claimed]
            self.engine.workers.tick(WorkerTick(self.id, now, starts=starts))
        return claimed

    def complete(self, run: ClaimedRun) -> None:
        now = self.engine.clock.now_ms()
        outcome = outcomes.success(
            run.id, run.attempt, self.id, b"1", started_at=now, finished_at=now
        )
        applied = self.engine.workers.tick(WorkerTick(self.id, now, outcomes=[outcome])).applied
        assert applied == [run.id]

    def fail(self, run: ClaimedRun, retry_at: int | None) -> None:
        now = self.engine.clock.now_ms()
        outcome = outcomes.failure(
            run.id,
            run.attempt,
            self.id,
            outcomes.error_json("RuntimeError", "planned"),
            retry_at=retry_at,
            final_status="FAILED",
            attempt_status="FAILED",
            started_at=now,
            finished_at=now,
        )
        applied = self.engine.workers.tick(WorkerTick(self.id, now, outcomes=[outcome])).applied
        assert applied == [run.id]


def trigger(engine: Engine, task: TaskSpec, payload: Any = None, **options: Any) -> str:
    """Trigger through the engine (validation, insert); return the run id."""
    return engine.trigger(task, payload, options).run_id


def count_runs(engine: Engine) -> int:
    # A count the engine does not offer: read it in a store session.
    return int(engine.store.read(lambda s: s.scalar("SELECT COUNT(*) FROM runs")))
