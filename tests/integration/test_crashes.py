"""kill -9 of a worker or of an executor in the middle of an attempt."""

from __future__ import annotations

import os
import signal
import time

import pytest

from taskloom import RunStatus, runs, tasks
from taskloom.testing import TaskloomProject, wait_for

from .conftest import StartWorker
from .support import Probe

pytestmark = pytest.mark.slow

LEASE_SECONDS = 2.0
RESCUE_SLACK_SECONDS = 5.0  # leader lease, maintenance poll, retry backoff, claim poll


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("task_id", ["hold", "hold-sync"])
def test_a_killed_worker_s_run_is_retried_by_another_worker(
    start_worker: StartWorker, probe: Probe, task_id: str
) -> None:
    first = start_worker(concurrency=2)
    handle = tasks.trigger(task_id, probe.payload())
    started = probe.wait_started(handle.id, 1)
    assert started["pid"] in first.executor_pids()
    orphans = first.executor_pids()
    second = start_worker(concurrency=2)

    first.kill()  # SIGKILL the supervisor; its executors are orphaned
    killed_at = time.monotonic()
    assert first.wait(5) == -signal.SIGKILL

    # An orphaned executor notices its supervisor is gone and exits (no attempt keeps
    # running unsupervised for long).
    wait_for(
        lambda: not any(_pid_alive(pid) for pid in orphans),
        timeout=10,
        message="an executor outlived its killed supervisor",
    )
    retried = probe.wait_started(handle.id, 2, timeout=LEASE_SECONDS + RESCUE_SLACK_SECONDS + 5)
    rescue_seconds = time.monotonic() - killed_at
    assert rescue_seconds < LEASE_SECONDS + RESCUE_SLACK_SECONDS
    assert retried["pid"] in second.executor_pids()

    probe.release()
    assert handle.result(timeout=15) == {"attempt": 2, "pid": retried["pid"]}
    run = runs.retrieve(handle.id)
    assert run.attempt_count == 2
    assert [(a.number, a.status) for a in run.attempts] == [(1, "CRASHED"), (2, "COMPLETED")]
    assert run.attempts[0].worker_id == first.worker_id
    assert run.attempts[1].worker_id == second.worker_id
    assert run.attempts[0].error is not None
    assert run.attempts[0].error.code == "TASK_RUN_HEARTBEAT_TIMEOUT"
    assert first.worker_id in run.attempts[0].error.message
    assert probe.starts() == [f"started-{handle.id}-1.json", f"started-{handle.id}-2.json"]


def test_a_killed_worker_s_run_with_one_attempt_ends_crashed(
    start_worker: StartWorker, probe: Probe
) -> None:
    first = start_worker(concurrency=2)
    handle = tasks.trigger("hold", probe.payload(), max_attempts=1)
    probe.wait_started(handle.id, 1)
    start_worker(concurrency=2)

    first.kill(group=True)  # the whole machine dies: supervisor and executors at once

    run = runs.poll(handle, timeout=LEASE_SECONDS + RESCUE_SLACK_SECONDS + 5)
    assert run.status is RunStatus.CRASHED
    assert run.attempt_count == 1
    assert [(a.number, a.status) for a in run.attempts] == [(1, "CRASHED")]
    assert run.error is not None
    assert run.error.type == "TaskRunCrashedError"
    assert probe.started(handle.id, 2) is None


def test_a_killed_executor_is_replaced_and_its_attempt_retried(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe
) -> None:
    worker = start_worker(concurrency=4, executors=2)
    handle = tasks.trigger("hold", probe.payload())
    started = probe.wait_started(handle.id, 1)
    executors = worker.executor_pids()
    assert started["pid"] in executors and len(executors) == 2

    os.kill(started["pid"], signal.SIGKILL)

    retried = probe.wait_started(handle.id, 2, timeout=10)
    assert retried["pid"] != started["pid"]
    replaced = wait_for(
        lambda: (pids := worker.executor_pids()) and len(pids) == 2 and started["pid"] not in pids,
        timeout=10,
        message="the killed executor was not replaced",
    )
    assert replaced
    probe.release()
    assert handle.result(timeout=10) == {"attempt": 2, "pid": retried["pid"]}
    run = runs.retrieve(handle.id)
    assert [(a.number, a.status) for a in run.attempts] == [(1, "CRASHED"), (2, "COMPLETED")]
    assert run.attempts[0].error is not None
    assert run.attempts[0].error.code == "TASK_PROCESS_EXITED"
    assert "SIGKILL" in run.attempts[0].error.message

    # The worker keeps working, on every executor, including the new one.
    more = [tasks.trigger("record", probe.payload(label=str(n))) for n in range(20)]
    assert [h.result(timeout=10) for h in more] == [str(n) for n in range(20)]
    assert worker.is_running()
    assert {pid for _, _, pid, _ in probe.ledger()} <= set(worker.executor_pids())


SLOW_IMPORT_MODULE = """
import os
import time

# Once the test creates this file, importing this module (as a replacement executor
# does) takes a while: long enough for the supervisor to claim runs meanwhile.
if os.path.exists(os.environ["SLOW_IMPORT_MARKER"]):
    time.sleep(2)
"""


def test_a_worker_with_one_executor_survives_its_executor_being_killed(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe
) -> None:
    marker = probe.dir / "slow-import"
    project.write_task_module("slowimport", SLOW_IMPORT_MODULE)
    worker = start_worker(concurrency=4, executors=1, env={"SLOW_IMPORT_MARKER": str(marker)})
    handle = tasks.trigger("hold", probe.payload())
    started = probe.wait_started(handle.id, 1)
    marker.touch()

    os.kill(started["pid"], signal.SIGKILL)
    wait_for(lambda: "killed by SIGKILL" in worker.stderr(), timeout=5)
    # Claimable while no executor is up: they must wait for the replacement.
    probe.release()
    waiting = [tasks.trigger("record", probe.payload(label=str(n))) for n in range(5)]

    assert [h.result(timeout=8) for h in waiting] == [str(n) for n in range(5)]
    assert handle.result(timeout=8)["attempt"] == 2
    assert worker.is_running()
    assert len(worker.executor_pids()) == 1
