"""In-flight attempts: handing claimed runs to executors, and what executors report back.

Crash containment lives here. When an executor dies, or is killed, only the attempt that
caused it is charged:
- a cancelled or timed-out sync attempt asks to be stopped: its executor is killed, the
  attempt is recorded CANCELED or TIMED_OUT, and the executor's other attempts go back
  to their queues without using an attempt;
- an executor over its machine's memory, or one that dies on its own (segfault,
  `os._exit`), charges its attempt when it held one; when it held several, nobody knows
  which one was at fault, so all go back to their queues uncharged and marked `isolate`:
  each then runs alone in an isolation executor, where a second crash is charged to it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Protocol

import msgspec
import orjson

from ..config import Config
from ..engine import outcomes
from ..engine.records import AttemptOutcome, ClaimedRun, NewEvent, RecordedWait
from ..runtime.report import AttemptError, AttemptResult, Event
from .ipc import FROM_EXECUTOR, read_frame
from .messages import (
    AbandonAttempt,
    AttemptDone,
    AttemptEvents,
    AttemptStarted,
    CancelAttempt,
    KillRequest,
    ResumeAttempt,
    StartAttempt,
    Waiting,
)
from .pools import ExecutorPools
from .process import ExecutorProcess, describe_exit

log = logging.getLogger("taskloom.internal.worker")

DEADLINE_GRACE_SECONDS = 2.0
"""The supervisor's backstop for max_duration: it stops the executor this long after the
deadline when the executor could not (async code that never yields blocks its loop)."""

_NO_ERROR = AttemptError(
    "TaskloomError", "the attempt failed without reporting an error", code="TASK_EXECUTOR_ERROR"
)
"""Stands in for the error of a failed result that has none (executors always send one)."""


class DispatchHost(Protocol):
    """What the dispatcher needs from its supervisor."""

    worker_id: str

    def now(self) -> int: ...
    def add_outcome(self, outcome: AttemptOutcome) -> None: ...
    def add_start(self, run_id: str, attempt: int, started_at: int) -> None: ...
    def drop_start(self, run_id: str) -> None: ...
    def add_events(self, events: list[NewEvent]) -> None: ...
    def release(self, held: list[InFlight], *, isolate: bool) -> None: ...
    def want_claim(self) -> None: ...
    def wake_at(self, when_ms: int) -> None: ...
    def add_suspend(self, run_id: str, attempt: int) -> None: ...
    async def load_waits(self, run_id: str, attempt: int) -> list[RecordedWait]: ...
    def unpark(self, run_ids: list[str]) -> None: ...


@dataclass(slots=True)
class InFlight:
    """A claimed run this worker is executing."""

    run: ClaimedRun
    worker_id: str
    executor: ExecutorProcess | None = None
    started_at: int | None = None
    deadline: asyncio.TimerHandle | None = None


class Dispatcher:
    """Tracks in-flight attempts and talks to the executors running them."""

    def __init__(self, host: DispatchHost, config: Config, pools: ExecutorPools) -> None:
        self.host = host
        self.config = config
        self.pools = pools
        self.in_flight: dict[str, InFlight] = {}
        self.parked: dict[str, InFlight] = {}  # WAITING runs whose coroutines we hold
        self._waiting: list[InFlight] = []  # claimed, for an executor still starting
        self.completed = 0

    # -- dispatch -------------------------------------------------------------------
    def dispatch(self, run: ClaimedRun) -> None:
        """Send a claimed run to an executor of its machine (starting one if needed); a run
        whose wait completed continues where its coroutine is parked."""
        parked = self.parked.pop(run.id, None)
        if parked is not None and run.suspended and parked.executor is not None:
            holder = parked.executor
            holder.parked.discard(run.id)
            if parked.run.attempt == run.attempt and not holder.retiring:
                self._resume(InFlight(run, self.host.worker_id, holder, parked.started_at))
                return
        item = InFlight(run, self.host.worker_id)
        self.in_flight[run.id] = item
        if run.suspended and run.resume_worker == self.host.worker_id:
            # Claimed to resume here, but its coroutine is gone (its executor died or is
            # retiring): it replays, and a replay needs every recorded wait, not only the
            # results delivered with this claim.
            asyncio.get_running_loop().create_task(self._replay(item))
            return
        executor = self.pools.pick(run.machine, run.isolate)
        if executor is None:
            self._waiting.append(item)
            self.pools.ensure((run.machine, run.isolate))
            return
        self._send_start(item, executor)

    async def _replay(self, item: InFlight) -> None:
        recorded = await self.host.load_waits(item.run.id, item.run.attempt)
        if self.in_flight.get(item.run.id) is not item:
            return  # cancelled or released meanwhile
        item.run = msgspec.structs.replace(item.run, waits=tuple(recorded), resume_worker=None)
        executor = self.pools.pick(item.run.machine, item.run.isolate)
        if executor is None:
            self._waiting.append(item)
            self.pools.ensure((item.run.machine, item.run.isolate))
            return
        self._send_start(item, executor)

    def executor_ready(self, executor: ExecutorProcess) -> None:
        """A new executor can take the runs that waited for it."""
        waiting, self._waiting = self._waiting, []
        for item in waiting:
            if item.run.id not in self.in_flight:
                continue
            target = self.pools.pick(item.run.machine, item.run.isolate)
            if target is None:
                self._waiting.append(item)
                self.pools.ensure((item.run.machine, item.run.isolate))
            else:
                self._send_start(item, target)

    def _resume(self, item: InFlight, results: list[RecordedWait] | None = None) -> None:
        run = item.run
        assert item.executor is not None
        self.in_flight[run.id] = item
        item.executor.in_flight.add(run.id)
        delivered = run.waits if results is None else tuple(results)
        item.executor.send(ResumeAttempt(run.id, run.attempt, delivered))
        self.host.add_start(run.id, run.attempt, self.host.now())
        self._arm_deadline(item)

    def on_suspended(self, run_ids: list[str]) -> None:
        """These runs are WAITING now: they hold no slot; their coroutines stay parked."""
        for run_id in run_ids:
            item = self.in_flight.pop(run_id, None)
            if item is None or item.executor is None:
                continue
            item.executor.in_flight.discard(run_id)
            item.executor.parked.add(run_id)
            if item.deadline is not None:
                item.deadline.cancel()
                item.deadline = None
            self.parked[run_id] = item

    def on_ready(self, ready: dict[str, list[RecordedWait]]) -> None:
        """Runs that asked to wait, but whose waits had completed: deliver the results."""
        for run_id, results in ready.items():
            item = self.in_flight.get(run_id)
            if item is not None and item.executor is not None and results:
                item.executor.send(ResumeAttempt(run_id, item.run.attempt, tuple(results)))

    def executor_failed(self, machine: str, isolated: bool) -> None:
        """No executor could start for these runs: they go back to their queues uncharged."""
        stuck = [
            item
            for item in self._waiting
            if item.run.machine == machine and item.run.isolate == isolated
        ]
        if not stuck:
            return
        self._waiting = [item for item in self._waiting if item not in stuck]
        for item in stuck:
            self._forget(item)
        self.host.release(stuck, isolate=isolated)

    def _send_start(self, item: InFlight, executor: ExecutorProcess) -> None:
        run = item.run
        item.executor = executor
        executor.in_flight.add(run.id)
        executor.send(StartAttempt(run, self.config.environment))
        # Armed at dispatch: an attempt that blocks its executor's loop from its first step
        # never gets to report that it started.
        self._arm_deadline(item)
        if run.suspended:  # a replay: its recorded waits are in the start message
            self.host.add_start(run.id, run.attempt, self.host.now())

    # -- messages from executors ----------------------------------------------------
    async def watch(self, executor: ExecutorProcess) -> int:
        """Read an executor's messages until it exits; return its exit code."""
        while True:
            messages = await read_frame(executor.reader, FROM_EXECUTOR)
            if messages is None:
                break
            for message in messages:
                match message:
                    case AttemptDone():
                        self.on_done(message.run_id, message.attempt, message.result)
                    case AttemptStarted():
                        self.on_started(message.run_id, message.attempt, message.started_at)
                    case AttemptEvents():
                        self.on_events(message.run_id, message.attempt, message.events)
                    case Waiting():
                        if self._held(message.run_id, message.attempt) is not None:
                            self.host.add_suspend(message.run_id, message.attempt)
                    case KillRequest():
                        self.on_kill_request(
                            executor,
                            message.run_id,
                            message.attempt,
                            message.reason,
                            message.status,
                        )
        return await executor.process.wait()

    def _held(self, run_id: str, attempt: int) -> InFlight | None:
        item = self.in_flight.get(run_id)
        return item if item is not None and item.run.attempt == attempt else None

    def _forget(self, item: InFlight) -> None:
        self.in_flight.pop(item.run.id, None)
        if item.executor is not None:
            item.executor.in_flight.discard(item.run.id)
        if item.deadline is not None:
            item.deadline.cancel()
        self.host.drop_start(item.run.id)

    def on_started(self, run_id: str, attempt: int, started_at: int) -> None:
        item = self._held(run_id, attempt)
        if item is None:
            return
        item.started_at = started_at
        self.host.add_start(run_id, attempt, started_at)
        self._arm_deadline(item)

    def _arm_deadline(self, item: InFlight) -> None:
        if item.run.max_duration and item.deadline is None:
            delay = item.run.max_duration + DEADLINE_GRACE_SECONDS
            item.deadline = asyncio.get_running_loop().call_later(
                delay, self._deadline_passed, item.run.id, item.run.attempt
            )

    def on_events(self, run_id: str, attempt: int, events: list[Event]) -> None:
        """An attempt's events, to be written with the next tick."""
        self.host.add_events(
            [NewEvent(run_id, attempt, e.ts, e.kind, orjson.dumps(e.data)) for e in events]
        )

    def on_done(self, run_id: str, attempt: int, result: AttemptResult) -> None:
        """An attempt ended: its outcome is written with the next tick."""
        item = self._held(run_id, attempt)
        if item is None:
            parked = self.parked.get(run_id)  # cancelled while it waited
            if parked is None or parked.run.attempt != attempt:
                return
            del self.parked[run_id]
            if parked.executor is not None:
                parked.executor.parked.discard(run_id)
            item = parked
        self._forget(item)
        started_at = result.started_at or item.started_at
        if result.events:
            self.on_events(run_id, attempt, result.events)
        if result.ok:
            outcome = outcomes.success(
                run_id,
                attempt,
                item.worker_id,
                bytes(result.output),
                started_at=started_at,
                finished_at=result.finished_at,
            )
        else:
            retry_at = result.retry_at
            error = result.error or _NO_ERROR
            outcome = outcomes.failure(
                run_id,
                attempt,
                item.worker_id,
                outcomes.error_json(error.type, error.message, error.stack, error.code),
                retry_at=retry_at,
                final_status=result.status,
                attempt_status=result.attempt_status,
                started_at=started_at,
                finished_at=result.finished_at,
                machine=result.machine,
            )
            if retry_at is not None:
                self.host.wake_at(retry_at)
        self.completed += 1
        self.host.add_outcome(outcome)

    # -- stopping executors ---------------------------------------------------------
    def on_kill_request(
        self, executor: ExecutorProcess, run_id: str, attempt: int, reason: str, status: str
    ) -> None:
        """A cancelled or timed-out sync attempt cannot be interrupted in its thread."""
        item = self._held(run_id, attempt)
        if item is not None and item.executor is executor:
            self._forget(item)
            self.host.add_outcome(_stopped(item, reason, status, self.host.now()))
        self._retire(executor, isolate=False)

    def _deadline_passed(self, run_id: str, attempt: int) -> None:
        item = self._held(run_id, attempt)
        if item is None or item.executor is None:
            return
        executor = item.executor
        self._forget(item)
        reason = (
            f"max_duration of {item.run.max_duration} s exceeded and the attempt did not stop "
            "(code that never yields blocks its executor)"
        )
        self.host.add_outcome(_stopped(item, reason, "TIMED_OUT", self.host.now()))
        self._retire(executor, isolate=False)

    def _retire(self, executor: ExecutorProcess, *, isolate: bool) -> None:
        """Kill an executor; its remaining attempts go back to their queues uncharged."""
        others = [self.in_flight[r] for r in list(executor.in_flight) if r in self.in_flight]
        for other in others:
            self._forget(other)
        executor.in_flight.clear()
        executor.retiring = True
        if others:
            self.host.release(others, isolate=isolate)
        executor.kill()

    def on_memory_exceeded(self, executor: ExecutorProcess, used: int, limit: int) -> None:
        """The watchdog killed an executor over its machine's memory."""
        executor.over_memory = True
        log.error(
            "executor %d (machine %s) used %.0f MB, over its %.0f MB: stopped",
            executor.pid,
            executor.machine,
            used / 2**20,
            limit / 2**20,
        )
        held = [self.in_flight[r] for r in list(executor.in_flight) if r in self.in_flight]
        for item in held:
            self._forget(item)
        executor.in_flight.clear()
        if len(held) == 1:
            item = held[0]
            self.host.add_outcome(
                outcomes.out_of_memory(
                    item.run.id,
                    item.run.attempt,
                    item.worker_id,
                    machine=item.run.machine,
                    max_attempts=item.run.max_attempts,
                    retry=item.run.retry,
                    reason=(
                        f"the attempt used {used / 2**20:.0f} MB, over the {limit / 2**20:.0f} MB "
                        f"of machine {item.run.machine}"
                    ),
                    now=self.host.now(),
                    started_at=item.started_at,
                )
            )
        elif held:
            self.host.release(held, isolate=True)

    def on_exit(self, executor: ExecutorProcess, code: int, *, stopping: bool) -> None:
        """An executor process ended. Account for what it still held: its attempts (see the
        module docstring) and the coroutines of waiting runs, which now continue by replay."""
        lost = [run_id for run_id in executor.parked if self.parked.pop(run_id, None)]
        executor.parked.clear()
        if lost and not stopping:
            self.host.unpark(lost)
        held = [self.in_flight[r] for r in list(executor.in_flight) if r in self.in_flight]
        for item in held:
            self._forget(item)
        executor.in_flight.clear()
        if held:
            reason = f"the executor process (pid {executor.pid}) {describe_exit(code)}"
            log.error("%s while running %d attempt(s)", reason, len(held))
            if len(held) == 1:
                item = held[0]
                crashed = outcomes.crash(
                    item.run.id,
                    item.run.attempt,
                    item.worker_id,
                    max_attempts=item.run.max_attempts,
                    retry=item.run.retry,
                    reason=f"{reason} during attempt {item.run.attempt}",
                    code="TASK_PROCESS_EXITED",
                    now=self.host.now(),
                    started_at=item.started_at,
                )
                self.host.add_outcome(crashed)
                if crashed.retry_at is not None:
                    self.host.wake_at(crashed.retry_at)
            else:
                self.host.release(held, isolate=True)
        if not stopping:
            self.pools.replace(executor)
            self.host.want_claim()

    # -- cancellation and shutdown --------------------------------------------------
    def cancel(self, run_id: str, reason: str) -> None:
        """A cancel signal for a run this worker holds (or holds parked while it waits)."""
        item = self.in_flight.get(run_id)
        if item is None:
            parked = self.parked.get(run_id)
            if parked is not None and parked.executor is not None:
                parked.executor.send(CancelAttempt(run_id, reason))
            return
        if item.executor is None:  # never sent to an executor: nothing ran
            self._forget(item)
            self._waiting = [w for w in self._waiting if w is not item]
            self.host.add_outcome(_stopped(item, reason, "CANCELED", self.host.now()))
            return
        item.executor.send(CancelAttempt(run_id, reason))

    def take_all(self, reason: str) -> list[InFlight]:
        """Stop tracking every attempt (they are being released) and every parked waiting
        run (they continue by replay); executors drop them without running any hook (the
        runs are not cancelled: they continue elsewhere)."""
        held = list(self.in_flight.values())
        for item in held:
            if item.executor is not None:
                item.executor.send(AbandonAttempt(item.run.id, reason))
            self._forget(item)
        for run_id, item in list(self.parked.items()):
            if item.executor is not None:
                item.executor.send(AbandonAttempt(run_id, reason))
                item.executor.parked.discard(run_id)
        self.parked.clear()
        self._waiting.clear()
        return held


def _stopped(item: InFlight, reason: str, status: str, now: int) -> AttemptOutcome:
    code = "MAX_DURATION_EXCEEDED" if status == "TIMED_OUT" else "TASK_RUN_CANCELLED"
    error_type = "MaxDurationExceededError" if status == "TIMED_OUT" else "TaskRunCancelledError"
    return outcomes.failure(
        item.run.id,
        item.run.attempt,
        item.worker_id,
        outcomes.error_json(error_type, reason, code=code),
        retry_at=None,
        final_status=status,
        attempt_status=status,
        started_at=item.started_at,
        finished_at=now,
    )
