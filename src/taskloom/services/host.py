"""The one shape of every background loop, and the host that runs a set of them.

A `Service` is one kind of background work. `run_once()` does what is due now (blocking,
through the engine) and returns what it did; `next_due_ms()` says when it may have work
again; `start()` and `stop()` are hooks around its life. Its settings are checked in its
constructor, so a bad value fails when the process starts, not an hour later.

A `ServiceHost` runs services for one process (a worker now, a server later):

- each service has its own loop, an asyncio task on the host's event loop; every
  blocking call (`run_once`, `next_due_ms`, the hooks) runs on one thread: the host's
  own, or the executor it is handed, so that a worker keeps a single database thread;
- a service marked `leader_only` runs only while the host's `LeaderElector` holds the
  leadership, so several processes can host the same services and only one runs them;
- between rounds a loop sleeps until its service's next due time, at most the poll
  interval (or the service's own `interval_seconds`); `wake()` makes the loops look
  again now;
- a round that raises is logged (a `StoreBusyError` as a warning: the database was
  locked for a while) and the loop carries on at its next round;
- `stop()` lets the rounds under way finish, then calls the services' `stop()` hooks,
  the leader's last, so the leadership is resigned once nothing runs under it.

Tests, and anyone who wants one pass now, call `ServiceHost.run_once()` or a service's
own `run_once()` with the engine's clock where they need it.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from ..clock import SYSTEM_CLOCK, Clock
from ..errors import InvalidOptionError, StoreBusyError

if TYPE_CHECKING:
    from .leader import LeaderElector

log = logging.getLogger("taskloom.internal.services")
T = TypeVar("T")

DEFAULT_BATCH_SIZE = 1000
MAX_BATCH_SIZE = 10_000
PAST_DUE_SLEEP_SECONDS = 0.05
"""How long a loop sleeps when its service reports work due already, right after a round:
that work is another service's (they share `engine.maintenance.next_due()`) or cannot
move yet, and looking again at once would spin the database thread."""


class Service(abc.ABC):
    """One kind of background work, run in rounds by a `ServiceHost`.

    Subclasses set `name`, implement `run_once()`, and usually `next_due_ms()`; a pruner
    (were there an engine method for it) would read::

        class Pruner(Service):
            name = "pruner"

            def __init__(self, engine: Engine, *, batch_size: int = DEFAULT_BATCH_SIZE):
                self.engine = engine
                self.batch_size = check_batch_size(self, batch_size)

            def run_once(self) -> int:
                return self.engine.maintenance.prune(self.batch_size)

    `run_once()` runs again after it raised, so it must be safe to repeat (engine calls
    are guarded transactions); `stop()` is called even on a host that never started.

    Every method is blocking and runs on the host's thread, never on its event loop.
    """

    name: str
    """Unique within a host; names the service's loop in logs and in `ServiceHost.rounds`."""

    leader_only: bool = True
    """Run only on the process that holds the host's leadership (the default: most
    background work must happen once, not once per process)."""

    interval_seconds: float | None = None
    """The longest sleep between two rounds; None: the host's poll interval."""

    def start(self) -> None:  # noqa: B027 (an optional hook)
        """Called once, on the host's thread, before the first round."""

    def stop(self) -> None:  # noqa: B027 (an optional hook)
        """Called once, on the host's thread, after the last round."""

    @abc.abstractmethod
    def run_once(self) -> object:
        """Do the work due now, through the engine; return what was done (for tests and
        logs). May raise: the host logs the error and tries again at the next round."""

    def next_due_ms(self) -> int | None:
        """The earliest time (ms since the epoch, on the engine's clock) this service may
        have work, if it knows; None: at the next poll."""
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


@dataclass(frozen=True, slots=True)
class _Round:
    """What one round of a service gave: its result and its next due time."""

    result: object
    due_ms: int | None


_SKIPPED = object()  # a leader-only service's round, on a host that does not lead


