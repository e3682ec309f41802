"""Waitpoints: what a wait records, and what completing a waitpoint does to the runs on it;
and `Waits`, the engine's surface for them (`engine.waits`: a run's waits, tokens).

All functions run inside the caller's write transaction (a `Session`). When a waitpoint
completes, every wait on it records the result, and each run WAITING on one of them goes
back to its queue (at its original queue timestamp, with `suspended` still set, so it
continues its attempt: on its own worker when that one still holds it, else by replay).
When a run ends, the RUN waitpoints on it and the BATCH waitpoints of its batches complete.

The shapes of results are pure functions here: what a duration, a token or a child run
gives the run that waited.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import orjson

from ..errors import InvalidOptionError, RunNotFoundError
from ..ids import new_id
from ..store.records import (
    FinishedRun,
    NewBatch,
    NewRunWait,
    NewWaitpoint,
    RecordedWait,
    Suspension,
    WaitpointCompletion,
    WaitpointRecord,
    WaitpointsDone,
    WaitRef,
)
from ..store.sql.session import Session
from ..types import FINAL_STATUSES, RunStatus
from .events import Journal, journaled
from .wake import DELAYED, RUNS_READY

if TYPE_CHECKING:
    from .engine import Engine

FINAL = frozenset(status.value for status in FINAL_STATUSES)
HELD = frozenset({RunStatus.DEQUEUED.value, RunStatus.EXECUTING.value})
DURATION_DONE = b'{"ok":true}'


# -- results (pure) ----------------------------------------------------------------------
def waitpoint_result(waitpoint: WaitpointRecord) -> bytes:
    """What a wait on an already completed waitpoint returns."""
    if waitpoint.kind == "DURATION":
        return DURATION_DONE
    if waitpoint.status == "TIMED_OUT":
        return waitpoint.output or b'{"ok":false}'
    return waitpoint.output or b"null"


def token_timeout(waitpoint_id: str) -> bytes:
    """What a wait on a token gets when its timeout passes."""
    return orjson.dumps(
        {
            "ok": False,
            "error": {
                "type": "WaitpointTimeoutError",
                "message": f"waitpoint {waitpoint_id} timed out before it was completed",
            },
        }
    )


def token_output(output: bytes) -> bytes:
    """What a wait on a completed token gets."""
    return b'{"ok":true,"output":' + output + b"}"


def run_result(run: FinishedRun) -> dict[str, Any]:
    """A child run's result as a wait returns it: ok, id, task_id, output or error."""
    if run.status == RunStatus.COMPLETED.value:
        return {
            "ok": True,
            "id": run.id,
            "task_id": run.task_id,
            "output": orjson.Fragment(run.output or b"null"),
        }
    stored = orjson.loads(run.error) if run.error else {"type": "Error", "message": run.status}
    stored["status"] = run.status
    return {"ok": False, "id": run.id, "task_id": run.task_id, "error": stored}


# -- creating waitpoints and recording waits ---------------------------------------------
def create_waitpoint(session: Session, waitpoint: NewWaitpoint, now: int) -> str:
    """Create a waitpoint, or return the live one holding its idempotency key."""
    key = waitpoint.idempotency_key
    if key is not None:
        found = session.waitpoint_by_key(key)
        if found is not None:
            found_id, expires_at = found
            if expires_at is None or expires_at > now:
                return found_id
            session.waitpoint_key_clear(found_id)
    session.waitpoint_insert(waitpoint, now)
    return waitpoint.id


def record_wait(
    session: Session,
    ref: WaitRef,
    kind: str,
    waitpoint_id: str | None,
    now: int,
    *,
    result: bytes | None = None,
) -> RecordedWait:
    """Record a wait at its sequence number: completed at once when its waitpoint is done
    (or when `result` is given: a step that needs no waiting)."""
    status = "PENDING" if result is None else "COMPLETED"
    if result is None and waitpoint_id is not None:
        found = session.waitpoint_get(waitpoint_id)
        if found is not None and found.status != "WAITING":
            status, result = "COMPLETED", waitpoint_result(found)
    session.run_wait_insert(NewRunWait(ref, kind, waitpoint_id, status, result, now))
    return RecordedWait(ref.seq, kind, waitpoint_id, status, result)


def register_wait(
    session: Session,
    ref: WaitRef,
    kind: str,
    waitpoint: NewWaitpoint | None,
    waitpoint_id: str | None,
    now: int,
    *,
    result: bytes | None = None,
) -> RecordedWait:
    """A run's wait at its sequence number, creating `waitpoint` if given, or on an
    existing `waitpoint_id` (a token); with `result`, a step done at once. What was
    recorded before at that number wins (a replay, or a re-attach)."""
    existing = session.run_wait_get(ref)
    if existing is not None:
        return existing
    target = waitpoint_id
    if waitpoint is not None:
        target = create_waitpoint(session, waitpoint, now)
    return record_wait(session, ref, kind, target, now, result=result)


