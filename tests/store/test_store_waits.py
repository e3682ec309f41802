"""StoreOps: waitpoints, the waits runs make (by sequence number), child runs, batches,
suspension of waiting runs and how they continue (in place on their worker, or by replay).

Runs here are driven by hand through worker ticks: `running` claims and starts a run,
`suspend` is the supervisor asking the store to make it WAITING, and a claim of a
suspended run is what happens when its wait completes. Times are explicit integers.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from storekit import (
    LEASE_MS,
    T0,
    StoreFactory,
    claim,
    claim_one,
    insert,
    new_run,
    outcome,
    register,
    start,
    tick,
    with_changes,
)

from storeops import StoreOps
from taskloom.ids import new_id
from taskloom.store.records import (
    ClaimedRun,
    NewRun,
    NewWaitpoint,
    QueueDeclaration,
    RecordedWait,
    Suspension,
    TickResult,
    WaitRef,
)

OK = b'{"ok":true}'

# -- helpers ----------------------------------------------------------------------------


def running(store: StoreOps, worker: str = "w1", now: int = T0, **fields: Any) -> ClaimedRun:
    """Insert a run and have `worker` (registered already) claim and start it."""
    run_id = insert(store, new_run(now=now, **fields))
    claimed = claim(store, worker, now, limit=1000)
    mine = [c for c in claimed if c.id == run_id]
    assert mine, f"{worker} did not claim {run_id}; it claimed {claimed}"
    start(store, worker, mine[0], now)
    return mine[0]


def ref(run: ClaimedRun | str, seq: int, attempt: int | None = None) -> WaitRef:
    if isinstance(run, ClaimedRun):
        return WaitRef(run.id, run.attempt if attempt is None else attempt, seq)
    return WaitRef(run, 1 if attempt is None else attempt, seq)


def duration(resume_at: int) -> NewWaitpoint:
    return NewWaitpoint(new_id("waitpoint"), "DURATION", resume_at=resume_at)


def token(**fields: Any) -> NewWaitpoint:
    return NewWaitpoint(new_id("waitpoint"), "TOKEN", **fields)


def suspend(store: StoreOps, worker: str, run: ClaimedRun, now: int) -> TickResult:
    """The supervisor's tick after the run's executor said "wait"."""
    return tick(store, worker, now, suspends=[Suspension(run.id, run.attempt, worker)])


def finish(
    store: StoreOps,
    worker: str,
    run: ClaimedRun,
    now: int,
    status: str = "COMPLETED",
    **fields: Any,
) -> TickResult:
    """The run's attempt ends with `status` (COMPLETED with output `{"n":<n>}` by default)."""
    if status == "COMPLETED":
        fields.setdefault("output", b'{"done":"' + run.id.encode() + b'"}')
    elif status != "QUEUED":
        fields.setdefault("error", b'{"type":"Error","message":"it broke"}')
    result = tick(
        store,
        worker,
        now,
        outcomes=[outcome(run, run.attempt, worker, status, finished_at=now, **fields)],
    )
    assert result.applied == [run.id], result
    return result


def child_of(parent: ClaimedRun | str, now: int = T0, **fields: Any) -> NewRun:
    parent_id = parent.id if isinstance(parent, ClaimedRun) else parent
    fields.setdefault("task_id", "child-task")
    return new_run(now=now, parent_run_id=parent_id, root_run_id=parent_id, depth=1, **fields)


def status(store: StoreOps, run_id: str) -> str:
    record = store.run_get(run_id)
    assert record is not None, run_id
    return record.status


def waits_of(store: StoreOps, run: ClaimedRun | str, attempt: int = 1) -> list[RecordedWait]:
    return store.run_waits_list(run.id if isinstance(run, ClaimedRun) else run, attempt)


def result_of(recorded: RecordedWait) -> Any:
    assert recorded.result is not None, recorded
    return orjson.loads(recorded.result)


@pytest.fixture
def workers(store: StoreOps) -> StoreOps:
    """The store with two live workers, w1 and w2."""
    register(store, "w1")
    register(store, "w2")
    return store


# -- wait_register and run_waits_list ----------------------------------------------------------


def test_a_new_duration_wait_creates_its_waitpoint_and_is_pending(workers: StoreOps) -> None:
    run = running(workers)
    waitpoint = duration(T0 + 10_000)

    recorded = workers.wait_register(ref(run, 1), "duration", waitpoint, None, T0 + 1)

    assert recorded == RecordedWait(1, "duration", waitpoint.id, "PENDING", None)
    found = workers.waitpoint_get(waitpoint.id)
    assert found is not None
    assert (found.kind, found.status, found.resume_at) == ("DURATION", "WAITING", T0 + 10_000)
    assert (found.output, found.is_error, found.created_at, found.completed_at) == (
        None,
        False,
        T0 + 1,
        None,
    )
    assert waits_of(workers, run) == [recorded]


def test_registering_the_same_step_again_returns_what_was_recorded(workers: StoreOps) -> None:
    run = running(workers)
    first = workers.wait_register(ref(run, 1), "duration", duration(T0 + 10_000), None, T0)
    other = duration(T0 + 99_000)

    again = workers.wait_register(ref(run, 1), "duration", other, None, T0 + 5)

    assert again == first
    assert workers.waitpoint_get(other.id) is None  # nothing new was created
    assert len(waits_of(workers, run)) == 1


def test_a_wait_on_a_completed_token_is_completed_at_once(workers: StoreOps) -> None:
    run = running(workers)
    made = workers.waitpoint_create(token(), T0)
    assert workers.token_complete(made.id, b'{"approved":true}', T0 + 1) == (True, [])

    recorded = workers.wait_register(ref(run, 1), "token", None, made.id, T0 + 2)

    assert (recorded.status, recorded.waitpoint_id) == ("COMPLETED", made.id)
    assert result_of(recorded) == {"ok": True, "output": {"approved": True}}
    assert waits_of(workers, run) == [recorded]


def test_a_wait_on_a_timed_out_token_is_completed_with_its_error(workers: StoreOps) -> None:
    run = running(workers)
    made = workers.waitpoint_create(token(resume_at=T0 + 100), T0)
    workers.waitpoints_complete_due(T0 + 100, 10)

    recorded = workers.wait_register(ref(run, 1), "token", None, made.id, T0 + 200)

    assert recorded.status == "COMPLETED"
    data = result_of(recorded)
    assert data["ok"] is False
    assert data["error"]["type"] == "WaitpointTimeoutError"
    assert made.id in data["error"]["message"]


