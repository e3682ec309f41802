"""Leader election as a service: one process at a time holds a named leadership.

Each round, `LeaderElector` takes or renews the leadership through the database
(`engine.workers.leader_elect(name, holder, ttl_ms)`): the holder keeps it for `ttl_ms`
after its last renewal, and another process can take it once that lapses, or at once
after the holder resigns (its `stop()`). A `ServiceHost` runs its `leader_only`
services only while `leads` is true.

`leads` is decided locally, on the engine clock's monotonic time: the leadership is
counted from the moment the election call began, so this process believes it leads
for no longer than the database lets it.
"""

from __future__ import annotations

import logging

from ..engine.engine import Engine
from .host import Service, check_int, check_seconds, check_text

log = logging.getLogger("taskloom.internal.services")

MAX_TTL_MS = 24 * 3600 * 1000


class LeaderElector(Service):
    """Holds the leadership `name` for `holder` while it runs.

    `ttl_ms` is how long a leadership lasts without renewal; the elector renews it every
    `renew_every_seconds` (by default a third of the TTL, so two renewals may fail before
    it is lost). Processes that do not lead try again at the same rhythm::

        leader = LeaderElector(engine, name="maintenance", holder=worker_id, ttl_ms=30_000)
        host = ServiceHost([DelayedPromoter(engine)], leader=leader)
    """

    leader_only = False

    def __init__(
        self,
        engine: Engine,
        *,
        name: str,
        holder: str,
        ttl_ms: int,
        renew_every_seconds: float | None = None,
    ) -> None:
        self.engine = engine
        self.leadership = check_text(self, "name", name)
        self.holder = check_text(self, "holder", holder)
        self.ttl_ms = check_int(self, "ttl_ms", ttl_ms, minimum=1, maximum=MAX_TTL_MS)
        most = self.ttl_ms / 3000
        if renew_every_seconds is None:
            renew_every_seconds = most
        self.interval_seconds = check_seconds(
            self,
            "renew_every_seconds",
            renew_every_seconds,
            maximum=most,
            why=f"a third of ttl_ms={self.ttl_ms:,}, so a missed renewal keeps the leadership",
        )
        self.name = f"leader:{self.leadership}"
        self._held_until: float | None = None  # on the clock's monotonic time
        self._won = False

    @property
    def renew_every_seconds(self) -> float:
        """How often the leadership is renewed (or, by a follower, sought)."""
        assert self.interval_seconds is not None
        return self.interval_seconds

    @property
    def leads(self) -> bool:
        """Whether this holder leads now: it won the last election, less than `ttl_ms` ago."""
        held_until = self._held_until
        return held_until is not None and self.engine.clock.monotonic() < held_until

    def run_once(self) -> bool:
        """Take or renew the leadership; return whether this holder leads."""
        was_leading = self.leads
        began = self.engine.clock.monotonic()
        elected = self.engine.workers.leader_elect(self.leadership, self.holder, self.ttl_ms)
        self._held_until = began + self.ttl_ms / 1000 if elected else None
        self._won = self._won or elected
        if elected and not was_leading:
            log.info("%s leads %r", self.holder, self.leadership)
        elif was_leading and not elected:
            log.warning("%s lost the leadership of %r", self.holder, self.leadership)
        return elected

    def stop(self) -> None:
        """Resign, so another process takes over at once rather than after the TTL."""
        self._held_until = None
        if self._won:
            self.engine.workers.leader_resign(self.leadership, self.holder)
            self._won = False
