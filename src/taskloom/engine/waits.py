"""The engine's waits surface (`engine.waits`): a run's waits and waitpoint tokens.

A run records each wait at its sequence number (creating the waitpoint, or on a token);
tokens are created and completed from anywhere. What completing a waitpoint does to the
runs waiting on it is `waitpoints`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import InvalidOptionError, RunNotFoundError
from ..store.records import NewWaitpoint, RecordedWait, WaitpointRecord, WaitRef
from ..store.sql.session import Session
from . import waitpoints
from .events import journaled
from .wake import DELAYED, RUNS_READY

if TYPE_CHECKING:
    from .engine import Engine


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
            lambda s: waitpoints.register_wait(
                s, ref, kind, waitpoint, waitpoint_id, now, result=result
            ),
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
            found = session.waitpoint_get(waitpoints.create_waitpoint(session, waitpoint, now))
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
            lambda s, j: waitpoints.complete_token(s, waitpoint_id, output, j.now, j),
        )
        done, requeued = self._engine.write(body, "complete token")
        if requeued:
            self._engine.notifier.notify(RUNS_READY)
        return done
