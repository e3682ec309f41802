"""The engine's worker-facing surface: what a worker supervisor and the background services
ask of the engine (register, heartbeat, tick = claim + start + complete, release, leaders).

Reached as `engine.workers`. Every call is one guarded transaction in the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..store.records import (
    QueueDeclaration,
    RecordedWait,
    TaskDefinitionRecord,
    TickResult,
    WorkerInfo,
    WorkerTick,
)
from .wake import RUNS_READY

if TYPE_CHECKING:
    from .engine import Engine


class Workers:
    """Registration, leases and the tick of worker processes."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._store = engine.store

    def register(self, info: WorkerInfo) -> None:
        """Record a live worker (its lease starts now)."""
        self._store.worker_register(info, self._engine.clock.now_ms())

    def heartbeat(self, worker_id: str) -> bool:
        """Renew a worker's lease; False when it was declared dead (its runs rescued)."""
        return self._store.worker_heartbeat(worker_id, self._engine.clock.now_ms())

    def stop(self, worker_id: str) -> None:
        """A worker stopped after releasing what it held."""
        self._store.worker_stop(worker_id, self._engine.clock.now_ms())

    def announce(self, tasks: list[TaskDefinitionRecord], queues: list[QueueDeclaration]) -> None:
        """Publish the tasks and queues a worker's task modules define."""
        if tasks:
            self._store.task_catalog_upsert(tasks)
        if queues:
            self._store.queues_declare(queues, self._engine.clock.now_ms())

    def tick(self, tick: WorkerTick) -> TickResult:
        """One transaction: record starts and outcomes (fenced), events, suspensions; read
        signals; claim runs within every limit."""
        return self._store.worker_tick(tick)

    def release(self, worker_id: str, run_ids: list[str], *, isolate: bool = False) -> list[str]:
        """Put runs a worker holds back in their queues without using an attempt; wake
        workers."""
        released = self._store.runs_release(
            worker_id, run_ids, self._engine.clock.now_ms(), isolate=isolate
        )
        if released:
            self._engine.notifier.notify(RUNS_READY)
        return released

    def waits(self, run_id: str, attempt: int) -> list[RecordedWait]:
        """Every recorded wait of an attempt (a replay needs them all)."""
        return self._store.run_waits_list(run_id, attempt)

    def unpark(self, run_ids: list[str], worker_id: str) -> None:
        """The coroutines of these waiting runs are gone: they continue by replay."""
        self._store.runs_unpark(run_ids, worker_id)
        self._engine.notifier.notify(RUNS_READY)

    def leader_elect(self, name: str, holder: str, ttl_ms: int) -> bool:
        """Take or keep the named leadership for `ttl_ms`; True when `holder` leads."""
        return self._store.leader_elect(name, holder, self._engine.clock.now_ms(), ttl_ms)

    def leader_resign(self, name: str, holder: str) -> None:
        """Give up a leadership `holder` holds."""
        self._store.leader_resign(name, holder)
