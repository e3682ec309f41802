"""Managing queues while a worker runs: pause and resume, override and reset a limit; and
the caps above queues: the environment's (config) and each worker's (`--concurrency`).

A run that must *not* start is checked after a later run in another queue completed: the
worker has claimed since, so it had every chance to start it.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from taskloom import queues, runs, tasks
from taskloom.errors import InvalidOptionError
from taskloom.testing import TaskloomProject, wait_for

from .conftest import StartWorker
from .support import FINAL, LEDGER_TASKS, Ledger, max_overlap

pytestmark = pytest.mark.slow


@pytest.fixture
def ledger_project(project: TaskloomProject) -> TaskloomProject:
    project.write_task_module("ledger_tasks", LEDGER_TASKS)
    return project


def hold(ledger: Ledger, tmp_path: Path, name: str, **options: object) -> tuple[str, Path]:
    """Trigger a `hold` run released by the file it returns."""
    release = tmp_path / f"release-{name}"
    handle = tasks.trigger("hold", ledger.payload(release=str(release)), **options)
    return handle.id, release


def settle(ledger: Ledger) -> None:
    """Wait until a fresh run in the unlimited queue `wide` completed: the worker claimed
    after everything triggered before this call."""
    handle = tasks.trigger("work", ledger.payload(d=0), queue="wide")
    assert runs.poll(handle.id, timeout=15).status.value == "COMPLETED"


def final(run_id: str) -> bool:
    return runs.retrieve(run_id).status.value in FINAL


def test_a_freed_slot_is_refilled_at_once_not_at_the_next_poll(
    ledger_project: TaskloomProject, start_worker: StartWorker, ledger: Ledger
) -> None:
    """With a 30 s poll, eight 20 ms runs through a queue of limit 1 finish in seconds:
    the tick that records an outcome also claims the next run."""
    ledger_project.write_config(worker={"poll_interval_seconds": 30})
    start_worker(concurrency=4)
    began = time.monotonic()
    ids = [tasks.trigger("work", ledger.payload(d=0.02), queue="solo").id for _ in range(8)]
    wait_for(lambda: all(final(i) for i in ids), timeout=10, message="runs not done")
    elapsed = time.monotonic() - began
    assert [runs.retrieve(i).status.value for i in ids] == ["COMPLETED"] * 8
    overlap = max_overlap((i.queue, (i.start, i.end or i.start)) for i in ledger.intervals())
    assert overlap["solo"][0] == 1
    assert elapsed < 10


def test_pause_lets_executing_runs_finish_and_starts_nothing_until_resumed(
    ledger_project: TaskloomProject, start_worker: StartWorker, ledger: Ledger, tmp_path: Path
) -> None:
    start_worker(concurrency=4)
    running, release = hold(ledger, tmp_path, "a", queue="pair")
    ledger.wait_started(running)

    paused = queues.pause("pair")
    assert (paused.name, paused.paused, paused.running) == ("pair", True, 1)
    waiting = [tasks.trigger("work", ledger.payload(d=0), queue="pair").id for _ in range(2)]
    settle(ledger)
    assert not any(ledger.started(w) for w in waiting)
    assert queues.retrieve("pair").queued == 2

    release.touch()  # the executing run finishes although its queue is paused
    assert runs.poll(running, timeout=15).status.value == "COMPLETED"
    settle(ledger)
    assert [runs.retrieve(w).status.value for w in waiting] == ["QUEUED", "QUEUED"]
    details = queues.retrieve("pair")
    assert (details.running, details.queued, details.paused) == (0, 2, True)

    assert queues.resume("pair").paused is False
    assert [runs.poll(w, timeout=15).status.value for w in waiting] == ["COMPLETED"] * 2


def test_override_and_reset_the_limit_with_a_worker_running(
    ledger_project: TaskloomProject, start_worker: StartWorker, ledger: Ledger, tmp_path: Path
) -> None:
    start_worker(concurrency=8)
    settle(ledger)  # the worker has declared its queues
    raised = queues.override_concurrency_limit("solo", 3)
    assert (raised.concurrency_limit, raised.base_concurrency_limit) == (3, 1)
    assert raised.override_concurrency_limit == 3 and raised.overridden_at is not None

    first = [hold(ledger, tmp_path, f"first-{n}", queue="solo") for n in range(3)]
    ledger.wait_started(*(run_id for run_id, _ in first))  # three at once under the override
    assert queues.retrieve("solo").running == 3

    reset = queues.reset_concurrency_limit("solo")
    assert (reset.concurrency_limit, reset.override_concurrency_limit) == (1, None)
    assert reset.overridden_at is None
    late, late_release = hold(ledger, tmp_path, "late", queue="solo")
    for index, (run_id, release) in enumerate(first):
        settle(ledger)
        assert not ledger.started(late), f"started with {3 - index} running, limit 1"
        release.touch()
        assert runs.poll(run_id, timeout=15).status.value == "COMPLETED"
    ledger.wait_started(late)
    late_release.touch()
    assert runs.poll(late, timeout=15).status.value == "COMPLETED"

    closed = queues.override_concurrency_limit("solo", 0)  # 0: nothing starts
    assert closed.concurrency_limit == 0
    blocked = tasks.trigger("work", ledger.payload(d=0), queue="solo").id
    settle(ledger)
    assert not ledger.started(blocked)
    queues.reset_concurrency_limit("solo")
    assert runs.poll(blocked, timeout=15).status.value == "COMPLETED"


def test_managing_an_unknown_queue_or_a_bad_limit_is_an_error(
    ledger_project: TaskloomProject, start_worker: StartWorker, ledger: Ledger
) -> None:
    start_worker(concurrency=2)
    settle(ledger)
    for call in (queues.pause, queues.resume, queues.retrieve, queues.reset_concurrency_limit):
        with pytest.raises(InvalidOptionError, match=r"unknown queue 'nope' \(known queues: "):
            call("nope")
    for bad in (-1, 1.5, "2", True):
        with pytest.raises(InvalidOptionError, match=r"concurrency limit of queue 'solo'"):
            queues.override_concurrency_limit("solo", bad)
    assert queues.retrieve("solo").concurrency_limit == 1


@pytest.mark.parametrize("source", ["config file", "environment variable"])
def test_the_environment_cap_holds_across_workers(
    ledger_project: TaskloomProject, start_worker: StartWorker, ledger: Ledger, source: str
) -> None:
    env = None
    if source == "config file":
        ledger_project.write_config(queues={"environment_concurrency_limit": 3})
    else:
        env = {"TASKLOOM_ENVIRONMENT_CONCURRENCY_LIMIT": "3"}
    # Each worker alone could run 2: reaching 3 at once takes both, and 3 is the most.
    start_worker(concurrency=2, env=env)
    start_worker(concurrency=2, env=env)
    ids = [tasks.trigger("work", ledger.payload(d=0.15), queue="wide").id for _ in range(16)]
    wait_for(lambda: all(final(i) for i in ids), timeout=30)
    assert {runs.retrieve(i).status.value for i in ids} == {"COMPLETED"}
    intervals = ledger.intervals()
    together = max_overlap(("all", (i.start, i.end or i.start)) for i in intervals)["all"][0]
    workers = {i.ppid for i in intervals}
    assert together == 3, f"{together} at once under an environment cap of 3"
    assert len(workers) == 2, "both workers should have taken part"


def test_a_worker_runs_at_most_its_concurrency(
    ledger_project: TaskloomProject, start_worker: StartWorker, ledger: Ledger
) -> None:
    small = start_worker(concurrency=2)
    large = start_worker(concurrency=3)
    ids = [tasks.trigger("work", ledger.payload(d=0.15), queue="wide").id for _ in range(20)]
    wait_for(lambda: all(final(i) for i in ids), timeout=30)
    per_worker = max_overlap((i.ppid, (i.start, i.end or i.start)) for i in ledger.intervals())
    assert per_worker[small.pid][0] == 2
    assert per_worker[large.pid][0] == 3
