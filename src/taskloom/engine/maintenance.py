"""The engine's maintenance surface: the state changes no worker asks for, made by the
background services on their leader (`taskloom.services`). Reached as `engine.maintenance`.

Each change is a function of a session and a journal (one transaction, at the journal's
time): `promote_delayed`, `expire`, `reap`, `next_due`. The `Maintenance` methods run them
with the engine's clock, wake workers when runs became ready, and return what changed so
a service can loop until nothing is left.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..store.records import AttemptOutcome, LapsedAttempt
from ..store.sql.session import Session
from ..types import RunStatus
from . import outcomes, ticking, waitpoints
from .events import Journal, journaled
from .wake import RUNS_READY

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("taskloom.internal.services")

DELAYED = RunStatus.DELAYED.value
QUEUED = RunStatus.QUEUED.value
EXPIRED = RunStatus.EXPIRED.value


def promote_delayed(session: Session, journal: Journal, limit: int) -> int:
    """DELAYED runs due by the journal's time enter their queues; how many did."""
    promoted = session.runs_promote_delayed(journal.now, limit)
    for run_id, attempt in promoted:
        journal.status(run_id, attempt, DELAYED, QUEUED)
    return len(promoted)


def expire(session: Session, journal: Journal, limit: int) -> list[str]:
    """QUEUED runs past their TTL end EXPIRED; the waits on them complete."""
    expired = session.runs_expire(journal.now, limit)
    for run_id, attempt in expired:
        journal.status(run_id, attempt, QUEUED, EXPIRED)
    ids = [run_id for run_id, _ in expired]
    if ids:
        waitpoints.runs_finished(session, ids, journal.now, journal)
    return ids


def reap(session: Session, now: int, lease_ms: int) -> list[str]:
    """Workers without a heartbeat for a lease are DEAD; runs parked on them (waiting)
    continue by replay elsewhere. Returns the dead workers."""
    dead = session.workers_reap(now, lease_ms)
    if dead:
        session.runs_unpark_dead()
    return dead


def crashed(lapsed: list[LapsedAttempt], now: int, lease_ms: int) -> list[AttemptOutcome]:
    """The outcomes of attempts whose worker stopped heartbeating: crashes, counting
    toward max attempts, retried by each run's locked policy."""
    return [
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


def finish(session: Session, journal: Journal, decided: list[AttemptOutcome]) -> list[str]:
    """Apply outcomes decided outside a worker's tick (rescues); the applied runs."""
    applied, _ = ticking.finish(session, decided, journal.now, journal)
    return applied


def next_due(session: Session) -> int | None:
    """The earliest time (ms) a delayed run, an expiry or a waitpoint is due."""
    times = [session.run_next_delay(), session.run_next_expiry(), session.waitpoint_next_due()]
    present = [t for t in times if t is not None]
    return min(present) if present else None


class Maintenance:
    """Delayed-run promotion, TTL expiry, lease rescue and waitpoint timers."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._store = engine.store

    def _now(self) -> int:
        return self._engine.clock.now_ms()

    def promote_delayed(self, limit: int) -> int:
        """DELAYED runs whose time has come enter their queues; return how many."""
        body = journaled(self._now(), lambda s, j: promote_delayed(s, j, limit))
        count = self._engine.write(body, "promote")
        if count:
            self._engine.notifier.notify(RUNS_READY)
        return count

    def expire(self, limit: int) -> list[str]:
        """Queued runs past their TTL end EXPIRED without running; return their ids."""
        return self._engine.write(
            journaled(self._now(), lambda s, j: expire(s, j, limit)), "expire"
        )

    def rescue(self, lease_ms: int, limit: int) -> list[str]:
        """Workers silent for a lease are declared dead; the attempts they held are
        recorded as crashed (counting toward max attempts) and retried by each run's
        locked policy, or end CRASHED. Returns the runs whose outcome was applied."""
        now = self._now()
        dead = self._engine.write(lambda s: reap(s, now, lease_ms), "reap")
        if dead:
            log.warning("workers without a heartbeat for %d ms: %s", lease_ms, dead)
        lapsed = self._store.read(lambda s: s.attempts_lapsed(now - lease_ms, limit))
        if not lapsed:
            return []
        decided = crashed(lapsed, now, lease_ms)
        applied = self._engine.write(journaled(now, lambda s, j: finish(s, j, decided)), "rescue")
        if applied:
            self._engine.notifier.notify(RUNS_READY)
        return applied

    def complete_due_waitpoints(self, limit: int) -> list[str]:
        """Duration waits whose time came complete and tokens past their timeout time out;
        return the runs put back in their queues."""
        body = journaled(self._now(), lambda s, j: waitpoints.complete_due(s, j.now, limit, j))
        requeued = self._engine.write(body, "waitpoints")
        if requeued:
            self._engine.notifier.notify(RUNS_READY)
        return requeued

    def next_due(self) -> int | None:
        """The earliest time (ms) a delayed run, an expiry or a waitpoint is due."""
        return self._store.read(next_due)
