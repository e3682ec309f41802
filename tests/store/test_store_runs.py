"""StoreOps: inserting, reading, listing, cancelling, rescheduling, promoting and expiring runs."""

from __future__ import annotations

import msgspec
import orjson
import pytest
from storekit import (
    T0,
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
from taskloom.store.records import NewRun, RunFilter, RunRecord

# NewRun fields a RunRecord does not carry back (checked through the claim instead).
NOT_ON_RECORD = {"sort_key"}


def full_run() -> NewRun:
    """A run with every field set to a distinctive non-default value."""
    return NewRun(
        id=new_id("run"),
        task_id="round-trip",
        queue="emails",
        status="DELAYED",
        payload='{"msg":"héllo ✓","n":[1,2.5,null]}'.encode(),
        max_attempts=7,
        retry=b'{"max_attempts":7,"factor":1.5}',
        machine="large-2x",
        created_at=T0,
        queue_ts=T0 + 60_000,
        sort_key=T0 + 60_000 - 2_500,
        available_at=T0 + 60_000,
        concurrency_key="tenant-42",
        max_duration=300,
        ttl_ms=90_000,
        priority_ms=2_500,
        delay_until=T0 + 60_000,
        expires_at=None,
        idempotency_key="order-1",
        idempotency_expires_at=T0 + 86_400_000,
        tags=b'["user:1","vip"]',
        metadata=b'{"progress":0.5,"nested":{"a":[1]}}',
        parent_run_id="run_PARENT",
        root_run_id="run_ROOT",
        depth=2,
        batch_id="batch_1",
        is_test=True,
        replayed_from="run_ORIGINAL",
    )


def assert_matches(record: RunRecord, run: NewRun) -> None:
    for field in msgspec.structs.fields(NewRun):
        if field.name in NOT_ON_RECORD:
            continue
        assert getattr(record, field.name) == getattr(run, field.name), field.name


# -- insert and get ------------------------------------------------------------------


def test_insert_then_get_round_trips_every_field(store: StoreOps) -> None:
    run = full_run()
    result = store.run_insert(run, T0 + 5)

    assert (result.run_id, result.created) == (run.id, True)
    record = store.run_get(run.id)
    assert record is not None
    assert_matches(record, run)
    # What the store itself sets on a new run.
    assert record.output is None
    assert record.error is None
    assert record.attempt == 0
    assert record.worker_id is None
    assert record.updated_at == T0 + 5
    assert record.started_at is None
    assert record.finished_at is None
    assert isinstance(record.is_test, bool)
    assert isinstance(record.tags, bytes)


def test_insert_round_trips_a_minimal_run(store: StoreOps) -> None:
    run = new_run()
    insert(store, run)
    record = store.run_get(run.id)
    assert record is not None
    assert_matches(record, run)
    assert record.tags is None
    assert record.metadata is None
    assert record.is_test is False


def test_sort_key_is_stored_and_returned_by_the_claim(store: StoreOps) -> None:
    run = msgspec.structs.replace(full_run(), status="QUEUED", available_at=T0)
    insert(store, run)
    register(store, "w1")
    claimed = claim_one(store, "w1", T0)
    assert claimed.sort_key == run.sort_key
    assert (claimed.concurrency_key, claimed.machine, bytes(claimed.payload)) == (
        run.concurrency_key,
        run.machine,
        run.payload,
    )


def test_get_of_a_missing_run_is_none(store: StoreOps) -> None:
    assert store.run_get("run_DOESNOTEXIST") is None


# -- list ----------------------------------------------------------------------------


@pytest.fixture
def listed(store: StoreOps) -> dict[str, str]:
    """Six runs, oldest first, with different tasks, statuses, tags and creation times."""
    runs = {
        "a1": new_run(task_id="alpha", now=T0, tags=b'["red","blue"]'),
        "b1": new_run(task_id="beta", now=T0 + 10, tags=b'["red"]'),
        "a2": new_run(task_id="alpha", now=T0 + 20, delay_until=T0 + 99_000),
        "c1": new_run(task_id="gamma", now=T0 + 30, tags=b'["reddish"]'),
        "a3": new_run(task_id="alpha", now=T0 + 40, tags=b'["blue"]'),
        "b2": new_run(task_id="beta", now=T0 + 50),
    }
    ids = {name: insert(store, run) for name, run in runs.items()}
    assert store.run_cancel(ids["b2"], T0 + 60, "test") == "QUEUED"
    return ids


def names(ids: dict[str, str], records: list[RunRecord]) -> list[str]:
    by_id = {run_id: name for name, run_id in ids.items()}
    return [by_id[r.id] for r in records]


def test_list_is_newest_first(store: StoreOps, listed: dict[str, str]) -> None:
    assert names(listed, store.run_list(RunFilter())) == ["b2", "a3", "c1", "a2", "b1", "a1"]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (RunFilter(statuses=("DELAYED",)), ["a2"]),
        (RunFilter(statuses=("CANCELED", "DELAYED")), ["b2", "a2"]),
        (RunFilter(statuses=("COMPLETED",)), []),
        (RunFilter(task_ids=("alpha",)), ["a3", "a2", "a1"]),
        (RunFilter(task_ids=("beta", "gamma")), ["b2", "c1", "b1"]),
        (RunFilter(tag="red"), ["b1", "a1"]),  # an exact tag: "reddish" does not match
        (RunFilter(tag="blue"), ["a3", "a1"]),
        (RunFilter(tag="re"), []),
        (RunFilter(since_ms=T0 + 30), ["b2", "a3", "c1"]),
        (RunFilter(limit=2), ["b2", "a3"]),
        (RunFilter(task_ids=("alpha",), tag="blue", since_ms=T0 + 1), ["a3"]),
        (RunFilter(statuses=("QUEUED",), task_ids=("beta",)), ["b1"]),
    ],
)
def test_list_filters(
    store: StoreOps, listed: dict[str, str], filters: RunFilter, expected: list[str]
) -> None:
    assert names(listed, store.run_list(filters)) == expected


