"""Queues: declarations, management, and claims that respect limits, keys and pauses."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from storekit import T0, StoreFactory, claim, insert, new_run, outcome, register, tick

from storeops import StoreOps
from taskloom.store.records import QueueDeclaration, WorkerTick


def declare(store: StoreOps, name: str, limit: int | None = None, total: int | None = None) -> None:
    store.queues_declare([QueueDeclaration(name, "custom", limit, total)], T0)


def queued(
    store: StoreOps, queue: str, n: int, *, key: str | None = None, start: int = 0
) -> list[str]:
    return [
        insert(store, new_run(now=T0 + start + i, queue=queue, concurrency_key=key))
        for i in range(n)
    ]


def test_declare_keeps_overrides_and_pauses(store: StoreOps) -> None:
    declare(store, "emails", 5)
    assert store.queue_override_limit("emails", 2, T0)
    assert store.queue_set_paused("emails", True, T0)
    declare(store, "emails", 7)  # a worker restarts with a new code limit
    record = store.queue_get("emails")
    assert record is not None
    assert (record.concurrency_limit, record.limit_override, record.paused) == (7, 2, True)
    assert record.effective_limit == 2
    assert store.queue_override_limit("emails", None, T0)
    record = store.queue_get("emails")
    assert record is not None and record.effective_limit == 7
    assert not store.queue_set_paused("nope", True, T0)
    assert not store.queue_override_limit("nope", 1, T0)
    assert store.queue_get("nope") is None


def test_queue_counts(store: StoreOps) -> None:
    declare(store, "a", 1)
    declare(store, "b")
    queued(store, "a", 3)
    queued(store, "b", 2)
    worker = register(store, "w1")
    claimed = claim(store, worker, T0 + 10)
    assert Counter(run.queue for run in claimed) == {"a": 1, "b": 2}
    by_name = {q.name: q for q in store.queue_list()}
    assert (by_name["a"].running, by_name["a"].queued) == (1, 2)
    assert (by_name["b"].running, by_name["b"].queued) == (2, 0)


def test_limit_counts_only_held_runs(store: StoreOps) -> None:
    declare(store, "one", 1)
    first, second = queued(store, "one", 2)
    worker = register(store, "w1")
    [run] = claim(store, worker, T0 + 10)
    assert run.id == first
    assert claim(store, worker, T0 + 11) == []  # the slot is held
    tick(
        store,
        worker,
        T0 + 12,
        outcomes=[outcome(run, run.attempt, worker, "COMPLETED", finished_at=T0 + 12)],
    )
    [run] = claim(store, worker, T0 + 13)
    assert run.id == second


def test_limit_holds_across_workers(store_factory: StoreFactory) -> None:
    a = store_factory.open()
    a.migrate()
    b = store_factory.open()
    declare(a, "two", 2)
    queued(a, "two", 10)
    register(a, "wa")
    register(b, "wb")
    got = claim(a, "wa", T0 + 10) + claim(b, "wb", T0 + 10) + claim(a, "wa", T0 + 11)
    assert len(got) == 2


def test_concurrency_keys_get_their_own_limit_and_a_total_cap(store: StoreOps) -> None:
    declare(store, "tenants", 1, total=3)
    for key in ("t1", "t2", "t3", "t4"):
        queued(store, "tenants", 2, key=key)
    worker = register(store, "w1")
    claimed = claim(store, worker, T0 + 100)
    keys = Counter(run.concurrency_key for run in claimed)
    assert len(claimed) == 3  # total cap
    assert all(count == 1 for count in keys.values())  # each key's own limit


def test_a_big_key_does_not_starve_a_small_one(store: StoreOps) -> None:
    declare(store, "tenants", 5)
    queued(store, "tenants", 500, key="big")
    [small] = queued(store, "tenants", 1, key="small", start=1000)  # triggered last
    worker = register(store, "w1")
    claimed = claim(store, worker, T0 + 5000, limit=4)
    assert small in {run.id for run in claimed}


def test_many_unlimited_queues_are_all_served(store: StoreOps) -> None:
    for i in range(30):
        queued(store, f"q{i:02d}", 20, start=i)
    worker = register(store, "w1")
    claimed = claim(store, worker, T0 + 10_000, limit=30)
    assert len({run.queue for run in claimed}) == 30


def test_paused_queue_starts_nothing(store: StoreOps) -> None:
    declare(store, "held")
    queued(store, "held", 2)
    store.queue_set_paused("held", True, T0)
    worker = register(store, "w1")
    assert claim(store, worker, T0 + 10) == []
    store.queue_set_paused("held", False, T0)
    assert len(claim(store, worker, T0 + 11)) == 2


def test_environment_limit_caps_everything(store: StoreOps) -> None:
    queued(store, "x", 5)
    queued(store, "y", 5)
    worker = register(store, "w1")
    first = store.worker_tick(
        WorkerTick(worker_id=worker, now=T0 + 10, claim_limit=100, environment_limit=4)
    ).claimed
    again = store.worker_tick(
        WorkerTick(worker_id=worker, now=T0 + 11, claim_limit=100, environment_limit=4)
    ).claimed
    assert (len(first), len(again)) == (4, 0)


def test_override_applies_to_the_next_claim(store: StoreOps) -> None:
    declare(store, "q", 1)
    queued(store, "q", 5)
    worker = register(store, "w1")
    assert len(claim(store, worker, T0 + 10)) == 1
    store.queue_override_limit("q", 3, T0)
    assert len(claim(store, worker, T0 + 11)) == 2


def test_claims_within_one_queue_follow_priority(store: StoreOps) -> None:
    declare(store, "q")
    late_urgent = insert(store, new_run(now=T0 + 50, priority_ms=100, queue="q"))
    early = insert(store, new_run(now=T0, queue="q"))
    later = insert(store, new_run(now=T0 + 20, queue="q"))
    worker = register(store, "w1")
    assert [run.id for run in claim(store, worker, T0 + 100)] == [late_urgent, early, later]


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    limits=st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=4),
    runs=st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["", "k1", "k2"])), max_size=40),
    batches=st.lists(st.integers(1, 10), min_size=1, max_size=6),
)
def test_no_claim_ever_exceeds_a_limit(
    store_factory: StoreFactory,
    limits: list[int],
    runs: list[tuple[int, str]],
    batches: list[int],
) -> None:
    store = store_factory.fresh()
    for index, limit in enumerate(limits):
        declare(store, f"q{index}", limit)
    for n, (queue_index, key) in enumerate(runs):
        queue = f"q{queue_index % len(limits)}"
        insert(store, new_run(now=T0 + n, queue=queue, concurrency_key=key or None))
    worker = register(store, "w1")
    held: Counter[tuple[str, str | None]] = Counter()
    for batch in batches:
        for run in claim(store, worker, T0 + 1000, limit=batch):
            held[(run.queue, run.concurrency_key)] += 1
        for (queue, _key), count in held.items():
            assert count <= limits[int(queue[1:])]
