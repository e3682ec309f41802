"""The loop services' `run_once()` (promoter, expirer, rescuer, waitpoint timer) on a real
SQLite store, with explicit times; their settings, checked in their constructors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from storeops import StoreOps
from taskloom.clock import FakeClock
from taskloom.config import Config
from taskloom.engine.engine import Engine
from taskloom.engine.spec import TaskSpec
from taskloom.engine.triggering import build_new_run
from taskloom.errors import InvalidOptionError
from taskloom.ids import new_id
from taskloom.retry import Retry
from taskloom.services import DelayedPromoter, LeaseRescuer, TtlExpirer, WaitpointTimer
from taskloom.store import SqliteStore
from taskloom.store.records import (
    AttemptOutcome,
    AttemptStart,
    ClaimedRun,
    NewWaitpoint,
    RunRecord,
    Suspension,
    WaitRef,
    WorkerInfo,
    WorkerTick,
)

T0 = 1_700_000_000_000
LEASE_MS = 30_000
CONFIG = Config(project_root=Path("/nonexistent-project"), environment="PRODUCTION")
SPEC = TaskSpec(
    id="maintained",
    queue="task/maintained",
    retry=Retry(max_attempts=3, min_timeout_ms=1_000, factor=2, randomize=True),
    machine="small-1x",
)


CLOCK = FakeClock(T0)


def engine_on(store: StoreOps) -> Engine:
    """An engine on the test's store whose clock the test sets (see `at`)."""
    return Engine(store.store, CONFIG, clock=CLOCK)


def at(now: int, service: Any) -> Any:
    """Run a service's `run_once` with the engine's clock at `now`."""
    CLOCK.set(now)
    return service.run_once()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StoreOps]:
    opened = StoreOps(SqliteStore(tmp_path / "taskloom.db"))
    opened.migrate()
    yield opened
    opened.close()


def trigger(store: StoreOps, now: int = T0, **options: Any) -> str:
    run = build_new_run(SPEC, b"{}", options, now=now, config=CONFIG)
    assert store.run_insert(run, now).created
    return run.id


def get(store: StoreOps, run_id: str) -> RunRecord:
    record = store.run_get(run_id)
    assert record is not None
    return record


def register(store: StoreOps, worker_id: str, now: int = T0) -> None:
    store.worker_register(WorkerInfo(worker_id, "host", 1, 10, now), now)


def claim_and_start(store: StoreOps, worker_id: str, now: int) -> ClaimedRun:
    [claimed] = store.worker_tick(WorkerTick(worker_id, now, claim_limit=1)).claimed
    store.worker_tick(
        WorkerTick(worker_id, now, starts=[AttemptStart(claimed.id, claimed.attempt, now)])
    )
    return claimed


# -- DelayedPromoter -------------------------------------------------------------------------


def test_the_promoter_queues_delayed_runs_whose_time_has_come(store: StoreOps) -> None:
    soon = trigger(store, delay="10s")
    later = trigger(store, delay="1h")
    promoter = DelayedPromoter(engine_on(store))

    assert at(T0 + 9_999, promoter) == 0
    assert at(T0 + 10_000, promoter) == 1
    assert get(store, soon).status == "QUEUED"
    assert get(store, later).status == "DELAYED"
    assert at(T0 + 10_000, promoter) == 0
    assert at(T0 + 3_600_000, promoter) == 1
    assert promoter.promoted_total == 2


def test_the_promoter_keeps_going_past_one_batch(store: StoreOps) -> None:
    ids = [trigger(store, delay=f"{i}s") for i in range(1, 6)]
    assert at(T0 + 60_000, DelayedPromoter(engine_on(store), batch_size=2)) == 5
    assert {get(store, run_id).status for run_id in ids} == {"QUEUED"}


def test_a_promoted_run_starts_its_ttl_then(store: StoreOps) -> None:
    run_id = trigger(store, delay="10s", ttl="5s")
    at(T0 + 12_000, DelayedPromoter(engine_on(store)))
    assert get(store, run_id).expires_at == T0 + 12_000 + 5_000
    expirer = TtlExpirer(engine_on(store))
    assert at(T0 + 16_999, expirer) == []
    assert at(T0 + 17_000, expirer) == [run_id]


# -- TtlExpirer ------------------------------------------------------------------------------


