"""Bad input to waits, child runs and batches: a clear error naming what and why, and
nothing (no run, no half-made batch) created."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from taskloom import RunStatus, TaskloomError, batch, runs, task, tasks, wait
from taskloom.errors import InvalidOptionError, PayloadError, RunNotFoundError
from taskloom.testing import TaskloomProject

from .conftest import StartWorker
from .support import Probe, finished

pytestmark = pytest.mark.slow


async def _local(payload: Any) -> Any:
    return payload


def _count_runs(project: TaskloomProject) -> int:
    return len(runs.list(limit=1000))


def test_waits_and_child_waits_outside_a_run(project: TaskloomProject) -> None:
    local = task(id="local-child", run=_local)
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "wait.for_": lambda: wait.for_(seconds=10),
        "wait.until": lambda: wait.until(datetime.now(tz=UTC)),
        "wait.for_token": lambda: wait.for_token("waitpoint_X"),
        "local-child.trigger_and_wait": lambda: local.trigger_and_wait({}),
        "local-child.batch_trigger_and_wait": lambda: local.batch_trigger_and_wait(
            [{"payload": 1}]
        ),
        "tasks.trigger_and_wait": lambda: tasks.trigger_and_wait("local-child", {}),
        "batch.trigger_and_wait": lambda: batch.trigger_and_wait(
            [{"id": "local-child", "payload": 1}]
        ),
    }
    for what, call in calls.items():
        with pytest.raises(TaskloomError) as caught:
            asyncio.run(call())  # type: ignore[arg-type]
        assert str(caught.value).startswith(f"{what} can only be called inside a run"), what
    assert _count_runs(project) == 0


def test_too_many_or_no_batch_items(project: TaskloomProject) -> None:
    local = task(id="local-many", run=_local)
    items = [{"payload": n} for n in range(1001)]

    with pytest.raises(InvalidOptionError, match="at most 1,000 items, got 1,001"):
        local.batch_trigger(items)
    with pytest.raises(InvalidOptionError, match="at most 1,000 items, got 1,001"):
        batch.trigger([{"id": "local-many", **item} for item in items])
    with pytest.raises(InvalidOptionError, match="at least one item"):
        local.batch_trigger([])
    assert _count_runs(project) == 0
    # 1,000 is fine.
    assert len(local.batch_trigger(items[:1000]).runs) == 1000
    assert _count_runs(project) == 1000


def test_bad_items_and_metadata_create_no_half_batch(project: TaskloomProject) -> None:
    local = task(id="local-items", run=_local)
    good = [{"payload": n} for n in range(3)]
    cases: list[tuple[list[Any], type[Exception], str]] = [
        (
            [*good, {"payload": 3, "options": {"metadata": {"ids": {1, 2}}}}],
            PayloadError,
            r"batch item 3: metadata of a run of task 'local-items' is not JSON serialisable",
        ),
        (
            [*good, {"payload": 3, "options": {"metadata": {"blob": "x" * 300_000}}}],
            PayloadError,
            r"batch item 3: metadata of a run of task 'local-items' is 300,\d+ bytes, over "
            r"the limit of 262,144 bytes",
        ),
        ([*good, {"payload": {1, 2}}], PayloadError, "not JSON serialisable"),
        ([*good, "not a dict"], InvalidOptionError, "item 3 must be a dict"),
        ([*good, {"payload": 1, "opts": {}}], InvalidOptionError, r"unknown key\(s\) \['opts'\]"),
        ([{"payload": 1, "options": {"tags": ["x" * 200]}}], InvalidOptionError, "batch item 0"),
    ]
    for items, error, message in cases:
        with pytest.raises(error, match=message):
            local.batch_trigger(items)
    with pytest.raises(PayloadError, match="metadata of a run of task 'local-items'"):
        local.trigger(1, metadata={"when": datetime.now})
    with pytest.raises(PayloadError, match="over the limit"):
        local.trigger(1, metadata={"blob": "x" * 300_000})
    assert _count_runs(project) == 0


def test_unknown_tokens(project: TaskloomProject) -> None:
    with pytest.raises(RunNotFoundError, match="no waitpoint token with id 'waitpoint_NOPE'"):
        wait.complete_token("waitpoint_NOPE", {"x": 1})
    with pytest.raises(InvalidOptionError, match="not JSON serialisable"):
        wait.complete_token(wait.create_token(), {"x": {1}})
    with pytest.raises(InvalidOptionError, match="token tags"):
        wait.create_token(tags=["t"] * 11)
    with pytest.raises(InvalidOptionError, match="token timeout"):
        wait.create_token(timeout="soon")


def test_bad_waits_inside_runs_fail_the_run_clearly(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe
) -> None:
    start_worker()
    cases = {
        "waits-in-sync": (
            probe.payload(),
            "WaitOutsideRunError",
            "wait.for_ needs an async task: task 'waits-in-sync' is a sync function",
        ),
        "unknown-token": (
            probe.payload(),
            "RunNotFoundError",
            "no waitpoint token with id 'waitpoint_DOESNOTEXIST'",
        ),
        "big-batch": (
            probe.payload(n=1001),
            "InvalidOptionError",
            "a batch may have at most 1,000 items, got 1,001",
        ),
    }
    handles = {name: tasks.trigger(name, payload) for name, (payload, _, _) in cases.items()}
    bad_metadata = {
        kind: tasks.trigger("big-batch", probe.payload(n=3, bad_metadata=kind))
        for kind in ("not-json", "too-big")
    }

    for name, (_, error_type, message) in cases.items():
        run = finished(handles[name].id)
        assert run.status is RunStatus.FAILED, name
        assert run.error is not None
        assert (run.error.type, message in run.error.message) == (error_type, True), run.error
    for kind, handle in bad_metadata.items():
        run = finished(handle.id)
        assert run.status is RunStatus.FAILED
        assert run.error is not None and run.error.type == "PayloadError"
        assert "batch item 2: metadata of a run of task 'echo'" in run.error.message, kind
    # No child of a refused batch exists.
    assert runs.list(task="echo") == []
