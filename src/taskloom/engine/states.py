"""The transition table: the single truth of which run status may follow which.

Every status change the engine makes is checked here as it is journaled (see
`taskloom.engine.events.Journal`): an edge the table does not have raises
`InvalidTransitionError` and the transaction rolls back. The store's guarded statements
implement these edges, and the store suite proves they can make no change the table does
not allow (tests/store/test_store_transitions.py).
"""

from __future__ import annotations

from ..errors import TaskloomError
from ..types import FINAL_STATUSES, RunStatus

S = RunStatus

_ENDINGS = frozenset({S.COMPLETED, S.FAILED, S.CRASHED, S.SYSTEM_FAILURE, S.TIMED_OUT, S.CANCELED})

TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    S.PENDING_VERSION: frozenset({S.QUEUED, S.CANCELED, S.EXPIRED}),
    # A delayed run enters its queue when its time comes (or is cancelled first).
    S.DELAYED: frozenset({S.QUEUED, S.CANCELED, S.EXPIRED}),
    # A worker claims a queued run; TTL may expire it first.
    S.QUEUED: frozenset({S.DEQUEUED, S.CANCELED, S.EXPIRED}),
    # A claimed run starts, or ends before its start was written (writes are coalesced),
    # or goes back to its queue (retry after a crash, or released by a stopping worker).
    # A claimed run may also wait before its start was written.
    S.DEQUEUED: _ENDINGS | {S.EXECUTING, S.QUEUED, S.WAITING},
    S.EXECUTING: _ENDINGS | {S.QUEUED, S.WAITING},
    S.WAITING: frozenset({S.QUEUED, S.EXECUTING, S.CANCELED, S.FAILED, S.SYSTEM_FAILURE}),
}
for _final in FINAL_STATUSES:
    TRANSITIONS[_final] = frozenset()


EDGES: frozenset[tuple[str, str]] = frozenset(
    (was.value, then.value) for was, targets in TRANSITIONS.items() for then in targets
)
"""Every allowed change as a pair of status strings (the journal checks each change here)."""


class InvalidTransitionError(TaskloomError):
    """A state change the transition table does not allow."""


def can_transition(current: RunStatus, target: RunStatus) -> bool:
    """True when `target` may follow `current`."""
    return target in TRANSITIONS[current]


def check_transition(run_id: str, current: RunStatus, target: RunStatus) -> None:
    """Raise InvalidTransitionError unless `target` may follow `current`."""
    if not can_transition(current, target):
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "nothing (final)"
        raise InvalidTransitionError(
            f"run {run_id} is {current.value}; it cannot become {target.value} (allowed: {allowed})"
        )
