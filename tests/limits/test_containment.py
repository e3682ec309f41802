"""Crash containment: an executor that dies while running several attempts charges none of
them; they go back to their queues, marked `isolate`, and each then runs alone in an
isolation executor, where a second crash is charged to the run that caused it.

Exact expectations (see worker/dispatcher.py), with one executor running `bystander`
(started first) and `crasher` (which kills its process once the bystander runs), and
max_attempts 2:

- first crash: two attempts held, so both runs are released uncharged (attempt 1 again)
  and marked isolate; no attempt row is written for either;
- crasher, alone in an isolation executor: crashes again, charged as attempt 1 (CRASHED),
  retried as attempt 2, crashes, charged: the run ends CRASHED after 2 attempts;
- bystander, alone in its isolation executor: completes as attempt 1.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from taskloom import runs, tasks
from taskloom.testing import TaskloomProject, wait_for
from taskloom.types import RunStatus

from .conftest import StartWorker

pytestmark = pytest.mark.slow

TASKS = """
import asyncio
import ctypes
import os
import time
from pathlib import Path

from taskloom import task

RETRY = {"max_attempts": 2, "min_timeout_ms": 50, "factor": 1, "randomize": False}


def mark(payload, name):
    (Path(payload["dir"]) / name).touch()


@task(id="bystander", retry=RETRY)
async def bystander(payload, ctx):
    execution = len(list(Path(payload["dir"]).glob("bystander-*"))) + 1
    mark(payload, f"bystander-{execution}-{ctx.attempt.number}-{os.getpid()}")
    if execution == 1:
        await asyncio.sleep(60)  # its executor dies long before this ends
    return {"attempt": ctx.attempt.number, "execution": execution, "pid": os.getpid()}


@task(id="crasher", retry=RETRY)
async def crasher(payload, ctx):
    execution = len(list(Path(payload["dir"]).glob("crasher-*"))) + 1
    mark(payload, f"crasher-{execution}-{ctx.attempt.number}-{os.getpid()}")
    deadline = time.monotonic() + 30
    while not list(Path(payload["dir"]).glob("bystander-*")):
        if time.monotonic() > deadline:
            raise TimeoutError("the bystander never started")
        await asyncio.sleep(0.005)
    if payload["how"] == "segfault":
        ctypes.string_at(0)  # SIGSEGV
    os._exit(1)
"""


def executions(directory: Path, name: str) -> list[tuple[int, int, int]]:
    """(execution, attempt, pid) of each start of task `name`, in order."""
    found = []
    for path in directory.glob(f"{name}-*"):
        _, execution, attempt, pid = path.name.split("-")
        found.append((int(execution), int(attempt), int(pid)))
    return sorted(found)


@pytest.mark.parametrize("how", ["exit", "segfault"])
def test_a_crash_is_charged_only_to_the_attempt_that_caused_it(
    project: TaskloomProject, start_worker: StartWorker, tmp_path: Path, how: str
) -> None:
    project.write_task_module("crashy", TASKS)
    probe = tmp_path / "probe"
    probe.mkdir()
    worker = start_worker(concurrency=4, executors=1)
    payload = {"dir": str(probe), "how": how}
    bystander = tasks.trigger("bystander", payload).id
    wait_for(lambda: executions(probe, "bystander"), timeout=15)
    crasher = tasks.trigger("crasher", payload).id

    done = runs.poll(bystander, timeout=30)
    crashed = runs.poll(crasher, timeout=30)

    assert (done.status, done.attempt_count) == (RunStatus.COMPLETED, 1)
    assert [(a.number, a.status) for a in done.attempts] == [(1, "COMPLETED")]
    assert (crashed.status, crashed.attempt_count) == (RunStatus.CRASHED, 2)
    assert [(a.number, a.status) for a in crashed.attempts] == [(1, "CRASHED"), (2, "CRASHED")]
    signal = "SIGSEGV" if how == "segfault" else "code 1"
    for attempt in crashed.attempts:
        assert attempt.error is not None and attempt.error.code == "TASK_PROCESS_EXITED"
        assert signal in attempt.error.message, attempt.error.message

    by = executions(probe, "bystander")
    cr = executions(probe, "crasher")
    shared = by[0][2]
    assert [(e, a) for e, a, _ in by] == [(1, 1), (2, 1)]  # re-run, attempt not used up
    assert [(e, a) for e, a, _ in cr] == [(1, 1), (2, 1), (3, 2)]
    assert cr[0][2] == shared, "both first ran in the one executor"
    later = {pid for _, _, pid in by[1:] + cr[1:]}
    assert shared not in later, "after the shared crash each ran elsewhere"
    assert done.output == {"attempt": 1, "execution": 2, "pid": by[1][2]}

    flags = dict(project.query("SELECT id, isolate FROM runs"))
    assert flags == {bystander: 1, crasher: 1}
    log = worker.stderr()
    assert "while running 2 attempt(s)" in log and "while running 1 attempt(s)" in log, log
