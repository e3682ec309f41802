"""When runs start: delays, rescheduling, priority, and cancelling before or during a run."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from taskloom import RunStatus, runs, tasks
from taskloom.testing import TaskloomProject, wait_for

from .conftest import StartWorker
from .support import Probe

pytestmark = pytest.mark.slow


def _seconds(later: datetime | None, earlier: datetime | None) -> float:
    assert later is not None and earlier is not None
    return (later - earlier).total_seconds()


def test_a_delayed_run_waits_then_executes(start_worker: StartWorker, probe: Probe) -> None:
    start_worker()
    handle = tasks.trigger("record", probe.payload(label="late"), delay="2s")
    delayed = runs.retrieve(handle)
    assert delayed.status is RunStatus.DELAYED
    assert _seconds(delayed.delay_until, delayed.created_at) == pytest.approx(2, abs=0.01)

    assert handle.result(timeout=10) == "late"
    run = runs.retrieve(handle)
    waited = _seconds(run.started_at, run.created_at)
    assert 2 <= waited < 4, f"started {waited} s after it was triggered"
    assert run.attempt_count == 1


def test_reschedule_moves_a_delayed_run(start_worker: StartWorker, probe: Probe) -> None:
    start_worker()
    handle = tasks.trigger("record", probe.payload(label="moved"), delay="1h")
    assert runs.retrieve(handle).status is RunStatus.DELAYED

    moved_at = datetime.now(tz=UTC)
    rescheduled = runs.reschedule(handle, delay="1s")

    assert rescheduled.status is RunStatus.DELAYED
    assert _seconds(rescheduled.delay_until, moved_at) == pytest.approx(1, abs=0.2)
    assert handle.result(timeout=10) == "moved"
    started = runs.retrieve(handle).started_at
    assert 1 - 0.01 <= _seconds(started, moved_at) < 3


def test_a_cancelled_delayed_run_never_executes(start_worker: StartWorker, probe: Probe) -> None:
    start_worker()
    cancelled = tasks.trigger("record", probe.payload(label="cancelled"), delay="1s")
    # Due later than the cancelled one: once it ran, the cancelled one had its chance.
    sentinel = tasks.trigger("record", probe.payload(label="sentinel"), delay="1.5s")

    after = runs.cancel(cancelled)

    assert after.status is RunStatus.CANCELED
    assert sentinel.result(timeout=10) == "sentinel"
    run = runs.retrieve(cancelled)
    assert run.status is RunStatus.CANCELED
    assert run.attempt_count == 0
    assert run.attempts == []
    assert run.started_at is None
    assert [label for _, _, _, label in probe.ledger()] == ["sentinel"]


def test_queued_runs_start_in_priority_then_trigger_order(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe
) -> None:
    # A worker registers the task, then stops: the runs below wait in the queue together.
    assert start_worker().terminate(10) == 0
    priorities = [0, 10, 0, 5, 10, 1, 0, 5]
    handles = [
        tasks.trigger("record", probe.payload(label=f"{n}:p{p}"), priority=p)
        for n, p in enumerate(priorities)
    ]
    assert {runs.retrieve(h).status for h in handles} == {RunStatus.QUEUED}

    start_worker(concurrency=1, executors=1)

    wait_for(lambda: len(probe.ledger()) == len(handles), timeout=15)
    order = [label for _, _, _, label in probe.ledger()]
    expected = [
        f"{n}:p{p}" for n, p in sorted(enumerate(priorities), key=lambda item: (-item[1], item[0]))
    ]
    assert order == expected
    assert order[:3] == ["1:p10", "4:p10", "3:p5"]


def test_cancelling_an_executing_async_run_stops_it_without_retry(
    start_worker: StartWorker, probe: Probe
) -> None:
    start_worker(concurrency=2)
    handle = tasks.trigger("hold", probe.payload())
    probe.wait_started(handle.id, 1)
    wait_for(lambda: runs.retrieve(handle).status is RunStatus.EXECUTING, timeout=5)

    began = time.monotonic()
    after = runs.cancel(handle)

    assert after.status is RunStatus.CANCELED
    wait_for(lambda: probe.cancelled(handle.id, 1), timeout=5, message="attempt kept running")
    wait_for(
        lambda: runs.retrieve(handle).attempts,
        timeout=5,
        message="the cancelled attempt was not recorded",
    )
    run = runs.retrieve(handle)
    assert time.monotonic() - began < 2
    assert run.status is RunStatus.CANCELED
    assert run.attempt_count == 1
    assert [(a.number, a.status) for a in run.attempts] == [(1, "CANCELED")]
    assert run.attempts[0].error is not None
    assert run.attempts[0].error.type == "TaskRunCancelledError"
    assert run.error is not None and run.error.type == "TaskRunCancelledError"
    # Not retried, and cancelling again changes nothing.
    assert runs.cancel(handle).status is RunStatus.CANCELED
    assert probe.starts() == [f"started-{handle.id}-1.json"]
    assert runs.retrieve(handle).attempt_count == 1


# The worker's first claim that finds runs stalls, after its transaction, until the
# worker has handled a wake-up: a trigger is then certain to land mid-claim.
STALLED_CLAIM_PRELUDE = """
import os
import threading
from pathlib import Path

import taskloom.worker.supervisor as supervisor
from taskloom.engine.workers import Workers

PROBE = Path(os.environ["PROBE_DIR"])
woken = threading.Event()
_on_wake = supervisor.Supervisor._on_wake
_tick = Workers.tick


def on_wake(self):
    _on_wake(self)
    woken.set()


def stalled_tick(self, tick):
    result = _tick(self, tick)
    stall = PROBE / "stall-claim"
    if tick.claim_limit > 0 and result.claimed and stall.exists():
        stall.unlink()
        woken.clear()
        (PROBE / "claim-stalled").touch()
        woken.wait(10)
    return result


supervisor.Supervisor._on_wake = on_wake
Workers.tick = stalled_tick
"""


def test_a_run_triggered_during_a_claim_starts_without_waiting_for_the_poll(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe
) -> None:
    project.write_config(worker={"poll_interval_seconds": 60})
    start_worker(concurrency=4, prelude=STALLED_CLAIM_PRELUDE, env={"PROBE_DIR": str(probe.dir)})
    (probe.dir / "stall-claim").touch()
    first = tasks.trigger("record", probe.payload(label="first"))
    wait_for((probe.dir / "claim-stalled").exists, timeout=5, message="no claim")

    # Its wake-up arrives while the claim runs; the claim's result must not erase it.
    second = tasks.trigger("record", probe.payload(label="second"))

    assert first.result(timeout=5) == "first"
    assert second.result(timeout=3) == "second"
