"""The engine's maintenance surface: the state changes no worker asks for, made by the
background services on their leader (`taskloom.services`). Reached as `engine.maintenance`.

Each method works on a bounded batch, uses the engine's clock, wakes workers when runs
became ready, and returns what it changed so a service can loop until nothing is left.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from . import outcomes
from .wake import RUNS_READY

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("taskloom.internal.services")


class Maintenance:
    """Delayed-run promotion, TTL expiry, lease rescue and waitpoint timers."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._store = engine.store

    def promote_delayed(self, limit: int) -> int:
        """DELAYED runs whose time has come enter their queues; return how many."""
        promoted = self._store.runs_promote_delayed(self._engine.clock.now_ms(), limit)
        if promoted:
            self._engine.notifier.notify(RUNS_READY)
        return promoted

    def expire(self, limit: int) -> list[str]:
        """Queued runs past their TTL end EXPIRED without running; return their ids."""
        return self._store.runs_expire(self._engine.clock.now_ms(), limit)

    def rescue(self, lease_ms: int, limit: int) -> list[str]:
        """Workers silent for a lease are declared dead; the attempts they held are
        recorded as crashed (counting toward max attempts) and retried by each run's
        locked policy, or end CRASHED. Returns the runs whose outcome was applied."""
        now = self._engine.clock.now_ms()
        dead = self._store.workers_reap(now, lease_ms)
        if dead:
            log.warning("workers without a heartbeat for %d ms: %s", lease_ms, dead)
        lapsed = self._store.attempts_lapsed(now, lease_ms, limit)
        if not lapsed:
            return []
        decided = [
            outcomes.crash(
                item.run_id,
                item.attempt,
                item.worker_id,
                max_attempts=item.max_attempts,
                retry=item.retry,
                reason=(
                    f"worker {item.worker_id} stopped heartbeating for over "
                    f"{lease_ms} ms while running attempt {item.attempt}"
                ),
                code="TASK_RUN_HEARTBEAT_TIMEOUT",
                now=now,
                started_at=item.started_at,
            )
            for item in lapsed
        ]
        applied = self._store.attempts_finish(decided)
        if applied:
            self._engine.notifier.notify(RUNS_READY)
        return applied

    def complete_due_waitpoints(self, limit: int) -> list[str]:
        """Duration waits whose time came complete and tokens past their timeout time out;
        return the runs put back in their queues."""
        requeued = self._store.waitpoints_complete_due(self._engine.clock.now_ms(), limit)
        if requeued:
            self._engine.notifier.notify(RUNS_READY)
        return requeued

    def next_due(self) -> int | None:
        """The earliest future time (ms) a delayed run, expiry or waitpoint is due."""
        return self._store.run_next_due(self._engine.clock.now_ms())
