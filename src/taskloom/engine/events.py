"""Run events: the append-only log of everything that happens to a run.

Kinds: `status` (every status change, with the status it left), `metadata` (operations a
run applied), and what executors report: `log`, `span`, `hook`. A status change is
journaled in the same transaction that makes it (`Journal`), after the transition table
allowed it; so the log holds every status a run passed through, in order, and realtime
readers (`runs.subscribe`, the HTTP API's streams) follow the log instead of polling
snapshots that skip short-lived states.

A run's creation is its row (`created_at`, first status); the log records every change
after it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from ..store.records import NewEvent
from ..store.sql.session import Session
from ..types import RunStatus
from .states import EDGES, check_transition

T = TypeVar("T")

STATUS = "status"
METADATA = "metadata"


class Journal:
    """The events of one transaction: each status change is checked against the
    transition table as it is recorded, and `write` appends them all in that transaction.
    """

    __slots__ = ("events", "now")

    def __init__(self, now: int, events: list[NewEvent] | None = None) -> None:
        self.now = now
        self.events: list[NewEvent] = [] if events is None else events

    def status(
        self,
        run_id: str,
        attempt: int | None,
        was: str,
        status: str,
        *,
        ts: int | None = None,
        **data: Any,
    ) -> None:
        """Record that `run_id` went from `was` to `status` (at `ts`, default the
        journal's time); InvalidTransitionError when the table does not allow it."""
        if (was, status) not in EDGES:
            check_transition(run_id, RunStatus(was), RunStatus(status))  # raises, with detail
        body = {"status": status, "from": was, **data} if data else {"status": status, "from": was}
        when = self.now if ts is None else ts
        self.events.append(NewEvent(run_id, attempt, when, STATUS, orjson.dumps(body)))

    def add(self, run_id: str, attempt: int | None, kind: str, data: dict[str, Any]) -> None:
        """Record another kind of event."""
        self.events.append(NewEvent(run_id, attempt, self.now, kind, orjson.dumps(data)))

    def write(self, session: Session) -> None:
        """Append the recorded events (in the caller's transaction)."""
        if self.events:
            session.events_append(self.events)
            self.events = []


def journaled(now: int, body: Callable[[Session, Journal], T]) -> Callable[[Session], T]:
    """A transaction body that journals at `now`: `body` records its changes in a new
    `Journal`, whose events are written before the transaction commits."""

    def run(session: Session) -> T:
        journal = Journal(now)
        result = body(session, journal)
        journal.write(session)
        return result

    return run
