"""The `batch` namespace: trigger runs of several tasks at once (at most 1,000 items).

Inside a run the batch is a step of the run (`taskloom.runtime.children`); outside one
it goes through the client. Payloads of tasks defined in this process are checked
against their schemas first either way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import InvalidOptionError
from ..runtime import children, registry
from ..runtime.steps import AttemptRuntime, current_attempt, run_with_reserved_step
from .client import BatchItem, current_client
from .results import BatchHandle, BatchResult


def _task_id(item: Any, index: int, what: str) -> str:
    if not isinstance(item, Mapping):
        raise InvalidOptionError(f"{what}: item {index} must be a dict, got {item!r}")
    task_id = item.get("id")
    if not isinstance(task_id, str):
        raise InvalidOptionError(f"{what}: item {index} needs the task 'id', got {task_id!r}")
    return task_id


def _payload(task_id: str, item: Mapping[str, Any]) -> Any:
    """An item's payload, checked against the task's schema when the task is defined in
    this process (as `Task.trigger` does)."""
    local = registry.get(task_id)
    payload = item.get("payload")
    return payload if local is None else local.validate_payload(payload)


def _client_items(items: Sequence[Mapping[str, Any]], what: str) -> list[BatchItem]:
    children.check_items(items, what)
    resolved: list[BatchItem] = []
    for index, item in enumerate(items):
        task_id = _task_id(item, index, what)
        payload = _payload(task_id, item)
        resolved.append(BatchItem(task_id, payload, children.item_options(item, index, what)))
    return resolved


def _run_items(
    runtime: AttemptRuntime, items: Sequence[Mapping[str, Any]], what: str
) -> list[children.Item]:
    children.check_items(items, what)
    resolved: list[children.Item] = []
    for index, item in enumerate(items):
        task_id = _task_id(item, index, what)
        spec = children.resolve_spec(runtime, task_id)
        payload = _payload(task_id, item)
        resolved.append((spec, payload, children.item_options(item, index, what)))
    return resolved


class Batch:
    """`batch.trigger([...])` and `await batch.trigger_and_wait([...])`."""

    def trigger(self, items: Sequence[Mapping[str, Any]]) -> BatchHandle:
        """Trigger `[{"id": task_id, "payload": ..., "options": {...}}, ...]` in one go."""
        what = "batch.trigger"
        runtime = current_attempt.get()
        if runtime is not None:
            triggered = children.batch_trigger(runtime, _run_items(runtime, items, what))
        else:
            triggered = current_client().batch_trigger(_client_items(items, what))
        return BatchHandle.of(triggered)

    async def atrigger(self, items: Sequence[Mapping[str, Any]]) -> BatchHandle:
        """Async twin of `trigger`."""
        return await run_with_reserved_step(lambda: self.trigger(items))

    async def trigger_and_wait(self, items: Sequence[Mapping[str, Any]]) -> BatchResult:
        """Inside an async run: trigger the items as children and wait for all of them."""
        what = "batch.trigger_and_wait"
        step = children.reserve_step(what)  # before awaiting: see reserve_step
        runtime, _ = step
        resolved = await asyncio.to_thread(_run_items, runtime, items, what)
        return await children.batch_trigger_and_wait(resolved, what=what, step=step)


batch = Batch()
