"""`task()`, `schema_task()` and the `Task` object they return."""

from __future__ import annotations

import asyncio
import inspect
import math
import warnings
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

from ..config import Config
from ..durations import parse_duration
from ..engine.spec import TaskSpec
from ..engine.triggering import MIN_MAX_DURATION
from ..errors import InvalidOptionError, TaskloomError
from ..machines import resolve_machine
from ..retry import Retry
from . import children, registry
from .attempt_runtime import current_attempt, run_with_reserved_step
from .client import current_engine
from .handles import RunHandle
from .hook_args import DEPRECATED_HOOKS, BoundHook, bind_hook
from .idempotency_keys import scoped_options
from .queues import Queue, resolve_queue_option
from .results import BatchHandle, BatchResult, TaskRunResult

P = TypeVar("P")
R = TypeVar("R")

HOOK_NAMES = (
    "middleware",
    "on_start_attempt",
    "on_start",
    "init",
    "cleanup",
    "on_wait",
    "on_resume",
    "on_success",
    "on_failure",
    "on_complete",
    "on_cancel",
    "catch_error",
)


@dataclass(frozen=True, slots=True)
class TaskOptions:
    """A task's own options as given (validated); config defaults are applied later."""

    retry: Retry | None
    queue: Queue | None
    machine: str | None
    max_duration: int | None
    ttl_seconds: float | None
    description: str | None


class Task(Generic[P, R]):
    """A defined task. `task.run` is the original function; trigger with `trigger()`."""

    def __init__(
        self,
        *,
        id: str,
        run: Callable[..., Any],
        options: TaskOptions,
        hooks: Mapping[str, BoundHook],
        schema: Callable[[Any], Any] | None = None,
        defined_at: str,
    ) -> None:
        self.id = id
        self.run = run
        self.options = options
        self.hooks = dict(hooks)
        self.schema = schema
        self.defined_at = defined_at
        self.file_path = defined_at.rpartition(":")[0] or None
        self.is_async = inspect.iscoroutinefunction(run)
        self.takes_context = _run_arity(id, run) == 2
        self._spec: tuple[Config, TaskSpec] | None = None

    def __repr__(self) -> str:
        return f"<Task {self.id!r} defined at {self.defined_at}>"

    @property
    def description(self) -> str | None:
        return self.options.description

    def spec_for(self, config: Config) -> TaskSpec:
        """The task's run-shaping settings with the config's defaults applied."""
        cached = self._spec
        if cached is not None and cached[0] is config:
            return cached[1]
        o = self.options
        spec = TaskSpec(
            id=self.id,
            queue=o.queue.name if o.queue is not None else f"task/{self.id}",
            retry=o.retry if o.retry is not None else config.retries_default,
            machine=o.machine or config.machine,
            max_duration=o.max_duration if o.max_duration is not None else config.max_duration,
            ttl_seconds=o.ttl_seconds if o.ttl_seconds is not None else config.ttl,
            description=o.description,
            file_path=self.file_path,
            concurrency_limit=o.queue.concurrency_limit if o.queue is not None else None,
            total_concurrency_limit=(
                o.queue.total_concurrency_limit if o.queue is not None else None
            ),
        )
        self._spec = (config, spec)
        return spec

    def validate_payload(self, payload: Any) -> Any:
        """Run the schema (if any) on a payload; return what to store."""
        if self.schema is None:
            return payload
        parsed = self.schema(payload)
        dump = getattr(parsed, "model_dump", None)
        return dump(mode="json") if callable(dump) else payload

    def trigger(self, payload: P, **options: Any) -> RunHandle:
        """Create a run of this task; returns at once with its handle.

        Options: idempotency_key, idempotency_key_ttl, delay, ttl, tags, metadata,
        concurrency_key, queue, machine, max_attempts, max_duration, priority. Inside a
        run, the new run is its child (`parent_run_id`), and a replay finds it again.
        """
        stored = self.validate_payload(payload)
        if current_attempt.get() is not None:
            return children.trigger(self.spec_for(current_engine().config), stored, options)
        engine = current_engine()
        result = engine.trigger(self.spec_for(engine.config), stored, scoped_options(options))
        return RunHandle(result.run_id, self.id, not result.created)

    async def atrigger(self, payload: P, **options: Any) -> RunHandle:
        """Async twin of `trigger` (the write happens off the event loop)."""
        return await run_with_reserved_step(lambda: self.trigger(payload, **options))

    async def trigger_and_wait(self, payload: P, **options: Any) -> TaskRunResult:
        """Inside an async run: trigger a child run of this task and wait for it, without
        holding a concurrency slot. A failed child does not raise; use `.unwrap()`."""
        what = f"{self.id}.trigger_and_wait"
        step = children.reserve_step(what)  # before awaiting: see reserve_step
        stored = await asyncio.to_thread(self.validate_payload, payload)
        spec = self.spec_for(current_engine().config)
        return await children.trigger_and_wait(spec, stored, options, what=what, step=step)

    def _batch_items(self, items: list[dict[str, Any]], what: str) -> list[children.Item]:
        children._check_items(items, what)
        spec = self.spec_for(current_engine().config)
        resolved: list[children.Item] = []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise InvalidOptionError(
                    f"{what}: item {index} must be a dict like {{'payload': ...}}, got {item!r}"
                )
            options = children.item_options(item, index, what)
            resolved.append((spec, self.validate_payload(item.get("payload")), options))
        return resolved

    def batch_trigger(self, items: list[dict[str, Any]]) -> BatchHandle:
        """Trigger up to 1,000 runs of this task in one transaction:
        `[{"payload": ..., "options": {...}}, ...]`."""
        return children.batch_trigger(self._batch_items(items, f"{self.id}.batch_trigger"))

    async def abatch_trigger(self, items: list[dict[str, Any]]) -> BatchHandle:
        """Async twin of `batch_trigger`."""
        return await run_with_reserved_step(lambda: self.batch_trigger(items))

    async def batch_trigger_and_wait(self, items: list[dict[str, Any]]) -> BatchResult:
        """Inside an async run: trigger a batch of child runs and wait for all of them;
        results come back in item order."""
        what = f"{self.id}.batch_trigger_and_wait"
        step = children.reserve_step(what)  # before awaiting: see reserve_step
        resolved = await asyncio.to_thread(self._batch_items, items, what)
        return await children.batch_trigger_and_wait(resolved, what=what, step=step)


