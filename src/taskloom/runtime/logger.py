"""`logger`: structured run logs and spans, as Trigger.dev's `logger`.

Inside a run every call becomes an event of that run::

    from taskloom import logger

    logger.info("charging card", customer="cus_123", amount=4200)
    with logger.trace("call stripe", customer="cus_123") as span:
        receipt = stripe.charge(...)
        span.set_attribute("receipt", receipt.id)

Outside a run (a script, a test, your web app) nothing is dropped silently:
log calls go to the stdlib logger named ``taskloom.task`` at the matching level
(`log` is INFO, `warn` is WARNING), with the attributes in
``record.attributes``, and spans log their start and end at DEBUG there.
"""

from __future__ import annotations

import logging
import os
import time
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, Literal, Self

from ..clock import now_ms
from .sink import EventSink, current_sink, json_safe

__all__ = ["LogLevel", "Logger", "Span", "current_span_id", "logger"]

LogLevel = Literal["debug", "log", "info", "warn", "error"]
"""The level names of run log events."""

STDLIB_LOGGER_NAME = "taskloom.task"
"""Where `logger` writes outside a run; the capture handler skips it inside one."""

_STDLIB_LEVELS: dict[LogLevel, int] = {
    "debug": logging.DEBUG,
    "log": logging.INFO,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}

_stdlib_logger = logging.getLogger(STDLIB_LOGGER_NAME)

_current_span: ContextVar[Span | None] = ContextVar("taskloom_current_span", default=None)


def current_span_id() -> str | None:
    """The id of the innermost open `logger.trace` span in this context, or None."""
    span = _current_span.get()
    return None if span is None else span.id


def _new_span_id() -> str:
    return os.urandom(8).hex()


def _as_text(message: object) -> str:
    if isinstance(message, str):
        return message
    try:
        return str(message)
    except Exception:
        pass
    try:
        return repr(message)
    except Exception:
        return f"<unprintable {type(message).__qualname__}>"


def _error_of(exc: BaseException) -> dict[str, str]:
    return {"type": type(exc).__qualname__, "message": _as_text(exc)}


class Span:
    """One `logger.trace` block: a named, timed unit of work inside a run.

    Use it as ``with logger.trace("name") as span:`` or ``async with``. The
    span is current (log lines and nested spans point to it) for the body of
    the block; exceptions are recorded on the span and propagate unchanged.
    A span object is entered once.
    """

    __slots__ = (
        "_parent",
        "_sink",
        "_start_ns",
        "_token",
        "attributes",
        "id",
        "name",
        "parent_id",
    )

    def __init__(self, name: str, attributes: dict[str, Any]) -> None:
        self.id: str = _new_span_id()
        """16 hex characters, unique per span."""
        self.name = name
        self.attributes: dict[str, Any] = attributes
        """Attributes so far; `span_end` carries their final values."""
        self.parent_id: str | None = None
        """Id of the span that was current when this one started."""
        self._parent: Span | None = None
        self._sink: EventSink | None = None
        self._start_ns: int | None = None
        self._token: Token[Span | None] | None = None

    def set_attribute(self, key: str, value: Any) -> None:
        """Set (or replace) an attribute; it is reported when the span ends."""
        self.attributes[key] = value

    def __enter__(self) -> Self:
        self._start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._end(exc)

    async def __aenter__(self) -> Self:
        self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._end(exc)

    def _start(self) -> None:
        if self._start_ns is not None:
            raise RuntimeError(
                f"span {self.name!r} ({self.id}) was already entered; "
                "call logger.trace() again for a new span"
            )
        self._parent = _current_span.get()
        self.parent_id = None if self._parent is None else self._parent.id
        self._sink = current_sink.get()
        self._start_ns = time.perf_counter_ns()
        self._token = _current_span.set(self)
        if self._sink is None:
            _stdlib_logger.debug("span %s started (%s)", self.name, self.id)
            return
        self._sink.emit(
            "span_start",
            {
                "span_id": self.id,
                "parent_span_id": self.parent_id,
                "name": self.name,
                "attributes": json_safe(self.attributes),
                "ts": now_ms(),
            },
        )

    def _end(self, exc: BaseException | None) -> None:
        assert self._start_ns is not None and self._token is not None
        duration_ms = round((time.perf_counter_ns() - self._start_ns) / 1_000_000, 3)
        try:
            _current_span.reset(self._token)
        except ValueError:
            # Exited in another context than it was entered in (a span handed
            # to another task); the best we can do there is to restore the parent.
            _current_span.set(self._parent)
        error = None if exc is None else _error_of(exc)
        if self._sink is None:
            _stdlib_logger.debug(
                "span %s ended after %.3f ms%s",
                self.name,
                duration_ms,
                "" if error is None else f" with {error['type']}",
            )
            return
        self._sink.emit(
            "span_end",
            {
                "span_id": self.id,
                "name": self.name,
                "attributes": json_safe(self.attributes),
                "ts": now_ms(),
                "duration_ms": duration_ms,
                "error": error,
            },
        )

    def __repr__(self) -> str:
        return f"Span(name={self.name!r}, id={self.id!r}, parent_id={self.parent_id!r})"


class Logger:
    """Structured logging for task code; use the module-level `logger` instance.

    Each method takes the message positionally and any keyword attributes.
    Attributes are made JSON-safe (anything else is `repr`'d), so logging
    never raises on odd values.
    """

    def debug(self, message: str, /, **attributes: Any) -> None:
        """Log at level "debug"."""
        self._log("debug", message, attributes)

    def log(self, message: str, /, **attributes: Any) -> None:
        """Log at level "log" (INFO outside a run)."""
        self._log("log", message, attributes)

    def info(self, message: str, /, **attributes: Any) -> None:
        """Log at level "info"."""
        self._log("info", message, attributes)

    def warn(self, message: str, /, **attributes: Any) -> None:
        """Log at level "warn" (WARNING outside a run)."""
        self._log("warn", message, attributes)

    def error(self, message: str, /, **attributes: Any) -> None:
        """Log at level "error"."""
        self._log("error", message, attributes)

    def trace(self, name: str, /, **attributes: Any) -> Span:
        """A new span, to use as ``with logger.trace(name, **attributes) as span:``.

        Also works with ``async with``. Nested spans record their parent.
        """
        return Span(name, attributes)

    def _log(self, level: LogLevel, message: str, attributes: dict[str, Any]) -> None:
        sink = current_sink.get()
        if sink is None:
            # stacklevel 3: the record points at the caller of logger.info(), not here.
            _stdlib_logger.log(
                _STDLIB_LEVELS[level],
                _as_text(message),
                extra={"attributes": attributes},
                stacklevel=3,
            )
            return
        sink.emit(
            "log",
            {
                "level": level,
                "message": _as_text(message),
                "attributes": json_safe(attributes),
                "ts": now_ms(),
                "span_id": current_span_id(),
            },
        )


logger = Logger()
"""The logger task code uses: ``from taskloom import logger``."""
