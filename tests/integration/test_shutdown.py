"""Starting and stopping workers: SIGTERM drains, a broken task module stops the start."""

from __future__ import annotations

import signal
import time

import pytest

from taskloom import RunStatus, runs, tasks
from taskloom.testing import TaskloomProject, wait_for

from .conftest import StartWorker
from .support import Probe

pytestmark = pytest.mark.slow


def test_sigterm_lets_a_running_attempt_finish_then_exits_0(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe
) -> None:
    project.write_config(worker={"shutdown_grace_seconds": 20})
    worker = start_worker(concurrency=1)
    handle = tasks.trigger("hold", probe.payload())
    probe.wait_started(handle.id, 1)

    worker.signal(signal.SIGTERM)
    later = tasks.trigger("record", probe.payload(label="after SIGTERM"))
    with pytest.raises(AssertionError):  # still draining: it waits for the attempt
        worker.wait(0.5)
    probe.release()
    released_at = time.monotonic()

    assert worker.wait(10) == 0
    assert time.monotonic() - released_at < 5  # it did not sit out the 20 s grace
    run = runs.retrieve(handle.id)
    assert run.status is RunStatus.COMPLETED
    assert [(a.number, a.status) for a in run.attempts] == [(1, "COMPLETED")]
    # Nothing was claimed after SIGTERM.
    untouched = runs.retrieve(later.id)
    assert untouched.status is RunStatus.QUEUED
    assert untouched.attempt_count == 0
    assert probe.ledger() == []


def test_sigterm_to_the_whole_process_group_drains_too(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe
) -> None:
    # systemd (KillMode=control-group) and a terminal's job control signal every process
    # of the worker, executors included: the executors must leave the drain to the
    # supervisor instead of dying with their attempts.
    project.write_config(worker={"shutdown_grace_seconds": 20})
    worker = start_worker(concurrency=2)
    handle = tasks.trigger("hold", probe.payload())
    probe.wait_started(handle.id, 1)
    executors = worker.executor_pids()

    worker.signal(signal.SIGTERM, group=True)
    with pytest.raises(AssertionError):  # still draining: it waits for the attempt
        worker.wait(0.5)
    assert worker.executor_pids() == executors
    probe.release()

    assert worker.wait(10) == 0
    run = runs.retrieve(handle.id)
    assert run.status is RunStatus.COMPLETED
    assert [(a.number, a.status) for a in run.attempts] == [(1, "COMPLETED")]


# While the "slow" file exists, the worker's next heartbeat holds the DB thread for a
# while (as a slow disk or a busy database would), so writes submitted meanwhile queue.
SLOW_HEARTBEAT_PRELUDE = """
import os
import time
from pathlib import Path

from taskloom.engine.workers import Workers

SLOW = Path(os.environ["PROBE_DIR"]) / "slow"
_heartbeat = Workers.heartbeat


def slow_heartbeat(self, worker_id):
    if SLOW.exists():
        SLOW.unlink()
        (SLOW.parent / "db-busy").touch()
        time.sleep(1.5)
    return _heartbeat(self, worker_id)


Workers.heartbeat = slow_heartbeat
"""


def test_an_attempt_that_ends_during_a_drain_is_recorded_even_when_the_db_is_slow(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe
) -> None:
    # No polling ticks: the only writes are the attempt's start and end and heartbeats.
    project.write_config(worker={"shutdown_grace_seconds": 20, "poll_interval_seconds": 60})
    assert start_worker().terminate(10) == 0  # registers the task
    handle = tasks.trigger("hold", probe.payload())  # claimed at start, with no wake-up
    worker = start_worker(
        concurrency=1, prelude=SLOW_HEARTBEAT_PRELUDE, env={"PROBE_DIR": str(probe.dir)}
    )
    probe.wait_started(handle.id, 1)
    wait_for(lambda: runs.retrieve(handle.id).status is RunStatus.EXECUTING, timeout=5)
    worker.signal(signal.SIGTERM)
    (probe.dir / "slow").touch()
    wait_for((probe.dir / "db-busy").exists, timeout=5, message="no heartbeat")

    # The attempt ends while the DB thread is busy: the tick carrying its outcome queues
    # behind the heartbeat, and the drain must wait for it, not cancel it.
    probe.release()

    assert worker.wait(10) == 0
    run = runs.retrieve(handle.id)
    assert run.status is RunStatus.COMPLETED
    assert [(a.number, a.status) for a in run.attempts] == [(1, "COMPLETED")]


def test_sigterm_after_the_grace_period_releases_the_run_without_using_an_attempt(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe
) -> None:
    project.write_config(worker={"shutdown_grace_seconds": 0.5})
    worker = start_worker(concurrency=2)
    handle = tasks.trigger("hold", probe.payload())
    probe.wait_started(handle.id, 1)

    assert worker.terminate(timeout=10) == 0

    run = runs.retrieve(handle.id)
    assert run.status is RunStatus.QUEUED
    assert run.attempt_count == 0
    assert run.attempts == []
    wait_for(lambda: probe.cancelled(handle.id, 1), timeout=5, message="attempt not stopped")
    probe.forget(handle.id, 1)

    successor = start_worker(concurrency=2)
    again = probe.wait_started(handle.id, 1)  # attempt 1 again: the release cost nothing
    assert again["pid"] in successor.executor_pids()
    probe.release()
    assert handle.result(timeout=10) == {"attempt": 1, "pid": again["pid"]}
    run = runs.retrieve(handle.id)
    assert [(a.number, a.status, a.worker_id) for a in run.attempts] == [
        (1, "COMPLETED", successor.worker_id)
    ]
    assert probe.started(handle.id, 2) is None


def test_a_task_module_that_fails_to_import_stops_the_worker_at_start(
    project: TaskloomProject, start_worker: StartWorker
) -> None:
    project.write_task_module(
        "broken",
        """
        from taskloom import task

        CONFIG = {}
        LIMIT = CONFIG["limit"]  # KeyError at import


        @task(id="never-registered")
        def never(payload):
            return payload
        """,
    )
    worker = start_worker(wait_ready=False)

    code = worker.wait(30)

    assert code != 0
    stderr = worker.stderr()
    assert "trigger.broken" in stderr
    assert "Traceback (most recent call last)" in stderr
    assert "KeyError: 'limit'" in stderr
    assert 'LIMIT = CONFIG["limit"]' in stderr
    assert not worker.ready_path.exists()
    assert worker.executor_pids() == []
