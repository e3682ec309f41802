"""Runs triggered from inside a run: linked to their parent, recorded for replay, waited on.

Each trigger is a durable step of the calling run (see `attempt`): it takes the run's next
sequence number and is recorded with it, through the attempt's engine, so a replay finds
the children it made the first time instead of making them again. The sdk's `trigger`,
`batch_trigger` and `*_and_wait` calls come here when they are made inside a run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from ..engine.records import WaitRef
from ..engine.spec import TaskSpec
from ..engine.triggering import RunLinks
from ..errors import InvalidOptionError
from . import registry
from .idempotency_keys import scoped_options
from .results import BatchResult, TaskRunResult, TriggeredBatch, TriggeredRun
from .steps import AttemptRuntime, WaitInfo, attempt_runtime

Item = tuple[TaskSpec, Any, Mapping[str, Any]]
"""One run to trigger: its task's spec, its payload (validated) and its trigger options."""

Step = tuple[AttemptRuntime, WaitRef]
"""The run making a call, and the step the call takes in it."""


def child_links(runtime: AttemptRuntime) -> RunLinks:
    """How a run triggered by the current run is linked to it."""
    run = runtime.ctx.run
    return RunLinks(
        parent_run_id=run.id,
        root_run_id=run.root_run_id or run.id,
        depth=run.depth + 1,
        is_test=run.is_test,
        queue_ts=runtime.queue_ts,
    )


def resolve_spec(runtime: AttemptRuntime, task_id: str) -> TaskSpec:
    """A task's spec by id: defined in this process, or announced by a worker."""
    local = registry.get(task_id)
    if local is not None:
        return local.spec_for(runtime.engine.config)
    return runtime.engine.resolve_spec(task_id)


def trigger(
    runtime: AttemptRuntime, spec: TaskSpec, payload: Any, options: Mapping[str, Any]
) -> TriggeredRun:
    """Trigger a child run, recorded so a replay of the parent finds it again."""
    ref = runtime.next_ref()
    recorded = runtime.replayed(ref, "trigger")
    if recorded is not None and recorded.result is not None:
        return TriggeredRun(orjson.loads(recorded.result)["id"], spec.id, True)
    result, _ = runtime.engine.trigger_child(
        spec, payload, scoped_options(options), links=child_links(runtime), ref=ref, wait=False
    )
    return TriggeredRun(result.run_id, spec.id, not result.created)


def reserve_step(what: str) -> Step:
    """The calling run's next step, taken as soon as a waiting call is made, before it
    awaits anything: parallel calls (`asyncio.gather`) then get the same steps in a replay
    as the first time, whichever of them finishes validating its payload first."""
    runtime = attempt_runtime(what)
    runtime.require_async(what)
    return runtime, runtime.next_ref()


async def trigger_and_wait(
    spec: TaskSpec,
    payload: Any,
    options: Mapping[str, Any],
    *,
    what: str,
    step: Step | None = None,
) -> TaskRunResult:
    """Trigger a child run and wait for it without holding a slot; never raises for a
    failed child (see `TaskRunResult.unwrap`). `step`: reserved by the caller."""
    runtime, ref = step or reserve_step(what)
    recorded = runtime.replayed(ref, "task")
    child_id: str | None = None
    if recorded is None or recorded.status != "COMPLETED":
        engine = runtime.engine
        opts = scoped_options(options)
        result, recorded = await asyncio.to_thread(
            lambda: engine.trigger_child(
                spec, payload, opts, links=child_links(runtime), ref=ref, wait=True
            )
        )
        child_id = result.run_id
    assert recorded is not None
    data = await runtime.wait_for(recorded, WaitInfo("task", ref.seq, run_id=child_id))
    return TaskRunResult.from_json(orjson.loads(data))


def check_items(items: Sequence[Any], what: str) -> None:
    """A batch's items must be a list (its items are checked one by one)."""
    if not isinstance(items, Sequence) or isinstance(items, str | bytes):
        raise InvalidOptionError(f"{what} takes a list of items, got {type(items).__name__}")


def item_options(item: Mapping[str, Any], index: int, what: str) -> Mapping[str, Any]:
    """The `options` of one batch item, checked."""
    options = item.get("options") or {}
    if not isinstance(options, Mapping):
        raise InvalidOptionError(f"{what}: item {index} has options that are not a dict")
    unknown = set(item) - {"payload", "options", "id", "task"}
    if unknown:
        raise InvalidOptionError(
            f"{what}: item {index} has unknown key(s) {sorted(unknown)}; "
            "items are {'payload': ..., 'options': {...}}"
        )
    return options


def batch_trigger(runtime: AttemptRuntime, items: list[Item]) -> TriggeredBatch:
    """Trigger several child runs in one transaction, recorded as one step."""
    scoped = [(spec, payload, scoped_options(options)) for spec, payload, options in items]
    ref = runtime.next_ref()
    recorded = runtime.replayed(ref, "trigger")
    if recorded is not None and recorded.result is not None:
        data = orjson.loads(recorded.result)
        runs = [
            TriggeredRun(run_id, spec.id, True)
            for run_id, (spec, _, _) in zip(data["runs"], items, strict=False)
        ]
        return TriggeredBatch(data["batch_id"], runs)
    batch_id, results, _ = runtime.engine.batch(
        scoped, links=child_links(runtime), ref=ref, wait=False
    )
    runs = [
        TriggeredRun(result.run_id, spec.id, not result.created)
        for result, (spec, _, _) in zip(results, items, strict=True)
    ]
    return TriggeredBatch(batch_id, runs)


async def batch_trigger_and_wait(
    items: list[Item], *, what: str, step: Step | None = None
) -> BatchResult:
    """Trigger several child runs and wait for all; results in item order. `step`:
    reserved by the caller (see `reserve_step`)."""
    runtime, ref = step or reserve_step(what)
    recorded = runtime.replayed(ref, "batch")
    batch_id: str | None = None
    if recorded is None or recorded.status != "COMPLETED":
        engine = runtime.engine
        scoped = [(spec, payload, scoped_options(options)) for spec, payload, options in items]
        batch_id, _, recorded = await asyncio.to_thread(
            lambda: engine.batch(scoped, links=child_links(runtime), ref=ref, wait=True)
        )
    assert recorded is not None
    info = WaitInfo("batch", ref.seq, batch_id=batch_id, run_count=len(items))
    data = orjson.loads(await runtime.wait_for(recorded, info))
    return BatchResult(data["id"], [TaskRunResult.from_json(r) for r in data["runs"]])
