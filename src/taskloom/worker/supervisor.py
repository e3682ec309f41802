"""The worker supervisor: claims runs, feeds warm executors, writes outcomes, keeps its lease.

One asyncio loop; every store call runs on one dedicated thread, so the loop stays free
for executor messages and heartbeats. Writes are group-committed: whatever starts,
outcomes and events arrived while the previous transaction ran go into the next one,
together with the next claim (`Store.worker_tick`). An idle worker sleeps until a wake-up
datagram, a retry timer or the poll fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from ..clock import SYSTEM_CLOCK, Clock
from ..config import Config
from ..engine import outcomes
from ..engine.engine import Engine
from ..engine.spec import TaskSpec
from ..engine.wake import DELAYED, RUNS_READY, SIGNAL, WakeListener, wake_directory
from ..errors import StoreBusyError
from ..ids import new_id
from ..services.maintenance import DelayedPromoter, LeaseRescuer, TtlExpirer
from ..store.records import (
    AttemptOutcome,
    AttemptStart,
    ClaimedRun,
    NewEvent,
    QueueDeclaration,
    TaskDefinitionRecord,
    WorkerInfo,
    WorkerTick,
)
from .executors import ExecutorFailure, ExecutorProcess, describe_exit, spawn_executor
from .ipc import read_frame

log = logging.getLogger("taskloom.internal.worker")
T = TypeVar("T")

MAINTENANCE_LEADER = "maintenance"
TICK_GATHER_SECONDS = 0.002


@dataclass(slots=True)
class InFlight:
    """A claimed run this worker is executing."""

    run: ClaimedRun
    worker_id: str
    executor: ExecutorProcess
    started_at: int | None = None


class WorkerStartError(Exception):
    """The worker could not start (a task module failed to import, ...)."""


class Supervisor:
    """A worker process: `await Supervisor(config).run()` until SIGTERM/SIGINT."""

    def __init__(
        self,
        engine: Engine,
        *,
        concurrency: int | None = None,
        executors: int | None = None,
        clock: Clock = SYSTEM_CLOCK,
        install_signal_handlers: bool = True,
        on_ready: Callable[[Supervisor], None] | None = None,
    ) -> None:
        self.engine = engine
        self.config: Config = engine.config
        self.store = engine.store
        self.clock = clock
        self.concurrency = concurrency or self.config.worker_concurrency
        self.executor_count = executors or self.config.executors or default_executor_count()
        self.install_signal_handlers = install_signal_handlers
        self.on_ready = on_ready
        self.worker_id = new_id("worker")
        self.lease_ms = round(self.config.lease_seconds * 1000)

        self.executors: list[ExecutorProcess] = []
        self.in_flight: dict[str, InFlight] = {}
        self._pending_starts: dict[str, AttemptStart] = {}
        self._pending_outcomes: list[AttemptOutcome] = []
        self._pending_events: list[NewEvent] = []
        self._work = asyncio.Event()
        self._maintenance_wake = asyncio.Event()
        self._claim_wanted = True
        self._signals_wanted = True
        self._draining = False
        self._stopped = asyncio.Event()
        self._writes_idle = asyncio.Event()
        self._last_write = 0.0
        self._last_tick = 0.0
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="taskloom-db")
        self._background: list[asyncio.Task[Any]] = []
        self._listener: WakeListener | None = None
        self.promoter = DelayedPromoter(self.store)
        self.expirer = TtlExpirer(self.store)
        self.rescuer = LeaseRescuer(self.store, self.lease_ms)
        self.completed = 0
        self.stats = {"ticks": 0, "claimed": 0, "outcomes": 0, "starts": 0, "db_seconds": 0.0}

    # -- plumbing -------------------------------------------------------------------
    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db, fn, *args)

    def _now(self) -> int:
        return self.clock.now_ms()

    # -- lifecycle ------------------------------------------------------------------
    async def run(self) -> int:
        """Run until stopped; return the process exit code."""
        await self._call(self.store.migrate)
        failure = await self._start_executors()
        if failure is not None:
            await self._stop_executors()
            self._db.shutdown(wait=True)
            raise WorkerStartError(_describe_failure(failure))
        specs = self.executors[0].specs if self.executors else []
        now = self._now()
        records = [
            TaskDefinitionRecord(
                id=TaskSpec.from_json(s.encode()).id,
                definition=s.encode(),
                file_path=TaskSpec.from_json(s.encode()).file_path,
                updated_at=now,
            )
            for s in specs
        ]
        if records:
            await self._call(self.store.task_catalog_upsert, records)
        queues = declared_queues(self.executors[0] if self.executors else None)
        if queues:
            await self._call(self.store.queues_declare, queues, now)
        info = WorkerInfo(
            id=self.worker_id,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            concurrency=self.concurrency,
            started_at=now,
            tasks=tuple(r.id for r in records),
        )
        await self._call(self.store.worker_register, info, now)
        self._listen_for_wakes()
        loop = asyncio.get_running_loop()
        if self.install_signal_handlers:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.request_stop)
        self._background = [
            asyncio.create_task(self._tick_loop(), name="tick"),
            asyncio.create_task(self._heartbeat_loop(), name="heartbeat"),
            asyncio.create_task(self._maintenance_loop(), name="maintenance"),
            asyncio.create_task(self._poll_loop(), name="poll"),
        ]
        for executor in self.executors:
            self._background.append(asyncio.create_task(self._watch(executor)))
        self._work.set()
        if self.on_ready is not None:
            self.on_ready(self)
        await self._stopped.wait()
        await self._shutdown()
        return 0

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
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._in_flight_changed(), deadline - time.monotonic())
        await self._release_all()

    async def _in_flight_changed(self) -> None:
        before = len(self.in_flight)
        while len(self.in_flight) == before and self.in_flight:
            await asyncio.sleep(0.01)

    async def _release_all(self) -> None:
        held = list(self.in_flight.values())
        if held:
            for item in held:
                item.executor.send(["cancel", item.run.id, "worker shutting down"])
                item.executor.in_flight.discard(item.run.id)
                self.in_flight.pop(item.run.id, None)
                self._pending_starts.pop(item.run.id, None)
            ids = [item.run.id for item in held]
            released = await self._call(self.store.runs_release, self.worker_id, ids, self._now())
            log.warning("released %d run(s) back to their queues: %s", len(released), released)
        await self._flush_writes()
        self._stopped.set()

    async def _flush_writes(self) -> None:
        while self._pending_outcomes or self._pending_starts or self._pending_events:
            self._work.set()
            await asyncio.sleep(0.005)
        await asyncio.sleep(0)

    async def _shutdown(self) -> None:
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._stop_executors()
        if self._listener is not None:
            asyncio.get_running_loop().remove_reader(self._listener.socket.fileno())
            self._listener.close()
        with contextlib.suppress(Exception):
            await self._call(self.store.leader_resign, MAINTENANCE_LEADER, self.worker_id)
            await self._call(self.store.worker_stop, self.worker_id, self._now())
        self._db.shutdown(wait=True)
        if os.environ.get("TASKLOOM_WORKER_STATS"):
            print(f"taskloom worker stats: {self.stats}", file=sys.stderr)

    # -- executors ------------------------------------------------------------------
    async def _start_executors(self) -> ExecutorFailure | None:
        spawned = await asyncio.gather(
            *(spawn_executor(i, self.config) for i in range(self.executor_count))
        )
        self.executors = list(spawned)
        failures = await asyncio.gather(*(e.wait_ready() for e in self.executors))
        return next((f for f in failures if f is not None), None)

    async def _stop_executors(self) -> None:
        await asyncio.gather(*(e.stop() for e in self.executors), return_exceptions=True)

    async def _watch(self, executor: ExecutorProcess) -> None:
        """Read an executor's messages until it exits; then account for what it held."""
        while True:
            messages = await read_frame(executor.reader)
            if messages is None:
                break
            for message in messages:
                kind = message[0]
                if kind == "done":
                    self._on_done(message[1], message[2], message[3])
                elif kind == "started":
                    self._on_started(message[1], message[2], message[3])
                elif kind == "events":
                    self._on_events(message[1], message[2], message[3])
                elif kind == "kill":
                    self._on_kill_request(executor, message[1], message[2], message[3])
        code = await executor.process.wait()
        if self._stopped.is_set():
            return
        self._on_executor_death(executor, code)

    def _on_kill_request(
        self, executor: ExecutorProcess, run_id: str, attempt: int, reason: str
    ) -> None:
        """A cancelled sync attempt must be stopped: its executor process is killed. The
        cancelled attempt is recorded; the executor's other attempts go back to their
        queues without using an attempt, and a new executor takes its place."""
        now = self._now()
        item = self.in_flight.get(run_id)
        if item is not None and item.run.attempt == attempt and item.executor is executor:
            del self.in_flight[run_id]
            self._pending_starts.pop(run_id, None)
            self._add_outcome(
                outcomes.failure(
                    run_id,
                    attempt,
                    item.worker_id,
                    outcomes.error_json(
                        "TaskRunCancelledError",
                        f"{reason} (the attempt's process was stopped)",
                        code="TASK_RUN_CANCELLED",
                    ),
                    retry_at=None,
                    final_status="CANCELED",
                    attempt_status="CANCELED",
                    started_at=item.started_at,
                    finished_at=now,
                )
            )
        executor.in_flight.discard(run_id)
        others = [self.in_flight.pop(r) for r in list(executor.in_flight) if r in self.in_flight]
        executor.in_flight.clear()
        executor.retiring = True
        for other in others:
            self._pending_starts.pop(other.run.id, None)
        asyncio.get_running_loop().create_task(self._release_and_kill(executor, others))

    async def _release_and_kill(self, executor: ExecutorProcess, held: list[InFlight]) -> None:
        if held:
            ids = [item.run.id for item in held]
            await self._call(self.store.runs_release, held[0].worker_id, ids, self._now())
            self.engine.notifier.notify(RUNS_READY)
        executor.kill()

    def _on_executor_death(self, executor: ExecutorProcess, code: int) -> None:
        now = self._now()
        held = [self.in_flight.pop(run_id) for run_id in list(executor.in_flight)]
        executor.in_flight.clear()
        reason = f"the executor process (pid {executor.pid}) {describe_exit(code)}"
        log.error("%s while running %d attempt(s)", reason, len(held))
        for item in held:
            self._pending_starts.pop(item.run.id, None)
            outcome = outcomes.crash(
                item.run.id,
                item.run.attempt,
                item.worker_id,
                max_attempts=item.run.max_attempts,
                retry=item.run.retry,
                reason=f"{reason} during attempt {item.run.attempt}",
                code="TASK_PROCESS_EXITED",
                now=now,
                started_at=item.started_at,
            )
            self._add_outcome(outcome)
        if executor in self.executors and not self._draining:
            self.executors.remove(executor)
            asyncio.get_running_loop().create_task(self._replace(executor.index))

    async def _replace(self, index: int) -> None:
        replacement = await spawn_executor(index, self.config)
        failure = await replacement.wait_ready()
        if failure is not None:
            log.error("replacement executor failed to start: %s", _describe_failure(failure))
            await replacement.stop()
            self.request_stop()
            return
        self.executors.append(replacement)
        self._background.append(asyncio.create_task(self._watch(replacement)))
        self._claim_wanted = True
        self._work.set()

    # -- messages from executors ----------------------------------------------------
    def _on_started(self, run_id: str, attempt: int, started_at: int) -> None:
        item = self.in_flight.get(run_id)
        if item is None or item.run.attempt != attempt:
            return
        item.started_at = started_at
        self._pending_starts[run_id] = AttemptStart(run_id, attempt, started_at)
        self._work.set()

    def _on_events(self, run_id: str, attempt: int, events: list[list[Any]]) -> None:
        self._pending_events.extend(
            NewEvent(run_id, attempt, ts, kind, orjson.dumps(data)) for ts, kind, data in events
        )
        self._work.set()

    def _on_done(self, run_id: str, attempt: int, result: dict[str, Any]) -> None:
        item = self.in_flight.get(run_id)
        if item is None or item.run.attempt != attempt:
            return
        del self.in_flight[run_id]
        item.executor.in_flight.discard(run_id)
        self._pending_starts.pop(run_id, None)
        started_at = result.get("started_at") or item.started_at
        finished_at = result["finished_at"]
        events = result.get("events")
        if events:
            self._on_events(run_id, attempt, events)
        if result["ok"]:
            outcome = outcomes.success(
                run_id,
                attempt,
                item.worker_id,
                result["output"].encode(),
                started_at=started_at,
                finished_at=finished_at,
            )
        else:
            retry_at = result.get("retry_at")
            outcome = outcomes.failure(
                run_id,
                attempt,
                item.worker_id,
                orjson.dumps(result["error"]),
                retry_at=retry_at,
                final_status=result["status"],
                attempt_status=result["attempt_status"],
                started_at=started_at,
                finished_at=finished_at,
            )
            if retry_at is not None:
                self._wake_at(retry_at)
        self.completed += 1
        self._add_outcome(outcome)

    def _add_outcome(self, outcome: AttemptOutcome) -> None:
        self._pending_outcomes.append(outcome)
        self._work.set()

    def _wake_at(self, when_ms: int) -> None:
        loop = asyncio.get_running_loop()
        delay = max(0.0, (when_ms - self._now()) / 1000)
        loop.call_later(delay, self._want_claim)

    def _want_claim(self) -> None:
        self._claim_wanted = True
        self._work.set()

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
            starts = list(self._pending_starts.values())
            self._pending_starts.clear()
            outcomes_, self._pending_outcomes = self._pending_outcomes, []
            events, self._pending_events = self._pending_events, []
            read_signals = self._signals_wanted
            self._signals_wanted = False
            capacity = self.concurrency - len(self.in_flight)
            if not any(not e.retiring for e in self.executors):
                capacity = 0  # every executor is being replaced: claim after the new one starts
            claim = capacity if self._claim_wanted and not self._draining and capacity > 0 else 0
            if not (starts or outcomes_ or events or claim or read_signals):
                continue
            tick = WorkerTick(
                worker_id=self.worker_id,
                now=self._now(),
                starts=starts,
                outcomes=outcomes_,
                events=events,
                claim_limit=claim,
                read_signals=read_signals,
                environment_limit=self.config.environment_concurrency_limit,
            )
            try:
                began = time.perf_counter()
                result = await self._call(self.store.worker_tick, tick)
                stats = self.stats
                stats["db_seconds"] += time.perf_counter() - began
                stats["ticks"] += 1
                stats["claimed"] += len(result.claimed)
                stats["outcomes"] += len(outcomes_)
                stats["starts"] += len(starts)
            except StoreBusyError as error:
                log.warning("%s; retrying", error)
                self._pending_outcomes[:0] = outcomes_
                self._pending_events[:0] = events
                for start in starts:
                    self._pending_starts.setdefault(start.run_id, start)
                self._signals_wanted = self._signals_wanted or read_signals
                self._work.set()
                continue
            self._last_write = self._last_tick = time.monotonic()
            if claim:
                self._claim_wanted = len(result.claimed) >= claim
            for run in result.claimed:
                self._dispatch(run)
            for sig in result.signals:
                item = self.in_flight.get(sig.run_id)
                if sig.kind == "cancel" and item is not None:
                    item.executor.send(["cancel", sig.run_id, sig.reason])
            if not result.worker_alive:
                await self._lost_lease()

    def _dispatch(self, run: ClaimedRun) -> None:
        executor = min(
            (e for e in self.executors if not e.retiring), key=lambda e: len(e.in_flight)
        )
        item = InFlight(run, self.worker_id, executor)
        self.in_flight[run.id] = item
        executor.in_flight.add(run.id)
        executor.send(
            [
                "start",
                {
                    "id": run.id,
                    "task_id": run.task_id,
                    "queue": run.queue,
                    "attempt": run.attempt,
                    "payload": orjson.Fragment(run.payload),
                    "max_attempts": run.max_attempts,
                    "retry": orjson.Fragment(run.retry),
                    "machine": run.machine,
                    "max_duration": run.max_duration,
                    "tags": orjson.Fragment(run.tags) if run.tags else None,
                    "metadata": orjson.Fragment(run.metadata) if run.metadata else None,
                    "idempotency_key": run.idempotency_key,
                    "parent_run_id": run.parent_run_id,
                    "root_run_id": run.root_run_id,
                    "depth": run.depth,
                    "is_test": run.is_test,
                    "replayed_from": run.replayed_from,
                    "created_at": run.created_at,
                    "concurrency_key": run.concurrency_key,
                    "environment": self.config.environment,
                },
            ]
        )

    async def _lost_lease(self) -> None:
        """Another worker declared this one dead (it was paused past its lease): its runs were
        rescued elsewhere. Abandon them and come back under a new identity."""
        log.error("worker %s lost its lease; its runs were rescued by others", self.worker_id)
        for item in list(self.in_flight.values()):
            item.executor.send(["cancel", item.run.id, "worker lost its lease"])
        self.worker_id = new_id("worker")
        now = self._now()
        info = WorkerInfo(
            id=self.worker_id,
            hostname=socket.gethostname(),
            pid=os.getpid(),
            concurrency=self.concurrency,
            started_at=now,
        )
        await self._call(self.store.worker_register, info, now)

    # -- timers ---------------------------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        interval = self.config.lease_seconds / 3
        while True:
            await asyncio.sleep(interval / 2)
            if time.monotonic() - self._last_write < interval:
                continue
            try:
                alive = await self._call(self.store.worker_heartbeat, self.worker_id, self._now())
            except StoreBusyError as error:
                log.warning("heartbeat failed: %s", error)
                continue
            self._last_write = time.monotonic()
            if not alive:
                await self._lost_lease()

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.poll_interval_seconds)
            self._claim_wanted = True
            self._signals_wanted = True
            self._work.set()

    async def _maintenance_loop(self) -> None:
        poll = self.config.poll_interval_seconds
        while True:
            delay = poll
            try:
                delay = await self._call(self._maintain_once)
            except StoreBusyError as error:
                log.warning("maintenance skipped: %s", error)
            except Exception:
                log.exception("maintenance failed")
            self._maintenance_wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._maintenance_wake.wait(), max(0.0, min(delay, poll)))

    def _maintain_once(self) -> float:
        """On the DB thread: if this worker leads, promote, expire and rescue. Returns the
        seconds until it is next needed."""
        now = self._now()
        poll = self.config.poll_interval_seconds
        if not self.store.leader_elect(MAINTENANCE_LEADER, self.worker_id, now, self.lease_ms):
            return poll
        moved = self.promoter.run_once(now)
        self.expirer.run_once(now)
        rescued = self.rescuer.run_once(now)
        if moved or rescued:
            self.engine.notifier.notify(RUNS_READY)
        due = self.store.run_next_due(now)
        if due is None:
            return poll
        return max(0.0, (due - self._now()) / 1000)

    # -- wake-ups -------------------------------------------------------------------
    def _listen_for_wakes(self) -> None:
        self._listener = WakeListener(wake_directory(self.store.url), self.worker_id)
        asyncio.get_running_loop().add_reader(self._listener.socket.fileno(), self._on_wake)

    def _on_wake(self) -> None:
        assert self._listener is not None
        messages = self._listener.drain()
        if RUNS_READY in messages:
            self._claim_wanted = True
        if SIGNAL in messages:
            self._signals_wanted = True
        if DELAYED in messages:
            self._maintenance_wake.set()
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


def run_worker(engine: Engine, **options: Any) -> int:
    """Run a worker in this process until SIGTERM/SIGINT; return its exit code."""
    supervisor = Supervisor(engine, **options)
    try:
        return asyncio.run(supervisor.run())
    except WorkerStartError as error:
        print(f"taskloom worker: {error}", file=sys.stderr)
        return 1
