"""The engine's queues surface (`engine.queues`): inspect queues, pause and resume
them, override their limits, and check a queue named at trigger time."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import InvalidOptionError
from ..store.records import QueueChange
from ..types import QueueDetails
from .decode import decode_queue
from .wake import RUNS_READY

if TYPE_CHECKING:
    from .engine import Engine


class Queues:
    """Queues as workers declared them, with live counts, and their management."""

    def __init__(self, engine: Engine, local_queues: Callable[[str], bool] | None) -> None:
        self._engine = engine
        self._store = engine.store
        self._local_queues = local_queues
        self._known: set[str] = set()

    def check(self, task_id: str, name: object) -> None:
        """Raise unless `name` is a queue declared in code (here or by a worker)."""
        if not isinstance(name, str) or not name:
            raise InvalidOptionError(
                f"queue of a run of task {task_id!r} must be a queue name, got {name!r}"
            )
        if name in self._known or (self._local_queues and self._local_queues(name)):
            return
        self._engine.ensure_schema()
        if self._store.read(lambda s: s.queue_get(name)) is not None:
            self._known.add(name)
            return
        raise InvalidOptionError(
            f"unknown queue {name!r} for a run of task {task_id!r}: declare it with "
            f"queue(name={name!r}, ...) in a task module (known queues: {self._names()})"
        )

    def _names(self) -> str:
        return ", ".join(q.name for q in self._store.read(lambda s: s.queue_list())) or "none yet"

    def get(self, name: str) -> QueueDetails:
        """A queue with its counts, or InvalidOptionError naming the known ones."""
        self._engine.ensure_schema()
        record = self._store.read(lambda s: s.queue_get(name))
        if record is None:
            raise InvalidOptionError(f"unknown queue {name!r} (known queues: {self._names()})")
        return decode_queue(record)

    def list(self) -> list[QueueDetails]:
        """Every queue workers have declared, with counts."""
        self._engine.ensure_schema()
        return [decode_queue(q) for q in self._store.read(lambda s: s.queue_list())]

    def pause(self, name: str, paused: bool) -> QueueDetails:
        """Pause (executing runs finish; nothing new starts) or resume a queue."""
        self.get(name)
        change = QueueChange(name, self._engine.clock.now_ms(), paused=paused)
        self._store.execute(lambda s: s.queue_change(change), "pause queue")
        if not paused:
            self._engine.notifier.notify(RUNS_READY)
        return self.get(name)

    def override_limit(self, name: str, limit: int | None) -> QueueDetails:
        """Override a queue's concurrency limit (None: back to the code's value)."""
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            raise InvalidOptionError(
                f"concurrency limit of queue {name!r} must be an integer >= 0, got {limit!r}"
            )
        self.get(name)
        now = self._engine.clock.now_ms()
        change = QueueChange(name, now, limit_override=limit, reset_limit=limit is None)
        self._store.execute(lambda s: s.queue_change(change), "queue limit")
        self._engine.notifier.notify(RUNS_READY)
        return self.get(name)
