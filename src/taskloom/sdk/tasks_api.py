"""The `tasks` namespace: trigger by id, and global lifecycle hooks."""

from __future__ import annotations

import asyncio
from typing import Any

from ..engine.spec import TaskSpec
from . import children, registry
from .attempt_runtime import run_with_reserved_step
from .client import current_engine
from .handles import RunHandle
from .hooks import Registrar
from .results import TaskRunResult


class Tasks:
    """`tasks.trigger("id", payload)` and the global hooks (`tasks.on_success(...)`, ...)."""

    on_start_attempt = Registrar("on_start_attempt")
    on_start = Registrar("on_start")
    on_success = Registrar("on_success")
    on_failure = Registrar("on_failure")
    on_complete = Registrar("on_complete")
    on_wait = Registrar("on_wait")
    on_resume = Registrar("on_resume")
    on_cancel = Registrar("on_cancel")
    catch_error = Registrar("catch_error")
    middleware = Registrar("middleware")

    def trigger(self, task_id: str, payload: Any = None, **options: Any) -> RunHandle:
        """Trigger a task by id, without importing it (a worker must have registered it).

        Unlike `Task.trigger`, a schema task's schema is not applied here (as in
        Trigger.dev); the worker still parses the payload before each attempt.
        """
        return children.trigger(self._spec(task_id), payload, options)

    def _spec(self, task_id: str) -> TaskSpec:
        engine = current_engine()
        local = registry.get(task_id)
        return local.spec_for(engine.config) if local is not None else engine.resolve_spec(task_id)

    async def trigger_and_wait(
        self, task_id: str, payload: Any = None, **options: Any
    ) -> TaskRunResult:
        """Inside an async run: trigger a task by id as a child and wait for it."""
        what = "tasks.trigger_and_wait"
        step = children.reserve_step(what)  # before awaiting: see reserve_step
        spec = await asyncio.to_thread(self._spec, task_id)
        return await children.trigger_and_wait(spec, payload, options, what=what, step=step)

    async def atrigger(self, task_id: str, payload: Any = None, **options: Any) -> RunHandle:
        """Async twin of `trigger`."""
        return await run_with_reserved_step(lambda: self.trigger(task_id, payload, **options))


tasks = Tasks()
