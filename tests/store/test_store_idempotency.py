"""StoreOps: idempotency keys, including many threads and many processes racing on one key."""

from __future__ import annotations

import multiprocessing
import queue
import threading
from collections import Counter

from storekit import (
    T0,
    KeyedInsert,
    StoreFactory,
    claim_one,
    insert,
    insert_keyed_in_process,
    new_run,
    outcome,
    register,
    tick,
)

from storeops import StoreOps
from taskloom.store.records import InsertResult, NewRun, RunFilter

DAY_MS = 86_400_000


def keyed(key: str, *, task_id: str = "store-task", now: int = T0, ttl_ms: int = DAY_MS) -> NewRun:
    return new_run(
        task_id=task_id, now=now, idempotency_key=key, idempotency_expires_at=now + ttl_ms
    )


def test_same_key_returns_the_existing_run(store: StoreOps) -> None:
    first = keyed("order-7")
    insert(store, first)

    second = keyed("order-7", now=T0 + 1_000)
    result = store.run_insert(second, T0 + 1_000)

    assert result == InsertResult(first.id, False)
    assert store.run_get(second.id) is None
    assert [r.id for r in store.run_list(RunFilter())] == [first.id]


def test_key_is_honoured_until_the_instant_it_expires(store: StoreOps) -> None:
    first = keyed("k", ttl_ms=5_000)
    insert(store, first)
    assert store.run_insert(keyed("k"), T0 + 4_999) == InsertResult(first.id, False)

    replacement = keyed("k", now=T0 + 5_000)
    result = store.run_insert(replacement, T0 + 5_000)

    assert result == InsertResult(replacement.id, True)
    old = store.run_get(first.id)
    assert old is not None
    assert old.idempotency_key is None  # the old run let go of the key
    new = store.run_get(replacement.id)
    assert new is not None
    assert new.idempotency_key == "k"
    # From now on the key leads to the new run.
    assert store.run_insert(keyed("k", now=T0 + 6_000), T0 + 6_000) == InsertResult(
        replacement.id, False
    )


def test_a_key_without_expiry_never_expires(store: StoreOps) -> None:
    first = new_run(idempotency_key="forever", idempotency_expires_at=None)
    insert(store, first)
    later = T0 + 10 * 365 * DAY_MS
    assert store.run_insert(keyed("forever", now=later), later) == InsertResult(first.id, False)


def test_keys_are_per_task(store: StoreOps) -> None:
    a = keyed("shared", task_id="task-a")
    b = keyed("shared", task_id="task-b")
    assert store.run_insert(a, T0).created
    assert store.run_insert(b, T0).created
    assert store.run_insert(keyed("shared", task_id="task-a"), T0) == InsertResult(a.id, False)
    assert store.run_insert(keyed("shared", task_id="task-b"), T0) == InsertResult(b.id, False)


def test_runs_without_keys_never_collide(store: StoreOps) -> None:
    ids = {insert(store, new_run()) for _ in range(3)}
    assert len(ids) == 3


def test_a_failed_run_that_clears_its_key_makes_room_for_a_new_run(store: StoreOps) -> None:
    first = keyed("retry-me")
    insert(store, first)
    register(store, "w1")
    claimed = claim_one(store, "w1", T0)
    failed = outcome(
        claimed,
        1,
        "w1",
        "FAILED",
        finished_at=T0 + 1,
        error=b'{"message":"no"}',
        clear_idempotency_key=True,
    )
    assert tick(store, "w1", T0 + 1, outcomes=[failed]).applied == [first.id]

    record = store.run_get(first.id)
    assert record is not None and record.idempotency_key is None
    again = keyed("retry-me", now=T0 + 2)
    assert store.run_insert(again, T0 + 2) == InsertResult(again.id, True)


def test_a_completed_run_keeps_its_key(store: StoreOps) -> None:
    first = keyed("done")
    insert(store, first)
    register(store, "w1")
    claimed = claim_one(store, "w1", T0)
    done = outcome(claimed, 1, "w1", "COMPLETED", finished_at=T0 + 1, output=b"1")
    tick(store, "w1", T0 + 1, outcomes=[done])
    assert store.run_insert(keyed("done", now=T0 + 2), T0 + 2) == InsertResult(first.id, False)


def _assert_one_winner(store: StoreOps, results: list[tuple[str, bool]], contenders: int) -> None:
    assert len(results) == contenders
    winners = [run_id for run_id, created in results if created]
    assert len(winners) == 1, results
    assert Counter(run_id for run_id, _ in results) == Counter({winners[0]: contenders})
    listed = store.run_list(RunFilter(task_ids=("race",)))
    assert [r.id for r in listed] == winners
    assert listed[0].idempotency_key == "race-key"


def test_concurrent_inserts_from_threads_create_one_run(
    store_factory: StoreFactory, store: StoreOps
) -> None:
    contenders = 8
    barrier = threading.Barrier(contenders)
    results: list[tuple[str, bool]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    # Each thread has its own store (its own connection), as separate callers would.
    stores = [store_factory.open() for _ in range(contenders)]

    def contend(own: StoreOps) -> None:
        try:
            run = keyed("race-key", task_id="race")
            barrier.wait(timeout=30)
            result = own.run_insert(run, T0)
            with lock:
                results.append((result.run_id, result.created))
        except BaseException as error:
            with lock:
                errors.append(error)

    threads = [threading.Thread(target=contend, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    _assert_one_winner(store, results, contenders)


def test_concurrent_inserts_through_one_shared_store_create_one_run(store: StoreOps) -> None:
    contenders = 6
    barrier = threading.Barrier(contenders)
    results: queue.Queue[tuple[str, bool]] = queue.Queue()

    def contend() -> None:
        run = keyed("race-key", task_id="race")
        barrier.wait(timeout=30)
        result = store.run_insert(run, T0)
        results.put((result.run_id, result.created))

    threads = [threading.Thread(target=contend) for _ in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    _assert_one_winner(store, [results.get_nowait() for _ in range(results.qsize())], contenders)


def test_concurrent_inserts_from_processes_create_one_run(
    store_factory: StoreFactory, store: StoreOps
) -> None:
    contenders = 4
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(contenders)
    results = context.Queue()
    job = KeyedInsert(url=store_factory.url, task_id="race", key="race-key", now=T0)
    processes = [
        context.Process(target=insert_keyed_in_process, args=(job, barrier, results))
        for _ in range(contenders)
    ]
    for process in processes:
        process.start()
    try:
        collected = [results.get(timeout=90) for _ in range(contenders)]
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
                process.join()
        results.close()
        results.join_thread()
    assert [p.exitcode for p in processes] == [0] * contenders
    _assert_one_winner(store, collected, contenders)
