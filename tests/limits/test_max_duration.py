"""max_duration: an attempt that uses its compute time is stopped and the run ends TIMED_OUT,
without a retry and without on_success/on_failure, whatever the code does:

- async code that awaits: the executor cancels it when the budget runs out (ctx.signal
  fires first, the coroutine sees CancelledError);
- CPU-bound sync code in a thread, which cannot be interrupted: its executor process is
  stopped;
- async code that never yields (it blocks the executor's event loop, so the executor's
  own timer cannot fire): the supervisor's backstop stops the executor at
  max_duration + 2 s.

Time spent waiting (wait.for_ and friends) does not count; waits are not implemented on
this branch yet, so that part is not tested here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from taskloom import runs, task, tasks
from taskloom.clock import FakeClock
from taskloom.errors import InvalidOptionError
from taskloom.runtime import registry
from taskloom.testing import TaskloomProject, wait_for
from taskloom.types import RunStatus

from .conftest import StartWorker
from .enginekit import T0, count_runs, open_engine

TASKS = """
import asyncio
import json
import os
import time
from pathlib import Path

from taskloom import task


def mark(payload, name, data):
    path = Path(payload["dir"]) / name
    path.with_suffix(".tmp").write_text(json.dumps(data))
    os.replace(path.with_suffix(".tmp"), path)


def started(payload, ctx):
    mark(payload, f"started-{ctx.run.id}", {
        "t": time.time(), "pid": os.getpid(), "max_duration": ctx.run.max_duration,
    })


HOOKS = {
    "on_success": lambda payload, ctx: mark(payload, f"on_success-{ctx.run.id}", {}),
    "on_failure": lambda payload, ctx: mark(payload, f"on_failure-{ctx.run.id}", {}),
}


@task(id="awaits", max_duration=30, **HOOKS)
async def awaits(payload, ctx):
    started(payload, ctx)
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        signal = ctx.signal
        mark(payload, f"signal-{ctx.run.id}", {
            "aborted": signal.aborted, "reason": signal.reason, "t": time.time(),
        })
        raise
    return "slept a minute"


@task(id="spins", max_duration=5, **HOOKS)
def spins(payload, ctx):
    started(payload, ctx)
    total = 0
    while True:  # CPU-bound, never checks ctx.signal
        total += 1


@task(id="blocks-loop", **HOOKS)
async def blocks_loop(payload, ctx):
    started(payload, ctx)
    time.sleep(60)  # async code that never yields: the executor's loop is stuck
    return "never"
"""

MAX_DURATION = 5
TOLERANCE = 1.0


def read(directory: Path, name: str) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads((directory / name).read_text())
    except FileNotFoundError:
        return None
    return data


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


@pytest.mark.slow
def test_async_sync_and_stuck_attempts_end_timed_out_without_retry_or_hooks(
    project: TaskloomProject, start_worker: StartWorker, tmp_path: Path
) -> None:
    project.write_config(max_duration=MAX_DURATION)
    project.write_task_module("timed", TASKS)
    probe = tmp_path / "probe"
    probe.mkdir()
    worker = start_worker(concurrency=3, executors=3)
    payload = {"dir": str(probe)}
    # trigger > task: `awaits` says 30 s, the trigger 5 s; `spins` says 5 s itself;
    # `blocks-loop` has none and gets the config's 5 s.
    awaited = tasks.trigger("awaits", payload, max_duration=MAX_DURATION).id
    spun = tasks.trigger("spins", payload).id
    blocked = tasks.trigger("blocks-loop", payload).id
    ids = {"awaits": awaited, "spins": spun, "blocks-loop": blocked}
    starts = {
        name: wait_for(lambda run_id=run_id: read(probe, f"started-{run_id}"), timeout=15)
        for name, run_id in ids.items()
    }
    pids = {name: int(start["pid"]) for name, start in starts.items()}
    assert len(set(pids.values())) == 3, f"each attempt should have its own executor: {pids}"

    finals = {name: runs.poll(run_id, timeout=20) for name, run_id in ids.items()}
    limits = {"awaits": MAX_DURATION, "spins": MAX_DURATION, "blocks-loop": MAX_DURATION + 2}
    for name, run in finals.items():
        start = read(probe, f"started-{run.id}")
        assert start is not None and start["max_duration"] == MAX_DURATION, (name, start)
        assert run.status is RunStatus.TIMED_OUT, (name, run.status, run.error)
        assert run.attempt_count == 1, f"{name} was retried: {run.attempts}"
        assert [a.status for a in run.attempts] == ["TIMED_OUT"], name
        assert run.error is not None and run.error.code == "MAX_DURATION_EXCEEDED", run.error
        assert run.error.type == "MaxDurationExceededError", run.error
        assert run.finished_at is not None
        took = run.finished_at.timestamp() - float(start["t"])
        assert limits[name] - 0.2 <= took <= limits[name] + TOLERANCE, f"{name} took {took:.2f}s"
        for hook in ("on_success", "on_failure"):
            assert read(probe, f"{hook}-{run.id}") is None, f"{hook} ran for {name}"
        print(f"{name}: TIMED_OUT after {took:.2f} s (limit {limits[name]} s)")

    signal = read(probe, f"signal-{awaited}")
    assert signal is not None, "the awaiting attempt was not cancelled"
    assert signal["aborted"] is True and "max_duration" in str(signal["reason"]), signal
    assert "max_duration" in str(finals["awaits"].error)
    assert "never yields" in str(finals["blocks-loop"].error)
    # The executors that could not be interrupted were stopped; the other one lives on.
    wait_for(lambda: not pid_alive(pids["spins"]), timeout=5)
    wait_for(lambda: not pid_alive(pids["blocks-loop"]), timeout=5)
    assert pids["awaits"] in worker.executor_pids()


def test_max_duration_precedence_is_trigger_then_task_then_config(tmp_path: Path) -> None:
    def noop(payload: object) -> None:
        return None

    own = task(id="md-own", run=noop, max_duration="2m")
    inherits = task(id="md-inherits", run=noop)
    try:
        with open_engine(tmp_path, [], FakeClock(start_ms=T0), max_duration=3600) as engine:
            cases = [
                (inherits, {}, 3600),
                (own, {}, 120),
                (own, {"max_duration": 7}, 7),
                (inherits, {"max_duration": "5.5s"}, 6),  # whole seconds, rounded up
            ]
            for defined, options, expected in cases:
                run_id = engine.trigger(defined.spec_for(engine.config), None, options).run_id
                assert engine.retrieve(run_id).max_duration == expected, (defined, options)
            with pytest.raises(InvalidOptionError, match=r"at least 5 seconds, got 4\.9"):
                engine.trigger(own.spec_for(engine.config), None, {"max_duration": 4.9})
            assert count_runs(engine) == len(cases)
    finally:
        registry.unregister("md-own")
        registry.unregister("md-inherits")
