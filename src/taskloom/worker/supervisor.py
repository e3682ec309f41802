"""The worker supervisor: claims runs, feeds warm executors, writes outcomes, keeps its lease.

One asyncio loop; every store call runs on one dedicated thread, so the loop stays free
for executor messages and heartbeats. Writes are group-committed: whatever starts,
outcomes and events arrived while the previous transaction ran go into the next one,
together with the next claim (`engine.workers.tick`). An idle worker sleeps until a wake-up
datagram, a retry timer or the poll fallback. Executors are managed by `pools`, the
attempts they run by `dispatcher`. The background services (delayed runs, TTLs, lease
rescue, waitpoint timers) run beside, on the same loop and database thread, built by the
`services` factory the caller hands in (`taskloom.services.maintenance_host`): worker and
services are sibling packages that never import each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from ..clock import SYSTEM_CLOCK, Clock
from ..config import Config
from ..engine.engine import Engine
from ..engine.records import (
    AttemptOutcome,
    AttemptStart,
    NewEvent,
    QueueDeclaration,
    RecordedWait,
    Suspension,
    TaskDefinitionRecord,
    WorkerInfo,
    WorkerTick,
)
from ..engine.spec import TaskSpec
from ..engine.wake import DELAYED, RUNS_READY, SIGNAL, WakeListener
from ..errors import StoreBusyError
from ..ids import new_id
from .dispatcher import Dispatcher, InFlight
from .pools import ExecutorPools
from .process import ExecutorFailure, ExecutorProcess

log = logging.getLogger("taskloom.internal.worker")
T = TypeVar("T")

TICK_GATHER_SECONDS = 0.002


class WorkerStartError(Exception):
    """The worker could not start (a task module failed to import, ...)."""


class BackgroundServices(Protocol):
    """What a worker needs of the background services it hosts (a
    `taskloom.services.ServiceHost`): started after the worker registered, woken by a
    DELAYED wake-up, stopped (resigning their leadership) at shutdown."""

    async def start(self) -> None:
        """Start the services' loops on the running event loop."""
        ...

    def wake(self) -> None:
        """Look for due work now."""
        ...

    async def stop(self) -> None:
        """End the loops and resign the leadership."""
        ...


ServicesFactory = Callable[[Engine, str, Executor], BackgroundServices]
"""Builds a worker's background services from its engine, its worker id (their
leadership's holder) and its database thread (every blocking call goes there), e.g.
`taskloom.services.maintenance_host`."""