def test_a_waitpoint_whose_idempotency_key_matches_a_done_one_completes_at_once(
    workers: StoreOps,
) -> None:
    run = running(workers)
    done = workers.waitpoint_create(token(idempotency_key="approval-7"), T0)
    workers.token_complete(done.id, b'"yes"', T0 + 1)

    recorded = workers.wait_register(
        ref(run, 1), "token", token(idempotency_key="approval-7"), None, T0 + 2
    )

    assert (recorded.waitpoint_id, recorded.status) == (done.id, "COMPLETED")
    assert result_of(recorded) == {"ok": True, "output": "yes"}


def test_a_step_with_a_result_is_recorded_completed_without_a_waitpoint(workers: StoreOps) -> None:
    run = running(workers)

    recorded = workers.wait_register(
        ref(run, 1), "token-create", None, None, T0, result=b'{"id":"waitpoint_X"}'
    )

    assert recorded == RecordedWait(1, "token-create", None, "COMPLETED", b'{"id":"waitpoint_X"}')
    assert waits_of(workers, run) == [recorded]


def test_run_waits_list_is_per_attempt_in_sequence_order(workers: StoreOps) -> None:
    run = running(workers)
    for seq in (3, 1, 2):
        workers.wait_register(ref(run, seq), "duration", duration(T0 + seq * 10_000), None, T0)
    workers.wait_register(ref(run, 1, attempt=2), "token-create", None, None, T0, result=b"1")

    assert [w.seq for w in waits_of(workers, run, 1)] == [1, 2, 3]
    assert [(w.seq, w.kind) for w in waits_of(workers, run, 2)] == [(1, "token-create")]
    assert waits_of(workers, run, 3) == []
    assert workers.run_waits_list("run_MISSING", 1) == []


# -- waitpoint_create, waitpoint_get, token_complete ---------------------------------------


def test_waitpoint_create_round_trips_a_token(workers: StoreOps) -> None:
    made = workers.waitpoint_create(
        token(resume_at=T0 + 60_000, tags=b'["order:1","vip"]', idempotency_key="k1"), T0
    )

    assert (made.kind, made.status, made.resume_at) == ("TOKEN", "WAITING", T0 + 60_000)
    assert orjson.loads(made.tags or b"null") == ["order:1", "vip"]
    assert (made.idempotency_key, made.created_at, made.output) == ("k1", T0, None)
    assert workers.waitpoint_get(made.id) == made
    assert workers.waitpoint_get("waitpoint_MISSING") is None


def test_waitpoint_create_with_a_live_key_returns_the_first_token(workers: StoreOps) -> None:
    first = workers.waitpoint_create(
        token(idempotency_key="k", idempotency_expires_at=T0 + 1_000), T0
    )
    again = workers.waitpoint_create(
        token(idempotency_key="k", idempotency_expires_at=T0 + 5_000), T0 + 999
    )
    other_key = workers.waitpoint_create(token(idempotency_key="k2"), T0 + 999)

    assert again == first
    assert other_key.id != first.id
    # Once the key expires, the next create makes a new token (the old one keeps its state).
    later = workers.waitpoint_create(token(idempotency_key="k"), T0 + 1_000)
    assert later.id != first.id
    assert later.idempotency_key == "k"
    old = workers.waitpoint_get(first.id)
    assert old is not None and old.idempotency_key is None


def test_the_first_token_completion_wins(workers: StoreOps) -> None:
    made = workers.waitpoint_create(token(), T0)

    assert workers.token_complete(made.id, b'{"n":1}', T0 + 1) == (True, [])
    assert workers.token_complete(made.id, b'{"n":2}', T0 + 2) == (False, [])

    found = workers.waitpoint_get(made.id)
    assert found is not None
    assert (found.status, found.completed_at, found.is_error) == ("COMPLETED", T0 + 1, False)
    assert orjson.loads(found.output or b"") == {"ok": True, "output": {"n": 1}}


def test_token_complete_refuses_unknown_timed_out_and_non_token_waitpoints(
    workers: StoreOps,
) -> None:
    timed = workers.waitpoint_create(token(resume_at=T0 + 10), T0)
    workers.waitpoints_complete_due(T0 + 10, 10)
    run = running(workers)
    sleeping = duration(T0 + 10_000)
    workers.wait_register(ref(run, 1), "duration", sleeping, None, T0)

    assert workers.token_complete("waitpoint_MISSING", b"1", T0 + 20) == (False, [])
    assert workers.token_complete(timed.id, b"1", T0 + 20) == (False, [])
    assert workers.token_complete(sleeping.id, b"1", T0 + 20) == (False, [])
    found = workers.waitpoint_get(sleeping.id)
    assert found is not None and found.status == "WAITING"


def test_token_complete_requeues_the_runs_waiting_for_it(workers: StoreOps) -> None:
    made = workers.waitpoint_create(token(), T0)
    runs = [running(workers, now=T0 + i) for i in range(2)]
    for run in runs:
        workers.wait_register(ref(run, 1), "token", None, made.id, T0 + 5)
        assert suspend(workers, "w1", run, T0 + 5).suspended == [run.id]
        assert status(workers, run.id) == "WAITING"

    done, requeued = workers.token_complete(made.id, b'"go"', T0 + 50)

    assert done
    assert sorted(requeued) == sorted(r.id for r in runs)
    for run in runs:
        record = workers.run_get(run.id)
        assert record is not None
        assert (record.status, record.available_at, record.queue_ts) == (
            "QUEUED",
            T0 + 50,
            run.sort_key,
        )
        [recorded] = waits_of(workers, run)
        assert recorded.status == "COMPLETED"
        assert result_of(recorded) == {"ok": True, "output": "go"}


# -- waitpoints_complete_due -------------------------------------------------------------------


def test_due_durations_complete_and_requeue_their_runs(workers: StoreOps) -> None:
    run = running(workers)
    soon, later = duration(T0 + 6_000), duration(T0 + 9_000)
    workers.wait_register(ref(run, 1), "duration", soon, None, T0)
    assert suspend(workers, "w1", run, T0 + 1).suspended == [run.id]
    other = running(workers, now=T0 + 2)
    workers.wait_register(ref(other, 1), "duration", later, None, T0 + 2)
    suspend(workers, "w1", other, T0 + 3)
    assert workers.run_next_due(T0 + 3) == T0 + 6_000

    assert workers.waitpoints_complete_due(T0 + 5_999, 10) == []
    assert workers.waitpoints_complete_due(T0 + 6_000, 10) == [run.id]

    assert (status(workers, run.id), status(workers, other.id)) == ("QUEUED", "WAITING")
    found = workers.waitpoint_get(soon.id)
    assert found is not None
    assert (found.status, found.completed_at, found.is_error) == ("COMPLETED", T0 + 6_000, False)
    assert waits_of(workers, run)[0].result == OK
    assert workers.run_next_due(T0 + 6_000) == T0 + 9_000
    # Completing again finds nothing new.
    assert workers.waitpoints_complete_due(T0 + 6_000, 10) == []


