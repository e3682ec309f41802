"""`task()`, `schema_task()`, the `Task` object they return, and the `tasks` namespace.

Triggers made inside a run are steps of that run (`taskloom.runtime.children`); outside a
run they go through the client, by task id, once a schema task's payload is validated.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar, overload

from ..errors import InvalidOptionError
from ..retry import Retry
from ..runtime import children, registry
from ..runtime.definition import (
    TaskDefinition,
    TaskOptions,
    check_hooks,
    check_task_id,
    defined_at,
    parse_task_options,
    schema_parser,
)
from ..runtime.hook_args import BoundHook
from ..runtime.hooks import Registrar
from ..runtime.queues import Queue
from ..runtime.steps import AttemptRuntime, current_attempt, run_with_reserved_step
from .client import BatchItem, current_client
from .handles import RunHandle
from .results import BatchHandle, BatchResult, TaskRunResult

P = TypeVar("P")
R = TypeVar("R")


class Task(TaskDefinition[P, R]):
    """A defined task. `task.run` is the original function; trigger with `trigger()`."""

    def trigger(self, payload: P, **options: Any) -> RunHandle:
        """Create a run of this task; returns at once with its handle.

        Options: idempotency_key, idempotency_key_ttl, delay, ttl, tags, metadata,
        concurrency_key, queue, machine, max_attempts, max_duration, priority. Inside a
        run, the new run is its child (`parent_run_id`), and a replay finds it again.
        """
        stored = self.validate_payload(payload)
        runtime = current_attempt.get()
        if runtime is not None:
            spec = self.spec_for(runtime.engine.config)
            return RunHandle.of(children.trigger(runtime, spec, stored, options))
        return RunHandle.of(current_client().task_trigger(self.id, stored, options))

    async def atrigger(self, payload: P, **options: Any) -> RunHandle:
        """Async twin of `trigger` (the write happens off the event loop)."""
        return await run_with_reserved_step(lambda: self.trigger(payload, **options))

    async def trigger_and_wait(self, payload: P, **options: Any) -> TaskRunResult:
        """Inside an async run: trigger a child run of this task and wait for it, without
        holding a concurrency slot. A failed child does not raise; use `.unwrap()`."""
        what = f"{self.id}.trigger_and_wait"
        step = children.reserve_step(what)  # before awaiting: see reserve_step
        runtime, _ = step
        stored = await asyncio.to_thread(self.validate_payload, payload)
        spec = self.spec_for(runtime.engine.config)
        return await children.trigger_and_wait(spec, stored, options, what=what, step=step)

    def _batch_items(
        self, items: list[dict[str, Any]], what: str
    ) -> list[tuple[Any, Mapping[str, Any]]]:
        """Each item's payload (validated) and options, checked."""
        children.check_items(items, what)
        resolved: list[tuple[Any, Mapping[str, Any]]] = []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise InvalidOptionError(
                    f"{what}: item {index} must be a dict like {{'payload': ...}}, got {item!r}"
                )
            options = children.item_options(item, index, what)
            resolved.append((self.validate_payload(item.get("payload")), options))
        return resolved

    def _run_items(
        self, runtime: AttemptRuntime, items: list[dict[str, Any]], what: str
    ) -> list[children.Item]:
        spec = self.spec_for(runtime.engine.config)
        return [(spec, payload, options) for payload, options in self._batch_items(items, what)]

    def batch_trigger(self, items: list[dict[str, Any]]) -> BatchHandle:
        """Trigger up to 1,000 runs of this task in one transaction:
        `[{"payload": ..., "options": {...}}, ...]`."""
        what = f"{self.id}.batch_trigger"
        runtime = current_attempt.get()
        if runtime is not None:
            triggered = children.batch_trigger(runtime, self._run_items(runtime, items, what))
        else:
            checked = self._batch_items(items, what)
            triggered = current_client().batch_trigger(
                [BatchItem(self.id, payload, options) for payload, options in checked]
            )
        return BatchHandle.of(triggered)

    async def abatch_trigger(self, items: list[dict[str, Any]]) -> BatchHandle:
        """Async twin of `batch_trigger`."""
        return await run_with_reserved_step(lambda: self.batch_trigger(items))

    async def batch_trigger_and_wait(self, items: list[dict[str, Any]]) -> BatchResult:
        """Inside an async run: trigger a batch of child runs and wait for all of them;
        results come back in item order."""
        what = f"{self.id}.batch_trigger_and_wait"
        step = children.reserve_step(what)  # before awaiting: see reserve_step
        runtime, _ = step
        resolved = await asyncio.to_thread(self._run_items, runtime, items, what)
        return await children.batch_trigger_and_wait(resolved, what=what, step=step)


