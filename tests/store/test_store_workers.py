"""StoreOps: worker ticks (claims, starts, fenced outcomes, events, signals), leases and rescue."""

from __future__ import annotations

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
)

from storeops import StoreOps
from taskloom.store.records import AttemptRecord, AttemptStart, LapsedAttempt, NewEvent

# -- claiming ------------------------------------------------------------------------------


def test_a_claim_fences_the_run_to_the_worker_and_counts_an_attempt(store: StoreOps) -> None:
    run = new_run(tags=b'["t"]', metadata=b'{"m":1}', idempotency_key="k")
    insert(store, run)
    register(store, "w1")

    result = tick(store, "w1", T0 + 5, claim_limit=10)

    assert result.worker_alive
    assert [c.id for c in result.claimed] == [run.id]
    claimed = result.claimed[0]
    assert claimed.attempt == 1
    assert (claimed.task_id, claimed.queue, bytes(claimed.payload)) == (
        run.task_id,
        run.queue,
        run.payload,
    )
    retry = bytes(claimed.retry)
    assert (claimed.max_attempts, retry, claimed.machine) == (3, run.retry, run.machine)
    assert (claimed.tags, claimed.metadata, claimed.idempotency_key) == (b'["t"]', b'{"m":1}', "k")
    assert (claimed.created_at, claimed.is_test, claimed.sort_key) == (T0, False, T0)
    record = store.run_get(run.id)
    assert record is not None
    assert (record.status, record.worker_id, record.attempt) == ("DEQUEUED", "w1", 1)
    assert record.updated_at == T0 + 5
    # A claimed run is nobody else's.
    register(store, "w2")
    assert claim(store, "w2", T0 + 6) == []


def test_claim_respects_the_limit_and_zero_claims_nothing(store: StoreOps) -> None:
    for _ in range(5):
        insert(store, new_run())
    register(store, "w1")
    assert tick(store, "w1", T0).claimed == []  # claim_limit defaults to 0
    assert len(claim(store, "w1", T0, limit=2)) == 2
    assert len(claim(store, "w1", T0, limit=2)) == 2
    assert len(claim(store, "w1", T0, limit=2)) == 1
    assert claim(store, "w1", T0, limit=2) == []


@pytest.mark.parametrize(
    ("now", "claimable"),
    [(T0 + 499, {"now", "ttl"}), (T0 + 500, {"now"}), (T0 + 1_000, {"now", "later"})],
)
def test_claim_edges_of_available_at_and_expires_at(
    store: StoreOps, now: int, claimable: set[str]
) -> None:
    runs = {
        "now": new_run(),
        "later": new_run(available_at=T0 + 1_000),
        "ttl": new_run(ttl_ms=500),
    }
    names = {insert(store, run): name for name, run in runs.items()}
    register(store, "w1")
    assert {names[c.id] for c in claim(store, "w1", now)} == claimable


def test_claim_order_is_sort_key_so_priority_jumps_the_line(store: StoreOps) -> None:
    old = new_run(now=T0)
    newer_urgent = new_run(now=T0 + 10_000, priority_ms=20_000)  # as if triggered 20 s earlier
    newer = new_run(now=T0 + 5_000)
    for run in (old, newer_urgent, newer):
        insert(store, run)
    register(store, "w1")
    assert [c.id for c in claim(store, "w1", T0 + 10_000)] == [newer_urgent.id, old.id, newer.id]


runs_strategy = st.lists(
    st.tuples(st.integers(0, 600_000), st.integers(0, 300_000)),  # (queue_ts offset, priority)
    min_size=1,
    max_size=12,
)


# store_factory is only used to open a fresh database per example, so sharing it is safe.
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(runs=runs_strategy, limit=st.integers(1, 12))
def test_claims_take_the_lowest_queue_ts_minus_priority_first(
    store_factory: StoreFactory, runs: list[tuple[int, int]], limit: int
) -> None:
    store = store_factory.fresh()
    try:
        key_of: dict[str, int] = {}
        for offset, priority in runs:
            run = new_run(now=T0 + offset, priority_ms=priority)
            key_of[insert(store, run)] = T0 + offset - priority
        register(store, "w1")
        now = T0 + 600_000

        first = claim(store, "w1", now, limit=limit)
        rest = claim(store, "w1", now, limit=len(runs))

        first_keys = [c.sort_key for c in first]
        assert [key_of[c.id] for c in first] == first_keys
        assert len(first) == min(limit, len(runs))
        assert first_keys == sorted(first_keys)
        # Nothing left behind comes before anything taken.
        assert all(c.sort_key >= max(first_keys) for c in rest)
        assert sorted(c.id for c in first + rest) == sorted(key_of)
    finally:
        store.close()