def test_due_tokens_time_out_with_an_error_result(workers: StoreOps) -> None:
    run = running(workers)
    made = workers.waitpoint_create(token(resume_at=T0 + 1_000), T0)
    workers.wait_register(ref(run, 1), "token", None, made.id, T0)
    suspend(workers, "w1", run, T0)

    assert workers.waitpoints_complete_due(T0 + 1_000, 10) == [run.id]

    found = workers.waitpoint_get(made.id)
    assert found is not None
    assert (found.status, found.is_error) == ("TIMED_OUT", True)
    data = result_of(waits_of(workers, run)[0])
    assert data["ok"] is False
    assert data["error"]["type"] == "WaitpointTimeoutError"
    # A timed-out token cannot be completed any more.
    assert workers.token_complete(made.id, b"1", T0 + 2_000) == (False, [])


def test_complete_due_respects_its_limit_oldest_first(workers: StoreOps) -> None:
    made = [workers.waitpoint_create(token(resume_at=T0 + 100 - i), T0) for i in range(5)]

    workers.waitpoints_complete_due(T0 + 200, 2)

    states = [workers.waitpoint_get(w.id) for w in made]
    assert [s.status if s else None for s in states] == [
        "WAITING",
        "WAITING",
        "WAITING",
        "TIMED_OUT",
        "TIMED_OUT",
    ]


# -- suspension through worker_tick ------------------------------------------------------------


def test_a_run_with_a_pending_wait_becomes_waiting_and_frees_its_slot(workers: StoreOps) -> None:
    workers.queues_declare([QueueDeclaration("one", "custom", 1)], T0)
    run = running(workers, queue="one")
    queued = insert(workers, new_run(now=T0 + 1, queue="one"))
    assert claim(workers, "w2", T0 + 1) == []  # the queue's one slot is taken
    workers.wait_register(ref(run, 1), "duration", duration(T0 + 60_000), None, T0 + 2)

    result = suspend(workers, "w1", run, T0 + 2)

    assert (result.suspended, result.ready) == ([run.id], {})
    record = workers.run_get(run.id)
    assert record is not None
    assert (record.status, record.attempt) == ("WAITING", 1)
    queue = workers.queue_get("one")
    assert queue is not None and queue.running == 0
    # The slot is free: another run of the limit-1 queue starts while this one waits.
    assert [c.id for c in claim(workers, "w2", T0 + 3)] == [queued]
    # Nobody claims the waiting run.
    assert claim(workers, "w1", T0 + 4) == []


def test_a_run_whose_waits_completed_already_is_not_suspended(workers: StoreOps) -> None:
    run = running(workers)
    made = workers.waitpoint_create(token(), T0)
    workers.wait_register(ref(run, 1), "token", None, made.id, T0)
    workers.token_complete(made.id, b"7", T0 + 1)  # before the supervisor's tick

    result = suspend(workers, "w1", run, T0 + 2)

    assert result.suspended == []
    [ready] = result.ready[run.id]
    assert (ready.seq, ready.status) == (1, "COMPLETED")
    assert result_of(ready) == {"ok": True, "output": 7}
    assert status(workers, run.id) == "EXECUTING"
    # Delivered once: asking again finds nothing to wait for, and nothing new.
    again = suspend(workers, "w1", run, T0 + 3)
    assert (again.suspended, again.ready) == ([], {run.id: []})
    assert status(workers, run.id) == "EXECUTING"


def test_steps_complete_when_recorded_do_not_keep_a_run_from_waiting(workers: StoreOps) -> None:
    """A trigger, a token creation or a wait on a token done already returned its result
    to the run when it was recorded: only the wait still pending counts."""
    run = running(workers)
    done = workers.waitpoint_create(token(), T0)
    workers.token_complete(done.id, b"1", T0)
    workers.wait_register(ref(run, 1), "trigger", None, None, T0, result=b'{"id":"run_X"}')
    workers.wait_register(ref(run, 2), "token-create", None, None, T0, result=b'{"id":"w"}')
    assert workers.wait_register(ref(run, 3), "token", None, done.id, T0).status == "COMPLETED"
    workers.wait_register(ref(run, 4), "duration", duration(T0 + 60_000), None, T0)

    result = suspend(workers, "w1", run, T0 + 1)

    assert (result.suspended, result.ready) == ([run.id], {})
    assert status(workers, run.id) == "WAITING"


def test_a_parallel_wait_still_pending_suspends_after_the_first_is_delivered(
    workers: StoreOps,
) -> None:
    run = running(workers)
    first, second = workers.waitpoint_create(token(), T0), workers.waitpoint_create(token(), T0)
    workers.wait_register(ref(run, 1), "token", None, first.id, T0)
    workers.wait_register(ref(run, 2), "token", None, second.id, T0)
    workers.token_complete(first.id, b"1", T0 + 1)

    assert [w.seq for w in suspend(workers, "w1", run, T0 + 2).ready[run.id]] == [1]
    assert suspend(workers, "w1", run, T0 + 3).suspended == [run.id]
    assert status(workers, run.id) == "WAITING"


@pytest.mark.parametrize("state", ["WAITING", "QUEUED"])
def test_a_late_suspension_of_a_run_no_longer_running_hands_nothing_over(
    workers: StoreOps, state: str
) -> None:
    """Parallel waits: the executor's second "wait" message can reach the store after the
    run was suspended by the first (and even after a child's outcome in the same tick put
    it back in its queue). Results marked delivered then would be lost: the coroutine is
    parked, not running; the claim that resumes it must hand them over."""
    parent = running(workers)
    first, second = child_of(parent), child_of(parent)
    workers.run_trigger_child(first, ref(parent, 1), wait=True, now=T0)
    workers.run_trigger_child(second, ref(parent, 2), wait=True, now=T0)
    assert suspend(workers, "w1", parent, T0 + 1).suspended == [parent.id]
    children = {c.id: c for c in claim(workers, "w2", T0 + 2)}
    done = outcome(children[first.id], 1, "w2", "COMPLETED", finished_at=T0 + 3, output=b"1")
    if state == "QUEUED":  # the child ended first: the parent is back in its queue
        tick(workers, "w2", T0 + 3, outcomes=[done])
        assert status(workers, parent.id) == "QUEUED"
    late = suspend(workers, "w1", parent, T0 + 4)
    if state == "WAITING":
        assert status(workers, parent.id) == "WAITING"

    assert late.suspended == []
    assert late.ready.get(parent.id, []) == []
    if state == "WAITING":
        tick(workers, "w2", T0 + 5, outcomes=[done])
    resumed = claim_one(workers, "w1", T0 + 6)
    assert [(w.seq, w.status) for w in resumed.waits] == [(1, "COMPLETED")]


