"""Machine presets with real executors: ctx.machine, CPU affinity, the memory limit and
out-of-memory retries on a bigger machine, and the clamp of presets larger than the host.
"""

from __future__ import annotations

import os
import re
from typing import Any

import pytest

from taskloom import runs, tasks
from taskloom.machines import MACHINE_PRESETS
from taskloom.testing import TaskloomProject
from taskloom.types import RunStatus

from .conftest import StartWorker

pytestmark = pytest.mark.slow

TASKS = """
import asyncio
import os

from taskloom import OutOfMemoryError, task

OOM_RETRY = {
    "max_attempts": 3, "min_timeout_ms": 50, "factor": 1, "randomize": False,
    "out_of_memory": {"machine": "small-2x"},
}


def describe(ctx):
    return {
        "machine": ctx.machine.name, "cpu": ctx.machine.cpu, "memory": ctx.machine.memory,
        "pid": os.getpid(), "cpus": sorted(os.sched_getaffinity(0)),
        "attempt": ctx.attempt.number,
    }


@task(id="where", machine="micro")
async def where(payload, ctx):
    return describe(ctx)


@task(id="default-machine")
async def default_machine(payload, ctx):
    return describe(ctx)


@task(id="crash-once", machine="large-2x",
      retry={"max_attempts": 2, "min_timeout_ms": 50, "factor": 1, "randomize": False})
async def crash_once(payload, ctx):
    if ctx.attempt.number == 1:
        os._exit(1)  # the executor dies: the next attempt needs a new large-2x executor
    return describe(ctx)


async def allocate(payload, ctx):
    data = b"\\x01" * (payload["mb"] << 20)  # every page written: resident memory
    await asyncio.sleep(payload.get("hold", 1.0))  # the watchdog samples meanwhile
    return {**describe(ctx), "held_mb": len(data) >> 20}


@task(id="hog", machine="micro", retry=OOM_RETRY)
async def hog(payload, ctx):
    return await allocate(payload, ctx)


@task(id="hog-no-retry", machine="micro", retry={"max_attempts": 3})
async def hog_no_retry(payload, ctx):
    return await allocate(payload, ctx)


@task(id="raises-oom", machine="micro", retry=OOM_RETRY)
async def raises_oom(payload, ctx):
    if ctx.machine.name == "micro":
        raise OutOfMemoryError("the model does not fit in micro")
    return describe(ctx)


@task(id="raises-oom-no-retry", machine="micro", retry={"max_attempts": 3})
async def raises_oom_no_retry(payload, ctx):
    raise OutOfMemoryError("the model does not fit")
"""

CLAMP = re.compile(r"machine preset large-2x \(8.0 vCPU, 16.0 GB\) is larger than this host")


@pytest.fixture
def machines_project(project: TaskloomProject) -> TaskloomProject:
    project.write_task_module("machines", TASKS)
    project.write_config(machine="small-2x")
    return project


def cpus_allowed(pid: int) -> str:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("Cpus_allowed_list:"):
                return line.split(":", 1)[1].strip()
    raise AssertionError(f"no Cpus_allowed_list for pid {pid}")


def output(run_id: str) -> dict[str, Any]:
    run = runs.poll(run_id, timeout=30)
    assert run.status is RunStatus.COMPLETED, (run.status, run.error, run.attempts)
    assert isinstance(run.output, dict)
    return run.output


def test_presets_shape_ctx_machine_affinity_and_clamp_once(
    machines_project: TaskloomProject, start_worker: StartWorker
) -> None:
    host_cpus = len(os.sched_getaffinity(0))
    worker = start_worker(concurrency=8, executors=1)
    micro = output(tasks.trigger("where", None).id)
    assert (micro["machine"], micro["cpu"], micro["memory"]) == ("micro", 0.25, 0.25)
    assert len(micro["cpus"]) == 1
    allowed = cpus_allowed(micro["pid"])  # the executor, read from outside
    assert re.fullmatch(r"\d+", allowed), f"a micro executor may use one CPU, got {allowed}"

    config_default = output(tasks.trigger("default-machine", None).id)
    assert config_default["machine"] == "small-2x"  # the config's machine
    assert len(config_default["cpus"]) == 1 and config_default["pid"] in worker.executor_pids()

    overridden = output(tasks.trigger("where", None, machine="medium-2x").id)  # trigger > task
    assert (overridden["machine"], overridden["cpu"], overridden["memory"]) == (
        "medium-2x",
        2.0,
        4.0,
    )
    assert len(overridden["cpus"]) == min(2, host_cpus)
    assert runs.retrieve(tasks.trigger("default-machine", None, machine="micro").id).machine == (
        "micro"
    )

    first = tasks.trigger("crash-once", None).id
    crashed = output(first)
    assert crashed["machine"] == "large-2x" and crashed["attempt"] == 2
    assert len(crashed["cpus"]) == host_cpus  # clamped: the whole host
    again = output(tasks.trigger("crash-once", None).id)
    assert again["machine"] == "large-2x"
    log = worker.stderr()
    if MACHINE_PRESETS["large-2x"].cpu > host_cpus:
        assert len(CLAMP.findall(log)) == 1, log  # two large-2x executors, one warning
    assert "exited with code 1" in log


def test_an_attempt_over_its_memory_is_stopped_and_retried_on_the_bigger_machine(
    machines_project: TaskloomProject, start_worker: StartWorker
) -> None:
    start_worker(concurrency=8, executors=1)
    payload = {"mb": 600, "hold": 1.0}
    retried = tasks.trigger("hog", payload).id
    stopped = tasks.trigger("hog-no-retry", payload).id
    raised = tasks.trigger("raises-oom", None).id
    raised_final = tasks.trigger("raises-oom-no-retry", None).id

    done = output(retried)
    assert (done["machine"], done["held_mb"], done["attempt"]) == ("small-2x", 600, 2)
    run = runs.retrieve(retried)
    assert run.machine == "small-2x"
    assert [a.status for a in run.attempts] == ["CRASHED", "COMPLETED"]
    first_error = run.attempts[0].error
    assert first_error is not None
    assert (first_error.type, first_error.code) == ("OutOfMemoryError", "TASK_PROCESS_OOM_KILLED")
    assert re.search(r"used \d+ MB, over the 256 MB of machine micro", first_error.message)

    failed = runs.poll(stopped, timeout=30)
    assert (failed.status, failed.attempt_count, failed.machine) == (
        RunStatus.CRASHED,
        1,
        "micro",
    )
    assert failed.error is not None and failed.error.type == "OutOfMemoryError"

    same = output(raised)  # raising OutOfMemoryError counts the same
    assert (same["machine"], same["attempt"]) == ("small-2x", 2)
    raised_run = runs.retrieve(raised)
    assert [a.status for a in raised_run.attempts] == ["CRASHED", "COMPLETED"]
    assert raised_run.attempts[0].error is not None
    assert raised_run.attempts[0].error.type == "OutOfMemoryError"
    final = runs.poll(raised_final, timeout=30)
    assert (final.status, final.attempt_count) == (RunStatus.CRASHED, 1)
    assert final.error is not None and "does not fit" in final.error.message
