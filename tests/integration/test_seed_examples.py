"""The seed examples (examples/seed) against a real worker, hook by hook.

The seed project is copied into a temporary directory with one extra module of probe
tasks (the edge cases no example shows) and run by one worker for the whole module.
Every assertion reads the run's own events, written by the worker's processes: a
`hook` event per hook call (kind, scope, name, error) and the `log` events the example
hooks write. So each test states the exact order and arguments of the hook calls,
the global ones from `trigger/init.py` (and `db.py`, `deprecated.py`) included.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import runpy
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from taskloom import Run, RunStatus, queues, runs, tasks
from taskloom.runtime import registry
from taskloom.runtime.hooks import clear_global
from taskloom.testing import TaskloomProject, WorkerProcess, wait_for
from workerfixtures import local_engine

pytestmark = pytest.mark.slow

SEED = Path(__file__).resolve().parents[2] / "examples" / "seed"

CONFIG: dict[str, Any] = {
    "retries": {
        "default": {
            "max_attempts": 3,
            "factor": 1,
            "min_timeout_ms": 50,
            "max_timeout_ms": 1000,
            "randomize": False,
        }
    },
    "worker": {
        "lease_seconds": 5,
        "shutdown_grace_seconds": 2,
        "cancel_grace_seconds": 2,
        "poll_interval_seconds": 0.2,
    },
}

PROBES = '''
"""Edge cases for the tests: catch_error answers, failing hooks, bad middleware."""

import asyncio
import time
from datetime import UTC, datetime, timedelta

from taskloom import Retry, logger, task

FAST = Retry(max_attempts=3, min_timeout_ms=50, factor=1, randomize=False)
TWICE = Retry(max_attempts=2, min_timeout_ms=50, factor=1, randomize=False)


def answer(payload, error, ctx):
    mode = payload["mode"]
    if mode == "none":
        return None
    if mode == "empty":
        return {}
    if mode == "skip":
        return {"skip_retrying": True}
    if mode == "delay":
        return {"retry_delay_ms": 400}
    if mode == "at":
        return {"retry_at": datetime.now(tz=UTC) + timedelta(milliseconds=400)}
    if mode == "retry":
        return {"retry": {"max_attempts": 5, "min_timeout_ms": 400, "factor": 1,
                          "randomize": False}}
    if mode == "error":
        return {"error": ValueError(f"replaced: {error}")}
    raise LookupError("handler bug")


async def run_failing_once(payload, ctx):
    if ctx.attempt.number == 1 or payload["mode"] in ("none", "empty", "skip", "error", "raise"):
        raise RuntimeError(f"attempt {ctx.attempt.number} failed")
    return {"attempt": ctx.attempt.number}


task(id="probe-catch-error", catch_error=answer, retry=FAST, run=run_failing_once)


def failing(kind):
    async def hook(payload, **rest):
        if payload["fail_in"] == kind:
            raise RuntimeError(f"{kind} broke")

    hook.__qualname__ = kind
    return hook


async def middleware(payload, next):
    await failing("middleware")(payload)
    await next()


async def run_unless(payload, ctx):
    logger.info("probe run", attempt=ctx.attempt.number)
    if payload["fail_in"] == "on_failure":
        raise RuntimeError("run broke")
    return "ok"


task(
    id="probe-hooks",
    retry=TWICE,
    run=run_unless,
    middleware=middleware,
    **{
        kind: failing(kind)
        for kind in (
            "init", "on_start", "on_start_attempt", "on_success", "on_failure",
            "on_complete", "cleanup",
        )
    },
)


async def forgets_next(payload, next):
    logger.info("middleware without next()")


async def calls_next_twice(next):
    await next()
    await next()


async def probe_run(payload):
    logger.info("probe run")
    return "ran"


task(id="probe-no-next", retry={"max_attempts": 1}, middleware=forgets_next, run=probe_run)
task(id="probe-next-twice", retry={"max_attempts": 1}, middleware=calls_next_twice,
     run=probe_run)


async def hold(payload, ctx):
    logger.info("holding")
    await ctx.signal.wait()
    return "released"


task(id="probe-hold-one", queue={"concurrency_limit": 1}, run=hold)


async def stuck(payload):
    logger.info("stuck")
    await asyncio.sleep(60)  # ignores the signal


async def waits_for_run(run_promise):
    await run_promise  # never resolves: the grace period ends it


task(id="probe-stuck-cancel", run=stuck, on_cancel=waits_for_run)


def sync_busy(payload):
    logger.info("busy")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # a thread: only stopping its process ends it
        time.sleep(0.01)


task(id="probe-sync-busy", run=sync_busy)
'''

KILL_TASKS = '''
"""A project without global hooks: a sync task to cancel and a neighbour on its executor."""

import itertools
import json
import os
import time
from pathlib import Path

from taskloom import task


def mark(directory, name, ctx):
    path = Path(directory) / f"{name}-{ctx.run.id}-{os.getpid()}.json"
    path.write_text(json.dumps({"pid": os.getpid(), "attempt": ctx.attempt.number}))


@task(id="sync-busy")
def sync_busy(payload, ctx):
    mark(payload["dir"], "busy", ctx)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # ignores the signal: only a kill stops it
        time.sleep(0.01)
    return "never"


@task(id="neighbour")
async def neighbour(payload, ctx):
    import asyncio

    mark(payload["dir"], "neighbour", ctx)
    while not (Path(payload["dir"]) / "release").exists():
        await asyncio.sleep(0.01)
    return {"pid": os.getpid(), "attempt": ctx.attempt.number}
'''


# --- the project and its worker ---------------------------------------------------------


@dataclass
class Seed:
    project: TaskloomProject
    worker: WorkerProcess


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seed]:
    root = tmp_path_factory.mktemp("seed")
    project = TaskloomProject(root)
    shutil.rmtree(root / "trigger")
    shutil.copytree(SEED / "trigger", root / "trigger")
    shutil.copy(SEED / "backend.py", root / "backend.py")
    project.write_task_module("probes", PROBES)
    project.write_config(**CONFIG)
    worker = project.worker(executors=2, concurrency=20)
    project.configure()
    try:
        yield Seed(project, worker)
    finally:
        project.reset()
        worker.close()
        print(f"==== seed worker exit {worker.returncode}\n{worker.output()}")


@pytest.fixture
def worker(seed: Seed) -> Iterator[WorkerProcess]:
    """The seed worker, checked alive before and after each test."""
    assert seed.worker.is_running(), seed.worker.output()
    seed.project.configure()
    yield seed.worker
    assert seed.worker.is_running(), seed.worker.output()


# --- reading a run's events -------------------------------------------------------------

Entry = tuple[Any, ...]


def log(message: str, **attributes: Any) -> Entry:
    return ("log", message, attributes)


def hook(kind: str, scope: str, name: str, error: str | None = None) -> Entry:
    return ("hook", kind, scope, name, error)


def trace(run_id: str, attempt: int | None = None) -> list[Entry]:
    """The run's hook calls and log lines in order (of one attempt, or all)."""
    entries: list[Entry] = []
    for event in local_engine().run_events(run_id):
        if attempt is not None and event.attempt != attempt:
            continue
        data = json.loads(event.data)
        if event.kind == "hook":
            error = data["error"]
            entries.append(
                hook(data["hook"], data["scope"], data["name"], error and error["message"])
            )
        elif event.kind == "log" and data["level"] != "debug":
            entries.append(log(data["message"], **data["attributes"]))
    return entries