def test_suspension_is_fenced_by_worker_and_attempt(workers: StoreOps) -> None:
    run = running(workers)
    workers.wait_register(ref(run, 1), "duration", duration(T0 + 60_000), None, T0)

    tick(workers, "w2", T0 + 1, suspends=[Suspension(run.id, 1, "w2")])
    tick(workers, "w1", T0 + 1, suspends=[Suspension(run.id, 2, "w1")])

    assert status(workers, run.id) == "EXECUTING"


# -- claims of suspended runs -------------------------------------------------------------


def waiting_on_token(store: StoreOps, worker: str = "w1", now: int = T0, **fields: Any) -> Any:
    """A run of `worker` that made two steps (a trigger, then a token wait) and is WAITING."""
    run = running(store, worker, now, **fields)
    store.wait_register(ref(run, 1), "trigger", None, None, now, result=b'{"id":"run_X"}')
    made = store.waitpoint_create(token(), now)
    store.wait_register(ref(run, 2), "token", None, made.id, now)
    # The trigger step was complete when recorded (its call returned it to the run): it
    # does not keep the run from waiting.
    assert suspend(store, worker, run, now + 1).suspended == [run.id]
    assert status(store, run.id) == "WAITING"
    return run, made


def test_a_resumed_run_continues_its_attempt_on_its_own_worker(workers: StoreOps) -> None:
    run, made = waiting_on_token(workers)
    done, requeued = workers.token_complete(made.id, b'"yes"', T0 + 10)
    assert (done, requeued) == (True, [run.id])

    assert claim(workers, "w2", T0 + 11) == []  # parked on w1, which is alive
    resumed = claim_one(workers, "w1", T0 + 12)

    assert (resumed.id, resumed.attempt, resumed.suspended, resumed.resume_worker) == (
        run.id,
        1,
        True,
        "w1",
    )
    # Only what the parked coroutine has not seen yet.
    assert [(w.seq, w.kind, w.status) for w in resumed.waits] == [(2, "token", "COMPLETED")]
    assert result_of(resumed.waits[0]) == {"ok": True, "output": "yes"}
    record = workers.run_get(run.id)
    assert record is not None
    assert (record.status, record.worker_id, record.attempt) == ("DEQUEUED", "w1", 1)
    # The attempt ends normally; the run is no longer suspended.
    start(workers, "w1", resumed, T0 + 13)
    finish(workers, "w1", resumed, T0 + 14)
    assert status(workers, run.id) == "COMPLETED"
    assert [(a.number, a.status) for a in workers.attempt_list(run.id)] == [(1, "COMPLETED")]


def test_a_resumed_run_that_waits_again_gets_only_the_new_result(workers: StoreOps) -> None:
    run, made = waiting_on_token(workers)
    workers.token_complete(made.id, b"1", T0 + 10)
    resumed = claim_one(workers, "w1", T0 + 11)
    start(workers, "w1", resumed, T0 + 11)
    second = workers.waitpoint_create(token(), T0 + 12)
    workers.wait_register(ref(run, 3), "token", None, second.id, T0 + 12)
    assert suspend(workers, "w1", resumed, T0 + 12).suspended == [run.id]
    workers.token_complete(second.id, b"2", T0 + 20)

    again = claim_one(workers, "w1", T0 + 21)

    assert [w.seq for w in again.waits] == [3]
    assert again.attempt == 1


def test_a_replay_on_another_worker_gets_every_recorded_wait(workers: StoreOps) -> None:
    run, made = waiting_on_token(workers)
    workers.runs_unpark([run.id], "w2")  # not w2's: nothing happens
    workers.token_complete(made.id, b'"ok"', T0 + 10)
    assert claim(workers, "w2", T0 + 11) == []

    workers.runs_unpark([run.id], "w1")  # w1 lost the coroutine (its executor died)
    replay = claim_one(workers, "w2", T0 + 12)

    assert (replay.id, replay.attempt, replay.suspended, replay.resume_worker) == (
        run.id,
        1,
        True,
        None,
    )
    assert [(w.seq, w.kind, w.status) for w in replay.waits] == [
        (1, "trigger", "COMPLETED"),
        (2, "token", "COMPLETED"),
    ]
    assert result_of(replay.waits[0]) == {"id": "run_X"}
    # Everything was handed over: a later suspension does not deliver them again.
    start(workers, "w2", replay, T0 + 13)
    another = workers.waitpoint_create(token(), T0 + 13)
    workers.wait_register(ref(run, 3), "token", None, another.id, T0 + 13)
    assert suspend(workers, "w2", replay, T0 + 14).suspended == [run.id]


def test_a_replay_of_a_run_still_waiting_gets_the_pending_wait_too(workers: StoreOps) -> None:
    run = running(workers)
    first, second = workers.waitpoint_create(token(), T0), workers.waitpoint_create(token(), T0)
    workers.wait_register(ref(run, 1), "token", None, first.id, T0)
    workers.wait_register(ref(run, 2), "token", None, second.id, T0)
    suspend(workers, "w1", run, T0 + 1)
    workers.worker_stop("w1", T0 + 2)
    workers.token_complete(first.id, b"1", T0 + 3)

    replay = claim_one(workers, "w2", T0 + 4)

    assert [(w.seq, w.status) for w in replay.waits] == [(1, "COMPLETED"), (2, "PENDING")]


@pytest.mark.parametrize("how", ["worker_stop", "workers_reap"])
def test_a_stopped_or_dead_worker_unparks_its_waiting_runs(workers: StoreOps, how: str) -> None:
    run, made = waiting_on_token(workers)
    if how == "worker_stop":
        workers.worker_stop("w1", T0 + 2)
    else:
        tick(workers, "w2", T0 + LEASE_MS + 5)  # w2 stays alive; w1 went quiet at T0 + 1
        assert workers.workers_reap(T0 + LEASE_MS + 5, LEASE_MS) == ["w1"]
    record = workers.run_get(run.id)
    assert record is not None and record.status == "WAITING"

    workers.token_complete(made.id, b"1", T0 + LEASE_MS + 10)
    replay = claim_one(workers, "w2", T0 + LEASE_MS + 11)

    assert (replay.id, replay.attempt, replay.resume_worker) == (run.id, 1, None)
    assert [w.seq for w in replay.waits] == [1, 2]


