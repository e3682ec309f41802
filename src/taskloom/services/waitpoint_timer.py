"""Waitpoint timers: duration waits complete when their time comes, tokens time out."""

from __future__ import annotations

from ..engine.engine import Engine
from .host import DEFAULT_BATCH_SIZE, Service, check_batch_size


class WaitpointTimer(Service):
    """Completes DURATION waitpoints whose time came and times out TOKEN waitpoints past
    their timeout; the runs waiting on them go back to their queues. A batch per
    transaction until none is left; sleeps until the next one is due."""

    name = "waitpoint-timer"

    def __init__(self, engine: Engine, *, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        self.engine = engine
        self.batch_size = check_batch_size(self, batch_size)
        self.requeued_total = 0

    def run_once(self) -> list[str]:
        """Complete every due waitpoint; return the runs put back in their queues."""
        requeued: list[str] = []
        while True:
            batch = self.engine.maintenance.complete_due_waitpoints(self.batch_size)
            requeued.extend(batch)
            if len(batch) < self.batch_size:
                break
        self.requeued_total += len(requeued)
        return requeued

    def next_due_ms(self) -> int | None:
        """When the next timed wait, delayed run or expiry is due (one query for all)."""
        return self.engine.maintenance.next_due()
