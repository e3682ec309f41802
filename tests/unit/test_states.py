"""Tests for taskloom.engine.states: the transition table."""

from __future__ import annotations

import pytest

from taskloom.engine.states import (
    TRANSITIONS,
    InvalidTransitionError,
    can_transition,
    check_transition,
)
from taskloom.errors import TaskloomError
from taskloom.types import FINAL_STATUSES, RunStatus

S = RunStatus
NON_FINAL = [s for s in RunStatus if s not in FINAL_STATUSES]


def test_every_status_has_a_row() -> None:
    assert set(TRANSITIONS) == set(RunStatus)


def test_final_statuses_are_the_seven_endings() -> None:
    assert {s.value for s in FINAL_STATUSES} == {
        "COMPLETED",
        "CANCELED",
        "FAILED",
        "CRASHED",
        "SYSTEM_FAILURE",
        "EXPIRED",
        "TIMED_OUT",
    }


@pytest.mark.parametrize("final", sorted(FINAL_STATUSES))
def test_final_statuses_have_no_exits(final: RunStatus) -> None:
    assert TRANSITIONS[final] == frozenset()
    assert not any(can_transition(final, target) for target in RunStatus)


@pytest.mark.parametrize("status", NON_FINAL)
def test_every_unfinished_status_can_reach_an_end(status: RunStatus) -> None:
    seen = {status}
    frontier = [status]
    while frontier:
        for target in TRANSITIONS[frontier.pop()]:
            if target not in seen:
                seen.add(target)
                frontier.append(target)
    assert seen & FINAL_STATUSES, f"{status} can never finish"


@pytest.mark.parametrize("status", NON_FINAL)
def test_every_unfinished_run_can_be_cancelled(status: RunStatus) -> None:
    # The store's run_cancel cancels any run that is not final.
    assert can_transition(status, S.CANCELED)


@pytest.mark.parametrize("status", list(RunStatus))
def test_no_status_follows_itself(status: RunStatus) -> None:
    assert not can_transition(status, status)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.DELAYED, S.QUEUED),  # promotion
        (S.QUEUED, S.DEQUEUED),  # claim
        (S.QUEUED, S.EXPIRED),  # TTL
        (S.DEQUEUED, S.EXECUTING),  # start
        (S.DEQUEUED, S.COMPLETED),  # ended before its start was written
        (S.DEQUEUED, S.QUEUED),  # released or crashed before starting
        (S.EXECUTING, S.QUEUED),  # retry
        (S.EXECUTING, S.CRASHED),  # rescue on the last attempt
        (S.EXECUTING, S.WAITING),
        (S.WAITING, S.QUEUED),  # resumed on another worker
        (S.WAITING, S.EXECUTING),  # resumed in place
    ],
)
def test_the_edges_the_store_takes_are_allowed(current: RunStatus, target: RunStatus) -> None:
    assert can_transition(current, target)
    check_transition("run_1", current, target)  # does not raise


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.QUEUED, S.EXECUTING),  # must be claimed first
        (S.QUEUED, S.COMPLETED),
        (S.DELAYED, S.DEQUEUED),  # must enter its queue first
        (S.DEQUEUED, S.EXPIRED),  # TTL only applies before the claim
        (S.EXECUTING, S.EXPIRED),
        (S.WAITING, S.COMPLETED),  # must execute again to complete
        (S.EXECUTING, S.DELAYED),
        (S.EXECUTING, S.PENDING_VERSION),
    ],
)
def test_impossible_edges_are_refused(current: RunStatus, target: RunStatus) -> None:
    assert not can_transition(current, target)
    with pytest.raises(InvalidTransitionError):
        check_transition("run_1", current, target)


def test_the_error_names_the_run_the_statuses_and_what_is_allowed() -> None:
    with pytest.raises(InvalidTransitionError) as raised:
        check_transition("run_01ABC", S.QUEUED, S.COMPLETED)
    message = str(raised.value)
    assert "run_01ABC" in message
    assert "is QUEUED" in message
    assert "cannot become COMPLETED" in message
    assert "allowed: CANCELED, DEQUEUED, EXPIRED" in message
    assert isinstance(raised.value, TaskloomError)


def test_the_error_for_a_final_run_says_nothing_may_follow() -> None:
    with pytest.raises(InvalidTransitionError, match=r"run_9 is COMPLETED; it cannot become "):
        check_transition("run_9", S.COMPLETED, S.QUEUED)
    with pytest.raises(InvalidTransitionError, match=r"allowed: nothing \(final\)"):
        check_transition("run_9", S.EXPIRED, S.QUEUED)