def _is_pydantic_model(schema: Any) -> bool:
    return inspect.isclass(schema) and hasattr(schema, "model_validate")


def _run_arity(task_id: str, run: Callable[..., Any]) -> int:
    if not callable(run):
        raise InvalidOptionError(f"run of task {task_id!r} must be callable, got {run!r}")
    try:
        signature = inspect.signature(run)
    except (TypeError, ValueError):
        return 1
    positional = [
        p
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    variadic = any(p.kind is p.VAR_POSITIONAL for p in signature.parameters.values())
    required = [p for p in positional if p.default is p.empty]
    if variadic or (len(positional) >= 2 and len(required) <= 2):
        return 2
    if len(positional) == 1 and len(required) <= 1:
        return 1
    raise InvalidOptionError(
        f"run of task {task_id!r} must take (payload) or (payload, ctx); "
        f"its signature is {signature}"
    )


def _defined_at(run: Callable[..., Any]) -> str:
    code = getattr(run, "__code__", None)
    if code is not None:
        return f"{code.co_filename}:{code.co_firstlineno}"
    frame = inspect.currentframe()
    while frame is not None and frame.f_globals.get("__name__", "").startswith("taskloom."):
        frame = frame.f_back
    if frame is None:
        return "<unknown>"
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def parse_task_options(
    task_id: str,
    *,
    retry: Retry | Mapping[str, Any] | None,
    queue: Queue | Mapping[str, Any] | None,
    machine: str | Mapping[str, Any] | None,
    max_duration: float | None,
    ttl: str | float | None,
    description: str | None,
) -> TaskOptions:
    """Validate a task's options at definition time; every error names the task."""
    what = f"task {task_id!r}"
    retry_policy = (
        None if retry is None else Retry.from_value(retry, what=f"retry of {what}", default=Retry())
    )
    if isinstance(machine, Mapping):
        machine = machine.get("preset")
    machine_name = (
        None if machine is None else resolve_machine(machine, what=f"machine of {what}").name
    )
    duration: int | None = None
    if max_duration is not None:
        seconds = parse_duration(max_duration, what=f"max_duration of {what}")
        if seconds < MIN_MAX_DURATION:
            raise InvalidOptionError(
                f"max_duration of {what} must be at least {MIN_MAX_DURATION} seconds, "
                f"got {max_duration!r}"
            )
        duration = math.ceil(seconds)
    ttl_seconds = None if ttl is None else parse_duration(ttl, what=f"ttl of {what}")
    if description is not None and not isinstance(description, str):
        raise InvalidOptionError(f"description of {what} must be a string, got {description!r}")
    return TaskOptions(
        retry=retry_policy,
        queue=resolve_queue_option(task_id, queue),
        machine=machine_name,
        max_duration=duration,
        ttl_seconds=ttl_seconds,
        description=description,
    )


def _check_hooks(task_id: str, hooks: Mapping[str, Any]) -> dict[str, BoundHook]:
    checked: dict[str, BoundHook] = {}
    for name, hook in hooks.items():
        if name not in HOOK_NAMES:
            raise InvalidOptionError(
                f"unknown option {name!r} for task {task_id!r}; task options are retry, "
                f"queue, machine, max_duration, ttl, description and the hooks "
                f"{', '.join(HOOK_NAMES)}"
            )
        if hook is None:
            continue
        checked[name] = bind_hook(name, hook, owner=f"task {task_id!r}", scope="task")
        if name in DEPRECATED_HOOKS:
            warnings.warn(
                f"the {name} hook of task {task_id!r} is deprecated: {DEPRECATED_HOOKS[name]}",
                DeprecationWarning,
                stacklevel=3,
            )
    return checked


def _check_id(task_id: Any) -> str:
    if not isinstance(task_id, str) or not task_id.strip():
        raise InvalidOptionError(f"a task needs a non-empty string id, got {task_id!r}")
    if len(task_id) > 128 or any(c.isspace() for c in task_id):
        raise InvalidOptionError(
            f"task id {task_id!r} must be at most 128 characters with no whitespace"
        )
    return task_id


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
        defined_at=_defined_at(run),
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
    task_id = _check_id(id)
    options = parse_task_options(
        task_id,
        retry=retry,
        queue=queue,
        machine=machine,
        max_duration=max_duration,
        ttl=ttl,
        description=description,
    )
    checked_hooks = _check_hooks(task_id, hooks)
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
    task_id = _check_id(id)
    parser = _schema_parser(task_id, schema)
    options = parse_task_options(
        task_id,
        retry=retry,
        queue=queue,
        machine=machine,
        max_duration=max_duration,
        ttl=ttl,
        description=description,
    )
    checked_hooks = _check_hooks(task_id, hooks)
    if run is not None:
        return _define(task_id, run, parser, options, checked_hooks)

    def decorate(fn: Callable[..., Any]) -> Task[Any, Any]:
        return _define(task_id, fn, parser, options, checked_hooks)

    return decorate


def _schema_parser(task_id: str, schema: Any) -> Callable[[Any], Any]:
    if _is_pydantic_model(schema):
        validate = schema.model_validate

        def parse_model(data: Any) -> Any:
            return data if isinstance(data, schema) else validate(data)

        return parse_model
    if not callable(schema):
        raise TaskloomError(
            f"schema of task {task_id!r} must be a pydantic model or a callable, got {schema!r}"
        )
    return schema  # type: ignore[no-any-return]
