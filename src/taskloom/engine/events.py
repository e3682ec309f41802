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


class _Change:
    """A run's status changes within one transaction, journaled as one event."""

    __slots__ = ("attempt", "data", "run_id", "status", "ts", "via", "was")

    def __init__(
        self, run_id: str, attempt: int | None, ts: int, was: str, status: str, data: dict[str, Any]
    ) -> None:
        self.run_id = run_id
        self.attempt = attempt
        self.ts = ts
        self.was = was
        self.status = status
        self.via: list[str] = []
        self.data = data

    def event(self) -> NewEvent:
        body: dict[str, Any] = {"status": self.status, "from": self.was}
        if self.via:
            body["via"] = self.via
        if self.data:
            body.update(self.data)
        return NewEvent(self.run_id, self.attempt, self.ts, STATUS, orjson.dumps(body))


class Journal:
    """The events of one transaction: each status change is checked against the
    transition table as it is recorded, and `write` appends them all in that transaction.

    Several changes of one run in one transaction (a quick attempt's start and end,
    coalesced by its worker) make one `status` event: its `from`, the statuses it passed
    `via`, and the `status` it reached.
    """

    __slots__ = ("_changes", "_items", "now")

    def __init__(self, now: int, events: list[NewEvent] | None = None) -> None:
        self.now = now
        self._items: list[NewEvent | _Change] = [] if events is None else list(events)
        self._changes: dict[str, _Change] = {}

    @property
    def events(self) -> list[NewEvent]:
        """The events recorded so far, as they will be written."""
        return [item if isinstance(item, NewEvent) else item.event() for item in self._items]

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
        when = self.now if ts is None else ts
        change = self._changes.get(run_id)
        if change is not None and change.status == was:
            change.via.append(was)
            change.status = status
            change.ts = max(change.ts, when)
            if attempt is not None:
                change.attempt = attempt
            change.data.update(data)
            return
        change = _Change(run_id, attempt, when, was, status, data)
        self._changes[run_id] = change
        self._items.append(change)

    def add(self, run_id: str, attempt: int | None, kind: str, data: dict[str, Any]) -> None:
        """Record another kind of event."""
        self._items.append(NewEvent(run_id, attempt, self.now, kind, orjson.dumps(data)))

    def write(self, session: Session) -> None:
        """Append the recorded events (in the caller's transaction)."""
        if self._items:
            session.events_append(self.events)
            self._items = []
            self._changes = {}


def journaled(now: int, body: Callable[[Session, Journal], T]) -> Callable[[Session], T]:
    """A transaction body that journals at `now`: `body` records its changes in a new
    `Journal`, whose events are written before the transaction commits."""

    def run(session: Session) -> T:
        journal = Journal(now)
        result = body(session, journal)
        journal.write(session)
        return result

    return run