def record_trigger(
    session: Session, ref: WaitRef, result: dict[str, Any], now: int
) -> RecordedWait:
    """Record that a run triggered children at this sequence number (replays reuse them)."""
    return record_wait(session, ref, "trigger", None, now, result=orjson.dumps(result))


def wait_for_run(session: Session, ref: WaitRef, run_id: str, now: int) -> RecordedWait:
    """A RUN waitpoint on a child run and the parent's wait on it (complete at once when
    the child is final already, as for an idempotency key that found a finished run)."""
    session.run_mark_waited(run_id)
    waitpoint_id = new_id("waitpoint")
    create_waitpoint(session, NewWaitpoint(waitpoint_id, "RUN", target_id=run_id), now)
    child = session.run_finished_get(run_id)
    if child is not None and child.status in FINAL:
        result = orjson.dumps(run_result(child))
        complete(session, [WaitpointCompletion(waitpoint_id, "COMPLETED", result, False)], now)
    return record_wait(session, ref, "task", waitpoint_id, now)


def create_batch(
    session: Session,
    batch_id: str,
    parent_run_id: str | None,
    run_ids: list[str],
    ref: WaitRef | None,
    *,
    wait: bool,
    now: int,
) -> RecordedWait | None:
    """Record a batch's items; with `wait`, a BATCH waitpoint and the parent's wait on it."""
    distinct = list(dict.fromkeys(run_ids))
    final = 0
    for run_id in distinct:
        found = session.run_finished_get(run_id)
        if found is not None and found.status in FINAL:
            final += 1
        elif wait:
            session.run_mark_waited(run_id)
    session.batch_insert(NewBatch(batch_id, parent_run_id, run_ids, final, now))
    if not wait:
        if ref is None:
            return None
        return record_trigger(session, ref, {"batch_id": batch_id, "runs": run_ids}, now)
    assert ref is not None
    waitpoint_id = new_id("waitpoint")
    create_waitpoint(session, NewWaitpoint(waitpoint_id, "BATCH", target_id=batch_id), now)
    if final == len(distinct):
        complete(session, batch_completions(session, batch_id), now)
    return record_wait(session, ref, "batch", waitpoint_id, now)


def recorded_target(session: Session, recorded: RecordedWait, key: str) -> str:
    """The child run (`key` "id") or batch (`key` "batch_id") a recorded trigger or wait
    refers to (a replay finds the same one)."""
    if recorded.kind == "trigger":
        return str(orjson.loads(recorded.result or b"{}")[key])
    found = session.waitpoint_get(recorded.waitpoint_id or "")
    return "" if found is None else str(found.target_id)


# -- completing waitpoints ----------------------------------------------------------------
def complete(
    session: Session,
    completions: Iterable[WaitpointCompletion],
    now: int,
    journal: Journal | None = None,
) -> list[str]:
    """Complete waitpoints (the first completion of each wins); return the runs put back
    in their queues. Waitpoints that end the same way are completed together."""
    own = journal if journal is not None else Journal(now)
    alike: dict[tuple[str, bytes, bool], list[str]] = {}
    for completion in completions:
        key = (completion.status, completion.result, completion.is_error)
        alike.setdefault(key, []).append(completion.id)
    waiting: list[str] = []
    for (status, result, is_error), ids in alike.items():
        done = session.waitpoints_complete(WaitpointsDone(ids, status, result, is_error, now))
        if done:
            waiting += session.run_waits_complete(
                WaitpointsDone(done, status, result, is_error, now)
            )
    requeued = session.runs_requeue_waiting(list(dict.fromkeys(waiting)), now) if waiting else []
    for run_id, attempt in requeued:
        own.status(run_id, attempt, RunStatus.WAITING.value, RunStatus.QUEUED.value)
    if journal is None:
        own.write(session)
    return [run_id for run_id, _ in requeued]


def complete_due(session: Session, now: int, limit: int, journal: Journal) -> list[str]:
    """Complete duration waits whose time came and time out tokens; return requeued runs."""
    completions = [
        WaitpointCompletion(due.id, "COMPLETED", DURATION_DONE, False)
        if due.kind == "DURATION"
        else WaitpointCompletion(due.id, "TIMED_OUT", token_timeout(due.id), True)
        for due in session.waitpoints_due(now, limit)
    ]
    return complete(session, completions, now, journal)


def complete_token(
    session: Session, waitpoint_id: str, output: bytes, now: int, journal: Journal
) -> tuple[bool, list[str]]:
    """Complete a waiting token with `output`; (False, []) when it is done or unknown.
    Returns the runs put back in their queues."""
    found = session.waitpoint_get(waitpoint_id)
    if found is None or found.kind != "TOKEN" or found.status != "WAITING":
        return False, []
    completion = WaitpointCompletion(waitpoint_id, "COMPLETED", token_output(output), False)
    return True, complete(session, [completion], now, journal)