def test_list_pages_with_before_id(store: StoreOps, listed: dict[str, str]) -> None:
    pages: list[list[str]] = []
    before: str | None = None
    while True:
        page = store.run_list(RunFilter(before_id=before, limit=4))
        if not page:
            break
        pages.append(names(listed, page))
        before = page[-1].id
    assert pages == [["b2", "a3", "c1", "a2"], ["b1", "a1"]]
    assert names(listed, store.run_list(RunFilter(before_id=listed["c1"]))) == ["a2", "b1", "a1"]


# -- cancel ----------------------------------------------------------------------------


@pytest.mark.parametrize("delayed", [False, True], ids=["queued", "delayed"])
def test_cancel_of_an_unclaimed_run(store: StoreOps, delayed: bool) -> None:
    run = new_run(delay_until=T0 + 60_000 if delayed else None, idempotency_key="k")
    insert(store, run)

    assert store.run_cancel(run.id, T0 + 7, "no longer needed") == run.status
    record = store.run_get(run.id)
    assert record is not None
    assert record.status == "CANCELED"
    assert record.finished_at == T0 + 7
    assert record.error is not None
    assert b"no longer needed" in record.error
    assert record.idempotency_key == "k"  # cancelled runs keep their key
    # A cancelled run is never claimed or promoted.
    register(store, "w1")
    assert store.runs_promote_delayed(T0 + 120_000, 10) == 0
    assert claim(store, "w1", T0 + 120_000) == []


def test_cancel_reason_is_json_escaped(store: StoreOps) -> None:
    run_id = insert(store, new_run())
    store.run_cancel(run_id, T0, 'said "stop"\nnow \\ please')
    record = store.run_get(run_id)
    assert record is not None and record.error is not None
    assert orjson.loads(record.error)["message"] == 'said "stop"\nnow \\ please'


