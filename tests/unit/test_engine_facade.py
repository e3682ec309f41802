"""Tests for taskloom.engine.engine: the facade over a real SQLite store and a FakeClock."""

from __future__ import annotations

import contextlib
import select
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from storeops import StoreOps
from taskloom.clock import FakeClock
from taskloom.config import Config
from taskloom.engine.engine import Engine
from taskloom.engine.events import Journal
from taskloom.engine.spec import TaskSpec
from taskloom.engine.states import InvalidTransitionError
from taskloom.engine.wake import DELAYED, RUNS_READY, SIGNAL, WakeListener
from taskloom.errors import InvalidOptionError, PayloadError, RunNotFoundError, UnknownTaskError
from taskloom.retry import Retry
from taskloom.store import SqliteStore
from taskloom.store.records import RunFilter, TaskDefinitionRecord, WorkerInfo, WorkerTick
from taskloom.types import RunStatus

T0 = 1_700_000_000_000
SPEC = TaskSpec(id="facade", queue="task/facade", retry=Retry(max_attempts=2), machine="micro")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start_ms=T0)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "taskloom.db")
    yield opened
    opened.close()


@pytest.fixture
def engine(store: SqliteStore, clock: FakeClock, tmp_path: Path) -> Iterator[Engine]:
    config = Config(project_root=tmp_path, environment="PRODUCTION", payload_limit_bytes=1_000)
    facade = Engine(store, config, clock=clock, local_specs={SPEC.id: SPEC}.get)
    yield facade
    if facade.notifier._socket is not None:  # WakeNotifier has no close()
        facade.notifier._socket.close()


@pytest.fixture
def listener(engine: Engine) -> Iterator[WakeListener]:
    """A worker's wake-up socket for the engine's database."""
    wake = WakeListener(engine.notifier.directory, "test-listener")
    yield wake
    wake.close()
    with contextlib.suppress(OSError):
        engine.notifier.directory.rmdir()


def woken(listener: WakeListener) -> set[bytes]:
    if not select.select([listener.socket], [], [], 5)[0]:
        return set()
    return listener.drain()


def test_trigger_inserts_a_run_at_the_clocks_time_and_wakes_workers(
    engine: Engine, clock: FakeClock, listener: WakeListener
) -> None:
    clock.advance(1.5)
    result = engine.trigger(SPEC, {"n": 1}, {"tags": ["a"]})

    assert result.created
    run = engine.retrieve(result.run_id)
    assert (run.task_id, run.status, run.payload, run.tags) == (
        "facade",
        RunStatus.QUEUED,
        {"n": 1},
        ["a"],
    )
    assert run.created_at.timestamp() * 1000 == T0 + 1_500
    assert (run.max_attempts, run.machine, run.queue) == (2, "micro", "task/facade")
    assert woken(listener) == {RUNS_READY}


def test_a_delayed_trigger_wakes_the_maintenance_loop(
    engine: Engine, listener: WakeListener
) -> None:
    result = engine.trigger(SPEC, None, {"delay": "5m"})
    run = engine.retrieve(result.run_id)
    assert run.status is RunStatus.DELAYED
    assert run.delay_until is not None
    assert run.delay_until.timestamp() * 1000 == T0 + 300_000
    assert woken(listener) == {DELAYED}


def test_an_idempotent_retrigger_returns_the_run_and_wakes_nobody(
    engine: Engine, listener: WakeListener
) -> None:
    first = engine.trigger(SPEC, {"n": 1}, {"idempotency_key": "k"})
    assert woken(listener) == {RUNS_READY}
    second = engine.trigger(SPEC, {"n": 2}, {"idempotency_key": "k"})
    assert (second.run_id, second.created) == (first.run_id, False)
    assert listener.drain() == set()
    assert engine.retrieve(first.run_id).payload == {"n": 1}


def test_a_bad_trigger_creates_nothing(engine: Engine) -> None:
    with pytest.raises(PayloadError, match="'facade'"):
        engine.trigger(SPEC, {"big": "x" * 2_000}, {})
    with pytest.raises(InvalidOptionError, match="max_attempts"):
        engine.trigger(SPEC, {}, {"max_attempts": 0})
    assert engine.list_runs(RunFilter()) == []