def test_a_resumed_waiting_run_keeps_its_queue_timestamp(workers: StoreOps) -> None:
    run, made = waiting_on_token(workers, queue="shared")
    newer = insert(workers, new_run(now=T0 + 5, queue="shared"))
    workers.token_complete(made.id, b"1", T0 + 10)

    first = claim(workers, "w1", T0 + 11, limit=1)

    assert [c.id for c in first] == [run.id]  # ahead of the newer run
    assert [c.id for c in claim(workers, "w1", T0 + 12, limit=1)] == [newer]


def test_a_released_resumed_run_keeps_its_attempt_and_replays_anywhere(workers: StoreOps) -> None:
    run, made = waiting_on_token(workers)
    workers.token_complete(made.id, b"1", T0 + 10)
    resumed = claim_one(workers, "w1", T0 + 11)

    assert workers.runs_release("w1", [run.id], T0 + 12) == [run.id]

    record = workers.run_get(run.id)
    assert record is not None
    assert (record.status, record.attempt) == ("QUEUED", 1)
    replay = claim_one(workers, "w2", T0 + 13)
    assert (replay.attempt, replay.suspended) == (1, True)
    assert [w.seq for w in replay.waits] == [1, 2]
    assert resumed.attempt == replay.attempt


def test_a_failed_attempt_after_a_wait_retries_as_a_new_attempt(workers: StoreOps) -> None:
    run, made = waiting_on_token(workers)
    workers.token_complete(made.id, b"1", T0 + 10)
    resumed = claim_one(workers, "w1", T0 + 11)
    finish(workers, "w1", resumed, T0 + 12, status="QUEUED", attempt_status="FAILED")

    retry = claim_one(workers, "w2", T0 + 13)

    assert (retry.attempt, retry.suspended, retry.waits) == (2, False, ())
    assert waits_of(workers, run, 2) == []


# -- run_trigger_child ----------------------------------------------------------------------


def test_a_child_triggered_without_waiting_is_recorded_for_replay(workers: StoreOps) -> None:
    parent = running(workers)
    child = child_of(parent)

    result, recorded = workers.run_trigger_child(child, ref(parent, 1), wait=False, now=T0 + 1)

    assert (result.run_id, result.created) == (child.id, True)
    assert recorded is not None
    assert (recorded.kind, recorded.status) == ("trigger", "COMPLETED")
    assert result_of(recorded) == {"id": child.id}
    record = workers.run_get(child.id)
    assert record is not None
    assert (record.parent_run_id, record.root_run_id, record.depth) == (parent.id, parent.id, 1)
    # A replay finds the same child and creates nothing.
    other = child_of(parent)
    again, recorded_again = workers.run_trigger_child(other, ref(parent, 1), wait=False, now=T0 + 2)
    assert (again.run_id, again.created, recorded_again) == (child.id, False, recorded)
    assert workers.run_get(other.id) is None


def test_a_child_triggered_outside_a_recorded_step_records_nothing(workers: StoreOps) -> None:
    child = child_of("run_PARENT")

    result, recorded = workers.run_trigger_child(child, None, wait=False, now=T0)

    assert (result.run_id, result.created, recorded) == (child.id, True, None)
    assert status(workers, child.id) == "QUEUED"


def test_trigger_and_wait_completes_the_parents_wait_when_the_child_ends(workers: StoreOps) -> None:
    parent = running(workers)
    child = child_of(parent)

    result, recorded = workers.run_trigger_child(child, ref(parent, 1), wait=True, now=T0 + 1)

    assert result.created
    assert recorded is not None
    assert (recorded.kind, recorded.status, recorded.result) == ("task", "PENDING", None)
    waitpoint = workers.waitpoint_get(recorded.waitpoint_id or "")
    assert waitpoint is not None
    assert (waitpoint.kind, waitpoint.target_id, waitpoint.status) == ("RUN", child.id, "WAITING")
    assert suspend(workers, "w1", parent, T0 + 2).suspended == [parent.id]

    claimed_child = claim_one(workers, "w2", T0 + 3)
    assert claimed_child.id == child.id
    finish(workers, "w2", claimed_child, T0 + 4, output=b'{"answer":42}')

    assert status(workers, parent.id) == "QUEUED"
    [done] = waits_of(workers, parent)
    assert done.status == "COMPLETED"
    assert result_of(done) == {
        "ok": True,
        "id": child.id,
        "task_id": "child-task",
        "output": {"answer": 42},
    }
    # Replay of the same step: the same child, the completed wait.
    again, recorded_again = workers.run_trigger_child(
        child_of(parent), ref(parent, 1), wait=True, now=T0 + 5
    )
    assert (again.run_id, again.created, recorded_again) == (child.id, False, done)


def test_a_failed_child_completes_the_wait_with_its_error(workers: StoreOps) -> None:
    parent = running(workers)
    child = child_of(parent)
    workers.run_trigger_child(child, ref(parent, 1), wait=True, now=T0 + 1)
    claimed_child = claim_one(workers, "w2", T0 + 2)

    finish(workers, "w2", claimed_child, T0 + 3, status="FAILED")

    data = result_of(waits_of(workers, parent)[0])
    assert (data["ok"], data["id"], data["task_id"]) == (False, child.id, "child-task")
    assert data["error"] == {"type": "Error", "message": "it broke", "status": "FAILED"}


def test_a_child_retry_does_not_complete_the_wait(workers: StoreOps) -> None:
    parent = running(workers)
    workers.run_trigger_child(child_of(parent), ref(parent, 1), wait=True, now=T0 + 1)
    claimed_child = claim_one(workers, "w2", T0 + 2)

    finish(workers, "w2", claimed_child, T0 + 3, status="QUEUED", attempt_status="FAILED")

    assert waits_of(workers, parent)[0].status == "PENDING"


@pytest.mark.parametrize("final", ["COMPLETED", "CANCELED"])
def test_an_idempotent_hit_on_a_finished_child_completes_the_wait_at_once(
    workers: StoreOps, final: str
) -> None:
    first = insert(
        workers,
        new_run(task_id="child-task", idempotency_key="once", idempotency_expires_at=T0 + 10**9),
    )
    if final == "COMPLETED":
        finish(workers, "w2", claim_one(workers, "w2", T0), T0 + 1, output=b'"cached"')
    else:
        workers.run_cancel(first, T0 + 1, "not needed")
    parent = running(workers, now=T0 + 2)

    result, recorded = workers.run_trigger_child(
        child_of(parent, T0 + 3, idempotency_key="once", idempotency_expires_at=T0 + 10**9),
        ref(parent, 1),
        wait=True,
        now=T0 + 3,
    )

    assert (result.run_id, result.created) == (first, False)
    assert recorded is not None and recorded.status == "COMPLETED"
    data = result_of(recorded)
    assert data["id"] == first
    if final == "COMPLETED":
        assert (data["ok"], data["output"]) == (True, "cached")
    else:
        assert (data["ok"], data["error"]["status"]) == (False, "CANCELED")
    assert suspend(workers, "w1", parent, T0 + 4).suspended == []