@pytest.mark.parametrize("started", [False, True], ids=["dequeued", "executing"])
def test_cancel_of_a_claimed_run_signals_its_worker(store: StoreOps, started: bool) -> None:
    run_id = insert(store, new_run())
    register(store, "w1")
    register(store, "w2")
    claimed = claim_one(store, "w1", T0)
    if started:
        start(store, "w1", claimed, T0 + 1)

    previous = store.run_cancel(run_id, T0 + 2, "user pressed cancel")

    assert previous == ("EXECUTING" if started else "DEQUEUED")
    record = store.run_get(run_id)
    assert record is not None
    assert record.status == "CANCELED"
    # Only the holder gets the signal, only when it reads signals, and only once.
    assert tick(store, "w2", T0 + 3, read_signals=True).signals == []
    assert tick(store, "w1", T0 + 3).signals == []
    signals = tick(store, "w1", T0 + 4, read_signals=True).signals
    assert [(s.run_id, s.kind, s.reason) for s in signals] == [
        (run_id, "cancel", "user pressed cancel")
    ]
    assert tick(store, "w1", T0 + 5, read_signals=True).signals == []


def test_outcome_of_a_cancelled_attempt_is_recorded_without_changing_the_run(
    store: StoreOps,
) -> None:
    run_id = insert(store, new_run())
    register(store, "w1")
    claimed = claim_one(store, "w1", T0)
    start(store, "w1", claimed, T0 + 1)
    store.run_cancel(run_id, T0 + 2, "stop")

    result = tick(
        store,
        "w1",
        T0 + 3,
        outcomes=[
            outcome(
                claimed, 1, "w1", "COMPLETED", finished_at=T0 + 3, output=b"1", started_at=T0 + 1
            )
        ],
    )

    assert result.applied == [run_id]
    record = store.run_get(run_id)
    assert record is not None
    assert (record.status, record.output, record.finished_at) == ("CANCELED", None, T0 + 2)
    assert [(a.number, a.status) for a in store.attempt_list(run_id)] == [(1, "COMPLETED")]


@pytest.mark.parametrize("final", ["COMPLETED", "FAILED", "CRASHED", "EXPIRED", "CANCELED"])
def test_cancel_of_a_final_run_changes_nothing(store: StoreOps, final: str) -> None:
    run_id = insert(store, new_run(ttl_ms=1000))
    register(store, "w1")
    if final == "EXPIRED":
        assert store.runs_expire(T0 + 1000, 10) == [run_id]
    elif final == "CANCELED":
        store.run_cancel(run_id, T0 + 1, "first")
    else:
        claimed = claim_one(store, "w1", T0)
        tick(store, "w1", T0 + 1, outcomes=[outcome(claimed, 1, "w1", final, finished_at=T0 + 1)])
    before = store.run_get(run_id)
    assert before is not None and before.status == final

    assert store.run_cancel(run_id, T0 + 5_000, "too late") == final
    assert store.run_get(run_id) == before
    assert tick(store, "w1", T0 + 5_001, read_signals=True).signals == []


def test_cancel_of_a_missing_run_is_none(store: StoreOps) -> None:
    assert store.run_cancel("run_MISSING", T0, "x") is None


# -- reschedule and promote --------------------------------------------------------------


def test_reschedule_moves_a_delayed_run(store: StoreOps) -> None:
    run = new_run(delay_until=T0 + 60_000, priority_ms=1_000)
    insert(store, run)

    assert store.run_reschedule(run.id, T0 + 5_000, T0 + 10)
    record = store.run_get(run.id)
    assert record is not None
    assert record.status == "DELAYED"
    assert (record.delay_until, record.queue_ts, record.available_at) == (T0 + 5_000,) * 3
    assert record.updated_at == T0 + 10
    assert store.run_next_due(T0 + 10) == T0 + 5_000

    assert store.runs_promote_delayed(T0 + 4_999, 10) == 0
    assert store.runs_promote_delayed(T0 + 5_000, 10) == 1
    register(store, "w1")
    assert claim_one(store, "w1", T0 + 5_000).sort_key == T0 + 5_000 - 1_000


