"""The process-wide catalogue of defined tasks, keyed by id."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..engine.spec import TaskSpec
from ..errors import TaskloomError

if TYPE_CHECKING:
    from .definition import TaskDefinition

_lock = threading.Lock()
_tasks: dict[str, TaskDefinition[Any, Any]] = {}


def register(task: TaskDefinition[Any, Any]) -> None:
    """Add a task; a second definition of the same id is an error naming both places."""
    with _lock:
        existing = _tasks.get(task.id)
        if existing is not None and existing.defined_at != task.defined_at:
            raise TaskloomError(
                f"task id {task.id!r} is defined twice: at {existing.defined_at} and at "
                f"{task.defined_at}; task ids must be unique"
            )
        _tasks[task.id] = task


def get(task_id: str) -> TaskDefinition[Any, Any] | None:
    """The task defined in this process with this id, if any."""
    return _tasks.get(task_id)


def all_tasks() -> list[TaskDefinition[Any, Any]]:
    """Every task defined in this process, by id."""
    with _lock:
        return [_tasks[key] for key in sorted(_tasks)]


def unregister(task_id: str) -> None:
    """Forget a task (for tests and reloads)."""
    with _lock:
        _tasks.pop(task_id, None)


def clear() -> None:
    """Forget every task (for tests)."""
    with _lock:
        _tasks.clear()


def spec_lookup(config: Config) -> Callable[[str], TaskSpec | None]:
    """The specs of the tasks defined in this process, under `config`'s defaults: what an
    engine opened here is given as `local_specs`, so it finds them before the catalog.

    >>> engine = open_engine(config, local_specs=spec_lookup(config))  # doctest: +SKIP
    """

    def local_spec(task_id: str) -> TaskSpec | None:
        task = _tasks.get(task_id)
        return None if task is None else task.spec_for(config)

    return local_spec