def test_an_idempotent_hit_on_a_live_child_waits_for_it(workers: StoreOps) -> None:
    parent = running(workers, now=T0, task_id="parent-task")
    shared = insert(
        workers,
        new_run(task_id="child-task", idempotency_key="once", idempotency_expires_at=T0 + 10**9),
    )

    result, recorded = workers.run_trigger_child(
        child_of(parent, T0 + 2, idempotency_key="once", idempotency_expires_at=T0 + 10**9),
        ref(parent, 1),
        wait=True,
        now=T0 + 2,
    )

    assert (result.run_id, result.created) == (shared, False)
    assert recorded is not None and recorded.status == "PENDING"
    finish(workers, "w2", claim_one(workers, "w2", T0 + 3), T0 + 4, output=b"5")
    assert result_of(waits_of(workers, parent)[0])["output"] == 5


# -- batch_insert ---------------------------------------------------------------------------


def batch_runs(parent: ClaimedRun | None, count: int, now: int = T0, **fields: Any) -> list[Any]:
    if parent is None:
        return [new_run(now=now, task_id="item-task", **fields) for _ in range(count)]
    return [child_of(parent, now, task_id="item-task", **fields) for _ in range(count)]


def test_a_batch_is_inserted_in_item_order(workers: StoreOps) -> None:
    runs = batch_runs(None, 3)

    results, recorded = workers.batch_insert("batch_1", None, runs, None, wait=False, now=T0)

    assert [(r.run_id, r.created) for r in results] == [(r.id, True) for r in runs]
    assert recorded is None
    assert all(status(workers, r.id) == "QUEUED" for r in runs)


def test_a_batch_is_all_or_nothing(workers: StoreOps) -> None:
    existing = insert(workers, new_run())
    runs = batch_runs(None, 3)
    broken = [runs[0], runs[1], with_changes(runs[2], id=existing)]  # the third cannot insert

    with pytest.raises(Exception, match=r"(?i)unique|constraint|duplicate"):
        workers.batch_insert("batch_1", None, broken, None, wait=False, now=T0)

    assert workers.run_get(runs[0].id) is None
    assert workers.run_get(runs[1].id) is None
    # The batch id is free: nothing of it was kept.
    results, _ = workers.batch_insert("batch_1", None, runs, None, wait=False, now=T0 + 1)
    assert [r.run_id for r in results] == [r.id for r in runs]


def test_a_batch_of_children_is_recorded_for_replay(workers: StoreOps) -> None:
    parent = running(workers)
    runs = batch_runs(parent, 2)

    results, recorded = workers.batch_insert(
        "batch_1", parent.id, runs, ref(parent, 1), wait=False, now=T0 + 1
    )

    assert recorded is not None
    assert (recorded.kind, recorded.status) == ("trigger", "COMPLETED")
    assert result_of(recorded) == {"batch_id": "batch_1", "runs": [r.id for r in runs]}
    again, recorded_again = workers.batch_insert(
        "batch_2", parent.id, batch_runs(parent, 2), ref(parent, 1), wait=False, now=T0 + 2
    )
    assert [(r.run_id, r.created) for r in again] == [(r.run_id, False) for r in results]
    assert recorded_again == recorded


def test_a_waited_batch_completes_when_every_item_is_final(workers: StoreOps) -> None:
    parent = running(workers)
    runs = batch_runs(parent, 3)
    _, recorded = workers.batch_insert(
        "batch_1", parent.id, runs, ref(parent, 1), wait=True, now=T0 + 1
    )
    assert recorded is not None
    assert (recorded.kind, recorded.status) == ("batch", "PENDING")
    waitpoint = workers.waitpoint_get(recorded.waitpoint_id or "")
    assert waitpoint is not None and (waitpoint.kind, waitpoint.target_id) == ("BATCH", "batch_1")
    assert suspend(workers, "w1", parent, T0 + 2).suspended == [parent.id]

    items = {c.id: c for c in claim(workers, "w2", T0 + 3)}
    assert set(items) == {r.id for r in runs}
    finish(workers, "w2", items[runs[2].id], T0 + 4, output=b'"c"')
    finish(workers, "w2", items[runs[0].id], T0 + 5, status="FAILED")
    assert waits_of(workers, parent)[0].status == "PENDING"
    assert status(workers, parent.id) == "WAITING"
    finish(workers, "w2", items[runs[1].id], T0 + 6, output=b'"b"')

    assert status(workers, parent.id) == "QUEUED"
    data = result_of(waits_of(workers, parent)[0])
    assert data["id"] == "batch_1"
    assert [(r["id"], r["ok"]) for r in data["runs"]] == [
        (runs[0].id, False),
        (runs[1].id, True),
        (runs[2].id, True),
    ]
    assert [r.get("output") for r in data["runs"]] == [None, "b", "c"]
    assert data["runs"][0]["error"]["status"] == "FAILED"


def test_a_waited_batch_counts_items_that_were_final_already(workers: StoreOps) -> None:
    done = insert(
        workers,
        new_run(task_id="item-task", idempotency_key="d", idempotency_expires_at=T0 + 10**9),
    )
    finish(workers, "w2", claim_one(workers, "w2", T0), T0 + 1, output=b'"earlier"')
    parent = running(workers, now=T0 + 2)
    runs = [
        child_of(parent, T0 + 3, task_id="item-task", idempotency_key="d"),
        child_of(parent, T0 + 3, task_id="item-task"),
    ]

    results, recorded = workers.batch_insert(
        "batch_1", parent.id, runs, ref(parent, 1), wait=True, now=T0 + 3
    )

    assert [(r.run_id, r.created) for r in results] == [(done, False), (runs[1].id, True)]
    assert recorded is not None and recorded.status == "PENDING"
    finish(workers, "w2", claim_one(workers, "w2", T0 + 4), T0 + 5, output=b'"now"')
    data = result_of(waits_of(workers, parent)[0])
    assert [(r["id"], r["output"]) for r in data["runs"]] == [
        (done, "earlier"),
        (runs[1].id, "now"),
    ]


