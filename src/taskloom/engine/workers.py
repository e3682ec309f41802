"""The engine's worker-facing surface: what a worker supervisor asks of the engine
(register, heartbeat, tick = claim + start + complete, release, leaders). Reached as
`engine.workers`. Every call is one guarded transaction in the store.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from ..store.records import (
    LeaderTerm,
    QueueDeclaration,
    RecordedWait,
    RunRelease,
    TaskDefinitionRecord,
    TickResult,
    WorkerInfo,
    WorkerTick,
)
from ..store.sql.session import Session
from . import ticking
from .events import journaled
from .wake import RUNS_READY

if TYPE_CHECKING:
    from .engine import Engine


def worker_stop(session: Session, *, worker_id: str, now: int) -> None:
    """A worker stopped; runs parked on it (waiting) continue by replay elsewhere."""
    session.worker_stop(worker_id, now)
    session.runs_unpark_dead()


class Workers:
    """Registration, leases and the tick of worker processes."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._store = engine.store

    def _now(self) -> int:
        return self._engine.clock.now_ms()

    def register(self, info: WorkerInfo) -> None:
        """Record a live worker (its lease starts now)."""
        now = self._now()
        self._store.execute(lambda s: s.worker_register(info, now), "register")

    def heartbeat(self, worker_id: str) -> bool:
        """Renew a worker's lease; False when it was declared dead (its runs rescued)."""
        now = self._now()
        return self._store.execute(lambda s: s.worker_heartbeat(worker_id, now), "heartbeat")

    def stop(self, worker_id: str) -> None:
        """A worker stopped after releasing what it held; runs parked on it (waiting) will
        continue by replay elsewhere."""
        now = self._now()
        body = functools.partial(worker_stop, worker_id=worker_id, now=now)
        self._engine.write(body, "stop")

    def announce(self, tasks: list[TaskDefinitionRecord], queues: list[QueueDeclaration]) -> None:
        """Publish the tasks and queues a worker's task modules define."""
        now = self._now()

        def body(session: Session) -> None:
            if tasks:
                session.task_catalog_upsert(tasks)
            if queues:
                session.queues_declare(queues, now)

        if tasks or queues:
            self._engine.write(body, "announce")

    def tick(self, tick: WorkerTick) -> TickResult:
        """One transaction: record starts and outcomes (fenced), events, suspensions; read
        signals; claim runs within every limit (see `ticking`)."""
        return self._engine.write(lambda s: ticking.worker_tick(s, tick), "worker tick")

    def release(self, worker_id: str, run_ids: list[str], *, isolate: bool = False) -> list[str]:
        """Put runs a worker holds back in their queues without using an attempt (with
        `isolate`, each next runs alone in its executor); wake workers."""
        request = RunRelease(worker_id, run_ids, isolate, self._now())
        body = journaled(request.now, lambda s, j: ticking.release(s, request, j))
        released = self._engine.write(body, "release")
        if released:
            self._engine.notifier.notify(RUNS_READY)
        return released

    def waits(self, run_id: str, attempt: int) -> list[RecordedWait]:
        """Every recorded wait of an attempt (a replay needs them all)."""
        return self._store.read(lambda s: s.run_waits_list(run_id, attempt))

    def unpark(self, run_ids: list[str], worker_id: str) -> None:
        """The coroutines of these waiting runs are gone: they continue by replay."""
        if run_ids:
            self._engine.write(lambda s: s.runs_unpark(run_ids, worker_id), "unpark")
        self._engine.notifier.notify(RUNS_READY)

    def leader_elect(self, name: str, holder: str, ttl_ms: int) -> bool:
        """Take or keep the named leadership for `ttl_ms`; True when `holder` leads."""
        term = LeaderTerm(name, holder, self._now(), ttl_ms)
        return self._engine.write(lambda s: s.leader_elect(term), "leader election")

    def leader_resign(self, name: str, holder: str) -> None:
        """Give up a leadership `holder` holds."""
        self._store.execute(lambda s: s.leader_resign(name, holder), "resign")
