"""Runs triggered from inside a run: linked to their parent, recorded for replay, waited on."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from ..engine.records import WaitRef
from ..engine.spec import TaskSpec
from ..engine.triggering import RunLinks
from ..errors import InvalidOptionError
from ..runtime.attempt import AttemptRuntime, WaitInfo, attempt_runtime, current_attempt
from .client import current_engine
from .handles import RunHandle
from .idempotency_keys import scoped_options
from .results import BatchHandle, BatchResult, TaskRunResult

Item = tuple[TaskSpec, Any, Mapping[str, Any]]


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


def trigger(spec: TaskSpec, payload: Any, options: Mapping[str, Any]) -> RunHandle:
    """Trigger a run; inside a run it becomes a child, recorded so a replay reuses it."""
    runtime = current_attempt.get()
    engine = current_engine()
    if runtime is None:
        result = engine.trigger(spec, payload, scoped_options(options))
        return RunHandle(result.run_id, spec.id, not result.created)
    ref = runtime.next_ref()
    recorded = runtime.replayed(ref, "trigger")
    if recorded is not None and recorded.result is not None:
        return RunHandle(orjson.loads(recorded.result)["id"], spec.id, True)
    result, _ = engine.trigger_child(
        spec, payload, scoped_options(options), links=child_links(runtime), ref=ref, wait=False
    )
    return RunHandle(result.run_id, spec.id, not result.created)


Step = tuple[AttemptRuntime, WaitRef]


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
        engine = current_engine()
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


def _check_items(items: Sequence[Any], what: str) -> None:
    if not isinstance(items, Sequence) or isinstance(items, str | bytes):
        raise InvalidOptionError(f"{what} takes a list of items, got {type(items).__name__}")


def batch_trigger(items: list[Item]) -> BatchHandle:
    """Trigger several runs in one transaction; inside a run they are its children."""
    runtime = current_attempt.get()
    engine = current_engine()
    scoped = [(spec, payload, scoped_options(options)) for spec, payload, options in items]
    if runtime is None:
        batch_id, results, _ = engine.batch(scoped, links=RunLinks(), ref=None, wait=False)
    else:
        ref = runtime.next_ref()
        recorded = runtime.replayed(ref, "trigger")
        if recorded is not None and recorded.result is not None:
            data = orjson.loads(recorded.result)
            handles = [
                RunHandle(run_id, spec.id, True)
                for run_id, (spec, _, _) in zip(data["runs"], items, strict=False)
            ]
            return BatchHandle(data["batch_id"], handles)
        batch_id, results, _ = engine.batch(scoped, links=child_links(runtime), ref=ref, wait=False)
    handles = [
        RunHandle(result.run_id, spec.id, not result.created)
        for result, (spec, _, _) in zip(results, items, strict=True)
    ]
    return BatchHandle(batch_id, handles)


async def batch_trigger_and_wait(
    items: list[Item], *, what: str, step: Step | None = None
) -> BatchResult:
    """Trigger several child runs and wait for all; results in item order. `step`:
    reserved by the caller (see `reserve_step`)."""
    runtime, ref = step or reserve_step(what)
    recorded = runtime.replayed(ref, "batch")
    batch_id: str | None = None
    if recorded is None or recorded.status != "COMPLETED":
        engine = current_engine()
        scoped = [(spec, payload, scoped_options(options)) for spec, payload, options in items]
        batch_id, _, recorded = await asyncio.to_thread(
            lambda: engine.batch(scoped, links=child_links(runtime), ref=ref, wait=True)
        )
    assert recorded is not None
    info = WaitInfo("batch", ref.seq, batch_id=batch_id, run_count=len(items))
    data = orjson.loads(await runtime.wait_for(recorded, info))
    return BatchResult(data["id"], [TaskRunResult.from_json(r) for r in data["runs"]])


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