def test_a_waited_batch_whose_items_are_all_final_completes_at_once(workers: StoreOps) -> None:
    done = insert(
        workers,
        new_run(task_id="item-task", idempotency_key="d", idempotency_expires_at=T0 + 10**9),
    )
    finish(workers, "w2", claim_one(workers, "w2", T0), T0 + 1, output=b"1")
    parent = running(workers, now=T0 + 2)

    _, recorded = workers.batch_insert(
        "batch_1",
        parent.id,
        [child_of(parent, T0 + 3, task_id="item-task", idempotency_key="d")],
        ref(parent, 1),
        wait=True,
        now=T0 + 3,
    )

    assert recorded is not None and recorded.status == "COMPLETED"
    assert [r["id"] for r in result_of(recorded)["runs"]] == [done]


def test_a_batch_with_the_same_run_twice_completes(workers: StoreOps) -> None:
    parent = running(workers)
    first = child_of(parent, T0 + 1, task_id="item-task", idempotency_key="same")
    second = child_of(parent, T0 + 1, task_id="item-task", idempotency_key="same")

    results, _ = workers.batch_insert(
        "batch_1", parent.id, [first, second], ref(parent, 1), wait=True, now=T0 + 1
    )

    assert [(r.run_id, r.created) for r in results] == [(first.id, True), (first.id, False)]
    finish(workers, "w2", claim_one(workers, "w2", T0 + 2), T0 + 3, output=b'"x"')
    [recorded] = waits_of(workers, parent)
    assert recorded.status == "COMPLETED"
    assert [(r["id"], r["output"]) for r in result_of(recorded)["runs"]] == [
        (first.id, "x"),
        (first.id, "x"),
    ]


def test_an_item_cancelled_while_it_executes_counts_once(workers: StoreOps) -> None:
    """Cancel marks the item final; its worker's late outcome must not count it again."""
    parent = running(workers)
    runs = batch_runs(parent, 2)
    workers.batch_insert("batch_1", parent.id, runs, ref(parent, 1), wait=True, now=T0 + 1)
    first = claim(workers, "w2", T0 + 2, limit=1)[0]
    start(workers, "w2", first, T0 + 2)

    workers.run_cancel(first.id, T0 + 3, "stop it")
    tick(
        workers,
        "w2",
        T0 + 4,
        outcomes=[outcome(first, 1, "w2", "CANCELED", finished_at=T0 + 4)],
    )

    other = next(r.id for r in runs if r.id != first.id)
    assert status(workers, other) == "QUEUED"
    assert waits_of(workers, parent)[0].status == "PENDING"  # one item is still live


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(
        st.sampled_from(
            ["COMPLETED", "FAILED", "RETRY", "CANCEL_CLAIMED", "CANCEL_RUNNING", "CANCEL_QUEUED"]
        ),
        min_size=1,
        max_size=6,
    )
)
def test_a_waited_batch_completes_exactly_when_its_last_item_is_final(
    store_factory: StoreFactory, fates: list[str]
) -> None:
    """Whatever way and order its items end in (success, failure, a retry first, a cancel
    while claimed, running or queued), a batch's wait completes exactly when the last one
    is final, and its results are in item order."""
    store = store_factory.fresh()
    register(store, "w1")
    register(store, "w2")
    parent = running(store)
    runs = batch_runs(parent, len(fates))
    store.batch_insert("batch_1", parent.id, runs, ref(parent, 1), wait=True, now=T0)
    suspend(store, "w1", parent, T0)
    claimed = {c.id: c for c in claim(store, "w2", T0 + 1, limit=1000)}
    assert set(claimed) == {r.id for r in runs}
    now = T0 + 1
    for run, fate in zip(runs, fates, strict=True):
        assert waits_of(store, parent)[0].status == "PENDING"
        now += 10
        item = claimed[run.id]
        if fate == "CANCEL_CLAIMED":
            store.run_cancel(run.id, now, "cancelled")
            continue
        start(store, "w2", item, now)
        if fate == "CANCEL_RUNNING":
            store.run_cancel(run.id, now, "cancelled")
            cancelled = outcome(item, 1, "w2", "CANCELED", finished_at=now + 1)
            tick(store, "w2", now + 1, outcomes=[cancelled])
        elif fate in ("RETRY", "CANCEL_QUEUED"):
            finish(store, "w2", item, now, status="QUEUED", attempt_status="FAILED")
            assert waits_of(store, parent)[0].status == "PENDING"
            if fate == "CANCEL_QUEUED":
                store.run_cancel(run.id, now + 1, "cancelled")
            else:
                finish(store, "w2", claim_one(store, "w2", now + 1), now + 2)
        else:
            finish(store, "w2", item, now, status=fate)
    [recorded] = waits_of(store, parent)
    assert recorded.status == "COMPLETED"
    assert [r["id"] for r in result_of(recorded)["runs"]] == [r.id for r in runs]
    assert status(store, parent.id) == "QUEUED"


# -- cancellation ------------------------------------------------------------------------


def test_cancelling_a_parent_cancels_its_live_children_recursively(workers: StoreOps) -> None:
    parent = running(workers, task_id="parent-task")
    child = child_of(parent, T0 + 1)
    _, child_wait = workers.run_trigger_child(child, ref(parent, 1), wait=True, now=T0 + 1)
    done_child = child_of(parent, T0 + 1)
    workers.run_trigger_child(done_child, ref(parent, 2), wait=False, now=T0 + 1)
    suspend(workers, "w1", parent, T0 + 2)
    claimed = {c.id: c for c in claim(workers, "w2", T0 + 3)}
    finish(workers, "w2", claimed[done_child.id], T0 + 4)
    child_run = claimed[child.id]
    start(workers, "w2", child_run, T0 + 4)
    grandchild = new_run(
        now=T0 + 5, task_id="leaf", parent_run_id=child.id, root_run_id=parent.id, depth=2
    )
    workers.run_trigger_child(grandchild, ref(child_run, 1), wait=True, now=T0 + 5)

    assert workers.run_cancel(parent.id, T0 + 10, "user said stop") == "WAITING"

    assert status(workers, parent.id) == "CANCELED"
    assert status(workers, child.id) == "CANCELED"
    assert status(workers, grandchild.id) == "CANCELED"
    assert status(workers, done_child.id) == "COMPLETED"
    record = workers.run_get(child.id)
    assert record is not None and record.error is not None
    assert parent.id in orjson.loads(record.error)["message"]
    # The parent's wait on the child completed (with the cancellation), but a cancelled
    # parent is never requeued by it.
    assert child_wait is not None
    data = result_of(waits_of(workers, parent)[0])
    assert (data["ok"], data["error"]["status"]) == (False, "CANCELED")
    assert claim(workers, "w1", T0 + 11) == []
    # The child's worker is told to stop it.
    signals = tick(workers, "w2", T0 + 12, read_signals=True).signals
    assert [(s.run_id, s.kind) for s in signals] == [(child.id, "cancel")]