# -- heartbeats and liveness ------------------------------------------------------------------


def test_a_tick_is_a_heartbeat(store: StoreOps) -> None:
    register(store, "w1", now=T0)
    register(store, "w2", now=T0)
    tick(store, "w1", T0 + 20_000)

    assert store.workers_reap(T0 + 40_000, LEASE_MS) == ["w2"]
    assert store.worker_heartbeat("w1", T0 + 40_000)
    assert not store.worker_heartbeat("w2", T0 + 40_000)


def test_heartbeat_keeps_a_worker_alive_until_its_lease_passes(store: StoreOps) -> None:
    register(store, "w1", now=T0)
    assert store.worker_heartbeat("w1", T0 + 10_000)
    assert store.workers_reap(T0 + 10_000 + LEASE_MS, LEASE_MS) == []
    assert store.workers_reap(T0 + 10_001 + LEASE_MS, LEASE_MS) == ["w1"]
    assert store.workers_reap(T0 + 10_002 + LEASE_MS, LEASE_MS) == []  # reaped once


def test_a_reaped_worker_is_dead_and_claims_nothing(store: StoreOps) -> None:
    run_id = insert(store, new_run())
    register(store, "w1", now=T0)
    assert store.workers_reap(T0 + LEASE_MS + 1, LEASE_MS) == ["w1"]

    assert not store.worker_heartbeat("w1", T0 + LEASE_MS + 2)
    result = tick(store, "w1", T0 + LEASE_MS + 3, claim_limit=10)
    assert not result.worker_alive
    assert result.claimed == []
    record = store.run_get(run_id)
    assert record is not None and record.status == "QUEUED"


def test_an_unknown_or_stopped_worker_is_not_alive(store: StoreOps) -> None:
    insert(store, new_run())
    assert not tick(store, "never-registered", T0, claim_limit=1).worker_alive
    register(store, "w1")
    store.worker_stop("w1", T0 + 1)
    result = tick(store, "w1", T0 + 2, claim_limit=1)
    assert (result.worker_alive, result.claimed) == (False, [])
    assert not store.worker_heartbeat("w1", T0 + 3)


# -- starts ------------------------------------------------------------------------------


def test_a_start_moves_the_run_to_executing(store: StoreOps) -> None:
    run_id = insert(store, new_run())
    register(store, "w1")
    claimed = claim_one(store, "w1", T0)

    start(store, "w1", claimed, T0 + 3)

    record = store.run_get(run_id)
    assert record is not None
    assert (record.status, record.started_at, record.updated_at) == ("EXECUTING", T0 + 3, T0 + 3)


@pytest.mark.parametrize(("worker", "attempt"), [("w2", 1), ("w1", 2), ("w1", 0)])
def test_a_start_is_fenced_by_worker_and_attempt(
    store: StoreOps, worker: str, attempt: int
) -> None:
    run_id = insert(store, new_run())
    register(store, "w1")
    register(store, "w2")
    claim_one(store, "w1", T0)

    tick(store, worker, T0 + 3, starts=[AttemptStart(run_id, attempt, T0 + 3)])

    record = store.run_get(run_id)
    assert record is not None
    assert (record.status, record.started_at) == ("DEQUEUED", None)


def test_started_at_is_the_first_attempts_start(store: StoreOps) -> None:
    run_id = insert(store, new_run())
    register(store, "w1")
    first = claim_one(store, "w1", T0)
    start(store, "w1", first, T0 + 1)
    retry = outcome(first, 1, "w1", "QUEUED", attempt_status="FAILED", finished_at=T0 + 2)
    tick(store, "w1", T0 + 2, outcomes=[retry])
    second = claim_one(store, "w1", T0 + 3)
    start(store, "w1", second, T0 + 4)
    record = store.run_get(run_id)
    assert record is not None
    assert (record.status, record.attempt, record.started_at) == ("EXECUTING", 2, T0 + 1)


# -- outcomes ------------------------------------------------------------------------------