def runs_finished(
    session: Session, run_ids: Iterable[str], now: int, journal: Journal | None = None
) -> list[str]:
    """Runs reached a final status: complete the waits on them and on their batches.
    Returns the runs put back in their queues."""
    completions: list[WaitpointCompletion] = []
    for run_id in run_ids:
        found = session.run_finished_get(run_id)
        if found is None or found.status not in FINAL or not found.waited:
            continue  # not final, or nobody waits for this run
        result = orjson.dumps(run_result(found))
        for waitpoint_id in session.waitpoints_open_for("RUN", run_id):
            completions.append(WaitpointCompletion(waitpoint_id, "COMPLETED", result, False))
        for batch_id in session.batches_of(run_id):
            counts = session.batch_count_final(batch_id)
            if counts is not None and counts.completed_count >= counts.run_count:
                completions.extend(batch_completions(session, batch_id))
    return complete(session, completions, now, journal) if completions else []


def batch_completions(session: Session, batch_id: str) -> list[WaitpointCompletion]:
    """Completions for the waitpoints on a batch whose items are all final."""
    results = [run_result(run) for run in session.batch_results(batch_id)]
    payload = orjson.dumps({"id": batch_id, "runs": results})
    return [
        WaitpointCompletion(waitpoint_id, "COMPLETED", payload, False)
        for waitpoint_id in session.waitpoints_open_for("BATCH", batch_id)
    ]


# -- suspending and resuming ---------------------------------------------------------------
def suspend(
    session: Session, item: Suspension, now: int, journal: Journal
) -> list[RecordedWait] | None:
    """Make a run WAITING, unless some of its waits already completed: then return those
    (marked delivered) and leave the run running. None means it now waits.

    Only a run this worker is running: a late request (parallel waits send one per wait)
    for a run that waits already, or is back in its queue, hands nothing over (the claim
    that resumes it does), so no result is marked delivered to a parked coroutine."""
    guard = session.run_guard(item.run_id)
    if (
        guard is None
        or guard.status not in HELD
        or guard.attempt != item.attempt
        or guard.worker_id != item.worker_id
    ):
        return []
    ready = session.run_waits_take_undelivered(item.run_id, item.attempt)
    if ready:
        return ready
    if not session.run_waits_pending(item.run_id, item.attempt):
        return []  # nothing to wait for (the waits were delivered already)
    if session.run_suspend(item, now):
        journal.status(item.run_id, item.attempt, guard.status, RunStatus.WAITING.value)
    return None


# -- the engine's surface --------------------------------------------------------------------
class Waits:
    """Waits of runs, and waitpoint tokens."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._store = engine.store

    def register(
        self,
        ref: WaitRef,
        kind: str,
        *,
        waitpoint: NewWaitpoint | None = None,
        waitpoint_id: str | None = None,
        result: bytes | None = None,
    ) -> RecordedWait:
        """Record a wait of a run (creating its waitpoint), or with `result` a step that is
        done at once; wake the services for timers."""
        now = self._engine.clock.now_ms()
        recorded = self._engine.write(
            lambda s: register_wait(s, ref, kind, waitpoint, waitpoint_id, now, result=result),
            "wait",
        )
        if waitpoint is not None and waitpoint.resume_at is not None:
            self._engine.notifier.notify(DELAYED)
        return recorded

    def create_token(self, waitpoint: NewWaitpoint) -> WaitpointRecord:
        """A token waitpoint (or the one holding its idempotency key)."""
        self._engine.ensure_schema()
        now = self._engine.clock.now_ms()

        def body(session: Session) -> WaitpointRecord:
            found = session.waitpoint_get(create_waitpoint(session, waitpoint, now))
            assert found is not None
            return found

        record = self._engine.write(body, "waitpoint")
        if waitpoint.resume_at is not None:
            self._engine.notifier.notify(DELAYED)
        return record

    def get(self, waitpoint_id: str) -> WaitpointRecord:
        """A waitpoint by id, or a clear error."""
        self._engine.ensure_schema()
        found = self._store.read(lambda s: s.waitpoint_get(waitpoint_id))
        if found is None:
            raise RunNotFoundError(f"no waitpoint token with id {waitpoint_id!r}")
        return found

    def complete_token(self, waitpoint_id: str, output: bytes) -> bool:
        """Complete a token (the first completion wins); wake the runs waiting for it."""
        found = self.get(waitpoint_id)
        if found.kind != "TOKEN":
            raise InvalidOptionError(
                f"waitpoint {waitpoint_id} is a {found.kind} waitpoint, not a token"
            )

        body = journaled(
            self._engine.clock.now_ms(),
            lambda s, j: complete_token(s, waitpoint_id, output, j.now, j),
        )
        done, requeued = self._engine.write(body, "complete token")
        if requeued:
            self._engine.notifier.notify(RUNS_READY)
        return done
