"""TTL expiry: runs that waited in their queue past their TTL end EXPIRED, unstarted."""

from __future__ import annotations

from ..engine.engine import Engine
from .host import DEFAULT_BATCH_SIZE, Service, check_batch_size


class TtlExpirer(Service):
    """Ends QUEUED runs past their TTL as EXPIRED (they never execute, and their
    idempotency key is freed), a batch per transaction until none is left."""

    name = "expirer"

    def __init__(self, engine: Engine, *, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        self.engine = engine
        self.batch_size = check_batch_size(self, batch_size)
        self.expired_total = 0

    def run_once(self) -> list[str]:
        """Expire every due run; return their ids."""
        expired: list[str] = []
        while True:
            batch = self.engine.maintenance.expire(self.batch_size)
            expired.extend(batch)
            if len(batch) < self.batch_size:
                break
        self.expired_total += len(expired)
        return expired

    def next_due_ms(self) -> int | None:
        """When the next expiry, delayed run or timed wait is due (one query for all)."""
        return self.engine.maintenance.next_due()
