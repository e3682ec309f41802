"""Background services: the loops that move runs without a worker asking (delayed runs,
TTL expiry, lease rescue, waitpoint timers), each a `Service` run by a `ServiceHost`,
leader-elected so that one process at a time runs them. Workers host them now, servers
later; see `host` for the shape every loop follows."""

from .expirer import TtlExpirer as TtlExpirer
from .host import Service as Service
from .host import ServiceHost as ServiceHost
from .leader import LeaderElector as LeaderElector
from .maintenance import MAINTENANCE_LEADER as MAINTENANCE_LEADER
from .maintenance import maintenance_host as maintenance_host
from .promoter import DelayedPromoter as DelayedPromoter
from .rescuer import LeaseRescuer as LeaseRescuer
from .waitpoint_timer import WaitpointTimer as WaitpointTimer

__all__ = [
    "MAINTENANCE_LEADER",
    "DelayedPromoter",
    "LeaderElector",
    "LeaseRescuer",
    "Service",
    "ServiceHost",
    "TtlExpirer",
    "WaitpointTimer",
    "maintenance_host",
]