def test_the_expirer_ends_queued_runs_past_their_ttl(store: StoreOps) -> None:
    short = trigger(store, ttl="5s", idempotency_key="k")
    long = trigger(store, ttl="1m")
    forever = trigger(store)
    delayed = trigger(store, delay="1s", ttl="1s")
    expirer = TtlExpirer(engine_on(store))

    assert at(T0 + 4_999, expirer) == []
    assert at(T0 + 5_000, expirer) == [short]
    record = get(store, short)
    assert (record.status, record.finished_at, record.idempotency_key) == (
        "EXPIRED",
        T0 + 5_000,
        None,
    )
    assert at(T0 + 60_000, expirer) == [long]
    assert get(store, forever).status == "QUEUED"
    assert get(store, delayed).status == "DELAYED"  # not in its queue yet: its TTL has not begun
    assert expirer.expired_total == 2


def test_the_expirer_keeps_going_past_one_batch(store: StoreOps) -> None:
    ids = {trigger(store, ttl=1) for _ in range(5)}
    assert set(at(T0 + 1_000, TtlExpirer(engine_on(store), batch_size=2))) == ids


def test_a_claimed_run_does_not_expire(store: StoreOps) -> None:
    run_id = trigger(store, ttl="5s")
    register(store, "w1")
    claim_and_start(store, "w1", T0 + 1_000)
    assert at(T0 + 60_000, TtlExpirer(engine_on(store))) == []
    assert get(store, run_id).status == "EXECUTING"


# -- LeaseRescuer ------------------------------------------------------------------------------


def test_a_worker_that_stops_heartbeating_has_its_attempt_crashed_and_run_requeued(
    store: StoreOps,
) -> None:
    run_id = trigger(store, idempotency_key="k")
    register(store, "w1")
    register(store, "w2")
    claimed = claim_and_start(store, "w1", T0 + 100)
    rescuer = LeaseRescuer(engine_on(store), lease_ms=LEASE_MS)
    # w2 keeps heartbeating; w1 went quiet at T0 + 100.
    assert store.worker_heartbeat("w2", T0 + LEASE_MS)
    assert at(T0 + 100 + LEASE_MS, rescuer) == []  # the lease has not lapsed yet

    now = T0 + 101 + LEASE_MS
    assert store.worker_heartbeat("w2", now)
    assert at(now, rescuer) == [run_id]

    record = get(store, run_id)
    assert (record.status, record.worker_id, record.attempt) == ("QUEUED", None, 1)
    # Retry after attempt 1: (1 + random()) * 1000 ms with the run's locked policy.
    assert now + 1_000 <= record.available_at <= now + 2_000
    assert record.idempotency_key == "k"
    [attempt] = store.attempt_list(run_id)
    assert (attempt.number, attempt.status, attempt.worker_id) == (1, "CRASHED", "w1")
    assert (attempt.started_at, attempt.finished_at) == (T0 + 100, now)
    assert attempt.error is not None
    error = orjson.loads(attempt.error)
    assert error["type"] == "TaskRunCrashedError"
    assert error["code"] == "TASK_RUN_HEARTBEAT_TIMEOUT"
    assert "w1" in error["message"]
    assert rescuer.rescued_total == 1
    # The dead worker was reaped; the live one was not.
    assert not store.worker_heartbeat("w1", now + 1)
    assert store.worker_heartbeat("w2", now + 1)
    # Nothing left to rescue, and the stale worker's late report is refused.
    assert at(now + 1, rescuer) == []
    late = AttemptOutcome(run_id, 1, "w1", "COMPLETED", "COMPLETED", now + 2, output=b"1")
    assert store.worker_tick(WorkerTick("w1", now + 2, outcomes=[late])).rejected == [run_id]
    # Another worker picks the run up as attempt 2.
    [again] = store.worker_tick(WorkerTick("w2", record.available_at, claim_limit=1)).claimed
    assert (again.id, again.attempt) == (claimed.id, 2)


def test_a_crash_on_the_last_attempt_ends_the_run_crashed(store: StoreOps) -> None:
    run_id = trigger(store, max_attempts=2, idempotency_key="k")
    register(store, "w1")
    rescuer = LeaseRescuer(engine_on(store), lease_ms=LEASE_MS)

    claim_and_start(store, "w1", T0)
    first = T0 + LEASE_MS + 1
    assert at(first, rescuer) == [run_id]
    register(store, "w2", now=first)
    available = get(store, run_id).available_at
    claim_and_start(store, "w2", available)
    second = available + LEASE_MS + 1
    assert at(second, rescuer) == [run_id]

    record = get(store, run_id)
    assert (record.status, record.finished_at, record.attempt) == ("CRASHED", second, 2)
    assert record.idempotency_key is None  # a crashed run frees its key
    assert record.error is not None
    assert orjson.loads(record.error)["type"] == "TaskRunCrashedError"
    assert [(a.number, a.status) for a in store.attempt_list(run_id)] == [
        (1, "CRASHED"),
        (2, "CRASHED"),
    ]
    assert at(second + LEASE_MS * 10, rescuer) == []
    register(store, "w3", now=second)
    assert store.worker_tick(WorkerTick("w3", second + 1, claim_limit=5)).claimed == []


