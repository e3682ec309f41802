"""The background services that move runs without a worker's help: delayed-run promotion,
TTL expiry and lease rescue. Each has `run_once(now) -> next due time | None`; the worker
runs them on its leader (see `leader.py`), and tests call `run_once` directly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..engine import outcomes
from ..store.base import Store

log = logging.getLogger("taskloom.internal.services")

BATCH = 1000


@dataclass(slots=True)
class DelayedPromoter:
    """DELAYED runs whose time has come enter their queues."""

    store: Store
    promoted_total: int = 0

    def run_once(self, now: int) -> int:
        """Promote due runs; return how many."""
        promoted = 0
        while True:
            count = self.store.runs_promote_delayed(now, BATCH)
            promoted += count
            if count < BATCH:
                break
        self.promoted_total += promoted
        return promoted


@dataclass(slots=True)
class TtlExpirer:
    """Unstarted runs past their TTL become EXPIRED and never execute."""

    store: Store
    expired_total: int = 0

    def run_once(self, now: int) -> list[str]:
        """Expire due runs; return their ids."""
        expired: list[str] = []
        while True:
            batch = self.store.runs_expire(now, BATCH)
            expired.extend(batch)
            if len(batch) < BATCH:
                break
        self.expired_total += len(expired)
        return expired


@dataclass(slots=True)
class LeaseRescuer:
    """Attempts held by workers that stopped heartbeating are recorded as crashed.

    The crash counts toward the run's attempts; the run is retried by its locked retry
    policy, or ends CRASHED when none remain.
    """

    store: Store
    lease_ms: int
    rescued_total: int = 0

    def run_once(self, now: int) -> list[str]:
        """Rescue lapsed attempts; return the run ids whose outcome was applied."""
        dead = self.store.workers_reap(now, self.lease_ms)
        if dead:
            log.warning("workers without a heartbeat for %d ms: %s", self.lease_ms, dead)
        lapsed = self.store.attempts_lapsed(now, self.lease_ms, BATCH)
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
                    f"{self.lease_ms} ms while running attempt {item.attempt}"
                ),
                code="TASK_RUN_HEARTBEAT_TIMEOUT",
                now=now,
                started_at=item.started_at,
            )
            for item in lapsed
        ]
        applied = self.store.attempts_finish(decided)
        self.rescued_total += len(applied)
        return applied


@dataclass(slots=True)
class WaitpointCompleter:
    """Duration waits whose time came complete; tokens past their timeout time out. The
    runs waiting on them go back to their queues."""

    store: Store
    requeued_total: int = 0

    def run_once(self, now: int) -> list[str]:
        """Complete due waitpoints; return the runs put back in their queues."""
        requeued: list[str] = []
        while True:
            batch = self.store.waitpoints_complete_due(now, BATCH)
            requeued.extend(batch)
            if len(batch) < BATCH:
                break
        self.requeued_total += len(requeued)
        return requeued