def hook_calls(run_id: str, attempt: int | None = None) -> list[tuple[str, str]]:
    """(kind, scope) of each hook call."""
    return [(e[1], e[2]) for e in trace(run_id, attempt) if e[0] == "hook"]


def finish(handle: Any, timeout: float = 30) -> Run:
    return runs.poll(handle, timeout=timeout)


def ms(value: datetime | None) -> float:
    assert value is not None
    return value.timestamp() * 1000


# The global hooks every run goes through (trigger/init.py, db.py, deprecated.py).


def begin(run_id: str, task_id: str, payload: Any, attempt: int = 1) -> list[Entry]:
    """db middleware connects, on_start (first attempt only), on_start_attempt."""
    first = [
        log(f"Run {run_id} started on task {task_id}"),
        hook("on_start", "global", "log-start"),
    ]
    return [
        log("Connecting to the database"),
        *(first if attempt == 1 else []),
        log(f"Run {run_id} started on task {task_id} attempt {attempt}", payload=payload),
        hook("on_start_attempt", "global", "log-start-attempt"),
    ]


def disconnect() -> list[Entry]:
    return [log("Disconnecting from the database"), hook("middleware", "global", "db")]


def succeeded(task_id: str, output: Any) -> list[Entry]:
    return [
        log("Task succeeded", task=task_id, output=output),
        hook("on_success", "global", "log-success"),
    ]


def completed(task_id: str, ok: bool) -> list[Entry]:
    return [
        log("Task completed", task=task_id, ok=ok),
        hook("on_complete", "global", "log-complete"),
    ]


def caught(task_id: str, error: str, retry_delay_ms: int | None) -> list[Entry]:
    return [
        log("Caught error", task=task_id, error=error, retry_delay_ms=retry_delay_ms),
        hook("catch_error", "global", "log-error"),
    ]


def failed(task_id: str, error: str) -> list[Entry]:
    return [
        log("Task failed", task=task_id, error=error),
        hook("on_failure", "global", "log-failure"),
    ]


def gaps(run: Run) -> list[float]:
    """Milliseconds between the end of each attempt and the start of the next."""
    return [
        ms(later.started_at) - ms(earlier.finished_at)
        for earlier, later in zip(run.attempts, run.attempts[1:], strict=False)
    ]


# --- hello world, triggering and task options ---------------------------------------


