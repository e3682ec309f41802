"""Duration waits: short ones sleep in place, longer ones make the run WAITING without a
concurrency slot, and it continues in place on its worker when the time comes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from taskloom import RunStatus, queues, runs, tasks
from taskloom.testing import TaskloomProject, wait_for

from .conftest import StartWorker
from .support import Probe, column, finished, wait_status

pytestmark = pytest.mark.slow


def test_long_waits_free_the_slot_and_continue_in_place(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe
) -> None:
    worker = start_worker()
    until = datetime.now(tz=UTC) + timedelta(seconds=6.5)
    by_duration = tasks.trigger("sleeper", probe.payload(seconds=6))
    by_date = tasks.trigger("sleeper", probe.payload(until=until.isoformat()))

    # Both runs of the limit-1 queue wait at once: each released its slot.
    for handle in (by_duration, by_date):
        wait_status(handle.id, RunStatus.WAITING, timeout=5)
    queue = queues.retrieve("solo")
    assert queue.running == 0
    # A third run of the queue starts and ends while they wait.
    other = tasks.trigger("quick", probe.payload())
    assert other.result(timeout=5) == "quick"
    assert {runs.retrieve(h.id).status for h in (by_duration, by_date)} == {RunStatus.WAITING}
    queue_ts = {h.id: column(project, h.id, "queue_ts") for h in (by_duration, by_date)}

    outputs = [h.result(timeout=15) for h in (by_duration, by_date)]

    executor = worker.executor_pids()
    assert [o["pid"] for o in outputs] == executor * 2  # continued where they were parked
    for handle in (by_duration, by_date):
        run = runs.retrieve(handle.id)
        assert run.attempt_count == 1
        assert [a.status for a in run.attempts] == ["COMPLETED"]
        # Code before the wait ran once: the coroutine continued, nothing was replayed.
        assert len(probe.ledger("before", run=handle.id)) == 1
        assert len(probe.ledger("after", run=handle.id)) == 1
        assert column(project, handle.id, "queue_ts") == queue_ts[handle.id]
        started = run.started_at
        assert started is not None and run.finished_at is not None
    # Each waited at least its time (the duration from when it began waiting).
    duration_run = runs.retrieve(by_duration.id)
    assert duration_run.finished_at is not None and duration_run.started_at is not None
    assert duration_run.finished_at - duration_run.started_at >= timedelta(seconds=6)
    date_run = runs.retrieve(by_date.id)
    assert date_run.finished_at is not None and date_run.finished_at >= until
    # on_wait / on_resume saw a duration wait and when it ends.
    for handle, end in ((by_duration, None), (by_date, until)):
        hooks = probe.hooks(handle.id)
        assert [(h["hook"], h["type"], h["seq"]) for h in hooks] == [
            ("on_wait", "duration", 1),
            ("on_resume", "duration", 1),
        ]
        date = datetime.fromisoformat(hooks[0]["date"])
        assert hooks[1]["date"] == hooks[0]["date"]
        if end is not None:
            assert abs((date - end).total_seconds()) < 0.01
        else:
            assert date >= duration_run.started_at + timedelta(seconds=6)


def test_short_waits_sleep_in_place_and_keep_the_slot(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe
) -> None:
    start_worker()
    short = tasks.trigger("sleeper", probe.payload(seconds=0.3))
    now = tasks.trigger("sleeper", probe.payload(until=datetime.now(tz=UTC).isoformat()))

    assert short.result(timeout=10)["pid"] > 0
    assert now.result(timeout=10)["pid"] > 0

    for handle in (short, now):
        # No waitpoint, no recorded wait, no WAITING: an in-process sleep.
        assert project.query("SELECT COUNT(*) FROM run_waits WHERE run_id = ?", (handle.id,)) == [
            (0,)
        ]
        assert probe.hooks(handle.id) == []
    assert project.query("SELECT COUNT(*) FROM waitpoints") == [(0,)]


def test_a_waiting_run_continues_at_its_queue_place(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe
) -> None:
    """A run resumed after a wait goes ahead of runs queued after it."""
    start_worker()
    first = tasks.trigger("sleeper", probe.payload(seconds=6))
    wait_status(first.id, RunStatus.WAITING, timeout=5)
    queues.pause("solo")
    later = [tasks.trigger("quick", probe.payload()) for _ in range(3)]
    # The wait ends while the queue is paused: the run is back in its queue.
    wait_for(
        lambda: runs.retrieve(first.id).status is RunStatus.QUEUED,
        timeout=15,
        message="the sleeper never went back to its queue",
    )
    queues.resume("solo")

    for handle in [first, *later]:
        assert finished(handle.id).status is RunStatus.COMPLETED
    order = [
        row[0]
        for row in project.query(
            "SELECT id FROM runs WHERE queue = 'solo' ORDER BY finished_at, id"
        )
    ]
    assert order[0] == first.id
