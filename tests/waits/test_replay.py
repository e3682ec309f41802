"""Replay: a waiting run whose worker dies or stops continues on another worker by running
again from the top, each completed wait and child call returning its recorded result."""

from __future__ import annotations

import os
import signal

import pytest

from taskloom import RunStatus, runs, tasks, wait
from taskloom.testing import TaskloomProject, wait_for

from .conftest import StartWorker
from .support import Probe, finished, wait_status

pytestmark = pytest.mark.slow


def test_kill_9_during_a_wait_then_replay_on_a_new_worker(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe
) -> None:
    first = start_worker()
    handle = tasks.trigger("replayer", probe.payload())
    token = probe.token_of(handle.id)
    wait_status(handle.id, RunStatus.WAITING)

    first.kill(group=True)  # supervisor and executors, as when the machine dies
    # The wait completes while no worker runs.
    assert wait.complete_token(token, "approved") is True
    assert runs.retrieve(handle.id).status is RunStatus.QUEUED
    second = start_worker()

    out = handle.result(timeout=30)

    assert out == {"child": "child", "token": "approved", "attempt": 1}
    run = runs.retrieve(handle.id)
    assert (run.status, run.attempt_count) == (RunStatus.COMPLETED, 1)
    assert [(a.number, a.status, a.worker_id) for a in run.attempts] == [
        (1, "COMPLETED", second.worker_id)
    ]
    # Exactly as documented: code before the last completed wait ran again, the waits
    # and child calls returned their recorded results, code after it ran once.
    first_pid, second_pid = first.pid, second.executor_pids()[0]
    starts = probe.ledger("start", run=handle.id)
    assert [s["attempt"] for s in starts] == [1, 1]
    assert starts[1]["pid"] == second_pid and starts[0]["pid"] != second_pid
    between = probe.ledger("between")
    assert len(between) == 2 and between[0]["child"] == between[1]["child"]
    assert len(probe.ledger("echo")) == 1  # the child ran once
    tokens = probe.ledger("token", run=handle.id)
    assert [(t["token"], t["cached"]) for t in tokens] == [(token, False), (token, True)]
    assert [e["output"] for e in probe.ledger("end")] == ["approved"]
    assert len(probe.ledger("on_start_attempt", run=handle.id)) == 2  # hooks run again too
    assert first_pid != second.pid


def test_a_waiting_run_whose_executor_died_replays_on_the_same_worker(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe
) -> None:
    worker = start_worker()
    handle = tasks.trigger("replayer", probe.payload())
    token = probe.token_of(handle.id)
    wait_status(handle.id, RunStatus.WAITING)
    [executor] = worker.executor_pids()

    os.kill(executor, signal.SIGKILL)  # the coroutine is gone; the supervisor lives on
    wait_for(
        lambda: worker.executor_pids() not in ([], [executor]),
        timeout=30,
        message="the executor was not replaced",
    )
    assert wait.complete_token(token, "after the crash") is True

    assert handle.result(timeout=30)["token"] == "after the crash"
    starts = probe.ledger("start", run=handle.id)
    assert [s["pid"] for s in starts] == [executor, worker.executor_pids()[0]]
    assert len(probe.ledger("echo")) == 1 and len(probe.ledger("end")) == 1
    run = runs.retrieve(handle.id)
    assert [(a.number, a.status, a.worker_id) for a in run.attempts] == [
        (1, "COMPLETED", worker.worker_id)
    ]


def test_a_stopped_worker_hands_its_waiting_runs_to_another(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe
) -> None:
    first = start_worker()
    handle = tasks.trigger("replayer", probe.payload())
    token = probe.token_of(handle.id)
    wait_status(handle.id, RunStatus.WAITING)

    assert first.terminate(timeout=20) == 0  # graceful: a waiting run does not hold it
    second = start_worker()
    assert wait.complete_token(token, "later") is True

    assert handle.result(timeout=30)["token"] == "later"
    assert len(probe.ledger("start", run=handle.id)) == 2
    assert len(probe.ledger("end")) == 1
    assert runs.retrieve(handle.id).attempts[0].worker_id == second.worker_id


def test_a_replay_that_takes_another_path_fails_with_a_non_determinism_error(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe
) -> None:
    first = start_worker()
    token = wait.create_token()
    handle = tasks.trigger("flipper", probe.payload(token=token.id))
    wait_status(handle.id, RunStatus.WAITING)
    first.terminate(timeout=20)
    start_worker()

    wait.complete_token(token, None)

    run = finished(handle.id)
    assert run.status is RunStatus.FAILED
    assert run.attempt_count == 1  # not retried: replaying again would do the same
    assert run.error is not None
    assert run.error.type == "NonDeterminismError"
    assert "'token'" in run.error.message and "'task'" in run.error.message
    assert "step 1" in run.error.message
    assert probe.ledger("echo") == []  # the other path's child was never triggered


def test_parallel_child_waits_replay_in_the_order_they_were_called(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe
) -> None:
    """gather(a, b): each call's step is fixed when it is called, not when its payload is
    validated, so a replay in which b validates first still gives a its own result."""
    first = start_worker()
    handle = tasks.trigger("ordered-gather", probe.payload())
    token = probe.token_of(handle.id)
    [children] = probe.ledger("children", run=handle.id)
    assert (children["a"], children["b"]) == ("a", "b")
    wait_status(handle.id, RunStatus.WAITING)
    first.terminate(timeout=20)
    start_worker()

    wait.complete_token(token, None)

    assert handle.result(timeout=30) == {"a": "a", "b": "b"}
    replayed = probe.ledger("children", run=handle.id)[-1]
    assert replayed["replaying"] is True
    assert (replayed["a"], replayed["b"]) == ("a", "b")
    assert len(runs.list(task="ordered-echo")) == 2