@pytest.mark.parametrize("status", ["QUEUED", "DEQUEUED", "COMPLETED", "CANCELED"])
def test_reschedule_is_refused_unless_delayed(store: StoreOps, status: str) -> None:
    run_id = insert(store, new_run())
    register(store, "w1")
    if status != "QUEUED":
        claimed = claim_one(store, "w1", T0)
        if status == "COMPLETED":
            tick(store, "w1", T0, outcomes=[outcome(claimed, 1, "w1", status, finished_at=T0)])
        elif status == "CANCELED":
            store.run_cancel(run_id, T0, "x")
    before = store.run_get(run_id)
    assert before is not None and before.status == status

    assert not store.run_reschedule(run_id, T0 + 50_000, T0 + 1)
    assert store.run_get(run_id) == before
    assert not store.run_reschedule("run_MISSING", T0 + 50_000, T0 + 1)


def test_promote_moves_only_due_delayed_runs_into_their_queue(store: StoreOps) -> None:
    due = new_run(delay_until=T0 + 1_000, priority_ms=300, ttl_ms=20_000)
    also_due = new_run(delay_until=T0 + 2_000)
    later = new_run(delay_until=T0 + 9_000, ttl_ms=5_000)
    queued = new_run(ttl_ms=50_000)
    for run in (due, also_due, later, queued):
        insert(store, run)

    assert store.runs_promote_delayed(T0 + 2_500, 100) == 2

    promoted = store.run_get(due.id)
    assert promoted is not None
    assert promoted.status == "QUEUED"
    assert promoted.queue_ts == T0 + 1_000  # its place in line is its delay, not the promotion
    assert promoted.available_at == T0 + 1_000
    assert promoted.expires_at == T0 + 2_500 + 20_000  # the TTL counts from entering the queue
    plain = store.run_get(also_due.id)
    assert plain is not None
    assert (plain.status, plain.expires_at) == ("QUEUED", None)
    waiting = store.run_get(later.id)
    assert waiting is not None
    assert (waiting.status, waiting.expires_at) == ("DELAYED", None)
    untouched = store.run_get(queued.id)
    assert untouched is not None
    assert untouched.expires_at == T0 + 50_000

    register(store, "w1")
    claimed = claim(store, "w1", T0 + 2_500)
    assert [(c.id, c.sort_key) for c in claimed] == [
        (queued.id, T0),
        (due.id, T0 + 1_000 - 300),
        (also_due.id, T0 + 2_000),
    ]


def test_promote_respects_the_limit_oldest_first(store: StoreOps) -> None:
    runs = [new_run(delay_until=T0 + 100 * i) for i in (5, 1, 3, 2, 4)]
    for run in runs:
        insert(store, run)
    assert store.runs_promote_delayed(T0 + 10_000, 2) == 2
    queued = store.run_list(RunFilter(statuses=("QUEUED",)))
    assert sorted(r.delay_until or 0 for r in queued) == [T0 + 100, T0 + 200]
    assert store.runs_promote_delayed(T0 + 10_000, 10) == 3
    assert store.runs_promote_delayed(T0 + 10_000, 10) == 0


# -- expire ------------------------------------------------------------------------------


