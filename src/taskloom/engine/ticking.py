"""A worker's tick, and the other writes that end or give back attempts.

A tick is one transaction per round trip of a worker's supervisor: its heartbeat, the
attempts that began (DEQUEUED -> EXECUTING), the outcomes of attempts that ended, the
events its executors reported, the runs that asked to wait, the signals left for it, and
a claim of more runs. Every write to a run a worker holds is fenced by (run, attempt,
worker): a late or duplicate one changes nothing and is reported as rejected. Every
status change is journaled (and checked against the transition table) in the same
transaction.
"""

from __future__ import annotations

import msgspec

from ..store.records import (
    AttemptOutcome,
    AttemptRecord,
    AttemptStart,
    AttemptStarts,
    ClaimedRun,
    ClaimRequest,
    RecordedWait,
    RunFinish,
    RunGuard,
    RunRelease,
    RunSignal,
    TickResult,
    WorkerTick,
)
from ..store.sql.session import Session
from ..types import RunStatus
from . import waitpoints
from .events import Journal
from .waitpoints import FINAL, HELD

QUEUED = RunStatus.QUEUED.value
DEQUEUED = RunStatus.DEQUEUED.value
EXECUTING = RunStatus.EXECUTING.value
CANCELED = RunStatus.CANCELED.value


def worker_tick(session: Session, tick: WorkerTick) -> TickResult:
    """Apply one tick of a worker (see the module docstring)."""
    now, worker_id = tick.now, tick.worker_id
    journal = Journal(now, list(tick.events))
    alive = session.worker_heartbeat(worker_id, now)
    guards: dict[str, RunGuard] = {}
    if tick.starts or tick.outcomes:
        guards = session.run_guards(
            [s.run_id for s in tick.starts] + [o.run_id for o in tick.outcomes]
        )
    if tick.starts:
        _start(session, tick.starts, worker_id, guards, journal)
    applied, rejected = finish(session, tick.outcomes, now, journal, guards)
    ready: dict[str, list[RecordedWait]] = {}
    suspended: list[str] = []
    for item in tick.suspends:
        found = waitpoints.suspend(session, item, now, journal)
        if found is None:
            suspended.append(item.run_id)
        else:
            ready[item.run_id] = found
    signals: list[RunSignal] = session.signals_take(worker_id) if tick.read_signals else []
    claimed: list[ClaimedRun] = []
    if alive and tick.claim_limit > 0:
        request = ClaimRequest(worker_id, now, tick.claim_limit, tick.environment_limit)
        claimed = _with_waits(session, session.runs_claim(request), worker_id)
        for run in claimed:
            journal.status(run.id, run.attempt, QUEUED, DEQUEUED)
    journal.write(session)
    return TickResult(claimed, applied, rejected, signals, alive, ready, suspended)


def _start(
    session: Session,
    starts: list[AttemptStart],
    worker_id: str,
    guards: dict[str, RunGuard],
    journal: Journal,
) -> None:
    """DEQUEUED runs whose attempt began become EXECUTING (only the worker's own)."""
    applied: list[AttemptStart] = []
    for start in starts:
        guard = guards.get(start.run_id)
        if (
            guard is None
            or guard.status != DEQUEUED
            or guard.attempt != start.attempt
            or guard.worker_id != worker_id
        ):
            continue
        applied.append(start)
        guards[start.run_id] = RunGuard(
            guard.id, guard.attempt, guard.worker_id, EXECUTING, guard.waited, guard.resume_worker
        )
        journal.status(start.run_id, start.attempt, DEQUEUED, EXECUTING)
    if applied:
        session.runs_start(AttemptStarts(worker_id, applied, journal.now))


