"""Tokens: created anywhere, waited for in a run without a slot, completed from another
process (the first completion wins), timing out with a WaitpointTimeoutError."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from taskloom import RunStatus, Token, queues, runs, tasks, wait
from taskloom.testing import TaskloomProject, wait_for

from .conftest import StartWorker
from .support import Probe, run_python, wait_status

pytestmark = pytest.mark.slow

COMPLETE_SCRIPT = """
import json, sys
from taskloom import wait

token_id, data = sys.argv[1], json.loads(sys.argv[2])
print(json.dumps(wait.complete_token(token_id, data)))
"""

CREATE_SCRIPT = """
import json, sys
from taskloom import wait

token = wait.create_token(timeout="10m", idempotency_key=sys.argv[1], tags=["from", "script"])
print(json.dumps([token.id, token.is_cached]))
"""


def test_a_token_completed_from_another_process_resumes_the_run(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe
) -> None:
    worker = start_worker()
    handle = tasks.trigger("approver", probe.payload())
    token = probe.token_of(handle.id)
    wait_status(handle.id, RunStatus.WAITING)
    queue = queues.retrieve("task/approver")
    assert queue.running == 0  # a waiting run holds no slot

    out = run_python(project, COMPLETE_SCRIPT, token, json.dumps({"approved": True}))
    assert json.loads(out) is True
    # The first completion wins: a second one (from here) changes nothing.
    assert wait.complete_token(token, {"approved": False}) is False

    result = handle.result(timeout=15)
    assert result == {
        "ok": True,
        "output": {"approved": True},
        "error": None,
        "message": None,
        "unwrapped": True,
    }
    run = runs.retrieve(handle.id)
    assert run.attempt_count == 1
    assert worker.executor_pids() == [probe.ledger("token", run=handle.id)[0]["pid"]]
    hooks = probe.hooks(handle.id)
    assert [(h["hook"], h["type"], h["token"]) for h in hooks] == [
        ("on_wait", "token", token),
        ("on_resume", "token", token),
    ]
    assert hooks[0]["seq"] == 2  # create_token took step 1


def test_a_token_created_outside_a_run_and_completed_before_the_wait(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe
) -> None:
    made = run_python(project, CREATE_SCRIPT, "order-9")
    token_id, cached = json.loads(made)
    assert (token_id.startswith("waitpoint_"), cached) == (True, False)
    # The same idempotency key gives the same token, from any process.
    again = wait.create_token(timeout="10m", idempotency_key="order-9")
    assert isinstance(again, Token)
    assert (again.id, again.is_cached) == (token_id, True)
    assert wait.complete_token(token_id, [1, 2, 3]) is True
    start_worker()

    handle = tasks.trigger("approver", probe.payload(token=token_id))

    assert handle.result(timeout=15)["output"] == [1, 2, 3]
    assert probe.hooks(handle.id) == []  # completed already: no wait at all
    assert project.query("SELECT status, tags FROM waitpoints WHERE id = ?", (token_id,)) == [
        ("COMPLETED", '["from","script"]')
    ]


def test_a_token_that_times_out(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe
) -> None:
    start_worker()
    handle = tasks.trigger("approver", probe.payload(timeout=1))
    token = probe.token_of(handle.id)
    wait_status(handle.id, RunStatus.WAITING)

    result = handle.result(timeout=15)

    assert (result["ok"], result["output"], result["unwrapped"]) == (False, None, False)
    assert result["error"] == "WaitpointTimeoutError"
    assert token in result["message"] and "timed out" in result["message"]
    # A timed-out token cannot be completed any more.
    assert wait.complete_token(token, "late") is False
    run = runs.retrieve(handle.id)
    assert run.started_at is not None and run.finished_at is not None
    assert run.finished_at - run.started_at >= timedelta(seconds=1)


def test_token_timeout_forms_and_tags(project: TaskloomProject) -> None:
    token = wait.create_token(timeout=timedelta(minutes=10), tags="solo-tag")
    rows = project.query("SELECT kind, status, resume_at, created_at, tags FROM waitpoints")
    assert len(rows) == 1
    kind, status, resume_at, created_at, tags = rows[0]
    assert (kind, status, tags) == ("TOKEN", "WAITING", '["solo-tag"]')
    assert resume_at - created_at == pytest.approx(600_000, abs=50)
    assert str(token) == token.id
    assert wait.create_token().id != token.id  # no key: always a new token


def test_cancelling_a_waiting_run(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe
) -> None:
    start_worker()
    handle = tasks.trigger("approver", probe.payload())
    token = probe.token_of(handle.id)
    wait_status(handle.id, RunStatus.WAITING)

    assert runs.cancel(handle.id).status is RunStatus.CANCELED

    # The parked coroutine is cancelled on its worker: on_cancel runs, the attempt is
    # recorded, and completing the token later changes nothing.
    probe.wait_ledger("on_cancel", run=handle.id, timeout=10)
    wait_for(
        lambda: [a.status for a in runs.retrieve(handle.id).attempts] == ["CANCELED"],
        timeout=10,
        message=lambda: f"attempts: {runs.retrieve(handle.id).attempts}",
    )
    assert wait.complete_token(token, "too late") is True
    assert runs.retrieve(handle.id).status is RunStatus.CANCELED
    assert [h["hook"] for h in probe.hooks(handle.id)] == ["on_wait"]
