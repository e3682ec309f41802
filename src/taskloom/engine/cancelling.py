"""Cancelling a run: the run, then every live descendant, in one transaction.

A queued or delayed run is CANCELED at once. A run held by a worker (or parked on one
while it waits) is CANCELED too, and a cancel signal is left for that worker, which stops
the attempt and records it. The waits on a cancelled run complete (its parent, if it
waits, gets a failed result). Errors are shaped here, as pure functions.
"""

from __future__ import annotations

import orjson

from ..store.records import NewSignal, RunCancel
from ..store.sql.session import Session
from ..types import RunStatus
from . import waitpoints
from .events import Journal
from .waitpoints import FINAL, HELD

ERROR_TYPE = "TaskRunCancelledError"


def cancellation_error(reason: str) -> bytes:
    """The error a cancelled run records."""
    return orjson.dumps({"type": ERROR_TYPE, "message": reason})


def parent_cancelled_error(parent_id: str) -> bytes:
    """The error a run records when it is cancelled because its parent was."""
    return cancellation_error(f"its parent run {parent_id} was cancelled")


def cancel_run(session: Session, run_id: str, reason: str, journal: Journal) -> str | None:
    """Cancel a run that is not final, and its live descendants; return the status it had
    (None when it does not exist; its final status when it was final already)."""
    return _cancel(session, run_id, reason, cancellation_error(reason), journal)


def _cancel(
    session: Session, run_id: str, reason: str, error: bytes, journal: Journal
) -> str | None:
    guard = session.run_guard(run_id)
    if guard is None:
        return None
    if guard.status in FINAL:
        return guard.status
    now = journal.now
    # The worker running it, or holding its coroutine while it waits.
    holder = guard.worker_id if guard.status in HELD else guard.resume_worker
    if holder is not None:
        session.signal_insert(NewSignal(holder, run_id, "cancel", reason, now))
    if session.run_cancel(RunCancel(run_id, guard.status, error, now)):
        journal.status(run_id, guard.attempt, guard.status, RunStatus.CANCELED.value)
    child_error = parent_cancelled_error(run_id)
    for child in session.runs_live_children(run_id):
        _cancel(session, child, reason, child_error, journal)
    waitpoints.runs_finished(session, [run_id], now, journal)
    return guard.status