def _with_waits(session: Session, runs: list[ClaimedRun], worker_id: str) -> list[ClaimedRun]:
    """Claimed runs that continue an attempt that waited carry their waits' results: the
    ones completed since (their coroutine is parked on this worker: read for all of them
    at once), or every one (it replays elsewhere)."""
    parked = [
        (run.id, run.attempt) for run in runs if run.suspended and run.resume_worker == worker_id
    ]
    delivered = session.run_waits_take_undelivered_of(parked) if parked else {}
    found: list[ClaimedRun] = []
    for run in runs:
        if not run.suspended:
            found.append(run)
            continue
        if run.resume_worker == worker_id:
            recorded = delivered.get(run.id, [])
        else:
            recorded = session.run_waits_list(run.id, run.attempt)
            session.run_waits_take_undelivered(run.id, run.attempt)
        found.append(msgspec.structs.replace(run, waits=tuple(recorded)))
    return found


def finish(
    session: Session,
    outcomes: list[AttemptOutcome],
    now: int,
    journal: Journal,
    guards: dict[str, RunGuard] | None = None,
) -> tuple[list[str], list[str]]:
    """Apply fenced outcomes; return (applied, rejected) run ids. `guards`: read already
    in this transaction (the tick reads them once for its starts and outcomes)."""
    applied: list[str] = []
    rejected: list[str] = []
    if not outcomes:
        return applied, rejected
    if guards is None:
        guards = session.run_guards([o.run_id for o in outcomes])
    waited: list[str] = []
    finishes: list[RunFinish] = []
    attempts: list[AttemptRecord] = []
    for o in outcomes:
        guard = guards.get(o.run_id)
        if guard is None or guard.attempt != o.attempt or guard.worker_id != o.worker_id:
            rejected.append(o.run_id)
            continue
        del guards[o.run_id]  # decided: another outcome for this run here is stale
        if guard.status in HELD:
            if guard.waited and o.status in FINAL:
                # Someone waits for this run, which ends now. (Not for a run cancelled
                # while held: the cancel already completed those waits and counted it in
                # its batches, and counting it twice would end a batch early.)
                waited.append(o.run_id)
            finishes.append(_finish_of(o, now))
            was = guard.status
            if was == DEQUEUED and o.started_at is not None and not o.released:
                # The attempt ran, but its start was coalesced into this write: the log
                # still shows that it executed.
                journal.status(o.run_id, o.attempt, DEQUEUED, EXECUTING, ts=o.started_at)
                was = EXECUTING
            retry = {"retry_at": o.retry_at} if o.status == QUEUED and o.retry_at else {}
            journal.status(o.run_id, o.attempt, was, o.status, **retry)
        elif guard.status != CANCELED:
            rejected.append(o.run_id)
            continue
        # (A run cancelled while executing is already final: only its attempt is recorded.)
        applied.append(o.run_id)
        if not o.released:
            attempts.append(
                AttemptRecord(
                    o.run_id,
                    o.attempt,
                    o.attempt_status,
                    o.worker_id,
                    o.started_at,
                    o.finished_at,
                    o.error,
                )
            )
    if finishes:
        session.runs_finish(finishes)
    if attempts:
        session.attempts_record(attempts)
    if waited:
        waitpoints.runs_finished(session, waited, now, journal)
    return applied, rejected


def _finish_of(o: AttemptOutcome, now: int) -> RunFinish:
    return RunFinish(
        run_id=o.run_id,
        attempt=o.attempt,
        worker_id=o.worker_id,
        status=o.status,
        output=o.output,
        error=o.error,
        retry_at=o.retry_at,
        finished_at=None if o.status == QUEUED else o.finished_at,
        started_at=o.started_at,
        released=o.released,
        clear_idempotency_key=o.clear_idempotency_key,
        machine=o.machine,
        now=now,
    )


def release(session: Session, release: RunRelease, journal: Journal) -> list[str]:
    """Runs a worker holds go back to their queues without using an attempt."""
    guards = session.run_guards(release.run_ids)
    released = session.runs_release(release)
    for run_id in released:
        journal.status(run_id, guards[run_id].attempt, guards[run_id].status, QUEUED)
    return released
