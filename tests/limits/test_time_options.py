"""Delay, TTL, priority and reschedule, with an injected clock.

The engine runs over a real SQLite file with a FakeClock; the test moves time and calls
the services' `run_once()` (what a worker's service host does) and claims through
`worker_tick` (what a worker's tick does). One test at the end checks TTL expiry with a
real worker.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from taskloom import queues, runs, task, tasks
from taskloom.clock import FakeClock
from taskloom.engine.engine import Engine
from taskloom.errors import InvalidOptionError
from taskloom.runtime import registry
from taskloom.services import DelayedPromoter, TtlExpirer
from taskloom.testing import TaskloomProject, wait_for
from taskloom.types import RunStatus

from .conftest import StartWorker
from .enginekit import T0, FakeWorker, count_runs, declare, open_engine, spec, trigger
from .support import LEDGER_TASKS, Ledger

JOB = spec("timed")
MINUTE = 60_000


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start_ms=T0)


@pytest.fixture
def engine(tmp_path: Path, clock: FakeClock) -> Iterator[Engine]:
    with open_engine(tmp_path, [JOB], clock) as opened:
        declare(opened, JOB.queue)
        yield opened


def status(engine: Engine, run_id: str) -> RunStatus:
    return engine.retrieve(run_id, with_attempts=False).status


def expires_at(engine: Engine, run_id: str) -> int | None:
    record = engine.store.read(lambda s: s.run_get(run_id))
    assert record is not None
    return record.expires_at


# -- delay -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delay", "due_ms"),
    [
        ("1h30m", 90 * MINUTE),
        (90, 90_000),
        (2.5, 2_500),
        (timedelta(minutes=5), 5 * MINUTE),
        (datetime.fromtimestamp((T0 + 7 * MINUTE) / 1000, tz=UTC), 7 * MINUTE),
    ],
)
def test_a_delayed_run_enters_its_queue_when_its_delay_ends(
    engine: Engine, clock: FakeClock, delay: object, due_ms: int
) -> None:
    run_id = trigger(engine, JOB, delay=delay)
    run = engine.retrieve(run_id)
    assert run.status is RunStatus.DELAYED
    assert run.delay_until == datetime.fromtimestamp((T0 + due_ms) / 1000, tz=UTC)
    promoter = DelayedPromoter(engine)
    worker = FakeWorker(engine)

    clock.advance(ms=due_ms - 1)
    assert promoter.run_once() == 0
    assert worker.claim(10) == []  # a DELAYED run is never claimed
    assert status(engine, run_id) is RunStatus.DELAYED

    clock.advance(ms=1)
    assert promoter.run_once() == 1
    assert status(engine, run_id) is RunStatus.QUEUED
    assert [run.id for run in worker.claim(10)] == [run_id]


def test_a_delay_in_the_past_queues_at_once(engine: Engine) -> None:
    past = datetime.fromtimestamp((T0 - MINUTE) / 1000, tz=UTC)
    assert status(engine, trigger(engine, JOB, delay=past)) is RunStatus.QUEUED
    assert status(engine, trigger(engine, JOB, delay=0)) is RunStatus.QUEUED


def test_reschedule_moves_a_delayed_run_and_only_a_delayed_one(
    engine: Engine, clock: FakeClock
) -> None:
    run_id = trigger(engine, JOB, delay="1h")
    moved = engine.reschedule(run_id, "2h")
    assert moved.status is RunStatus.DELAYED
    assert moved.delay_until == datetime.fromtimestamp((T0 + 120 * MINUTE) / 1000, tz=UTC)
    promoter = DelayedPromoter(engine)
    clock.advance(3600)
    assert promoter.run_once() == 0  # the old time passed: still delayed

    target = datetime.fromtimestamp((T0 + 65 * MINUTE) / 1000, tz=UTC)
    assert engine.reschedule(run_id, target).delay_until == target  # a datetime works too
    with pytest.raises(InvalidOptionError, match=r"delay of run .*: expected"):
        engine.reschedule(run_id, "soon")
    assert engine.retrieve(run_id).delay_until == target  # a bad delay changed nothing

    clock.advance(5 * 60)
    assert promoter.run_once() == 1
    with pytest.raises(InvalidOptionError, match=r"is QUEUED; only DELAYED runs can be resch"):
        engine.reschedule(run_id, "1h")
    assert status(engine, run_id) is RunStatus.QUEUED

    cancelled = trigger(engine, JOB, delay="1h")
    engine.cancel(cancelled)
    with pytest.raises(InvalidOptionError, match="is CANCELED; only DELAYED"):
        engine.reschedule(cancelled, "2h")


# -- TTL -----------------------------------------------------------------------------------


def test_ttl_counts_from_the_trigger_for_a_run_queued_at_once(
    engine: Engine, clock: FakeClock
) -> None:
    run_id = trigger(engine, JOB, ttl="10m")
    assert expires_at(engine, run_id) == T0 + 10 * MINUTE
    expirer = TtlExpirer(engine)
    worker = FakeWorker(engine)

    clock.advance(ms=10 * MINUTE - 1)
    assert expirer.run_once() == []
    clock.advance(ms=1)
    assert worker.claim(10) == []  # past its TTL: never claimed, even before the expirer ran
    assert expirer.run_once() == [run_id]
    run = engine.retrieve(run_id)
    assert (run.status, run.attempt_count, run.started_at) == (RunStatus.EXPIRED, 0, None)
    assert run.finished_at == datetime.fromtimestamp(clock.now_ms() / 1000, tz=UTC)


def test_ttl_counts_from_when_a_delayed_run_enters_its_queue(
    engine: Engine, clock: FakeClock
) -> None:
    run_id = trigger(engine, JOB, delay="1h", ttl="10m")
    assert expires_at(engine, run_id) is None  # not counting while delayed
    promoter, expirer = DelayedPromoter(engine), TtlExpirer(engine)

    clock.advance(3600 + 120)  # the promoter runs 2 minutes late: the TTL starts then
    assert expirer.run_once() == []
    assert promoter.run_once() == 1
    entered = clock.now_ms()
    assert expires_at(engine, run_id) == entered + 10 * MINUTE

    clock.advance(ms=10 * MINUTE - 1)
    assert expirer.run_once() == []
    assert status(engine, run_id) is RunStatus.QUEUED
    clock.advance(ms=1)
    assert expirer.run_once() == [run_id]
    assert status(engine, run_id) is RunStatus.EXPIRED


def test_a_claimed_run_no_longer_expires(engine: Engine, clock: FakeClock) -> None:
    run_id = trigger(engine, JOB, ttl="1m")
    [claimed] = FakeWorker(engine).claim(1)
    clock.advance(3600)
    assert TtlExpirer(engine).run_once() == []
    assert claimed.id == run_id and status(engine, run_id) is RunStatus.EXECUTING


def test_an_expired_run_clears_its_idempotency_key(engine: Engine, clock: FakeClock) -> None:
    first = engine.trigger(JOB, None, {"idempotency_key": "nightly", "ttl": "1m"})
    again = engine.trigger(JOB, None, {"idempotency_key": "nightly", "ttl": "1m"})
    assert (again.run_id, again.created) == (first.run_id, False)

    clock.advance(61)
    TtlExpirer(engine).run_once()
    expired = engine.retrieve(first.run_id)
    assert (expired.status, expired.idempotency_key) == (RunStatus.EXPIRED, None)
    fresh = engine.trigger(JOB, None, {"idempotency_key": "nightly"})
    assert fresh.created and fresh.run_id != first.run_id


@pytest.mark.parametrize(
    ("config_ttl", "task_ttl", "trigger_ttl", "expected_ms"),
    [
        ("1h", None, None, 60 * MINUTE),
        ("1h", "10m", None, 10 * MINUTE),
        ("1h", "10m", "30s", 30_000),
        (None, None, 45, 45_000),
        ("1h", 0, None, None),  # the task's 0 disables the config's TTL
        ("1h", "10m", 0, None),  # the trigger's 0 disables the task's
        (0, "10m", None, 10 * MINUTE),
        (None, None, None, None),
    ],
)
def test_ttl_precedence_is_trigger_then_task_then_config(
    tmp_path: Path,
    clock: FakeClock,
    config_ttl: object,
    task_ttl: object,
    trigger_ttl: object,
    expected_ms: int | None,
) -> None:
    defined = task(id="ttl-precedence", run=lambda payload: None, ttl=task_ttl)
    try:
        with open_engine(tmp_path, [], clock, ttl=config_ttl) as engine:
            resolved = defined.spec_for(engine.config)
            options = {} if trigger_ttl is None else {"ttl": trigger_ttl}
            run_id = engine.trigger(resolved, None, options).run_id
            expected = None if expected_ms is None else T0 + expected_ms
            assert expires_at(engine, run_id) == expected
            assert engine.retrieve(run_id).ttl == (
                None if expected_ms is None else expected_ms / 1000
            )
    finally:
        registry.unregister("ttl-precedence")


# -- priority and queue order ---------------------------------------------------------------


def test_priority_claims_a_run_as_if_triggered_that_much_earlier(
    engine: Engine, clock: FakeClock
) -> None:
    plain = trigger(engine, JOB)
    clock.advance(1)
    urgent = trigger(engine, JOB, priority=5)  # as if triggered at T0 - 4 s
    clock.advance(1)
    slight = trigger(engine, JOB, priority=1.5)  # as if at T0 + 0.5 s
    clock.advance(1)
    worker = FakeWorker(engine)
    order = [worker.claim(1)[0].id for _ in range(3)]
    assert order == [urgent, plain, slight]


def test_a_retry_keeps_its_original_queue_timestamp(engine: Engine, clock: FakeClock) -> None:
    older = trigger(engine, JOB)
    worker = FakeWorker(engine)
    [claimed] = worker.claim(1)
    worker.fail(claimed, retry_at=clock.now_ms() + 10_000)
    clock.advance(1)
    newer = trigger(engine, JOB)
    clock.advance(5)
    assert [run.id for run in worker.claim(1)] == [newer]  # the retry is not due yet
    clock.advance(10)
    second = trigger(engine, JOB)
    [retried] = worker.claim(1)
    assert (retried.id, retried.attempt) == (older, 2)  # before `second`, triggered later
    assert [run.id for run in worker.claim(1)] == [second]


def test_a_released_run_keeps_its_place_and_is_marked_isolate(
    engine: Engine, clock: FakeClock
) -> None:
    first = trigger(engine, JOB)
    worker = FakeWorker(engine)
    [claimed] = worker.claim(1)
    clock.advance(1)
    later = trigger(engine, JOB)
    assert engine.workers.release(worker.id, [first], isolate=True) == [first]
    [again] = worker.claim(1)
    assert (again.id, again.attempt, again.isolate) == (first, 1, True)  # not charged
    assert worker.claim(1)[0].id == later
    del claimed


# -- nothing stored for bad options ---------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ttl": "ten minutes"}, r"ttl of a run of task 'timed': expected"),
        ({"ttl": -1}, r"ttl of a run of task 'timed': expected .* got -1"),
        ({"delay": "tomorrow"}, r"delay of a run of task 'timed': expected"),
        ({"delay": "2026-13-45T00:00:00Z"}, r"delay of a run of task 'timed': .*not a valid ISO"),
        ({"delay": -5}, r"delay of a run of task 'timed': expected .* got -5"),
        ({"priority": -1}, r"priority of a run of task 'timed' must be 0 or more seconds"),
        ({"priority": "high"}, r"priority of a run of task 'timed' must be a number"),
    ],
)
def test_a_bad_time_option_stores_nothing(
    engine: Engine, options: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidOptionError, match=message):
        engine.trigger(JOB, None, options)
    assert count_runs(engine) == 0


# -- with a real worker ------------------------------------------------------------------------


@pytest.mark.slow
def test_a_run_past_its_ttl_in_a_paused_queue_expires_and_never_executes(
    project: TaskloomProject, start_worker: StartWorker, ledger: Ledger
) -> None:
    project.write_task_module("ledger_tasks", LEDGER_TASKS)
    start_worker(concurrency=4)
    queues.pause("solo")
    doomed = tasks.trigger(
        "work", ledger.payload(d=0), queue="solo", ttl=1, idempotency_key="once"
    ).id
    delayed = tasks.trigger("work", ledger.payload(d=0), queue="wide", delay=0.5).id
    assert runs.retrieve(delayed).status is RunStatus.DELAYED

    expired = runs.poll(doomed, timeout=15)
    assert (expired.status, expired.attempt_count, expired.idempotency_key) == (
        RunStatus.EXPIRED,
        0,
        None,
    )
    assert expired.finished_at is not None and expired.created_at is not None
    lived = (expired.finished_at - expired.created_at).total_seconds()
    assert 1.0 <= lived < 5.0
    done = runs.poll(delayed, timeout=15)
    assert done.status is RunStatus.COMPLETED
    assert done.started_at is not None and done.created_at is not None
    assert (done.started_at - done.created_at).total_seconds() >= 0.5

    queues.resume("solo")
    after = tasks.trigger("work", ledger.payload(d=0), queue="solo").id
    assert runs.poll(after, timeout=15).status is RunStatus.COMPLETED
    wait_for(lambda: ledger.started(after), timeout=5)
    assert not ledger.started(doomed), "an expired run executed"
    assert runs.retrieve(doomed).status is RunStatus.EXPIRED
