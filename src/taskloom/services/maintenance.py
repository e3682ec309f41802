"""The services that move runs, as one process hosts them: leader-elected under the name
"maintenance", so that on a database with several workers (or, later, servers) exactly
one of them promotes delayed runs, expires TTLs, rescues lapsed leases and fires
waitpoint timers at a time.

A worker builds its host with `maintenance_host`, handing over its database thread:

    run_worker(engine, services=maintenance_host)
"""

from __future__ import annotations

from concurrent.futures import Executor

from ..engine.engine import Engine
from .expirer import TtlExpirer
from .host import ServiceHost
from .leader import LeaderElector
from .promoter import DelayedPromoter
from .rescuer import LeaseRescuer
from .waitpoint_timer import WaitpointTimer

MAINTENANCE_LEADER = "maintenance"


def maintenance_host(engine: Engine, holder: str, executor: Executor | None = None) -> ServiceHost:
    """A host for delayed-run promotion, TTL expiry, lease rescue and waitpoint timers,
    led by `holder` (a worker's id) while it wins the "maintenance" leadership.

    From the engine's config: the leadership lasts `lease_seconds` (the workers' lease)
    and is renewed every `poll_interval_seconds` (a third of the lease at most); the
    services look for work at least every `poll_interval_seconds`. Blocking calls run on
    `executor` (the worker's database thread), else on the host's own thread.
    """
    config = engine.config
    lease_ms = round(config.lease_seconds * 1000)
    poll = config.poll_interval_seconds
    leader = LeaderElector(
        engine,
        name=MAINTENANCE_LEADER,
        holder=holder,
        ttl_ms=lease_ms,
        renew_every_seconds=min(poll, lease_ms / 3000),
    )
    services = [
        DelayedPromoter(engine),
        TtlExpirer(engine),
        LeaseRescuer(engine, lease_ms=lease_ms),
        WaitpointTimer(engine),
    ]
    return ServiceHost(
        services,
        leader=leader,
        poll_interval_seconds=poll,
        clock=engine.clock,
        executor=executor,
    )