def test_a_cancelled_waiting_run_signals_the_worker_holding_its_coroutine(
    workers: StoreOps,
) -> None:
    run, made = waiting_on_token(workers)

    assert workers.run_cancel(run.id, T0 + 5, "enough") == "WAITING"

    assert status(workers, run.id) == "CANCELED"
    assert tick(workers, "w2", T0 + 6, read_signals=True).signals == []
    signals = tick(workers, "w1", T0 + 6, read_signals=True).signals
    assert [(s.run_id, s.kind, s.reason) for s in signals] == [(run.id, "cancel", "enough")]
    # Completing its token later does not bring it back.
    assert workers.token_complete(made.id, b"1", T0 + 7) == (True, [])
    assert status(workers, run.id) == "CANCELED"


def test_the_cancelled_attempt_of_a_waiting_run_is_recorded_once(workers: StoreOps) -> None:
    """The worker stops the parked coroutine of a cancelled WAITING run and reports its
    attempt: recorded, without counting the run twice in a batch waiting for it."""
    parent = running(workers)
    runs = batch_runs(parent, 2)
    workers.batch_insert("batch_1", parent.id, runs, ref(parent, 1), wait=True, now=T0)
    suspend(workers, "w1", parent, T0)
    items = {c.id: c for c in claim(workers, "w2", T0 + 1)}
    item = items[runs[0].id]
    start(workers, "w2", item, T0 + 1)
    made = workers.waitpoint_create(token(), T0 + 1)
    workers.wait_register(ref(item, 1), "token", None, made.id, T0 + 1)
    assert suspend(workers, "w2", item, T0 + 2).suspended == [item.id]

    workers.run_cancel(item.id, T0 + 3, "stop")
    late = outcome(item, 1, "w2", "CANCELED", finished_at=T0 + 4, started_at=T0 + 1)
    assert tick(workers, "w2", T0 + 4, outcomes=[late]).applied == [item.id]

    assert [(a.number, a.status) for a in workers.attempt_list(item.id)] == [(1, "CANCELED")]
    assert waits_of(workers, parent)[0].status == "PENDING"  # the other item is live
    finish(workers, "w2", items[runs[1].id], T0 + 5)
    assert waits_of(workers, parent)[0].status == "COMPLETED"


def test_a_late_outcome_from_the_worker_that_lost_a_waiting_run_is_rejected(
    workers: StoreOps,
) -> None:
    run, made = waiting_on_token(workers)
    workers.worker_stop("w1", T0 + 2)
    workers.token_complete(made.id, b"1", T0 + 3)
    replay = claim_one(workers, "w2", T0 + 4)

    stale = outcome(run, 1, "w1", "COMPLETED", finished_at=T0 + 5, output=b'"old"')
    assert tick(workers, "w1", T0 + 5, outcomes=[stale]).rejected == [run.id]

    finish(workers, "w2", replay, T0 + 6, output=b'"new"')
    record = workers.run_get(run.id)
    assert record is not None and (record.status, record.output) == ("COMPLETED", b'"new"')


def test_a_child_finishing_after_its_parent_was_cancelled_does_not_resurrect_it(
    workers: StoreOps,
) -> None:
    parent = running(workers)
    child = child_of(parent)
    workers.run_trigger_child(child, ref(parent, 1), wait=True, now=T0 + 1)
    suspend(workers, "w1", parent, T0 + 2)
    claimed_child = claim_one(workers, "w2", T0 + 3)
    start(workers, "w2", claimed_child, T0 + 3)
    workers.run_cancel(parent.id, T0 + 4, "stop")

    # The child's late success is recorded as its attempt only.
    tick(
        workers,
        "w2",
        T0 + 5,
        outcomes=[outcome(claimed_child, 1, "w2", "COMPLETED", finished_at=T0 + 5, output=b"1")],
    )

    assert status(workers, parent.id) == "CANCELED"
    assert status(workers, child.id) == "CANCELED"
    assert claim(workers, "w1", T0 + 6) == []


# -- idempotency_key_reset ----------------------------------------------------------------


def test_idempotency_key_reset_frees_the_key_for_a_new_run(workers: StoreOps) -> None:
    first = insert(
        workers, new_run(task_id="t", idempotency_key="k", idempotency_expires_at=T0 + 10**9)
    )
    other_task = insert(
        workers, new_run(task_id="u", idempotency_key="k", idempotency_expires_at=T0 + 10**9)
    )

    assert workers.idempotency_key_reset("t", "k") is True
    assert workers.idempotency_key_reset("t", "k") is False
    assert workers.idempotency_key_reset("t", "never-used") is False

    record = workers.run_get(first)
    assert record is not None and record.idempotency_key is None
    again = workers.run_insert(
        new_run(task_id="t", idempotency_key="k", idempotency_expires_at=T0 + 10**9), T0 + 1
    )
    assert again.created and again.run_id != first
    other = workers.run_get(other_task)
    assert other is not None and other.idempotency_key == "k"  # keys are per task


# -- metadata of a waiting parent --------------------------------------------------------


def test_children_change_the_metadata_of_their_waiting_parent(workers: StoreOps) -> None:
    """A child's flush applies operations to itself, its parent and its root in one
    transaction, while the parent waits; a change over 256 KB is refused alone."""
    parent = running(workers, metadata=b'{"done":0}')
    child = child_of(parent)
    workers.run_trigger_child(child, ref(parent, 1), wait=True, now=T0 + 1)
    suspend(workers, "w1", parent, T0 + 2)

    refused = workers.run_metadata_apply(
        child.id,
        tags=b'["step:1"]',
        changes=[
            (child.id, [["set", "progress", 0.5]]),
            (parent.id, [["increment", "done", 1], ["append", "log", "child ran"]]),
            ("run_MISSING", [["set", "x", 1]]),
        ],
    )
    too_big = workers.run_metadata_apply(
        child.id,
        tags=None,
        changes=[
            (parent.id, [["set", "blob", "x" * 300_000]]),
            (child.id, [["delete", "x", None]]),
        ],
    )

    assert (refused, too_big) == ([], [parent.id])
    parent_record, child_record = workers.run_get(parent.id), workers.run_get(child.id)
    assert parent_record is not None and child_record is not None
    assert orjson.loads(parent_record.metadata or b"") == {"done": 1, "log": ["child ran"]}
    assert parent_record.status == "WAITING"
    assert orjson.loads(child_record.metadata or b"") == {"progress": 0.5}
    assert orjson.loads(child_record.tags or b"") == ["step:1"]
