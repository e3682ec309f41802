"""Queues: `queue(name=..., concurrency_limit=...)` declares a shared queue."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidOptionError

MAX_CONCURRENCY_LIMIT = 100_000

_lock = threading.Lock()
_declared: dict[str, Queue] = {}


@dataclass(frozen=True, slots=True)
class Queue:
    """A named queue.

    `concurrency_limit` (None: unlimited) caps the runs of the queue that execute at once;
    with `concurrency_key=` at trigger time each key gets its own copy of that limit, and
    `total_concurrency_limit` (optional) caps all the keys together.
    """

    name: str
    concurrency_limit: int | None = None
    total_concurrency_limit: int | None = None


def _check_limit(name: str, limit: Any, what: str = "concurrency_limit") -> int | None:
    if limit is None:
        return None
    if (
        isinstance(limit, bool)
        or not isinstance(limit, int)
        or not (0 <= limit <= MAX_CONCURRENCY_LIMIT)
    ):
        raise InvalidOptionError(
            f"{what} of queue {name!r} must be an integer from 0 to "
            f"{MAX_CONCURRENCY_LIMIT} (or None for no limit), got {limit!r}"
        )
    return limit


def queue(
    name: str,
    concurrency_limit: int | None = None,
    *,
    total_concurrency_limit: int | None = None,
) -> Queue:
    """Declare a shared queue that several tasks (or trigger calls) can use.

    >>> emails = queue(name="emails", concurrency_limit=5)
    """
    if not isinstance(name, str) or not name.strip() or not name.isprintable():
        raise InvalidOptionError(
            f"a queue needs a non-empty name of printable characters, got {name!r}"
        )
    declared = Queue(
        name,
        _check_limit(name, concurrency_limit),
        _check_limit(name, total_concurrency_limit, "total_concurrency_limit"),
    )
    with _lock:
        existing = _declared.get(name)
        if existing is not None and existing != declared:
            raise InvalidOptionError(
                f"queue {name!r} is declared twice with different limits: {existing} and {declared}"
            )
        _declared[name] = declared
    return declared


def declared_queues() -> list[Queue]:
    """Every queue declared in this process."""
    with _lock:
        return list(_declared.values())


def is_declared(name: str) -> bool:
    """True when this process declared a queue with this name."""
    return name in _declared


def resolve_queue_option(task_id: str, value: Queue | Mapping[str, Any] | None) -> Queue | None:
    """A task's `queue=` option: a Queue, or a dict `{"name"?, "concurrency_limit"?}`."""
    if value is None or isinstance(value, Queue):
        return value
    if not isinstance(value, Mapping):
        raise InvalidOptionError(
            f"queue of task {task_id!r} must be queue(...) or a dict with name and/or "
            f"concurrency_limit, got {value!r}"
        )
    unknown = set(value) - {"name", "concurrency_limit", "total_concurrency_limit"}
    if unknown:
        raise InvalidOptionError(
            f"queue of task {task_id!r} has unknown key(s) {sorted(unknown)}; "
            "use name, concurrency_limit and total_concurrency_limit"
        )
    name = value.get("name") or f"task/{task_id}"
    limit = _check_limit(name, value.get("concurrency_limit"))
    total = _check_limit(name, value.get("total_concurrency_limit"), "total_concurrency_limit")
    if "name" in value:
        return queue(name, limit, total_concurrency_limit=total)
    return Queue(name, limit, total)
