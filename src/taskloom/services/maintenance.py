"""The background services that move runs without a worker's help: delayed-run promotion,
TTL expiry, lease rescue and waitpoint timers. Each has `run_once()`, which drains its
due work through the engine; the worker runs them on its leader, and tests call
`run_once` directly with the engine's clock set where they need it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.engine import Engine

BATCH = 1000


@dataclass(slots=True)
class DelayedPromoter:
    """DELAYED runs whose time has come enter their queues."""

    engine: Engine
    promoted_total: int = 0

    def run_once(self) -> int:
        """Promote due runs; return how many."""
        promoted = 0
        while True:
            count = self.engine.maintenance.promote_delayed(BATCH)
            promoted += count
            if count < BATCH:
                break
        self.promoted_total += promoted
        return promoted


@dataclass(slots=True)
class TtlExpirer:
    """Unstarted runs past their TTL become EXPIRED and never execute."""

    engine: Engine
    expired_total: int = 0

    def run_once(self) -> list[str]:
        """Expire due runs; return their ids."""
        expired: list[str] = []
        while True:
            batch = self.engine.maintenance.expire(BATCH)
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

    engine: Engine
    lease_ms: int
    rescued_total: int = 0

    def run_once(self) -> list[str]:
        """Rescue lapsed attempts; return the run ids whose outcome was applied."""
        applied = self.engine.maintenance.rescue(self.lease_ms, BATCH)
        self.rescued_total += len(applied)
        return applied


@dataclass(slots=True)
class WaitpointCompleter:
    """Duration waits whose time came complete; tokens past their timeout time out. The
    runs waiting on them go back to their queues."""

    engine: Engine
    requeued_total: int = 0

    def run_once(self) -> list[str]:
        """Complete due waitpoints; return the runs put back in their queues."""
        requeued: list[str] = []
        while True:
            batch = self.engine.maintenance.complete_due_waitpoints(BATCH)
            requeued.extend(batch)
            if len(batch) < BATCH:
                break
        self.requeued_total += len(requeued)
        return requeued
