"""`Session`: every statement of the store, in dialect-neutral SQL, on one connection.

The engine composes a transaction from these methods inside `Store.write` (or reads inside
`Store.read`); each method is one statement or a tight group of them, named `noun_verb`,
taking a params record (`taskloom.store.records`) when it needs more than two values. A
dialect subclasses `Session` and overrides only what its database spells differently.
"""

from __future__ import annotations

from ..records import ClaimedRun, ClaimRequest
from .attempts import AttemptStatements
from .base import Connection
from .claim import Claimer, Pair, pairs_after
from .queues import QueueStatements
from .runs import RunStatements
from .waitpoints import WaitStatements
from .workers import WorkerStatements


class Session(RunStatements, AttemptStatements, WaitStatements, WorkerStatements, QueueStatements):
    """Statements on one connection, within the caller's transaction."""

    def __init__(self, conn: Connection, claimer: Claimer) -> None:
        super().__init__(conn)
        self.claimer = claimer

    def runs_claim(self, request: ClaimRequest) -> list[ClaimedRun]:
        """Claim up to `request.limit` ready runs for a worker, fairly and within every
        queue, key and environment limit; they become DEQUEUED, fenced to the worker."""
        return self.claimer.claim(self, request)

    def claim_pairs_after(self, after: Pair, wanted: int) -> list[Pair]:
        """The next `wanted` sub-queues (queue, concurrency key) with ready runs after
        `after`, in key order."""
        return pairs_after(self, after, wanted)