class ServiceHost:
    """Runs a set of services for one process; see the module docstring.

    ``await host.start()`` starts one loop per service; ``await host.stop()`` ends them
    and resigns the leadership. Without a leader, every service must have
    `leader_only = False`.
    """

    def __init__(
        self,
        services: Sequence[Service],
        *,
        leader: LeaderElector | None = None,
        poll_interval_seconds: float = 1.0,
        clock: Clock = SYSTEM_CLOCK,
        executor: Executor | None = None,
    ) -> None:
        self.poll_interval_seconds = check_seconds(
            self, "poll_interval_seconds", poll_interval_seconds
        )
        self.leader = leader
        self.services: tuple[Service, ...] = _check_services(services, leader)
        self.clock = clock
        self.rounds: dict[str, int] = {service.name: 0 for service in self.services}
        """Rounds each service ran (that returned or raised), by name."""
        self._given_executor = executor
        self._own_executor: ThreadPoolExecutor | None = None
        self._wakes: dict[str, asyncio.Event] = {}
        self._loops: list[asyncio.Task[None]] = []
        self._started = False
        self._stopping = False

    @property
    def leads(self) -> bool:
        """Whether this host holds its leadership now (False without a leader)."""
        return self.leader is not None and self.leader.leads

    @property
    def running(self) -> bool:
        """Between `start()` and `stop()`."""
        return self._started and not self._stopping

    # -- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        """Call every service's `start()`, then start their loops on the running event
        loop. A host starts once."""
        if self._started:
            raise RuntimeError("this ServiceHost was started already; a host starts once")
        self._started = True
        for service in self.services:
            await self._blocking(service.start)
        loop = asyncio.get_running_loop()
        for service in self.services:
            self._wakes[service.name] = asyncio.Event()
            task = loop.create_task(self._loop(service), name=f"service {service.name}")
            task.add_done_callback(self._loop_ended)
            self._loops.append(task)

    async def stop(self) -> None:
        """End the loops (a round under way finishes first), then call every service's
        `stop()`, the leader's last, so it resigns once nothing runs under it. Errors of
        the hooks are logged. Safe to call more than once, or without `start()`."""
        if self._stopping:
            return
        self._stopping = True
        for wake in self._wakes.values():
            wake.set()
        await asyncio.gather(*self._loops, return_exceptions=True)
        for service in reversed(self.services):
            try:
                await self._blocking(service.stop)
            except Exception:
                log.exception("service %s failed to stop", service.name)
        if self._own_executor is not None:
            self._own_executor.shutdown(wait=True)

    def wake(self) -> None:
        """Make every loop but the leader's look for due work now (a delayed run or a
        timed wait was just created). Call it from the host's event loop."""
        for service in self.services:
            if service is not self.leader and service.name in self._wakes:
                self._wakes[service.name].set()

    async def run_once(self) -> dict[str, object]:
        """Run one round of every service now, the leader's first, whether the host is
        started or not; return each result by service name. Leader-only services are
        skipped when this host does not lead; a service that raised is logged and left
        out of the result."""
        results: dict[str, object] = {}
        for service in self.services:
            outcome = await self._round(service)
            if outcome is not None:
                results[service.name] = outcome.result
        return results

    # -- the loops ------------------------------------------------------------------
    async def _loop(self, service: Service) -> None:
        wake = self._wakes[service.name]
        longest = self._longest_sleep(service)
        while not self._stopping:
            wake.clear()
            outcome = await self._round(service)
            if self._stopping:
                return
            due = None if outcome is None else outcome.due_ms
            delay = sleep_seconds(due, self.clock.now_ms(), longest)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), delay)

    def _longest_sleep(self, service: Service) -> float:
        if service.interval_seconds is None:
            return self.poll_interval_seconds
        return min(self.poll_interval_seconds, service.interval_seconds)

    async def _round(self, service: Service) -> _Round | None:
        """One round of a service on the host's thread; None when it was skipped or raised."""
        if service.leader_only and not self.leads:
            return None  # decided here too, to spare a trip to a busy database thread
        leading_before = self.leads
        try:
            outcome = await self._blocking(lambda: self._run_service(service))
        except StoreBusyError as error:
            self.rounds[service.name] += 1
            log.warning("service %s skipped a round: %s", service.name, error)
            return None
        except Exception:
            self.rounds[service.name] += 1
            log.exception("service %s failed; it runs again at its next round", service.name)
            return None
        if outcome is _SKIPPED:
            return None
        self.rounds[service.name] += 1
        if service is self.leader and self.leads and not leading_before:
            self._wake_leader_only()
        assert isinstance(outcome, _Round)
        return outcome

    def _run_service(self, service: Service) -> _Round | object:
        """On the host's thread: the leadership is checked again, just before the work."""
        if service.leader_only and not self.leads:
            return _SKIPPED
        result = service.run_once()
        return _Round(result, service.next_due_ms())

    def _wake_leader_only(self) -> None:
        for service in self.services:
            if service.leader_only and service.name in self._wakes:
                self._wakes[service.name].set()

    def _loop_ended(self, task: asyncio.Task[None]) -> None:
        """A loop ends only when the host stops; anything else is a bug worth shouting."""
        if task.cancelled() or self._stopping:
            return
        log.critical("%s ended unexpectedly: %r", task.get_name(), task.exception())

    async def _blocking(self, call: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor(), call)

    def _executor(self) -> Executor:
        if self._given_executor is not None:
            return self._given_executor
        if self._own_executor is None:
            self._own_executor = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="taskloom-services"
            )
        return self._own_executor