@pytest.fixture
def executing(store: StoreOps) -> str:
    """A run claimed by w1 (attempt 1) and started at T0 + 1; w2 is another live worker."""
    run_id = insert(store, new_run(idempotency_key="k", idempotency_expires_at=T0 + 10**9))
    register(store, "w1")
    register(store, "w2")
    start(store, "w1", claim_one(store, "w1", T0), T0 + 1)
    return run_id


def test_success_completes_the_run(store: StoreOps, executing: str) -> None:
    done = outcome(
        executing, 1, "w1", "COMPLETED", finished_at=T0 + 50, started_at=T0 + 1, output=b'{"x":1}'
    )
    result = tick(store, "w1", T0 + 50, outcomes=[done])

    assert (result.applied, result.rejected) == ([executing], [])
    record = store.run_get(executing)
    assert record is not None
    assert (record.status, record.output, record.error) == ("COMPLETED", b'{"x":1}', None)
    assert (record.finished_at, record.updated_at, record.attempt) == (T0 + 50, T0 + 50, 1)
    assert record.idempotency_key == "k"
    assert store.attempt_list(executing) == [
        AttemptRecord(executing, 1, "COMPLETED", "w1", T0 + 1, T0 + 50, None)
    ]


def test_final_failure_fails_the_run_and_may_clear_its_key(store: StoreOps, executing: str) -> None:
    error = b'{"type":"Error","message":"bad"}'
    failed = outcome(
        executing,
        1,
        "w1",
        "FAILED",
        finished_at=T0 + 50,
        started_at=T0 + 1,
        error=error,
        clear_idempotency_key=True,
    )
    assert tick(store, "w1", T0 + 50, outcomes=[failed]).applied == [executing]

    record = store.run_get(executing)
    assert record is not None
    assert (record.status, record.error, record.finished_at) == ("FAILED", error, T0 + 50)
    assert record.idempotency_key is None
    assert store.attempt_list(executing) == [
        AttemptRecord(executing, 1, "FAILED", "w1", T0 + 1, T0 + 50, error)
    ]


def test_a_retry_requeues_the_run_for_later_and_frees_the_worker(
    store: StoreOps, executing: str
) -> None:
    error = b'{"message":"flaky"}'
    retry = outcome(
        executing,
        1,
        "w1",
        "QUEUED",
        attempt_status="FAILED",
        finished_at=T0 + 50,
        started_at=T0 + 1,
        error=error,
        retry_at=T0 + 2_050,
    )
    assert tick(store, "w1", T0 + 50, outcomes=[retry]).applied == [executing]

    record = store.run_get(executing)
    assert record is not None
    assert (record.status, record.worker_id, record.finished_at) == ("QUEUED", None, None)
    assert (record.available_at, record.attempt, record.error) == (T0 + 2_050, 1, error)
    assert record.idempotency_key == "k"
    assert [(a.number, a.status, a.error) for a in store.attempt_list(executing)] == [
        (1, "FAILED", error)
    ]
    assert claim(store, "w2", T0 + 2_049) == []
    again = claim_one(store, "w2", T0 + 2_050)
    assert (again.id, again.attempt) == (executing, 2)


def test_a_released_outcome_does_not_use_an_attempt(store: StoreOps, executing: str) -> None:
    released = outcome(
        executing, 1, "w1", "QUEUED", finished_at=T0 + 50, released=True, retry_at=T0 + 60
    )
    assert tick(store, "w1", T0 + 50, outcomes=[released]).applied == [executing]

    record = store.run_get(executing)
    assert record is not None
    assert (record.status, record.worker_id, record.attempt) == ("QUEUED", None, 0)
    assert store.attempt_list(executing) == []
    assert claim_one(store, "w2", T0 + 60).attempt == 1


@pytest.mark.parametrize(
    ("worker", "attempt"), [("w2", 1), ("w1", 2), ("w1", 0)], ids=["other-worker", "ahead", "old"]
)
def test_outcomes_are_fenced_by_worker_and_attempt(
    store: StoreOps, executing: str, worker: str, attempt: int
) -> None:
    before = store.run_get(executing)
    wrong = outcome(executing, attempt, worker, "COMPLETED", finished_at=T0 + 9, output=b"1")

    result = tick(store, worker, T0 + 9, outcomes=[wrong])

    assert (result.applied, result.rejected) == ([], [executing])
    after = store.run_get(executing)
    assert after is not None and before is not None
    assert (after.status, after.output, after.worker_id) == ("EXECUTING", None, "w1")
    assert store.attempt_list(executing) == []