def _define(
    task_id: str,
    run: Callable[..., Any],
    schema: Callable[[Any], Any] | None,
    options: TaskOptions,
    hooks: dict[str, BoundHook],
) -> Task[Any, Any]:
    defined: Task[Any, Any] = Task(
        id=task_id,
        run=run,
        options=options,
        hooks=hooks,
        schema=schema,
        defined_at=defined_at(run),
    )
    registry.register(defined)
    return defined


@overload
def task(
    id: str,
    *,
    run: Callable[..., Awaitable[R]] | Callable[..., R],
    retry: Retry | Mapping[str, Any] | None = None,
    queue: Queue | Mapping[str, Any] | None = None,
    machine: str | None = None,
    max_duration: float | None = None,
    ttl: str | float | None = None,
    description: str | None = None,
    **hooks: Callable[..., Any],
) -> Task[Any, R]: ...


@overload
def task(
    id: str,
    *,
    run: None = None,
    retry: Retry | Mapping[str, Any] | None = None,
    queue: Queue | Mapping[str, Any] | None = None,
    machine: str | None = None,
    max_duration: float | None = None,
    ttl: str | float | None = None,
    description: str | None = None,
    **hooks: Callable[..., Any],
) -> Callable[[Callable[..., Any]], Task[Any, Any]]: ...


def task(
    id: str,
    *,
    run: Callable[..., Any] | None = None,
    retry: Retry | Mapping[str, Any] | None = None,
    queue: Queue | Mapping[str, Any] | None = None,
    machine: str | None = None,
    max_duration: float | None = None,
    ttl: str | float | None = None,
    description: str | None = None,
    **hooks: Callable[..., Any],
) -> Task[Any, Any] | Callable[[Callable[..., Any]], Task[Any, Any]]:
    """Define a task: as a decorator, or with `run=` as in Trigger.dev.

    >>> @task(id="hello-world")
    ... async def hello_world(payload, ctx):
    ...     return {"echo": payload["message"]}
    """
    task_id = check_task_id(id)
    options = parse_task_options(
        task_id,
        retry=retry,
        queue=queue,
        machine=machine,
        max_duration=max_duration,
        ttl=ttl,
        description=description,
    )
    checked_hooks = check_hooks(task_id, hooks)
    if run is not None:
        return _define(task_id, run, None, options, checked_hooks)

    def decorate(fn: Callable[..., Any]) -> Task[Any, Any]:
        return _define(task_id, fn, None, options, checked_hooks)

    return decorate


def schema_task(
    id: str,
    *,
    schema: type[Any] | Callable[[Any], Any],
    run: Callable[..., Any] | None = None,
    retry: Retry | Mapping[str, Any] | None = None,
    queue: Queue | Mapping[str, Any] | None = None,
    machine: str | None = None,
    max_duration: float | None = None,
    ttl: str | float | None = None,
    description: str | None = None,
    **hooks: Callable[..., Any],
) -> Any:
    """A task whose payload is validated by `schema` at trigger() and before each attempt.

    `schema` is a pydantic model class or any callable `data -> value`; `run` receives the
    parsed value.
    """
    task_id = check_task_id(id)
    parser = schema_parser(task_id, schema)
    options = parse_task_options(
        task_id,
        retry=retry,
        queue=queue,
        machine=machine,
        max_duration=max_duration,
        ttl=ttl,
        description=description,
    )
    checked_hooks = check_hooks(task_id, hooks)
    if run is not None:
        return _define(task_id, run, parser, options, checked_hooks)

    def decorate(fn: Callable[..., Any]) -> Task[Any, Any]:
        return _define(task_id, fn, parser, options, checked_hooks)

    return decorate


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
        runtime = current_attempt.get()
        if runtime is not None:
            spec = children.resolve_spec(runtime, task_id)
            return RunHandle.of(children.trigger(runtime, spec, payload, options))
        return RunHandle.of(current_client().task_trigger(task_id, payload, options))

    async def trigger_and_wait(
        self, task_id: str, payload: Any = None, **options: Any
    ) -> TaskRunResult:
        """Inside an async run: trigger a task by id as a child and wait for it."""
        what = "tasks.trigger_and_wait"
        step = children.reserve_step(what)  # before awaiting: see reserve_step
        runtime, _ = step
        spec = await asyncio.to_thread(children.resolve_spec, runtime, task_id)
        return await children.trigger_and_wait(spec, payload, options, what=what, step=step)

    async def atrigger(self, task_id: str, payload: Any = None, **options: Any) -> RunHandle:
        """Async twin of `trigger`."""
        return await run_with_reserved_step(lambda: self.trigger(task_id, payload, **options))


tasks = Tasks()
