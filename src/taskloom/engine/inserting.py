"""Inserting runs: one, a child of a running run (recorded for replay), or a batch.

Each runs inside the caller's write transaction. An idempotency key resolves to the live
run holding it (a key past its expiry is cleared and a new run created).
"""

from __future__ import annotations

from ..store.records import InsertResult, NewRun, RecordedWait, WaitRef
from ..store.sql.session import Session
from . import waitpoints


def insert_run(session: Session, run: NewRun, now: int) -> InsertResult:
    """Insert a run, or resolve its idempotency key to the live run holding it."""
    key = run.idempotency_key
    if key is not None:
        found = session.run_idempotent_find(run.task_id, key)
        if found is not None:
            expires_at = found.idempotency_expires_at
            if expires_at is None or expires_at > now:
                return InsertResult(found.id, False)
            session.run_idempotency_clear(found.id)
    session.run_insert(run, now)
    return InsertResult(run.id, True)


def trigger_child(
    session: Session, child: NewRun, ref: WaitRef | None, *, wait: bool, now: int
) -> tuple[InsertResult, RecordedWait | None]:
    """Trigger a child run from inside a run, recorded at `ref` (a replay finds the same
    child); with `wait`, the parent's wait on it."""
    if ref is not None:
        existing = session.run_wait_get(ref)
        if existing is not None:
            child_id = waitpoints.recorded_target(session, existing, "id")
            return InsertResult(child_id, False), existing
    result = insert_run(session, child, now)
    if wait:
        assert ref is not None
        return result, waitpoints.wait_for_run(session, ref, result.run_id, now)
    if ref is None:
        return result, None
    return result, waitpoints.record_trigger(session, ref, {"id": result.run_id}, now)


def insert_batch(
    session: Session,
    batch_id: str,
    parent_run_id: str | None,
    runs: list[NewRun],
    ref: WaitRef | None,
    *,
    wait: bool,
    now: int,
) -> tuple[list[InsertResult], RecordedWait | None]:
    """Insert a batch of runs (all or none: the caller's transaction), optionally waited
    on; recorded at `ref` so a replay finds the same batch."""
    if ref is not None:
        existing = session.run_wait_get(ref)
        if existing is not None:
            found = waitpoints.recorded_target(session, existing, "batch_id")
            return [InsertResult(i, False) for i in session.batch_item_ids(found)], existing
    if all(run.idempotency_key is None for run in runs):
        session.runs_insert(runs, now)
        results = [InsertResult(run.id, True) for run in runs]
    else:
        results = [insert_run(session, run, now) for run in runs]
    ids = [r.run_id for r in results]
    recorded = waitpoints.create_batch(
        session, batch_id, parent_run_id, ids, ref, wait=wait, now=now
    )
    return results, recorded
