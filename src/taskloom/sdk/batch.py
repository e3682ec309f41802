"""The `batch` namespace: trigger runs of several tasks at once (at most 1,000 items)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from ..engine.spec import TaskSpec
from ..errors import InvalidOptionError
from ..runtime import registry
from ..runtime.attempt import run_with_reserved_step
from . import children
from .client import current_engine
from .results import BatchHandle, BatchResult


def _items(items: Sequence[Mapping[str, Any]], what: str) -> list[children.Item]:
    children._check_items(items, what)
    engine = current_engine()
    resolved: list[children.Item] = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise InvalidOptionError(f"{what}: item {index} must be a dict, got {item!r}")
        task_id = item.get("id")
        if not isinstance(task_id, str):
            raise InvalidOptionError(f"{what}: item {index} needs the task 'id', got {task_id!r}")
        local = registry.get(task_id)
        spec: TaskSpec
        if local is not None:
            spec = local.spec_for(engine.config)
            payload = local.validate_payload(item.get("payload"))
        else:
            spec = engine.resolve_spec(task_id)
            payload = item.get("payload")
        resolved.append((spec, payload, children.item_options(item, index, what)))
    return resolved


class Batch:
    """`batch.trigger([...])` and `await batch.trigger_and_wait([...])`."""

    def trigger(self, items: Sequence[Mapping[str, Any]]) -> BatchHandle:
        """Trigger `[{"id": task_id, "payload": ..., "options": {...}}, ...]` in one go."""
        return children.batch_trigger(_items(items, "batch.trigger"))

    async def atrigger(self, items: Sequence[Mapping[str, Any]]) -> BatchHandle:
        """Async twin of `trigger`."""
        return await run_with_reserved_step(lambda: self.trigger(items))

    async def trigger_and_wait(self, items: Sequence[Mapping[str, Any]]) -> BatchResult:
        """Inside an async run: trigger the items as children and wait for all of them."""
        what = "batch.trigger_and_wait"
        step = children.reserve_step(what)  # before awaiting: see reserve_step
        resolved = await asyncio.to_thread(_items, items, what)
        return await children.batch_trigger_and_wait(resolved, what=what, step=step)


batch = Batch()
