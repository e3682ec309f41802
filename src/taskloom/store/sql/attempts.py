"""Statements on attempts, run events and run signals.

An attempt row records one execution of a run (its status, worker, timing and error). Run
events are the append-only log of a run (status changes, log lines, spans, hook calls),
read per run and, for realtime subscribers, after an id across all runs. Signals are
requests left for the worker holding a run (cancel).
"""

from __future__ import annotations

from ..records import (
    AttemptRecord,
    EventPage,
    EventRecord,
    LapsedAttempt,
    NewEvent,
    NewSignal,
    RunSignal,
)
from .base import SessionBase
from .rows import RowReader, astuple, columns, field_names

ATTEMPT_COLUMNS = field_names(AttemptRecord)
RECORD_ATTEMPT = f"""
INSERT INTO attempts ({", ".join(ATTEMPT_COLUMNS)})
VALUES ({", ".join("?" * len(ATTEMPT_COLUMNS))})
ON CONFLICT (run_id, number) DO UPDATE SET
    status = excluded.status, worker_id = excluded.worker_id,
    started_at = excluded.started_at, finished_at = excluded.finished_at,
    error = excluded.error
"""
SELECT_ATTEMPTS = (
    f"SELECT {columns(AttemptRecord)} FROM attempts WHERE run_id = :id ORDER BY number"
)
SELECT_LAPSED = """
SELECT r.id AS run_id, r.attempt, r.worker_id, r.task_id, r.max_attempts, r.retry, r.started_at
FROM runs AS r LEFT JOIN workers AS w ON w.id = r.worker_id
WHERE r.status IN ('DEQUEUED', 'EXECUTING')
  AND (w.id IS NULL OR w.status != 'RUNNING' OR w.heartbeat_at < :before)
LIMIT :limit
"""

INSERT_EVENT = f"""
INSERT INTO run_events ({", ".join(field_names(NewEvent))})
VALUES ({", ".join("?" * len(field_names(NewEvent)))})
"""
SELECT_EVENTS = f"""
SELECT {columns(EventRecord)} FROM run_events
WHERE run_id = :run_id AND id > :after ORDER BY id LIMIT :limit
"""
SELECT_EVENTS_AFTER = f"""
SELECT {columns(EventRecord)} FROM run_events WHERE id > :after ORDER BY id LIMIT :limit
"""
SELECT_LAST_EVENT_ID = "SELECT COALESCE(MAX(id), 0) FROM run_events"

INSERT_SIGNAL = """
INSERT INTO run_signals (worker_id, run_id, kind, reason, created_at)
VALUES (:worker_id, :run_id, :kind, :reason, :now)
"""
SELECT_SIGNALS = f"""
SELECT {columns(RunSignal)} FROM run_signals WHERE worker_id = :worker_id ORDER BY id
"""
DELETE_SIGNALS = "DELETE FROM run_signals WHERE worker_id = :worker_id AND id <= :last"

ATTEMPTS = RowReader(AttemptRecord)
LAPSED = RowReader(LapsedAttempt)
EVENTS = RowReader(EventRecord)
SIGNALS = RowReader(RunSignal)


class AttemptStatements(SessionBase):
    """Attempts, run events and run signals."""

    # -- attempts ---------------------------------------------------------------------
    def attempts_record(self, attempts: list[AttemptRecord]) -> None:
        """Record how attempts ended (a repeated number replaces the earlier row)."""
        self.run_many(RECORD_ATTEMPT, [astuple(a) for a in attempts])

    def attempt_list(self, run_id: str) -> list[AttemptRecord]:
        """The attempts of a run, in order."""
        return ATTEMPTS.all(self.run(SELECT_ATTEMPTS, {"id": run_id}))

    def attempts_lapsed(self, before: int, limit: int) -> list[LapsedAttempt]:
        """Attempts held by workers that are gone or whose last heartbeat is older than
        `before`."""
        return LAPSED.all(self.run(SELECT_LAPSED, {"before": before, "limit": limit}))

    # -- run events -------------------------------------------------------------------
    def events_append(self, events: list[NewEvent]) -> None:
        """Append events to their runs' logs."""
        if events:
            self.run_many(INSERT_EVENT, [astuple(e) for e in events])

    def event_list(self, page: EventPage) -> list[EventRecord]:
        """A run's events in order, after an event id."""
        params = {"run_id": page.run_id, "after": page.after_id, "limit": page.limit}
        return EVENTS.all(self.run(SELECT_EVENTS, params))

    def events_after(self, after_id: int, limit: int) -> list[EventRecord]:
        """Events of every run after an event id, in order (what realtime readers tail)."""
        return EVENTS.all(self.run(SELECT_EVENTS_AFTER, {"after": after_id, "limit": limit}))

    def event_last_id(self) -> int:
        """The id of the newest event (0 when there is none)."""
        return int(self.scalar(SELECT_LAST_EVENT_ID) or 0)

    # -- signals ----------------------------------------------------------------------
    def signal_insert(self, signal: NewSignal) -> None:
        """Leave a request for the worker holding a run."""
        self.run(
            INSERT_SIGNAL,
            {
                "worker_id": signal.worker_id,
                "run_id": signal.run_id,
                "kind": signal.kind,
                "reason": signal.reason,
                "now": signal.now,
            },
        )

    def signals_take(self, worker_id: str) -> list[RunSignal]:
        """The requests waiting for a worker, oldest first (they are removed)."""
        signals = SIGNALS.all(self.run(SELECT_SIGNALS, {"worker_id": worker_id}))
        if signals:
            self.run(DELETE_SIGNALS, {"worker_id": worker_id, "last": signals[-1].id})
        return signals