def test_an_outcome_for_a_missing_run_is_rejected(store: StoreOps) -> None:
    register(store, "w1")
    late = outcome("run_MISSING", 1, "w1", "COMPLETED", finished_at=T0)
    assert tick(store, "w1", T0, outcomes=[late]).rejected == ["run_MISSING"]


def test_a_duplicate_outcome_is_applied_once(store: StoreOps, executing: str) -> None:
    done = outcome(executing, 1, "w1", "COMPLETED", finished_at=T0 + 5, output=b"1")
    assert tick(store, "w1", T0 + 5, outcomes=[done]).applied == [executing]
    again = outcome(executing, 1, "w1", "FAILED", finished_at=T0 + 6, error=b'{"m":"x"}')
    assert tick(store, "w1", T0 + 6, outcomes=[again]).rejected == [executing]
    record = store.run_get(executing)
    assert record is not None
    assert (record.status, record.output, record.finished_at) == ("COMPLETED", b"1", T0 + 5)
    assert [a.status for a in store.attempt_list(executing)] == ["COMPLETED"]


def test_two_outcomes_for_one_attempt_in_one_tick_apply_once(
    store: StoreOps, executing: str
) -> None:
    # A batch may carry a resent outcome next to the original: only the first counts.
    done = outcome(executing, 1, "w1", "COMPLETED", finished_at=T0 + 5, output=b"1")
    resent = outcome(executing, 1, "w1", "FAILED", finished_at=T0 + 6, error=b'{"m":"x"}')

    result = tick(store, "w1", T0 + 6, outcomes=[done, resent])

    assert (result.applied, result.rejected) == ([executing], [executing])
    record = store.run_get(executing)
    assert record is not None
    assert (record.status, record.output, record.error) == ("COMPLETED", b"1", None)
    assert [(a.status, a.finished_at) for a in store.attempt_list(executing)] == [
        ("COMPLETED", T0 + 5)
    ]


def test_a_stale_outcome_does_not_shadow_the_right_one_in_the_same_tick(
    store: StoreOps, executing: str
) -> None:
    stale = outcome(executing, 0, "w1", "FAILED", finished_at=T0 + 5)
    done = outcome(executing, 1, "w1", "COMPLETED", finished_at=T0 + 6, output=b"1")
    result = tick(store, "w1", T0 + 6, outcomes=[stale, done])
    assert (result.applied, result.rejected) == ([executing], [executing])
    record = store.run_get(executing)
    assert record is not None and record.status == "COMPLETED"


def test_one_rescue_batch_with_a_duplicate_applies_once(store: StoreOps, executing: str) -> None:
    crash = outcome(executing, 1, "w1", "QUEUED", attempt_status="CRASHED", finished_at=T0 + 9)
    assert store.attempts_finish([crash, crash]) == [executing]
    assert [a.status for a in store.attempt_list(executing)] == ["CRASHED"]


def test_one_tick_applies_several_outcomes_and_claims_after_them(store: StoreOps) -> None:
    register(store, "w1")
    ids = [insert(store, new_run(now=T0 + i)) for i in range(3)]
    claimed = claim(store, "w1", T0 + 10, limit=2)
    assert [c.id for c in claimed] == ids[:2]
    outcomes = [
        outcome(claimed[0], 1, "w1", "COMPLETED", finished_at=T0 + 20, output=b"0"),
        outcome(claimed[1], 1, "w1", "QUEUED", attempt_status="FAILED", finished_at=T0 + 20),
        outcome(ids[2], 1, "w1", "COMPLETED", finished_at=T0 + 20),  # not held: rejected
    ]

    result = tick(store, "w1", T0 + 20, outcomes=outcomes, claim_limit=5)

    assert (result.applied, result.rejected) == (ids[:2], [ids[2]])
    # The retried run (available at once) and the never-claimed one are claimed again.
    assert sorted((c.id, c.attempt) for c in result.claimed) == sorted([(ids[1], 2), (ids[2], 1)])


# -- events ------------------------------------------------------------------------------


