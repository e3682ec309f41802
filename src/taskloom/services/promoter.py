"""Delayed-run promotion: DELAYED runs whose time has come enter their queues."""

from __future__ import annotations

from ..engine.engine import Engine
from .host import DEFAULT_BATCH_SIZE, Service, check_batch_size


class DelayedPromoter(Service):
    """Moves due DELAYED runs to QUEUED (their TTL starts then), a batch per transaction
    until none is left; sleeps until the next one is due."""

    name = "promoter"

    def __init__(self, engine: Engine, *, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        self.engine = engine
        self.batch_size = check_batch_size(self, batch_size)
        self.promoted_total = 0

    def run_once(self) -> int:
        """Promote every due run; return how many."""
        promoted = 0
        while True:
            count = self.engine.maintenance.promote_delayed(self.batch_size)
            promoted += count
            if count < self.batch_size:
                break
        self.promoted_total += promoted
        return promoted

    def next_due_ms(self) -> int | None:
        """When the next delayed run, expiry or timed wait is due (one query for all)."""
        return self.engine.maintenance.next_due()