class Supervisor:
    """A worker process: `await Supervisor(engine, services=...).run()` until SIGTERM/SIGINT.

    `services` builds the background services the worker hosts (see `ServicesFactory`);
    None runs none, and then delayed runs, TTLs, lapsed leases and waitpoint timers only
    move when another process runs them.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        services: ServicesFactory | None,
        concurrency: int | None = None,
        executors: int | None = None,
        clock: Clock = SYSTEM_CLOCK,
        install_signal_handlers: bool = True,
        on_ready: Callable[[Supervisor], None] | None = None,
    ) -> None:
        self.engine = engine
        self.config: Config = engine.config
        self.workers = engine.workers
        self.clock = clock
        self.concurrency = concurrency or self.config.worker_concurrency
        self.executor_count = executors or self.config.executors or default_executor_count()
        self.install_signal_handlers = install_signal_handlers
        self.on_ready = on_ready
        self.worker_id = new_id("worker")

        self.pools = ExecutorPools(
            # Executors size their thread pools (sync attempts) by this worker's concurrency.
            dataclasses.replace(self.config, worker_concurrency=self.concurrency),
            self.executor_count,
            self._on_spawned,
            self._on_memory_exceeded,
            lambda key: self.dispatcher.executor_failed(*key),
        )
        self.dispatcher = Dispatcher(self, self.config, self.pools)
        self._pending_starts: dict[str, AttemptStart] = {}
        self._pending_outcomes: list[AttemptOutcome] = []
        self._pending_events: list[NewEvent] = []
        self._pending_suspends: dict[str, Suspension] = {}
        self._work = asyncio.Event()
        self._claim_wanted = True
        self._signals_wanted = True
        self._draining = False
        self._stopped = asyncio.Event()
        self._last_write = 0.0
        self._last_tick = 0.0
        self._ticking = False
        self._failed: BaseException | None = None
        self._claim_requests = 0  # counts reasons to claim, so none is lost during a claim
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="taskloom-db")
        self._background: list[asyncio.Task[Any]] = []
        self._listener: WakeListener | None = None
        self._services_factory = services
        self.services: BackgroundServices | None = None
        self.stats = {"ticks": 0, "claimed": 0, "outcomes": 0, "starts": 0, "db_seconds": 0.0}

    @property
    def in_flight(self) -> dict[str, InFlight]:
        """Attempts this worker holds, by run id."""
        return self.dispatcher.in_flight

    @property
    def executors(self) -> list[ExecutorProcess]:
        """The executor processes alive now."""
        return self.pools.executors

    @property
    def completed(self) -> int:
        """Attempts that reported an outcome since start."""
        return self.dispatcher.completed

    # -- what the dispatcher asks of us ------------------------------------------------
    def now(self) -> int:
        return self.clock.now_ms()

    def add_outcome(self, outcome: AttemptOutcome) -> None:
        self._pending_outcomes.append(outcome)
        # The outcome frees a slot of this worker and of the run's queue: the tick that
        # writes it claims again, even when the last claim found fewer runs than it asked
        # for (a queue at its limit), instead of waiting for the next poll.
        self.want_claim()

    def add_start(self, run_id: str, attempt: int, started_at: int) -> None:
        self._pending_starts[run_id] = AttemptStart(run_id, attempt, started_at)
        self._work.set()

    def drop_start(self, run_id: str) -> None:
        self._pending_starts.pop(run_id, None)

    def add_events(self, events: list[NewEvent]) -> None:
        self._pending_events.extend(events)
        self._work.set()

    def release(self, held: list[InFlight], *, isolate: bool) -> None:
        """Put attempts back in their queues without using an attempt (in the background)."""
        asyncio.get_running_loop().create_task(self._release(held, isolate=isolate))

    async def _release(self, held: list[InFlight], *, isolate: bool) -> list[str]:
        by_worker: dict[str, list[str]] = {}
        for item in held:
            by_worker.setdefault(item.worker_id, []).append(item.run.id)
        released: list[str] = []
        for worker_id, ids in by_worker.items():
            release = functools.partial(self.workers.release, worker_id, ids, isolate=isolate)
            released += await self._call(release)
        if released:
            self.want_claim()
        return released

    def add_suspend(self, run_id: str, attempt: int) -> None:
        self._pending_suspends[run_id] = Suspension(run_id, attempt, self.worker_id)
        self._work.set()

    async def load_waits(self, run_id: str, attempt: int) -> list[RecordedWait]:
        """Every recorded wait of an attempt (for a replay)."""
        return await self._call(self.workers.waits, run_id, attempt)

    def unpark(self, run_ids: list[str]) -> None:
        """The coroutines of these waiting runs are gone: let them continue by replay."""
        call = functools.partial(self.workers.unpark, run_ids, self.worker_id)
        asyncio.get_running_loop().create_task(self._call(call))

    def want_claim(self) -> None:
        self._claim_wanted = True
        self._claim_requests += 1
        self._work.set()

    def wake_at(self, when_ms: int) -> None:
        delay = max(0.0, (when_ms - self.now()) / 1000)
        asyncio.get_running_loop().call_later(delay, self.want_claim)

    # -- plumbing -------------------------------------------------------------------
    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db, fn, *args)

    # -- lifecycle ------------------------------------------------------------------
    async def run(self) -> int:
        """Run until stopped; return the process exit code."""
        await self._call(self.engine.migrate)
        failure = await self.pools.start()
        if failure is not None:
            await self.pools.stop_all()
            self._db.shutdown(wait=True)
            raise WorkerStartError(_describe_failure(failure))
        first = self.pools.executors[0] if self.pools.executors else None
        records = await self._announce(first)
        now = self.now()
        info = WorkerInfo(
            id=self.worker_id,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            concurrency=self.concurrency,
            started_at=now,
            tasks=tuple(r.id for r in records),
        )
        await self._call(self.workers.register, info)
        self._listen_for_wakes()
        if self._services_factory is not None:
            self.services = self._services_factory(self.engine, self.worker_id, self._db)
            await self.services.start()
        loop = asyncio.get_running_loop()
        if self.install_signal_handlers:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop)
        self._background = [
            asyncio.create_task(self._tick_loop(), name="tick"),
            asyncio.create_task(self._heartbeat_loop(), name="heartbeat"),
            asyncio.create_task(self._poll_loop(), name="poll"),
            asyncio.create_task(self.pools.watch_memory(), name="memory"),
        ]
        for task in self._background:
            task.add_done_callback(self._loop_ended)
        for executor in self.pools.executors:
            self._background.append(asyncio.create_task(self._watch(executor)))
        self._work.set()
        if self.on_ready is not None:
            self.on_ready(self)
        await self._stopped.wait()
        await self._shutdown()
        return 1 if self._failed is not None else 0

    def _loop_ended(self, task: asyncio.Task[Any]) -> None:
        """A background loop must never end on its own: if one fails, the worker stops (with
        a non-zero exit) instead of heartbeating without working."""
        if task.cancelled() or self._stopped.is_set():
            return
        error = task.exception()
        self._failed = error or RuntimeError(f"the {task.get_name()} loop ended")
        log.critical("worker loop %s failed: %r; stopping", task.get_name(), self._failed)
        print(
            f"taskloom worker: internal error in its {task.get_name()} loop: {self._failed!r}",
            file=sys.stderr,
        )
        asyncio.get_running_loop().create_task(self._release_all())

    async def _announce(self, executor: ExecutorProcess | None) -> list[TaskDefinitionRecord]:
        """Publish the task catalog and the queues the task modules declare."""
        if executor is None:
            return []
        now = self.now()
        records = []
        for text in executor.specs:
            spec = TaskSpec.from_json(text.encode())
            records.append(TaskDefinitionRecord(spec.id, text.encode(), spec.file_path, now))
        await self._call(self.workers.announce, records, declared_queues(executor))
        return records

    def request_stop(self) -> None:
        """Begin a graceful stop (SIGTERM): claim nothing more, let attempts finish."""
        if self._draining:
            log.warning("second stop request: releasing running attempts now")
            asyncio.get_running_loop().create_task(self._release_all())
            return
        self._draining = True
        self._claim_wanted = False
        self._work.set()
        asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        deadline = time.monotonic() + self.config.shutdown_grace_seconds
        while self.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await self._release_all()

    async def _release_all(self) -> None:
        if self._stopped.is_set():
            return
        held = self.dispatcher.take_all("worker shutting down")
        if held:
            released = await self._release(held, isolate=False)
            log.warning("released %d run(s) back to their queues: %s", len(released), released)
        await self._flush_writes()
        self._stopped.set()

    async def _flush_writes(self) -> None:
        """Wait until everything pending is written, including a tick under way."""
        ticking = next((t for t in self._background if t.get_name() == "tick"), None)
        while (
            self._pending_outcomes
            or self._pending_suspends
            or self._pending_starts
            or self._pending_events
            or self._ticking
        ) and not (ticking is None or ticking.done()):
            self._work.set()
            await asyncio.sleep(0.005)

    async def _shutdown(self) -> None:
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.pools.stop_all()
        if self._listener is not None:
            asyncio.get_running_loop().remove_reader(self._listener.socket.fileno())
            self._listener.close()
        if self.services is not None:
            with contextlib.suppress(Exception):
                await self.services.stop()
        with contextlib.suppress(Exception):
            await self._call(self.workers.stop, self.worker_id)
        self._db.shutdown(wait=True)
        if os.environ.get("TASKLOOM_WORKER_STATS"):
            print(f"taskloom worker stats: {self.stats}", file=sys.stderr)

    # -- executors ------------------------------------------------------------------
    def _on_spawned(self, executor: ExecutorProcess) -> None:
        self._background.append(asyncio.create_task(self._watch(executor)))
        self.dispatcher.executor_ready(executor)
        self.want_claim()

    def _on_memory_exceeded(self, executor: ExecutorProcess, used: int, limit: int) -> None:
        self.dispatcher.on_memory_exceeded(executor, used, limit)

    async def _watch(self, executor: ExecutorProcess) -> None:
        code = await self.dispatcher.watch(executor)
        if self._stopped.is_set():
            return
        self.dispatcher.on_exit(executor, code, stopping=self._draining)

    # -- the tick loop --------------------------------------------------------------
    async def _tick_loop(self) -> None:
        while True:
            await self._work.wait()
            # Group commit: right after a transaction, give the next one a moment to gather
            # more work, so a busy worker makes a few large commits instead of many small
            # ones. An idle worker (last commit long ago) writes at once.
            since = time.monotonic() - self._last_tick
            if since < TICK_GATHER_SECONDS:
                await asyncio.sleep(TICK_GATHER_SECONDS - since)
            self._work.clear()
            self._ticking = True
            try:
                await self._tick()
            finally:
                self._ticking = False

    async def _tick(self) -> None:
        starts = list(self._pending_starts.values())
        self._pending_starts.clear()
        outcomes_, self._pending_outcomes = self._pending_outcomes, []
        events, self._pending_events = self._pending_events, []
        suspends = list(self._pending_suspends.values())
        self._pending_suspends.clear()
        read_signals = self._signals_wanted
        self._signals_wanted = False
        capacity = self.concurrency - len(self.in_flight)
        if not self.pools.any_available():
            capacity = 0  # every executor is being replaced: claim once a new one is ready
        claim = capacity if self._claim_wanted and not self._draining and capacity > 0 else 0
        if not (starts or outcomes_ or events or claim or read_signals or suspends):
            return
        tick = WorkerTick(
            worker_id=self.worker_id,
            now=self.now(),
            starts=starts,
            outcomes=outcomes_,
            events=events,
            claim_limit=claim,
            read_signals=read_signals,
            environment_limit=self.config.environment_concurrency_limit,
            suspends=suspends,
        )
        requests_before = self._claim_requests
        try:
            began = time.perf_counter()
            result = await self._call(self.workers.tick, tick)
        except StoreBusyError as error:
            log.warning("%s; retrying", error)
            self._pending_outcomes[:0] = outcomes_
            self._pending_events[:0] = events
            for start in starts:
                self._pending_starts.setdefault(start.run_id, start)
            for suspend in suspends:
                self._pending_suspends.setdefault(suspend.run_id, suspend)
            self._signals_wanted = self._signals_wanted or read_signals
            self._work.set()
            return
        stats = self.stats
        stats["db_seconds"] += time.perf_counter() - began
        stats["ticks"] += 1
        stats["claimed"] += len(result.claimed)
        stats["outcomes"] += len(outcomes_)
        stats["starts"] += len(starts)
        self._last_write = self._last_tick = time.monotonic()
        if claim:
            # More may be ready when the claim was full, or when a wake-up came meanwhile.
            self._claim_wanted = (
                len(result.claimed) >= claim or self._claim_requests != requests_before
            )
        self.dispatcher.on_suspended(result.suspended)
        self.dispatcher.on_ready(result.ready)
        for run in result.claimed:
            self.dispatcher.dispatch(run)
        for sig in result.signals:
            if sig.kind == "cancel":
                self.dispatcher.cancel(sig.run_id, sig.reason)
        if not result.worker_alive:
            await self._lost_lease()

    async def _lost_lease(self) -> None:
        """Another worker declared this one dead (it was paused past its lease): its runs were
        rescued elsewhere. Abandon them and come back under a new identity."""
        log.error("worker %s lost its lease; its runs were rescued by others", self.worker_id)
        self.dispatcher.take_all("worker lost its lease")
        self.worker_id = new_id("worker")
        now = self.now()
        info = WorkerInfo(
            id=self.worker_id,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            concurrency=self.concurrency,
            started_at=now,
        )
        await self._call(self.workers.register, info)

    # -- timers ---------------------------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        interval = self.config.lease_seconds / 3
        while True:
            await asyncio.sleep(interval / 2)
            if time.monotonic() - self._last_write < interval:
                continue
            try:
                alive = await self._call(self.workers.heartbeat, self.worker_id)
            except StoreBusyError as error:
                log.warning("heartbeat failed: %s", error)
                continue
            self._last_write = time.monotonic()
            if not alive:
                await self._lost_lease()

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.poll_interval_seconds)
            self._signals_wanted = True
            self.want_claim()

    # -- wake-ups -------------------------------------------------------------------
    def _listen_for_wakes(self) -> None:
        self._listener = WakeListener(self.engine.notifier.directory, self.worker_id)
        asyncio.get_running_loop().add_reader(self._listener.socket.fileno(), self._on_wake)

    def _on_wake(self) -> None:
        assert self._listener is not None
        messages = self._listener.drain()
        if RUNS_READY in messages:
            self.want_claim()
        if SIGNAL in messages:
            self._signals_wanted = True
        if DELAYED in messages and self.services is not None:
            self.services.wake()
        self._work.set()


def declared_queues(executor: ExecutorProcess | None) -> list[QueueDeclaration]:
    """The queues the task modules use: each task's own, and those declared with queue()."""
    if executor is None:
        return []
    found: dict[str, QueueDeclaration] = {}
    for text in executor.specs:
        spec = TaskSpec.from_json(text.encode())
        kind = "task" if spec.queue == f"task/{spec.id}" else "custom"
        found[spec.queue] = QueueDeclaration(
            spec.queue, kind, spec.concurrency_limit, spec.total_concurrency_limit
        )
    for queue in executor.queues:
        found[queue["name"]] = QueueDeclaration(
            queue["name"], "custom", queue.get("limit"), queue.get("total")
        )
    return list(found.values())


def default_executor_count() -> int:
    """Executors when not configured: one per CPU but one (the supervisor and the database
    need a core under load), at least one, at most four."""
    return max(1, min((os.cpu_count() or 1) - 1, 4))


def _describe_failure(failure: ExecutorFailure) -> str:
    if failure.module is not None:
        return (
            f"task module {failure.module} ({failure.path}) failed to import:\n"
            f"{failure.details.rstrip()}"
        )
    return failure.details


def run_worker(engine: Engine, *, services: ServicesFactory | None, **options: Any) -> int:
    """Run a worker in this process until SIGTERM/SIGINT; return its exit code.

    `services` builds the background services it hosts, normally
    `taskloom.services.maintenance_host`; `options` are the `Supervisor`'s."""
    supervisor = Supervisor(engine, services=services, **options)
    try:
        return asyncio.run(supervisor.run())
    except WorkerStartError as error:
        print(f"taskloom worker: {error}", file=sys.stderr)
        return 1