def test_resolve_spec_prefers_local_then_the_worker_catalog(
    engine: Engine, store: SqliteStore
) -> None:
    assert engine.resolve_spec("facade") is SPEC
    with pytest.raises(UnknownTaskError, match="unknown task id 'elsewhere'") as raised:
        engine.resolve_spec("elsewhere")
    assert "known tasks" not in str(raised.value)

    other = TaskSpec(id="elsewhere", queue="task/elsewhere", retry=Retry(), machine="small-1x")
    StoreOps(store).task_catalog_upsert(
        [TaskDefinitionRecord("elsewhere", other.to_json(), None, T0)]
    )
    assert engine.resolve_spec("elsewhere") == other
    with pytest.raises(UnknownTaskError, match="known tasks: elsewhere"):
        engine.resolve_spec("nowhere")


def test_cancel_returns_the_previous_status(engine: Engine, clock: FakeClock) -> None:
    run_id = engine.trigger(SPEC, None, {}).run_id
    clock.advance(2)
    assert engine.cancel(run_id, "changed my mind") is RunStatus.QUEUED
    run = engine.retrieve(run_id)
    assert run.status is RunStatus.CANCELED
    assert run.finished_at is not None
    assert run.finished_at.timestamp() * 1000 == T0 + 2_000
    assert engine.cancel(run_id) is RunStatus.CANCELED  # final: unchanged
    with pytest.raises(RunNotFoundError, match="run_MISSING"):
        engine.cancel("run_MISSING")


def test_cancelling_a_held_run_wakes_its_worker(
    engine: Engine, store: SqliteStore, listener: WakeListener
) -> None:
    run_id = engine.trigger(SPEC, None, {}).run_id
    woken(listener)
    StoreOps(store).worker_register(WorkerInfo("w1", "host", 1, 1, T0), T0)
    StoreOps(store).worker_tick(WorkerTick("w1", T0, claim_limit=1))

    assert engine.cancel(run_id) is RunStatus.DEQUEUED
    assert woken(listener) == {SIGNAL}


def test_reschedule_moves_only_delayed_runs(engine: Engine, clock: FakeClock) -> None:
    delayed = engine.trigger(SPEC, None, {"delay": "1h"}).run_id
    clock.advance(60)
    run = engine.reschedule(delayed, "10s")
    assert run.delay_until is not None
    assert run.delay_until.timestamp() * 1000 == T0 + 70_000

    queued = engine.trigger(SPEC, None, {}).run_id
    with pytest.raises(InvalidOptionError) as raised:
        engine.reschedule(queued, "10s")
    assert str(raised.value) == f"run {queued} is QUEUED; only DELAYED runs can be rescheduled"
    with pytest.raises(InvalidOptionError, match="delay of run"):
        engine.reschedule(delayed, "whenever")
    with pytest.raises(RunNotFoundError):
        engine.reschedule("run_MISSING", "10s")


def test_replay_is_a_new_run_with_the_same_payload_and_tags(
    engine: Engine, store: SqliteStore, clock: FakeClock
) -> None:
    original = engine.trigger(SPEC, {"order": 7}, {"tags": ["vip"]}).run_id
    clock.advance(10)

    replay = engine.replay(original)

    assert replay.created
    assert replay.run_id != original
    run = engine.retrieve(replay.run_id)
    assert (run.payload, run.tags, run.replayed_from) == ({"order": 7}, ["vip"], original)
    assert run.created_at.timestamp() * 1000 == T0 + 10_000
    first = StoreOps(store).run_get(original)
    again = StoreOps(store).run_get(replay.run_id)
    assert first is not None and again is not None
    assert again.payload == first.payload  # byte for byte, not re-encoded
    assert orjson.loads(again.payload or b"") == {"order": 7}


def test_retrieve_and_attempts(engine: Engine) -> None:
    with pytest.raises(RunNotFoundError, match="no run with id 'run_NOPE'"):
        engine.retrieve("run_NOPE")
    run_id = engine.trigger(SPEC, None, {}).run_id
    assert engine.attempts(run_id) == []
    assert [r.id for r in engine.list_runs(RunFilter(task_ids=("facade",)))] == [run_id]


def test_journaled_status_changes_apply_the_transition_table() -> None:
    journal = Journal(T0)
    journal.status("run_1", 1, RunStatus.QUEUED, RunStatus.DEQUEUED)
    with pytest.raises(InvalidTransitionError, match="run_1 is COMPLETED"):
        journal.status("run_1", 1, RunStatus.COMPLETED, RunStatus.QUEUED)
    assert [(e.run_id, e.kind) for e in journal.events] == [("run_1", "status")]
