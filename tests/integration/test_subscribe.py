"""`runs.subscribe` follows the engine's event log: it sees every status a run passes
through, with a real worker in another process."""

from __future__ import annotations

import asyncio

import pytest

from taskloom import RunStatus, metadata, queues, runs, tasks
from taskloom.testing import TaskloomProject

from .conftest import StartWorker

pytestmark = pytest.mark.slow

RETRIED_TASKS = """
from taskloom import metadata, task


@task(id="second-time-lucky", retry={"max_attempts": 3, "min_timeout_ms": 50,
                                     "randomize": False})
async def second_time_lucky(payload, ctx):
    metadata.set("attempt", ctx.attempt.number)
    await metadata.flush()
    if ctx.attempt.number == 1:
        raise RuntimeError("first attempt fails")
    return {"attempt": ctx.attempt.number}
"""


first_seen: list[bool] = []


async def _watch(run_id: str) -> list[tuple[RunStatus, int, object]]:
    seen = []
    async for run in runs.subscribe(run_id):
        seen.append((run.status, run.attempt_count, run.metadata.get("attempt")))
        first_seen.append(True)
    return seen


def test_subscribe_sees_every_status_of_a_retried_run(
    project: TaskloomProject, start_worker: StartWorker
) -> None:
    project.write_task_module("retried", RETRIED_TASKS)
    start_worker()
    queues.pause("task/second-time-lucky")  # the run waits QUEUED until the test resumes
    handle = tasks.trigger("second-time-lucky", {})

    async def scenario() -> list[tuple[RunStatus, int, object]]:
        watching = asyncio.create_task(_watch(handle.id))
        while not first_seen:  # the first snapshot is taken while the queue is paused
            await asyncio.sleep(0.001)
        await asyncio.to_thread(queues.resume, "task/second-time-lucky")
        return await asyncio.wait_for(watching, 60)

    seen = asyncio.run(scenario())
    S = RunStatus
    # Every status, in order, with its attempt. A metadata update shows the run again in
    # the same status (it may land just before or after its attempt's start is written).
    changes = [
        (status, attempt)
        for n, (status, attempt, _) in enumerate(seen)
        if n == 0 or status != seen[n - 1][0]
    ]
    assert changes == [
        (S.QUEUED, 0),
        (S.DEQUEUED, 1),
        (S.EXECUTING, 1),
        (S.QUEUED, 1),  # the retry
        (S.DEQUEUED, 2),
        (S.EXECUTING, 2),
        (S.COMPLETED, 2),
    ]
    assert len(seen) == len(changes) + 2  # and the two metadata updates
    observed = [value for _, _, value in seen if value is not None]
    assert observed == sorted(observed) and set(observed) == {1, 2}
    assert seen[-1] == (S.COMPLETED, 2, 2)
    assert metadata.current() is None  # outside a run: nothing, as the API says
