"""The seam between SDK code and the executor that runs it.

Task code never talks to the executor directly. The executor binds one
`EventSink` per attempt into `current_sink` (a ContextVar, so concurrent async
attempts on one event loop and sync attempts in worker threads each see their
own), and SDK code such as `logger` calls `emit_event`, which returns False
when no run is executing in the current context.

Example (what the executor does around each attempt)::

    sink = CollectingSink()
    with use_sink(sink):
        run_the_attempt()
    capture.flush_partial(sink)   # a last `print(..., end="")` still counts
    ship(sink.events)

Threads you start yourself inherit the sink only if they run in a copy of the
context: `threading.Thread(target=contextvars.copy_context().run, args=(fn,))`
or `asyncio.to_thread(fn)` (plain `loop.run_in_executor` does not copy it).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

__all__ = [
    "CollectingSink",
    "EventSink",
    "current_sink",
    "emit_event",
    "json_safe",
    "use_sink",
]


class EventSink(Protocol):
    """Receives the events of one attempt (log lines, spans, ...), in order.

    `data` is JSON-safe. `emit` is called from the attempt's own thread or event
    loop and must not block for long; the executor batches events itself.
    """

    def emit(self, kind: str, data: dict[str, Any]) -> None:
        """Record one event of the given kind."""
        ...


current_sink: ContextVar[EventSink | None] = ContextVar("taskloom_current_sink", default=None)
"""The sink of the attempt running in this context, or None outside a run."""


def emit_event(kind: str, data: dict[str, Any]) -> bool:
    """Emit an event to the current attempt's sink; False when no run is executing here."""
    sink = current_sink.get()
    if sink is None:
        return False
    sink.emit(kind, data)
    return True


@contextmanager
def use_sink(sink: EventSink) -> Iterator[EventSink]:
    """Bind `sink` as the current sink for the body of the `with` block, then restore.

    Partial `print` lines are not flushed here; call
    `taskloom.runtime.capture.flush_partial(sink)` when the attempt ends.
    """
    token = current_sink.set(sink)
    try:
        yield sink
    finally:
        current_sink.reset(token)


class CollectingSink:
    """A sink that keeps every event in memory as `(kind, data)` tuples, in order.

    Used by tests and by the executor, which drains `.events` into its batches.

    >>> sink = CollectingSink()
    >>> sink.emit("log", {"message": "hi"})
    >>> sink.events
    [('log', {'message': 'hi'})]
    """

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def emit(self, kind: str, data: dict[str, Any]) -> None:
        """Append the event (list.append is atomic, so threads of one attempt may share it)."""
        self.events.append((kind, data))

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """The data of every event of this kind, in order."""
        return [data for event_kind, data in self.events if event_kind == kind]


_MAX_DEPTH = 32
# orjson refuses integers outside this range; stdlib json would accept them,
# but event data must survive whichever codec ships it.
_MIN_INT = -(2**63)
_MAX_INT = 2**64 - 1


def json_safe(value: object, *, _depth: int = 0) -> Any:
    """`value` made JSON-safe: JSON values pass, containers are copied, the rest is `repr`'d.

    Never raises: tuples become lists, non-string dict keys become strings,
    non-finite floats, huge integers, sets, objects and anything nested deeper
    than 32 levels (cycles included) become their `repr`.

    >>> json_safe({"n": 1, "when": (1, 2), 3: {4}})
    {'n': 1, 'when': [1, 2], '3': '{4}'}
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value if type(value) is str else str.__str__(value)
    if isinstance(value, int):
        return int(value) if _MIN_INT <= value <= _MAX_INT else _safe_repr(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else _safe_repr(value)
    if _depth < _MAX_DEPTH:
        if isinstance(value, Mapping):
            try:
                return {
                    _json_key(key): json_safe(item, _depth=_depth + 1)
                    for key, item in value.items()
                }
            except Exception:
                return _safe_repr(value)
        if isinstance(value, list | tuple):
            return [json_safe(item, _depth=_depth + 1) for item in value]
    return _safe_repr(value)


def _json_key(key: object) -> str:
    if isinstance(key, str):
        return str.__str__(key)
    if key is None or isinstance(key, bool | int | float):
        return str(key)
    return _safe_repr(key)


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"