def test_events_are_appended_in_order_and_paged(store: StoreOps, executing: str) -> None:
    # The claim and the start journaled the run's status changes first.
    journaled = store.event_list(executing)
    assert [e.kind for e in journaled] == ["status", "status"]
    since = journaled[-1].id
    other = insert(store, new_run())
    tick(
        store,
        "w1",
        T0 + 2,
        events=[
            NewEvent(executing, 1, T0 + 2, "log", b'{"line":1}'),
            NewEvent(other, None, T0 + 2, "log", b'{"line":"x"}'),
            NewEvent(executing, 1, T0 + 3, "span", b'{"line":2}'),
        ],
    )
    store.events_append([NewEvent(executing, None, T0 + 4, "cancel", b"{}")])
    store.events_append([])

    events = store.event_list(executing, after_id=since)
    assert [(e.attempt, e.ts, e.kind, e.data) for e in events] == [
        (1, T0 + 2, "log", b'{"line":1}'),
        (1, T0 + 3, "span", b'{"line":2}'),
        (None, T0 + 4, "cancel", b"{}"),
    ]
    assert all(e.run_id == executing for e in events)
    assert [e.id for e in events] == sorted(e.id for e in events)
    assert store.event_list(executing, after_id=events[0].id) == events[1:]
    assert store.event_list(executing, after_id=since, limit=2) == events[:2]
    assert store.event_list(executing, after_id=events[-1].id) == []
    assert [e.kind for e in store.event_list(other)] == ["log"]


def test_a_tick_with_a_rejected_outcome_still_appends_its_events(
    store: StoreOps, executing: str
) -> None:
    since = store.event_list(executing)[-1].id
    wrong = outcome(executing, 1, "w2", "COMPLETED", finished_at=T0 + 9)
    tick(
        store,
        "w2",
        T0 + 9,
        outcomes=[wrong],
        events=[NewEvent(executing, 1, T0 + 9, "log", b"{}")],
    )
    # The log is appended; the rejected outcome journals no status change.
    assert [e.kind for e in store.event_list(executing, after_id=since)] == ["log"]


# -- lapsed leases and rescue ------------------------------------------------------------------


def test_lapsed_attempts_are_those_of_workers_without_a_recent_heartbeat(store: StoreOps) -> None:
    register(store, "w1", now=T0)
    register(store, "w2", now=T0)
    held_by_w1 = insert(store, new_run())
    first = claim_one(store, "w1", T0)
    start(store, "w1", first, T0 + 1)
    held_by_w2 = insert(store, new_run())
    claim_one(store, "w2", T0 + 2)
    insert(store, new_run())  # queued: nobody holds it

    tick(store, "w2", T0 + 20_000)  # w2 keeps heartbeating, w1 went quiet at T0 + 1
    now = T0 + 1 + LEASE_MS + 1

    lapsed = store.attempts_lapsed(now, LEASE_MS, 100)

    assert lapsed == [
        LapsedAttempt(held_by_w1, 1, "w1", "store-task", 3, bytes(first.retry), T0 + 1),
    ]
    assert held_by_w2 not in {item.run_id for item in lapsed}
    assert store.attempts_lapsed(T0 + 1 + LEASE_MS, LEASE_MS, 100) == []  # not yet


def test_lapsed_attempts_include_dead_workers_and_respect_the_limit(store: StoreOps) -> None:
    register(store, "w1", now=T0)
    for _ in range(3):
        insert(store, new_run())
    claim(store, "w1", T0, limit=3)
    store.workers_reap(T0 + LEASE_MS + 1, LEASE_MS)
    assert len(store.attempts_lapsed(T0 + LEASE_MS + 1, LEASE_MS, 2)) == 2
    assert len(store.attempts_lapsed(T0 + LEASE_MS + 1, LEASE_MS, 10)) == 3


