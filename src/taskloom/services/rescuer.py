"""Lease rescue: the attempts of workers that stopped heartbeating are recorded as crashed."""

from __future__ import annotations

from ..engine.engine import Engine
from .host import DEFAULT_BATCH_SIZE, Service, check_batch_size, check_int

MAX_LEASE_MS = 24 * 3600 * 1000


class LeaseRescuer(Service):
    """Declares workers silent for `lease_ms` dead and records the attempts they held as
    CRASHED (`TASK_RUN_HEARTBEAT_TIMEOUT`).

    The crash counts toward the run's attempts: the run is retried by its locked retry
    policy, or ends CRASHED when none remain. Runs every poll interval (a lapse is not
    scheduled in advance); one batch per round.
    """

    name = "rescuer"

    def __init__(
        self, engine: Engine, *, lease_ms: int, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> None:
        self.engine = engine
        self.lease_ms = check_int(self, "lease_ms", lease_ms, minimum=1, maximum=MAX_LEASE_MS)
        self.batch_size = check_batch_size(self, batch_size)
        self.rescued_total = 0

    def run_once(self) -> list[str]:
        """Rescue lapsed attempts; return the run ids whose outcome was applied."""
        applied = self.engine.maintenance.rescue(self.lease_ms, self.batch_size)
        self.rescued_total += len(applied)
        return applied
