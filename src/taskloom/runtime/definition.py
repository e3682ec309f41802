"""What a task is, as the runtime sees it: `TaskDefinition` and the checks of its options.

`task()` and `schema_task()` (in `taskloom.sdk.task`) build one and register it in
`taskloom.runtime.registry`; the worker's executors run attempts from it without the sdk.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ..config import Config
from ..durations import parse_duration
from ..engine.spec import TaskSpec
from ..engine.triggering import MIN_MAX_DURATION
from ..errors import InvalidOptionError, TaskloomError
from ..machines import resolve_machine
from ..retry import Retry
from .hook_args import DEPRECATED_HOOKS, BoundHook, bind_hook
from .queues import Queue, resolve_queue_option

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


class TaskDefinition(Generic[P, R]):
    """A defined task as the runtime sees it: its function, options, hooks and schema.

    The sdk's `Task` adds the ways to trigger it; the worker runs attempts from this.
    """

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
        self.takes_context = run_arity(id, run) == 2
        self._spec: tuple[Config, TaskSpec] | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id!r} defined at {self.defined_at}>"

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


def is_pydantic_model(schema: Any) -> bool:
    return inspect.isclass(schema) and hasattr(schema, "model_validate")


def run_arity(task_id: str, run: Callable[..., Any]) -> int:
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


def defined_at(run: Callable[..., Any]) -> str:
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


def check_hooks(task_id: str, hooks: Mapping[str, Any]) -> dict[str, BoundHook]:
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


def check_task_id(task_id: Any) -> str:
    if not isinstance(task_id, str) or not task_id.strip():
        raise InvalidOptionError(f"a task needs a non-empty string id, got {task_id!r}")
    if len(task_id) > 128 or any(c.isspace() for c in task_id):
        raise InvalidOptionError(
            f"task id {task_id!r} must be at most 128 characters with no whitespace"
        )
    return task_id


def schema_parser(task_id: str, schema: Any) -> Callable[[Any], Any]:
    if is_pydantic_model(schema):
        validate = schema.model_validate

        def parse_model(data: Any) -> Any:
            return data if isinstance(data, schema) else validate(data)

        return parse_model
    if not callable(schema):
        raise TaskloomError(
            f"schema of task {task_id!r} must be a pydantic model or a callable, got {schema!r}"
        )
    return schema  # type: ignore[no-any-return]