def test_expire_ends_only_queued_runs_past_their_ttl(store: StoreOps) -> None:
    register(store, "w1")
    claimed_run = new_run(ttl_ms=1_000)
    insert(store, claimed_run)
    assert claim_one(store, "w1", T0).id == claimed_run.id
    expiring = new_run(ttl_ms=1_000, idempotency_key="k1", idempotency_expires_at=T0 + 10**9)
    not_yet = new_run(ttl_ms=5_000)
    no_ttl = new_run()
    delayed = new_run(delay_until=T0 + 500, ttl_ms=1_000)
    for run in (expiring, not_yet, no_ttl, delayed):
        insert(store, run)

    assert store.runs_expire(T0 + 999, 100) == []
    assert store.runs_expire(T0 + 1_000, 100) == [expiring.id]

    record = store.run_get(expiring.id)
    assert record is not None
    assert (record.status, record.finished_at) == ("EXPIRED", T0 + 1_000)
    assert record.idempotency_key is None  # an expired run frees its key
    for run_id, status in (
        (not_yet.id, "QUEUED"),
        (no_ttl.id, "QUEUED"),
        (delayed.id, "DELAYED"),
        (claimed_run.id, "DEQUEUED"),
    ):
        other = store.run_get(run_id)
        assert other is not None
        assert other.status == status, run_id
    # The freed key makes room for a new run with the same key.
    again = store.run_insert(with_changes(expiring, created_at=T0 + 2_000), T0 + 2_000)
    assert again.created


def test_expire_respects_the_limit(store: StoreOps) -> None:
    ids = {insert(store, new_run(ttl_ms=100)) for _ in range(5)}
    first = store.runs_expire(T0 + 100, 3)
    assert len(first) == 3
    rest = store.runs_expire(T0 + 100, 3)
    assert set(first) | set(rest) == ids
    assert len(rest) == 2


def test_a_queued_run_past_its_ttl_is_not_claimed(store: StoreOps) -> None:
    run_id = insert(store, new_run(ttl_ms=1_000))
    register(store, "w1")
    assert claim(store, "w1", T0 + 1_000) == []
    assert store.runs_expire(T0 + 1_000, 10) == [run_id]


@pytest.mark.parametrize("back_in_queue", ["retried", "released"])
def test_a_run_dequeued_before_its_ttl_never_expires(store: StoreOps, back_in_queue: str) -> None:
    """TTL limits the wait before a run is first dequeued (Trigger.dev: EXPIRED means 'TTL
    passed before the run was dequeued'). A run that waits for its retry, or that a stopping
    worker put back, was dequeued in time: it must stay claimable after the TTL."""
    run = new_run(ttl_ms=10_000, max_attempts=3)
    insert(store, run)
    register(store, "w1")
    claimed = claim_one(store, "w1", T0 + 1_000)
    after_ttl = T0 + 30_000
    if back_in_queue == "retried":
        failed = outcome(
            claimed,
            1,
            "w1",
            "QUEUED",
            attempt_status="FAILED",
            finished_at=T0 + 2_000,
            error=b'{"message":"boom"}',
            retry_at=after_ttl,
        )
        assert tick(store, "w1", T0 + 2_000, outcomes=[failed]).applied == [run.id]
    else:
        assert store.runs_release("w1", [run.id], T0 + 2_000) == [run.id]

    assert store.runs_expire(after_ttl, 10) == []
    again = claim_one(store, "w1", after_ttl)
    assert (again.id, again.attempt) == (run.id, 2 if back_in_queue == "retried" else 1)


# -- next due ----------------------------------------------------------------------------


def test_next_due_is_the_earliest_delay_or_expiry(store: StoreOps) -> None:
    assert store.run_next_due(T0) is None
    insert(store, new_run(delay_until=T0 + 9_000))
    assert store.run_next_due(T0) == T0 + 9_000
    insert(store, new_run(ttl_ms=4_000))
    assert store.run_next_due(T0) == T0 + 4_000
    insert(store, new_run(delay_until=T0 + 2_000))
    assert store.run_next_due(T0) == T0 + 2_000


def test_next_due_ignores_runs_that_are_no_longer_waiting(store: StoreOps) -> None:
    delayed = insert(store, new_run(delay_until=T0 + 2_000))
    expiring = insert(store, new_run(ttl_ms=3_000))
    store.run_cancel(delayed, T0, "x")
    assert store.run_next_due(T0) == T0 + 3_000
    assert store.runs_expire(T0 + 3_000, 10) == [expiring]
    assert store.run_next_due(T0 + 3_000) is None