def test_rescue_records_a_crash_and_a_late_outcome_is_rejected(store: StoreOps) -> None:
    run_id = insert(store, new_run())
    register(store, "w1", now=T0)
    register(store, "w2", now=T0)
    first = claim_one(store, "w1", T0)
    start(store, "w1", first, T0 + 1)
    now = T0 + LEASE_MS + 10
    tick(store, "w2", now)
    assert store.workers_reap(now, LEASE_MS) == ["w1"]
    [lapsed] = store.attempts_lapsed(now, LEASE_MS, 10)
    crash_error = b'{"type":"TaskRunCrashedError","message":"w1 stopped heartbeating"}'
    rescue = outcome(
        lapsed.run_id,
        lapsed.attempt,
        lapsed.worker_id,
        "QUEUED",
        attempt_status="CRASHED",
        finished_at=now,
        started_at=lapsed.started_at,
        error=crash_error,
        retry_at=now + 1_000,
    )

    assert store.attempts_finish([rescue]) == [run_id]
    assert store.attempts_finish([]) == []

    record = store.run_get(run_id)
    assert record is not None
    assert (record.status, record.worker_id, record.available_at) == ("QUEUED", None, now + 1_000)
    assert store.attempt_list(run_id) == [
        AttemptRecord(run_id, 1, "CRASHED", "w1", T0 + 1, now, crash_error)
    ]
    assert store.attempts_lapsed(now, LEASE_MS, 10) == []
    # The old worker wakes up and reports: too late, before and after the run is re-claimed.
    late = outcome(first, 1, "w1", "COMPLETED", finished_at=now + 5, output=b"late")
    assert tick(store, "w1", now + 5, outcomes=[late]).rejected == [run_id]
    second = claim_one(store, "w2", now + 1_000)
    assert second.attempt == 2
    assert tick(store, "w1", now + 1_001, outcomes=[late]).rejected == [run_id]
    record = store.run_get(run_id)
    assert record is not None
    assert (record.status, record.worker_id, record.output) == ("DEQUEUED", "w2", None)
    # A second rescue decision for the same attempt changes nothing either.
    assert store.attempts_finish([rescue]) == []


def test_rescue_on_the_last_attempt_crashes_the_run(store: StoreOps) -> None:
    run_id = insert(store, new_run(max_attempts=1, idempotency_key="k"))
    register(store, "w1", now=T0)
    claim_one(store, "w1", T0)
    now = T0 + LEASE_MS + 1
    [lapsed] = store.attempts_lapsed(now, LEASE_MS, 10)
    crashed = outcome(
        lapsed.run_id,
        lapsed.attempt,
        lapsed.worker_id,
        "CRASHED",
        finished_at=now,
        error=b'{"m":"dead"}',
        clear_idempotency_key=True,
    )
    assert store.attempts_finish([crashed]) == [run_id]
    record = store.run_get(run_id)
    assert record is not None
    assert (record.status, record.finished_at, record.idempotency_key) == ("CRASHED", now, None)
    assert store.attempts_lapsed(now, LEASE_MS, 10) == []
    late = outcome(run_id, 1, "w1", "COMPLETED", finished_at=now + 1)
    assert tick(store, "w1", now + 1, outcomes=[late]).rejected == [run_id]


# -- release ------------------------------------------------------------------------------


def test_release_puts_held_runs_back_without_using_an_attempt(store: StoreOps) -> None:
    register(store, "w1")
    register(store, "w2")
    mine = [insert(store, new_run(now=T0 + i)) for i in range(2)]
    claimed = claim(store, "w1", T0 + 5, limit=2)
    start(store, "w1", claimed[0], T0 + 6)  # one executing, one only dequeued
    theirs = insert(store, new_run(now=T0 + 7))
    claim_one(store, "w2", T0 + 8)
    queued = insert(store, new_run(now=T0 + 9))

    released = store.runs_release("w1", [*mine, theirs, queued, "run_MISSING"], T0 + 10)

    assert released == mine
    for run_id in mine:
        record = store.run_get(run_id)
        assert record is not None
        assert (record.status, record.worker_id, record.attempt) == ("QUEUED", None, 0)
        assert store.attempt_list(run_id) == []
    other = store.run_get(theirs)
    assert other is not None and (other.status, other.worker_id) == ("DEQUEUED", "w2")
    again = claim(store, "w2", T0 + 11, limit=5)
    assert sorted((c.id, c.attempt) for c in again) == sorted(
        [(mine[0], 1), (mine[1], 1), (queued, 1)]
    )


def test_events_after_tails_every_run_in_order(store: StoreOps, executing: str) -> None:
    other = insert(store, new_run())
    start = store.store.read(lambda s: s.event_last_id())
    tick(
        store,
        "w1",
        T0 + 2,
        events=[
            NewEvent(other, None, T0 + 2, "log", b"{}"),
            NewEvent(executing, 1, T0 + 2, "log", b"{}"),
        ],
    )
    tailed = store.store.read(lambda s: s.events_after(start, 10))
    assert [e.run_id for e in tailed] == [other, executing]
    assert store.store.read(lambda s: s.event_last_id()) == tailed[-1].id
    assert store.store.read(lambda s: s.events_after(tailed[0].id, 10)) == tailed[1:]
    assert store.store.read(lambda s: s.events_after(start, 1)) == tailed[:1]