def test_a_heartbeating_worker_is_never_rescued(store: StoreOps) -> None:
    run_id = trigger(store)
    register(store, "w1")
    claim_and_start(store, "w1", T0)
    rescuer = LeaseRescuer(engine_on(store), lease_ms=LEASE_MS)
    for step in range(1, 10):
        now = T0 + step * 20_000
        store.worker_tick(WorkerTick("w1", now))  # the tick is the heartbeat
        assert at(now, rescuer) == []
    assert get(store, run_id).status == "EXECUTING"
    assert rescuer.rescued_total == 0


# -- WaitpointTimer ----------------------------------------------------------------------------


def waiting_for(store: StoreOps, worker_id: str, waitpoint: NewWaitpoint, now: int) -> str:
    """A run of `worker_id` that waits (WAITING) for a new waitpoint."""
    trigger(store, now=now)
    run = claim_and_start(store, worker_id, now)
    store.wait_register(WaitRef(run.id, run.attempt, 1), "duration", waitpoint, None, now)
    suspend = Suspension(run.id, run.attempt, worker_id)
    assert store.worker_tick(WorkerTick(worker_id, now, suspends=[suspend])).suspended == [run.id]
    return run.id


def waitpoint_status(store: StoreOps, waitpoint_id: str) -> str:
    found = store.waitpoint_get(waitpoint_id)
    assert found is not None
    return found.status


def test_the_timer_completes_due_duration_waits_and_requeues_their_runs(
    store: StoreOps,
) -> None:
    register(store, "w1")
    soon = NewWaitpoint(new_id("waitpoint"), "DURATION", resume_at=T0 + 6_000)
    later = NewWaitpoint(new_id("waitpoint"), "DURATION", resume_at=T0 + 9_000)
    first, second = waiting_for(store, "w1", soon, T0), waiting_for(store, "w1", later, T0)
    timer = WaitpointTimer(engine_on(store))

    assert at(T0 + 5_999, timer) == []
    assert at(T0 + 6_000, timer) == [first]
    assert (get(store, first).status, get(store, second).status) == ("QUEUED", "WAITING")
    assert timer.next_due_ms() == T0 + 9_000
    assert at(T0 + 9_000, timer) == [second]
    assert timer.requeued_total == 2
    assert timer.next_due_ms() is None


def test_the_timer_times_out_tokens_past_their_timeout(store: StoreOps) -> None:
    made = store.waitpoint_create(
        NewWaitpoint(new_id("waitpoint"), "TOKEN", resume_at=T0 + 1_000), T0
    )
    timer = WaitpointTimer(engine_on(store))
    at(T0 + 999, timer)
    assert waitpoint_status(store, made.id) == "WAITING"
    at(T0 + 1_000, timer)
    assert waitpoint_status(store, made.id) == "TIMED_OUT"


def test_the_timer_keeps_going_past_one_batch(store: StoreOps) -> None:
    register(store, "w1")
    runs = {
        waiting_for(
            store, "w1", NewWaitpoint(new_id("waitpoint"), "DURATION", resume_at=T0 + i), T0
        )
        for i in range(1, 6)
    }
    assert set(at(T0 + 60_000, WaitpointTimer(engine_on(store), batch_size=2))) == runs
    assert {get(store, run_id).status for run_id in runs} == {"QUEUED"}


# -- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [0, -1, 10_001, 2.0, "100", True, None])
@pytest.mark.parametrize("service", [DelayedPromoter, TtlExpirer, WaitpointTimer])
def test_a_bad_batch_size_is_refused_with_the_service_value_and_limits(
    store: StoreOps, service: Any, batch_size: object
) -> None:
    with pytest.raises(InvalidOptionError) as raised:
        service(engine_on(store), batch_size=batch_size)
    assert str(raised.value) == (
        f"{service.__name__} batch_size must be an integer from 1 to 10,000, got {batch_size!r}"
    )


@pytest.mark.parametrize("lease_ms", [0, -30_000, 30.5, "30000", 86_400_001])
def test_a_bad_lease_is_refused_naming_the_setting(store: StoreOps, lease_ms: Any) -> None:
    with pytest.raises(InvalidOptionError, match=r"LeaseRescuer lease_ms must be an integer "):
        LeaseRescuer(engine_on(store), lease_ms=lease_ms)
    assert LeaseRescuer(engine_on(store), lease_ms=1).lease_ms == 1
