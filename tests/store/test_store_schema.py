"""StoreOps: migrations, durability across close/reopen, and behaviour under a held write lock."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from storekit import T0, StoreFactory, insert, new_run, register

from storeops import StoreOps
from taskloom.errors import StoreBusyError
from taskloom.store.migrate import load_migrations
from taskloom.store.records import RunFilter, TaskDefinitionRecord, WorkerTick


def test_migrate_applies_every_migration_once(store_factory: StoreFactory) -> None:
    migrations = load_migrations(store_factory.backend.dialect)
    store = store_factory.open()

    assert store.schema_version() == 0
    applied = store.migrate()

    assert applied == [f"{m.version:04d}_{m.name}" for m in migrations]
    assert applied[0] == "0001_initial"
    assert store.schema_version() == migrations[-1].version
    assert store.migrate() == []
    assert store.schema_version() == migrations[-1].version


def test_migrate_from_a_second_connection_is_a_no_op(store_factory: StoreFactory) -> None:
    first = store_factory.open()
    first.migrate()
    run_id = insert(first, new_run())

    second = store_factory.open()
    assert second.migrate() == []
    assert second.schema_version() == first.schema_version()
    assert second.run_get(run_id) is not None


def test_everything_written_survives_close_and_reopen(store_factory: StoreFactory) -> None:
    store = store_factory.open()
    store.migrate()
    run_id = insert(store, new_run(tags=b'["kept"]'))
    register(store, "w-durable")
    store.task_catalog_upsert([TaskDefinitionRecord("t-durable", b"{}", None, T0)])
    assert store.leader_elect("maintenance", "w-durable", T0, 60_000)
    store.close()

    # The same object reconnects on next use...
    assert store.run_get(run_id) is not None
    store.close()
    # ...and a brand-new one sees the same data.
    reopened = store_factory.open()
    record = reopened.run_get(run_id)
    assert record is not None
    assert record.tags == b'["kept"]'
    assert reopened.task_catalog_get("t-durable") is not None
    assert [r.id for r in reopened.run_list(RunFilter(tag="kept"))] == [run_id]
    assert not reopened.leader_elect("maintenance", "someone-else", T0 + 1, 60_000)
    assert reopened.worker_heartbeat("w-durable", T0 + 1)


def test_write_gives_up_with_store_busy_error_and_writes_nothing(
    store_factory: StoreFactory, store: StoreOps
) -> None:
    impatient = store_factory.open(busy_timeout_ms=50)
    impatient.migrate()
    run = new_run()

    with store_factory.hold_write_lock():
        began = time.monotonic()
        with pytest.raises(StoreBusyError, match="50 ms") as raised:
            impatient.run_insert(run, T0)
        waited = time.monotonic() - began
    assert "nothing was written" in str(raised.value)
    assert waited >= 0.05  # it retried for the whole busy timeout before giving up
    assert waited < 5  # ...and not for the default one

    assert store.run_get(run.id) is None
    assert impatient.run_get(run.id) is None
    # Once the lock is gone the same store writes normally.
    assert impatient.run_insert(run, T0).created
    assert store.run_get(run.id) is not None


BUSY_WRITES: dict[str, Callable[[StoreOps, str], object]] = {
    "run_cancel": lambda s, run_id: s.run_cancel(run_id, T0, "busy"),
    "runs_promote_delayed": lambda s, run_id: s.runs_promote_delayed(T0, 10),
    "runs_expire": lambda s, run_id: s.runs_expire(T0, 10),
    "worker_heartbeat": lambda s, run_id: s.worker_heartbeat("w-busy", T0),
    "worker_tick": lambda s, run_id: s.worker_tick(WorkerTick("w-busy", T0, claim_limit=5)),
    "runs_release": lambda s, run_id: s.runs_release("w-busy", [run_id], T0),
    "leader_elect": lambda s, run_id: s.leader_elect("x", "w-busy", T0, 1000),
}


@pytest.mark.parametrize("write", sorted(BUSY_WRITES))
def test_every_writer_raises_store_busy_error_while_locked(
    store_factory: StoreFactory, store: StoreOps, write: str
) -> None:
    impatient = store_factory.open(busy_timeout_ms=20)
    run_id = insert(store, new_run())
    register(store, "w-busy")

    with store_factory.hold_write_lock(), pytest.raises(StoreBusyError):
        BUSY_WRITES[write](impatient, run_id)

    record = store.run_get(run_id)
    assert record is not None
    assert (record.status, record.worker_id, record.attempt) == ("QUEUED", None, 0)