def sleep_seconds(due_ms: int | None, now_ms: int, longest: float) -> float:
    """How long a loop sleeps after a round: until its service's next due time, at most
    `longest`; briefly when that time has come already (see `PAST_DUE_SLEEP_SECONDS`).

    >>> sleep_seconds(None, 0, 1.0), sleep_seconds(250, 0, 1.0), sleep_seconds(5_000, 0, 1.0)
    (1.0, 0.25, 1.0)
    """
    if due_ms is None:
        return longest
    if due_ms <= now_ms:
        return min(longest, PAST_DUE_SLEEP_SECONDS)
    return min(longest, (due_ms - now_ms) / 1000)


# -- settings, checked up front ----------------------------------------------------------
def check_int(owner: object, setting: str, value: object, *, minimum: int, maximum: int) -> int:
    """`value` when it is an integer in [minimum, maximum]; else an InvalidOptionError
    naming the owner, the setting, the value and the limits."""
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise InvalidOptionError(
            f"{_owner(owner)} {setting} must be an integer from {minimum:,} to {maximum:,}, "
            f"got {value!r}"
        )
    return value


def check_batch_size(owner: object, value: object) -> int:
    """A service's `batch_size`: how many rows one transaction changes at most (a bigger
    batch holds the database's write lock longer)."""
    return check_int(owner, "batch_size", value, minimum=1, maximum=MAX_BATCH_SIZE)


def check_seconds(
    owner: object, setting: str, value: object, *, maximum: float = math.inf, why: str = ""
) -> float:
    """`value` as float seconds when it is a finite number > 0 and <= maximum; else an
    InvalidOptionError naming the owner, the setting, the value and the limit (`why`
    says where the maximum comes from)."""
    limit = "> 0" if maximum == math.inf else f"> 0 and <= {maximum:g}"
    if why:
        limit += f" ({why})"
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 < value <= maximum
    ):
        raise InvalidOptionError(
            f"{_owner(owner)} {setting} must be a number of seconds {limit}, got {value!r}"
        )
    return float(value)


def check_text(owner: object, setting: str, value: object) -> str:
    """`value` when it is a non-empty string; else an InvalidOptionError."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidOptionError(
            f"{_owner(owner)} {setting} must be a non-empty string, got {value!r}"
        )
    return value


def _owner(owner: object) -> str:
    return owner if isinstance(owner, str) else type(owner).__name__


def _check_services(
    services: Sequence[Service], leader: LeaderElector | None
) -> tuple[Service, ...]:
    if isinstance(services, Service) or not isinstance(services, Sequence):
        raise InvalidOptionError(
            f"ServiceHost services must be a list of Service objects, got {services!r}"
        )
    hosted = (leader, *services) if leader is not None else tuple(services)
    names: set[str] = set()
    for service in hosted:
        if not isinstance(service, Service):
            raise InvalidOptionError(
                f"ServiceHost services must be Service objects (with start, stop and "
                f"run_once), got {service!r}"
            )
        if service.name in names:
            raise InvalidOptionError(
                f"ServiceHost services must have distinct names; {service.name!r} appears "
                "twice (pass the LeaderElector as leader=, not among the services)"
            )
        names.add(service.name)
        if service.leader_only and leader is None:
            raise InvalidOptionError(
                f"service {service.name!r} runs on the leader only, and this ServiceHost "
                "has no leader: pass leader=LeaderElector(...)"
            )
    if not hosted:
        raise InvalidOptionError("ServiceHost services must hold at least one service, got []")
    return hosted