def test_hello_world_triggered_from_backend_code(seed: Seed, worker: WorkerProcess) -> None:
    printed = subprocess.run(
        [sys.executable, "backend.py"],
        cwd=seed.project.root,
        env=seed.project.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    match = re.fullmatch(r"Task is running with handle (run_\w+)\n", printed)
    assert match, printed
    run_id = match.group(1)

    run = finish(run_id)

    assert (run.status, run.output, run.task_id) == (RunStatus.COMPLETED, None, "hello-world")
    assert trace(run_id) == [
        *begin(run_id, "hello-world", {"message": "Hello world!"}),
        log("Hello world!", stream="stdout"),
        *succeeded("hello-world", None),
        *completed("hello-world", True),
        *disconnect(),
    ]


def test_task_with_retries_backs_off_as_configured(worker: WorkerProcess) -> None:
    handle = tasks.trigger("task-with-retries", {"succeed_on_attempt": 3})

    run = finish(handle)

    assert run.status is RunStatus.COMPLETED
    assert run.output == {"attempts": 3}
    assert run.max_attempts == 10
    # factor 1.8 from 500 ms: 500 ms, then 900 ms.
    first, second = gaps(run)
    assert 495 <= first < 2500, first
    assert 895 <= second < 3000, second
    task_id, payload = "task-with-retries", {"succeed_on_attempt": 3}
    assert trace(run.id, 1) == [
        *begin(run.id, task_id, payload),
        *caught(task_id, "upstream unavailable on attempt 1", 500),
        *disconnect(),
    ]
    assert trace(run.id, 2)[-len(disconnect()) - 2 :] == [
        *caught(task_id, "upstream unavailable on attempt 2", 900),
        *disconnect(),
    ]
    assert trace(run.id, 3) == [
        *begin(run.id, task_id, payload, attempt=3),
        log("Succeeded", attempt=3),
        *succeeded(task_id, {"attempts": 3}),
        *completed(task_id, True),
        *disconnect(),
    ]


def test_one_at_a_time_runs_never_overlap(worker: WorkerProcess) -> None:
    handles = [tasks.trigger("one-at-a-time", {"seconds": 0.15}) for _ in range(3)]

    finished = [finish(handle) for handle in handles]

    assert {run.status for run in finished} == {RunStatus.COMPLETED}
    spans = sorted((ms(run.started_at), ms(run.finished_at)) for run in finished)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, spans


def test_heavy_task_runs_on_its_machine_preset(worker: WorkerProcess) -> None:
    run = finish(tasks.trigger("heavy-task", {}))

    assert run.machine == "large-1x"
    assert run.output == {"machine": "large-1x", "cpu": 4, "memory": 8}


def test_long_task_has_its_max_duration(worker: WorkerProcess) -> None:
    run = finish(tasks.trigger("long-task", {}))

    assert run.max_duration == 300
    assert run.output == {"max_duration": 300}


def test_time_sensitive_task_runs_expire_when_not_dequeued(worker: WorkerProcess) -> None:
    run = finish(tasks.trigger("time-sensitive-task", {}))
    assert (run.status, run.ttl) == (RunStatus.COMPLETED, 600)

    queues.pause("task/time-sensitive-task")
    try:
        stale = tasks.trigger("time-sensitive-task", {}, ttl="1s")
        expired = finish(stale, timeout=20)
    finally:
        queues.resume("task/time-sensitive-task")

    assert expired.status is RunStatus.EXPIRED
    assert expired.attempt_count == 0
    assert trace(expired.id) == []  # never executed: no hook was called


# --- middleware and locals ----------------------------------------------------------


def test_global_db_middleware_shares_its_client_with_run_and_hooks(
    worker: WorkerProcess,
) -> None:
    run = finish(tasks.trigger("db-task", {}))

    assert run.output == [[1]]
    assert trace(run.id) == [
        *begin(run.id, "db-task", {}),
        log("Query", sql="SELECT 1"),
        *succeeded("db-task", [[1]]),
        log("Still connected", connected=True, rows=[[1]]),
        hook("on_success", "task", "on_success"),
        *completed("db-task", True),
        *disconnect(),
    ]


def test_per_task_middleware_runs_inside_the_global_one(worker: WorkerProcess) -> None:
    run = finish(tasks.trigger("my-task", {}))

    assert run.output == "some-value"
    assert trace(run.id) == [
        *begin(run.id, "my-task", {}),
        log("Read myLocal", value="some-value"),
        *succeeded("my-task", "some-value"),
        *completed("my-task", True),
        hook("middleware", "task", "middleware"),
        *disconnect(),
    ]


def test_middleware_that_never_calls_next_fails_the_attempt(worker: WorkerProcess) -> None:
    run = finish(tasks.trigger("probe-no-next", {}))

    assert (run.status, run.attempt_count) == (RunStatus.FAILED, 1)
    assert run.error is not None
    assert run.error.type == "MiddlewareError"
    assert run.error.message == (
        "middleware 'forgets_next' of task 'probe-no-next' returned without calling "
        "`await next()`; the attempt did not run"
    )
    assert trace(run.id) == [
        log("Connecting to the database"),
        log("middleware without next()"),
        hook("middleware", "task", "forgets_next"),
        # The error goes up through the db middleware (which does not disconnect: its
        # code after `await next()` is skipped), then to catch_error. on_failure and
        # on_complete run inside the middleware, so a middleware error skips them.
        hook("middleware", "global", "db", run.error.message),
        *caught("probe-no-next", run.error.message, None),
    ]


def test_middleware_that_calls_next_twice_fails_the_attempt(worker: WorkerProcess) -> None:
    run = finish(tasks.trigger("probe-next-twice", {}))

    assert (run.status, run.attempt_count) == (RunStatus.FAILED, 1)
    assert run.error is not None
    assert run.error.type == "MiddlewareError"
    assert run.error.message == (
        "middleware 'calls_next_twice' of task 'probe-next-twice' called next() twice; "
        "call it exactly once"
    )
    assert [e for e in trace(run.id) if e[0] == "log" and e[1] == "probe run"] == [log("probe run")]


# --- on_start_attempt, on_start, on_wait / on_resume ----------------------------------


def test_on_start_attempt_runs_before_every_attempt(worker: WorkerProcess) -> None:
    task_id, payload = "task-with-on-start-attempt", {"succeed_on_attempt": 2}
    run = finish(tasks.trigger(task_id, payload))

    assert (run.status, run.attempt_count) == (RunStatus.COMPLETED, 2)
    assert trace(run.id, 1) == [
        *begin(run.id, task_id, payload),
        log("Attempt starting", attempt=1, payload=payload),
        hook("on_start_attempt", "task", "log_every_attempt"),
        *caught(task_id, "attempt 1 failed", 100),
        *disconnect(),
    ]
    assert trace(run.id, 2) == [
        *begin(run.id, task_id, payload, attempt=2),
        log("Attempt starting", attempt=2, payload=payload),
        hook("on_start_attempt", "task", "log_every_attempt"),
        *succeeded(task_id, {"attempt": 2}),
        *completed(task_id, True),
        *disconnect(),
    ]


def test_on_start_attempt_can_act_on_the_first_attempt_only(worker: WorkerProcess) -> None:
    task_id, payload = "task-with-on-start-attempt-first", {"succeed_on_attempt": 2}
    run = finish(tasks.trigger(task_id, payload))

    assert (run.status, run.attempt_count) == (RunStatus.COMPLETED, 2)
    assert trace(run.id, 1) == [
        *begin(run.id, task_id, payload),
        log("Run started on attempt 1", run=run.id),
        hook("on_start_attempt", "task", "log_first_attempt"),
        *caught(task_id, "attempt 1 failed", 100),
        *disconnect(),
    ]
    assert trace(run.id, 2) == [
        *begin(run.id, task_id, payload, attempt=2),
        hook("on_start_attempt", "task", "log_first_attempt"),
        *succeeded(task_id, {"attempt": 2}),
        *completed(task_id, True),
        *disconnect(),
    ]


def test_deprecated_on_start_runs_once_per_run(worker: WorkerProcess) -> None:
    task_id, payload = "task-with-on-start", {"succeed_on_attempt": 2}
    run = finish(tasks.trigger(task_id, payload))

    assert (run.status, run.attempt_count) == (RunStatus.COMPLETED, 2)
    assert trace(run.id, 1)[:6] == [
        log("Connecting to the database"),
        log(f"Run {run.id} started on task {task_id}"),
        hook("on_start", "global", "log-start"),
        log("on_start", attempt=1),
        hook("on_start", "task", "on_start"),
        log(f"Run {run.id} started on task {task_id} attempt 1", payload=payload),
    ]
    assert [c for c in hook_calls(run.id, 2) if c[0] == "on_start"] == []


def test_deprecated_init_and_cleanup_wrap_every_attempt(worker: WorkerProcess) -> None:
    init_run = finish(tasks.trigger("task-with-init-return", {}))
    cleanup_run = finish(tasks.trigger("task-with-cleanup", {"succeed_on_attempt": 2}))

    output = {"some_data": "someValue"}
    assert init_run.output == output
    assert trace(init_run.id) == [
        log("Connecting to the database"),
        hook("init", "task", "init_with_data"),
        log(f"Run {init_run.id} started on task task-with-init-return"),
        hook("on_start", "global", "log-start"),
        log(f"Run {init_run.id} started on task task-with-init-return attempt 1", payload={}),
        hook("on_start_attempt", "global", "log-start-attempt"),
        log("init data", some_data="someValue"),
        *succeeded("task-with-init-return", output),
        log("on_success", init=output),
        hook("on_success", "task", "on_success"),
        *completed("task-with-init-return", True),
        *disconnect(),
    ]
    assert cleanup_run.attempt_count == 2
    for attempt in (1, 2):
        calls = hook_calls(cleanup_run.id, attempt)
        assert calls[-2:] == [("cleanup", "task"), ("middleware", "global")]
        assert log("cleanup", attempt=attempt) in trace(cleanup_run.id, attempt)


def test_on_wait_and_on_resume_surround_a_wait(worker: WorkerProcess) -> None:
    # Over 5 s, so the run really pauses (shorter waits sleep in place, without hooks).
    run = finish(tasks.trigger("task-with-on-wait", {"seconds": 6}), timeout=60)

    assert (run.status, run.attempt_count) == (RunStatus.COMPLETED, 1)
    assert ms(run.finished_at) - ms(run.started_at) >= 6000
    task_id, rid = "task-with-on-wait", run.id
    assert trace(rid) == [
        *begin(rid, task_id, {"seconds": 6}),
        log("Run started", run=rid),
        # on_wait: global hooks in registration order (init.py before db.py), then the task's.
        log("Run paused", run=rid, wait="duration"),
        hook("on_wait", "global", "log-wait"),
        log("Disconnecting from the database"),
        hook("on_wait", "global", "db"),
        log("Run paused", wait="duration"),
        hook("on_wait", "task", "on_wait"),
        log("Run resumed", run=rid, wait="duration"),
        hook("on_resume", "global", "log-resume"),
        log("Connecting to the database"),
        hook("on_resume", "global", "db"),
        log("Run resumed", wait="duration"),
        hook("on_resume", "task", "on_resume"),
        log("Run finished", run=rid),
        *succeeded(task_id, None),
        *completed(task_id, True),
        *disconnect(),
    ]


# --- outcome hooks ----------------------------------------------------------------------


def test_on_success_gets_the_output(worker: WorkerProcess) -> None:
    task_id, payload = "task-with-on-success", {"name": "Ada"}
    run = finish(tasks.trigger(task_id, payload))

    output = {"greeting": "Hello, Ada!"}
    assert run.output == output
    assert trace(run.id) == [
        *begin(run.id, task_id, payload),
        *succeeded(task_id, output),
        log("Run succeeded", run=run.id, output=output),
        hook("on_success", "task", "on_success"),
        *completed(task_id, True),
        *disconnect(),
    ]


def test_on_complete_gets_the_result_of_success_and_of_failure(worker: WorkerProcess) -> None:
    task_id = "task-with-on-complete"
    good = finish(tasks.trigger(task_id, {"numbers": [1, 2, 3]}))
    bad = finish(tasks.trigger(task_id, {"fail": True}))

    assert good.output == {"sum": 6}
    assert trace(good.id) == [
        *begin(good.id, task_id, {"numbers": [1, 2, 3]}),
        *succeeded(task_id, {"sum": 6}),
        *completed(task_id, True),
        log("Run succeeded", data={"sum": 6}),
        hook("on_complete", "task", "on_complete"),
        *disconnect(),
    ]
    assert (bad.status, bad.attempt_count) == (RunStatus.FAILED, 2)
    # Not after attempt 1: a retry followed.
    assert trace(bad.id, 1) == [
        *begin(bad.id, task_id, {"fail": True}),
        *caught(task_id, "asked to fail (attempt 1)", 100),
        *disconnect(),
    ]
    assert trace(bad.id, 2) == [
        *begin(bad.id, task_id, {"fail": True}, attempt=2),
        *caught(task_id, "asked to fail (attempt 2)", None),
        *failed(task_id, "asked to fail (attempt 2)"),
        *completed(task_id, False),
        log("Run failed", error="asked to fail (attempt 2)"),
        hook("on_complete", "task", "on_complete"),
        *disconnect(),
    ]


def test_on_failure_runs_once_after_the_last_retry(worker: WorkerProcess) -> None:
    task_id = "task-with-on-failure"
    run = finish(tasks.trigger(task_id, {}))

    assert (run.status, run.attempt_count) == (RunStatus.FAILED, 3)
    assert all(gap >= 95 for gap in gaps(run)), gaps(run)
    for attempt in (1, 2):
        assert trace(run.id, attempt)[-4:] == [
            *caught(task_id, f"attempt {attempt} failed", 100),
            *disconnect(),
        ]
    assert trace(run.id, 3) == [
        *begin(run.id, task_id, {}, attempt=3),
        *caught(task_id, "attempt 3 failed", None),
        *failed(task_id, "attempt 3 failed"),
        log("Run failed for good", attempt=3, error="attempt 3 failed"),
        hook("on_failure", "task", "on_failure"),
        *completed(task_id, False),
        *disconnect(),
    ]


# --- catch_error ------------------------------------------------------------------------


def test_catch_error_example_decides_per_error(worker: WorkerProcess) -> None:
    task_id = "task-with-catch-error"
    limited = tasks.trigger(task_id, {"rate_limited_until_attempt": 2, "retry_after_ms": 300})
    invalid = tasks.trigger(task_id, {"invalid": "no such user"})
    flaky = tasks.trigger(task_id, {"flaky_until_attempt": 2})

    limited_run, invalid_run, flaky_run = (finish(h) for h in (limited, invalid, flaky))

    # The task's own answer wins: the global catch_error is not asked.
    assert (limited_run.status, limited_run.attempt_count) == (RunStatus.COMPLETED, 2)
    assert gaps(limited_run)[0] >= 295
    assert trace(limited_run.id, 1)[-3:] == [
        hook("catch_error", "task", "catch_error"),
        *disconnect(),
    ]
    # skip_retrying with a replacement error: fails now, on_failure sees the new error.
    assert (invalid_run.status, invalid_run.attempt_count) == (RunStatus.FAILED, 1)
    assert invalid_run.error is not None
    assert invalid_run.error.message == "invalid input: no such user"
    assert trace(invalid_run.id)[-7:] == [
        hook("catch_error", "task", "catch_error"),
        *failed(task_id, "invalid input: no such user"),
        *completed(task_id, False),
        *disconnect(),
    ]
    # None: the global catch_error is asked next, and its None keeps the default retry.
    assert (flaky_run.status, flaky_run.attempt_count) == (RunStatus.COMPLETED, 2)
    assert trace(flaky_run.id, 1)[-5:] == [
        hook("catch_error", "task", "catch_error"),
        *caught(task_id, "flaky on attempt 1", 100),
        *disconnect(),
    ]


def test_catch_error_return_values_end_to_end(worker: WorkerProcess) -> None:
    modes = ["none", "empty", "skip", "delay", "at", "retry", "error", "raise"]
    handles = {mode: tasks.trigger("probe-catch-error", {"mode": mode}) for mode in modes}
    done = {mode: finish(handle) for mode, handle in handles.items()}

    def outcome(mode: str) -> tuple[RunStatus, int, str | None]:
        run = done[mode]
        return run.status, run.attempt_count, run.error.message if run.error else None

    # None: default handling, the task's retry policy (3 attempts).
    assert outcome("none") == (RunStatus.FAILED, 3, "attempt 3 failed")
    # {} and {"skip_retrying": True}: the run fails now.
    assert outcome("empty") == (RunStatus.FAILED, 1, "attempt 1 failed")
    assert outcome("skip") == (RunStatus.FAILED, 1, "attempt 1 failed")
    # retry_delay_ms / retry_at / retry: the next attempt ~400 ms later, and it succeeds.
    for mode in ("delay", "at", "retry"):
        assert outcome(mode) == (RunStatus.COMPLETED, 2, None), mode
        assert gaps(done[mode])[0] >= 300, (mode, gaps(done[mode]))
    # error (no retry key): the run fails, with the replacement error.
    assert outcome("error") == (RunStatus.FAILED, 1, "replaced: attempt 1 failed")
    assert done["error"].error is not None
    assert done["error"].error.type == "ValueError"
    # catch_error raised: CRASHED, no retry, no on_failure.
    crashed = done["raise"]
    assert (crashed.status, crashed.attempt_count) == (RunStatus.CRASHED, 1)
    assert crashed.error is not None
    assert crashed.error.message == (
        "catch_error hook 'answer' of task 'probe-catch-error' raised LookupError: handler "
        "bug (while handling RuntimeError: attempt 1 failed)"
    )
    assert trace(crashed.id)[-5:] == [
        hook("catch_error", "task", "answer", "handler bug"),
        *completed("probe-catch-error", False),
        *disconnect(),
    ]
    assert ("on_failure", "global") not in hook_calls(crashed.id)
    # Only after a None from the task is the global catch_error asked.
    for mode in modes:
        asked = [c for c in hook_calls(done[mode].id) if c == ("catch_error", "global")]
        assert len(asked) == (3 if mode == "none" else 0), mode
    # on_failure only where the run failed for good after a FAILED attempt.
    for mode in modes:
        failures = [c for c in hook_calls(done[mode].id) if c[0] == "on_failure"]
        expected = 1 if done[mode].status is RunStatus.FAILED else 0
        assert len(failures) == expected, mode


# --- errors in hooks --------------------------------------------------------------------

BEFORE = [
    ("init", "task"),
    ("on_start", "global"),
    ("on_start", "task"),
    ("on_start_attempt", "global"),
    ("on_start_attempt", "task"),
]
STARTED = [("init", "task"), ("on_start_attempt", "global"), ("on_start_attempt", "task")]
SUCCESS = [
    ("on_success", "global"),
    ("on_success", "task"),
    ("on_complete", "global"),
    ("on_complete", "task"),
    ("cleanup", "task"),
    ("middleware", "task"),
    ("middleware", "global"),
]


@pytest.mark.parametrize(
    ("kind", "status", "attempts", "last_attempt"),
    [
        # Before run, or cleanup: the attempt fails and is retried (2 attempts here).
        (
            "middleware",
            RunStatus.FAILED,
            2,
            [("middleware", "task"), ("middleware", "global"), ("catch_error", "global")],
        ),
        (
            "init",
            RunStatus.FAILED,
            2,
            [
                ("init", "task"),
                ("catch_error", "global"),
                ("on_failure", "global"),
                ("on_failure", "task"),
                ("on_complete", "global"),
                ("on_complete", "task"),
                ("cleanup", "task"),
                ("middleware", "task"),
                ("middleware", "global"),
            ],
        ),
        # on_start only runs on attempt 1: attempt 2 succeeds without it.
        (
            "on_start",
            RunStatus.COMPLETED,
            2,
            [*STARTED, *SUCCESS],
        ),
        (
            "on_start_attempt",
            RunStatus.FAILED,
            2,
            [
                ("init", "task"),
                ("on_start_attempt", "global"),
                ("on_start_attempt", "task"),
                ("catch_error", "global"),
                ("on_failure", "global"),
                ("on_failure", "task"),
                ("on_complete", "global"),
                ("on_complete", "task"),
                ("cleanup", "task"),
                ("middleware", "task"),
                ("middleware", "global"),
            ],
        ),
        # cleanup runs after on_success and on_complete, and still fails the attempt.
        (
            "cleanup",
            RunStatus.FAILED,
            2,
            [
                *STARTED,
                *SUCCESS[:5],
                ("catch_error", "global"),
                ("middleware", "task"),
                ("middleware", "global"),
            ],
        ),
        # After run: recorded on the run and ignored.
        ("on_success", RunStatus.COMPLETED, 1, BEFORE + SUCCESS),
        ("on_complete", RunStatus.COMPLETED, 1, BEFORE + SUCCESS),
        (
            "on_failure",
            RunStatus.FAILED,
            2,
            [
                ("init", "task"),
                ("on_start_attempt", "global"),
                ("on_start_attempt", "task"),
                ("catch_error", "global"),
                ("on_failure", "global"),
                ("on_failure", "task"),
                ("on_complete", "global"),
                ("on_complete", "task"),
                ("cleanup", "task"),
                ("middleware", "task"),
                ("middleware", "global"),
            ],
        ),
    ],
)
def test_errors_in_each_hook_kind(
    worker: WorkerProcess,
    kind: str,
    status: RunStatus,
    attempts: int,
    last_attempt: list[tuple[str, str]],
) -> None:
    run = finish(tasks.trigger("probe-hooks", {"fail_in": kind}))

    assert (run.status, run.attempt_count) == (status, attempts)
    assert hook_calls(run.id, attempts) == last_attempt
    broken = [e for e in trace(run.id) if e[0] == "hook" and e[4] is not None]
    first_broken = broken[0]
    assert first_broken[1:] == (kind, "task", kind, f"{kind} broke")
    if status is RunStatus.FAILED and kind != "on_failure":
        assert run.error is not None
        assert run.error.message == f"{kind} broke"
    ran = [e for e in trace(run.id) if e[0] == "log" and e[1] == "probe run"]
    if kind in ("middleware", "init", "on_start_attempt"):
        assert ran == []  # run never started
    elif kind == "on_start":
        assert ran == [log("probe run", attempt=2)]


# --- cancellation -----------------------------------------------------------------------


def wait_for_log(run_id: str, message: str, timeout: float = 15) -> None:
    wait_for(
        lambda: any(e[0] == "log" and e[1] == message for e in trace(run_id)),
        timeout,
        message=lambda: f"no log {message!r} in run {run_id}: {trace(run_id)}",
    )


def wait_attempt_finished(run_id: str, attempt: int = 1, timeout: float = 20) -> Run:
    def finished() -> Run | None:
        run = runs.retrieve(run_id)
        if len(run.attempts) >= attempt and run.attempts[attempt - 1].finished_at is not None:
            return run
        return None

    return wait_for(finished, timeout, message=f"attempt {attempt} of {run_id} never finished")


def test_cancel_example_on_cancel_awaits_the_run_output(worker: WorkerProcess) -> None:
    handle = tasks.trigger("cancel-example", {}, idempotency_key="cancel-example-1")
    wait_for_log(handle.id, "Waiting 10 seconds, or until the run is cancelled")

    cancelled = runs.cancel(handle)
    run = wait_attempt_finished(handle.id)

    assert cancelled.status is RunStatus.CANCELED  # at once
    assert run.status is RunStatus.CANCELED
    assert run.attempt_count == 1  # never retried
    assert run.attempts[0].status == "CANCELED"
    assert ms(run.attempts[0].finished_at) - ms(run.attempts[0].started_at) < 5000
    output = {"message": "Hello, world!"}
    assert trace(handle.id) == [
        *begin(handle.id, "cancel-example", {}),
        log("Waiting 10 seconds, or until the run is cancelled"),
        # Global on_cancel first; then the task's, which awaits run_promise while the
        # run (signal fired) finishes its work and the middleware disconnects.
        log("Run cancelled", run=handle.id, reason="Canceled by user"),
        hook("on_cancel", "global", "log-cancel"),
        *disconnect(),
        log("Run output after cancel", output=output),
        hook("on_cancel", "task", "on_cancel"),
    ]
    # The idempotency key of a cancelled run is kept.
    again = tasks.trigger("cancel-example", {}, idempotency_key="cancel-example-1")
    assert (again.id, again.is_cached) == (handle.id, True)


def test_on_cancel_hooks_get_the_configured_grace_period(worker: WorkerProcess) -> None:
    handle = tasks.trigger("probe-stuck-cancel", {})
    wait_for_log(handle.id, "stuck")

    began = time.monotonic()
    runs.cancel(handle)
    run = wait_attempt_finished(handle.id)
    elapsed = time.monotonic() - began

    # worker.cancel_grace_seconds = 2 in this project: then the hook and the run stop.
    assert 2.0 <= elapsed < 10, elapsed
    assert run.attempts[0].status == "CANCELED"
    assert trace(handle.id) == [
        *begin(handle.id, "probe-stuck-cancel", {}),
        log("stuck"),
        log("Run cancelled", run=handle.id, reason="Canceled by user"),
        hook("on_cancel", "global", "log-cancel"),
        hook("on_cancel", "task", "waits_for_run", ""),  # cancelled: CancelledError()
        *disconnect(),
    ]


def test_a_cancelled_sync_run_is_stopped_once_the_on_cancel_hooks_return(
    worker: WorkerProcess,
) -> None:
    before = worker.executor_pids()
    handle = tasks.trigger("probe-sync-busy", {})
    wait_for_log(handle.id, "busy")

    runs.cancel(handle)
    run = wait_attempt_finished(handle.id)

    assert run.attempts[0].status == "CANCELED"

    def replaced() -> bool:
        now = worker.executor_pids()
        return len(now) == len(before) and not set(before) <= set(now)

    wait_for(
        replaced,
        20,
        message="the executor of the cancelled sync run was not replaced",
    )
    # The global on_cancel ran (and its events were shipped) before the process was
    # stopped; the code after the db middleware's `await next()` never ran.
    assert trace(handle.id) == [
        *begin(handle.id, "probe-sync-busy", {}),
        log("busy"),
        log("Run cancelled", run=handle.id, reason="Canceled by user"),
        hook("on_cancel", "global", "log-cancel"),
    ]


def test_interruptible_chat_saves_the_partial_answer(worker: WorkerProcess) -> None:
    prompt = " ".join(f"word{n}" for n in range(200))
    handle = tasks.trigger("interruptible-chat", {"prompt": prompt})

    def streamed() -> list[str]:
        return [
            json.loads(e.data)["attributes"]["text"]
            for e in local_engine().run_events(handle.id)
            if e.kind == "log" and json.loads(e.data)["message"] == "chunk"
        ]

    wait_for(lambda: len(streamed()) >= 3, 15, message="the chat streamed nothing")
    runs.cancel(handle)
    run = wait_attempt_finished(handle.id)

    assert run.status is RunStatus.CANCELED
    assert run.attempts[0].status == "CANCELED"
    chunks = streamed()
    assert 3 <= len(chunks) < 100
    assert chunks == ["You", "said:", *(f"word{n}" for n in range(len(chunks) - 2))]
    entries = trace(handle.id)
    assert entries[-6:] == [
        log("Run cancelled", run=handle.id, reason="Canceled by user"),
        hook("on_cancel", "global", "log-cancel"),
        # Registered inside run: it sees the chunks of the run's closure.
        log("Saved partial answer", chunks=chunks),
        hook("on_cancel", "run", "run.<locals>.save_chunks"),
        # The hooks are done: the run is stopped, the middleware disconnects.
        *disconnect(),
    ]
    assert ("on_failure", "global") not in hook_calls(handle.id)
    assert ("on_success", "global") not in hook_calls(handle.id)


def test_interruptible_chat_is_a_schema_task(worker: WorkerProcess) -> None:
    good = finish(tasks.trigger("interruptible-chat", {"prompt": "hi there"}))
    bad = finish(tasks.trigger("interruptible-chat", {"prompt": 42}))

    assert (good.status, good.output) == (RunStatus.COMPLETED, "You said: hi there")
    # An invalid payload fails before any hook or middleware, without retrying.
    assert (bad.status, bad.attempt_count) == (RunStatus.FAILED, 1)
    assert bad.error is not None
    assert "prompt" in bad.error.message
    assert trace(bad.id) == []


def test_cancelling_queued_or_delayed_runs_calls_no_hook(worker: WorkerProcess) -> None:
    delayed = tasks.trigger("cancel-example", {}, delay="1h")
    holder = tasks.trigger("probe-hold-one", {})
    wait_for_log(holder.id, "holding")
    queued = tasks.trigger("probe-hold-one", {})

    assert runs.retrieve(queued).status is RunStatus.QUEUED
    assert runs.cancel(delayed).status is RunStatus.CANCELED
    assert runs.cancel(queued).status is RunStatus.CANCELED
    runs.cancel(holder)
    wait_attempt_finished(holder.id)

    assert trace(delayed.id) == []
    assert trace(queued.id) == []
    assert runs.retrieve(queued).attempt_count == 0
    assert ("on_cancel", "global") in hook_calls(holder.id)


def test_a_cancelled_sync_run_without_on_cancel_stops_its_executor_at_once(
    seed: Seed, tmp_path: Path
) -> None:
    project = TaskloomProject(tmp_path / "kill")
    project.write_task_module("kill", KILL_TASKS)
    project.write_config(**CONFIG)
    probe = tmp_path / "probe"
    probe.mkdir()
    payload = {"dir": str(probe)}
    try:
        with project.configured(), project.worker(executors=1, concurrency=4) as killer:
            [executor] = killer.executor_pids()
            busy = tasks.trigger("sync-busy", payload)
            neighbour = tasks.trigger("neighbour", payload)
            wait_for(lambda: len(list(probe.glob("*.json"))) == 2, 15)

            runs.cancel(busy)
            wait_for(
                lambda: killer.executor_pids() and executor not in killer.executor_pids(),
                10,
                message="the executor of the cancelled sync run was not stopped",
            )
            cancelled = wait_attempt_finished(busy.id)
            (probe / "release").touch()
            finished = finish(neighbour)
            assert killer.is_running(), killer.output()
    finally:
        seed.project.configure()

    assert cancelled.status is RunStatus.CANCELED
    assert (cancelled.attempt_count, cancelled.attempts[0].status) == (1, "CANCELED")
    assert cancelled.attempts[0].error is not None
    assert cancelled.attempts[0].error.type == "TaskRunCancelledError"
    assert cancelled.attempts[0].error.code == "TASK_RUN_CANCELLED"
    # The neighbour went back to its queue and ran again on the new executor, without
    # using up an attempt.
    assert finished.status is RunStatus.COMPLETED
    assert finished.attempt_count == 1
    assert finished.output["attempt"] == 1
    assert finished.output["pid"] != executor
    starts = sorted(p.name for p in probe.glob(f"neighbour-{neighbour.id}-*.json"))
    assert len(starts) == 2, starts


# --- deprecated hooks -------------------------------------------------------------------


def test_deprecated_hooks_warn_once_each_at_definition() -> None:
    known = {t.id for t in registry.all_tasks()}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            runpy.run_path(str(SEED / "trigger" / "deprecated.py"))
    finally:
        clear_global()
        for defined in registry.all_tasks():
            if defined.id not in known:
                registry.unregister(defined.id)

    deprecations = [str(w.message) for w in caught if w.category is DeprecationWarning]
    assert deprecations == [
        "tasks.on_start is deprecated: use on_start_attempt (check ctx.attempt.number == 1) "
        "instead",
        "the on_start hook of task 'task-with-on-start' is deprecated: use on_start_attempt "
        "(check ctx.attempt.number == 1) instead",
        "the init hook of task 'task-with-init' is deprecated: use middleware and locals instead",
        "the init hook of task 'task-with-init-return' is deprecated: use middleware and "
        "locals instead",
        "the cleanup hook of task 'task-with-cleanup' is deprecated: use middleware (code "
        "after `await next()`) instead",
    ]
    assert [w for w in caught if w.category is not DeprecationWarning] == []
    assert os.path.samefile({w.filename for w in caught}.pop(), SEED / "trigger" / "deprecated.py")


def test_seed_examples_define_no_deprecated_hooks_outside_deprecated_py() -> None:
    for path in sorted((SEED / "trigger").glob("*.py")):
        if path.name == "deprecated.py":
            continue
        text = path.read_text()
        assert not re.search(r"\b(init|cleanup|on_start)=", text), path.name
        assert "tasks.on_start(" not in text, path.name


def test_every_seed_module_is_covered_by_a_test() -> None:
    this = Path(__file__).read_text()
    modules = sorted(p.stem for p in (SEED / "trigger").glob("*.py"))
    ids = {
        "hello_world": "hello-world",
        "retry": "task-with-retries",
        "one_at_a_time": "one-at-a-time",
        "heavy_task": "heavy-task",
        "long_task": "long-task",
        "time_sensitive_task": "time-sensitive-task",
        "db": "Connecting to the database",
        "db_task": "db-task",
        "per_task_middleware": "my-task",
        "on_start_attempt": "task-with-on-start-attempt-first",
        "on_wait": "task-with-on-wait",
        "on_success": "task-with-on-success",
        "on_complete": "task-with-on-complete",
        "on_failure": "task-with-on-failure",
        "catch_error": "task-with-catch-error",
        "on_cancel": "cancel-example",
        "interruptible_chat": "interruptible-chat",
        "deprecated": "task-with-init-return",
        "init": "log-start-attempt",
    }
    assert modules == sorted(ids)
    for module, marker in ids.items():
        assert f'"{marker}"' in this, module
