"""Capture of `print` and the `logging` module inside runs.

The executor calls `install_capture()` once at start-up. From then on, in a
context where an attempt's sink is bound (see `taskloom.runtime.sink`):

- every complete line written to `sys.stdout` becomes a "log" event at level
  "log", and every line written to `sys.stderr` one at level "error"; a partial
  line waits for its newline, for `flush()`, or for `flush_partial(sink)` when
  the attempt ends. Partial lines are kept per sink (one sink per attempt), so
  concurrent attempts never mix their output.
- every `logging` record becomes a "log" event with its level mapped
  (DEBUG "debug", INFO "info", WARNING "warn", ERROR and CRITICAL "error"),
  except records of ``taskloom.task`` (the `logger` already emitted them) and of
  ``taskloom.internal*`` (the executor's own diagnostics).

Outside a run, both streams write straight through and logging behaves
exactly as configured.

How levels are handled, and why. Python's root logger defaults to WARNING, so
a task's ``logging.info(...)`` would never even become a record, and lowering
the root level globally would make every configured handler print INFO lines
outside runs too (and `basicConfig` or `dictConfig` called later would undo it
anyway). Instead `install_capture()` wraps two methods of `logging.Logger`:

- ``isEnabledFor``: unchanged outside runs. Inside a run, a record that the
  configuration would drop is still created if it is INFO or above and no
  logger below the root has an explicit level that refuses it (so
  ``logging.getLogger("httpx").setLevel(logging.WARNING)`` is respected) and
  ``logging.disable`` does not refuse it.
- ``callHandlers``: outside runs it is the stdlib's, untouched. Inside a run
  it first hands the record to the `RunLogHandler`, then to your handlers
  only if the configuration would have made the record anyway, so capture
  prints nothing extra. While your handlers run, writes to the proxied
  streams pass through to the real streams: a ``StreamHandler(sys.stderr)``
  created after installation (``basicConfig`` in a task module) prints as
  before and does not add a second copy of the line to the run's log. With no
  handler configured at all, the stdlib's ``lastResort`` is skipped inside
  runs: the run's log is where the record goes.

The `RunLogHandler` is deliberately not added to the root logger: a handler
there would make ``logging.basicConfig()`` a silent no-op for task modules
that call it after start-up (it only configures a root without handlers), and
would switch off ``logging.lastResort`` outside runs.

Not captured: bytes written to ``sys.stdout.buffer`` or to file descriptors 1
and 2 directly (subprocesses, C extensions), and output from threads that do
not run in a copy of the attempt's context.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from typing import Any, BinaryIO, Literal, TextIO

from ..clock import now_ms
from .logger import STDLIB_LOGGER_NAME, LogLevel, current_span_id
from .sink import EventSink, current_sink, json_safe

__all__ = [
    "CaptureStream",
    "RunLogHandler",
    "flush_partial",
    "install_capture",
    "uninstall_capture",
]

StreamName = Literal["stdout", "stderr"]

_STREAM_LEVELS: dict[StreamName, LogLevel] = {"stdout": "log", "stderr": "error"}
_STREAM_NAMES: tuple[StreamName, ...] = ("stdout", "stderr")
_INTERNAL_LOGGER_PREFIX = "taskloom.internal"

# True while logging handlers run and while a sink receives a captured line:
# stream writes made then go to the real stream, never back into the run log.
_passthrough: ContextVar[bool] = ContextVar("taskloom_capture_passthrough", default=False)

# The genuine methods, restored by uninstall_capture().
_original_is_enabled_for = logging.Logger.isEnabledFor
_original_call_handlers = logging.Logger.callHandlers


class _PendingLines:
    """Text written without its newline yet, per (stream, sink)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Keyed by id(sink); the entry keeps the sink alive so the id is not reused.
        self._pending: dict[tuple[StreamName, int], tuple[EventSink, list[str]]] = {}

    def add(self, stream: StreamName, sink: EventSink, text: str) -> list[str]:
        """Append `text`; return the lines it completed, without their newlines."""
        if not text:
            return []
        key = (stream, id(sink))
        with self._lock:
            entry = self._pending.get(key)
            if "\n" not in text:
                if entry is None:
                    self._pending[key] = (sink, [text])
                else:
                    entry[1].append(text)
                return []
            if entry is not None:
                text = "".join(entry[1]) + text
                del self._pending[key]
            *lines, rest = text.split("\n")
            if rest:
                self._pending[key] = (sink, [rest])
            return lines

    def take(self, stream: StreamName, sink: EventSink) -> str:
        """Remove and return the partial line of this stream and sink ("" if none)."""
        with self._lock:
            entry = self._pending.pop((stream, id(sink)), None)
        return "" if entry is None else "".join(entry[1])

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()


_pending = _PendingLines()


def _emit_line(stream: StreamName, sink: EventSink, line: str) -> None:
    token = _passthrough.set(True)
    try:
        sink.emit(
            "log",
            {
                "level": _STREAM_LEVELS[stream],
                "message": line.removesuffix("\r"),
                "attributes": {"stream": stream},
                "ts": now_ms(),
                "span_id": current_span_id(),
            },
        )
    finally:
        _passthrough.reset(token)


def _flush_stream(stream: StreamName, sink: EventSink) -> None:
    text = _pending.take(stream, sink)
    if text:
        _emit_line(stream, sink, text)


def flush_partial(sink: EventSink | None = None) -> None:
    """Emit the unfinished `print` lines of `sink` (default: the current sink) as events.

    The executor calls this when an attempt ends, so ``print("done", end="")``
    is not lost. Does nothing when there is no sink or nothing pending.
    """
    if sink is None:
        sink = current_sink.get()
        if sink is None:
            return
    _flush_stream("stdout", sink)
    _flush_stream("stderr", sink)


class CaptureStream:
    """Stands in for `sys.stdout` or `sys.stderr`; captures lines written inside runs.

    Outside a run (or once uninstalled) every call goes to the original stream.
    Inside one, `write` returns ``len(s)`` and the text becomes log events.
    `fileno`, `isatty`, `encoding`, `errors`, `buffer` and any other attribute
    are the original stream's; `close()` closes the original, as it would
    without the proxy.
    """

    def __init__(self, original: TextIO, stream: StreamName) -> None:
        self._original = original
        self._stream: StreamName = stream
        self._active = True

    @property
    def original(self) -> TextIO:
        """The stream this proxy writes through to."""
        return self._original

    @property
    def stream_name(self) -> StreamName:
        """ "stdout" or "stderr"."""
        return self._stream

    @property
    def active(self) -> bool:
        """False once `uninstall_capture()` ran: the proxy then only writes through."""
        return self._active

    def deactivate(self) -> None:
        """Stop capturing; later writes go to the original stream."""
        self._active = False

    def _capturing_sink(self) -> EventSink | None:
        if not self._active or _passthrough.get():
            return None
        return current_sink.get()

    def write(self, s: str) -> int:
        """Write `s`; inside a run, complete lines become events of the run."""
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        sink = self._capturing_sink()
        if sink is None:
            return self._original.write(s)
        for line in _pending.add(self._stream, sink, s):
            _emit_line(self._stream, sink, line)
        return len(s)

    def writelines(self, lines: Iterable[str]) -> None:
        """Write each string in turn (no newlines are added, as with real streams)."""
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Inside a run, emit the pending partial line; always flush the original."""
        sink = self._capturing_sink()
        if sink is not None:
            _flush_stream(self._stream, sink)
        self._original.flush()

    def fileno(self) -> int:
        """The original stream's file descriptor."""
        return self._original.fileno()

    def isatty(self) -> bool:
        """Whether the original stream is a terminal."""
        return self._original.isatty()

    def readable(self) -> bool:
        """False: standard output streams are not readable."""
        return False

    def writable(self) -> bool:
        """True."""
        return True

    def seekable(self) -> bool:
        """False."""
        return False

    @property
    def encoding(self) -> str:
        """The original stream's encoding."""
        return self._original.encoding

    @property
    def errors(self) -> str | None:
        """The original stream's error handler name."""
        return self._original.errors

    @property
    def buffer(self) -> BinaryIO:
        """The original stream's binary buffer (bytes written there are not captured)."""
        return self._original.buffer

    @property
    def closed(self) -> bool:
        """Whether the original stream is closed."""
        return self._original.closed

    def __getattr__(self, name: str) -> Any:
        original = self.__dict__.get("_original")
        if original is None:
            raise AttributeError(name)
        return getattr(original, name)

    def __repr__(self) -> str:
        state = "capturing" if self._active else "inactive"
        return f"<CaptureStream {self._stream} {state} over {self._original!r}>"


# Code that checks isinstance(sys.stdout, io.TextIOBase) keeps working.
io.TextIOBase.register(CaptureStream)


def _run_level(levelno: int) -> LogLevel:
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warn"
    if levelno >= logging.INFO:
        return "info"
    return "debug"


def _is_skipped(logger_name: str) -> bool:
    return logger_name == STDLIB_LOGGER_NAME or logger_name.startswith(_INTERNAL_LOGGER_PREFIX)


_default_formatter = logging.Formatter()
_CAPTURED_MARK = "_taskloom_captured"


class RunLogHandler(logging.Handler):
    """Turns `logging` records made inside a run into "log" events of that run.

    `install_capture()` creates one and hands it every record made in a run
    (it is not attached to any logger). Does nothing outside runs, skips
    ``taskloom.task`` and ``taskloom.internal*`` records, and emits a record
    at most once even if it is handed the same record twice (say, because you
    also attached it to a logger). Set a formatter on it to change how
    exception tracebacks are rendered.
    """

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)

    def emit(self, record: logging.LogRecord) -> None:
        """Emit the record to the current sink, if there is one."""
        sink = current_sink.get()
        if sink is None or _is_skipped(record.name) or _CAPTURED_MARK in record.__dict__:
            return
        record.__dict__[_CAPTURED_MARK] = True
        token = _passthrough.set(True)
        try:
            sink.emit("log", self._event_data(record))
        except Exception:
            self.handleError(record)
        finally:
            _passthrough.reset(token)

    def _event_data(self, record: logging.LogRecord) -> dict[str, Any]:
        formatter = self.formatter or _default_formatter
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            # Cached on the record, as logging.Formatter.format does.
            record.exc_text = formatter.formatException(record.exc_info)
        if record.exc_text:
            message = f"{message}\n{record.exc_text}"
        if record.stack_info:
            message = f"{message}\n{formatter.formatStack(record.stack_info)}"
        attributes: dict[str, Any] = {"logger": record.name}
        extra = record.__dict__.get("attributes")
        if isinstance(extra, Mapping):
            for key, value in json_safe(extra).items():
                attributes.setdefault(key, value)
        elif extra is not None:
            attributes["attributes"] = json_safe(extra)
        return {
            "level": _run_level(record.levelno),
            "message": message,
            "attributes": attributes,
            "ts": int(record.created * 1000),
            "span_id": current_span_id(),
        }


class _CaptureState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.handler: RunLogHandler | None = None
        self.proxies: list[CaptureStream] = []


_state = _CaptureState()


def _enabled_for_run(logger: logging.Logger, level: int) -> bool:
    """Whether a record the configuration drops should still be made for the run's log."""
    if level < logging.INFO or logger.disabled or logger.manager.disable >= level:
        return False
    if _is_skipped(logger.name):
        return False
    node: logging.Logger | None = logger
    while node is not None and node.parent is not None:  # stop below the root
        if node.level:
            return level >= node.level
        node = node.parent
    return True


def _is_enabled_for(self: logging.Logger, level: int) -> bool:
    if _original_is_enabled_for(self, level):
        return True
    return current_sink.get() is not None and _enabled_for_run(self, level)


def _call_handlers(self: logging.Logger, record: logging.LogRecord) -> None:
    ours = _state.handler
    if ours is None or current_sink.get() is None:
        _original_call_handlers(self, record)
        return
    token = _passthrough.set(True)
    try:
        if record.levelno >= ours.level:
            ours.handle(record)
        # A record made only because a run is capturing is for the run's log alone.
        if _original_is_enabled_for(self, record.levelno) and self.hasHandlers():
            _original_call_handlers(self, record)
    finally:
        _passthrough.reset(token)


def install_capture() -> None:
    """Start capturing `print` and `logging` inside runs (idempotent).

    Replaces `sys.stdout` and `sys.stderr` with `CaptureStream` proxies (unless
    they already are active ones) and wraps ``logging.Logger.isEnabledFor`` and
    ``callHandlers`` so that records made in a run reach a `RunLogHandler`, as
    the module docstring explains. Output outside runs is unchanged.
    """
    with _state.lock:
        if _state.handler is None:
            _state.handler = RunLogHandler()
            logging.Logger.isEnabledFor = _is_enabled_for  # type: ignore[method-assign]
            logging.Logger.callHandlers = _call_handlers  # type: ignore[method-assign]
        for stream_name in _STREAM_NAMES:
            current = getattr(sys, stream_name)
            if current is None or (isinstance(current, CaptureStream) and current.active):
                continue
            proxy = CaptureStream(current, stream_name)
            setattr(sys, stream_name, proxy)
            _state.proxies.append(proxy)


def uninstall_capture() -> None:
    """Undo `install_capture()` (for tests): restore the streams and the logging methods.

    A proxy that something else has since wrapped cannot be unhooked; it is
    deactivated instead and only writes through. Pending partial lines are
    dropped.
    """
    with _state.lock:
        if _state.handler is None:
            return
        if logging.Logger.isEnabledFor is _is_enabled_for:
            logging.Logger.isEnabledFor = _original_is_enabled_for  # type: ignore[method-assign]
        if logging.Logger.callHandlers is _call_handlers:
            logging.Logger.callHandlers = _original_call_handlers  # type: ignore[method-assign]
        for proxy in reversed(_state.proxies):
            proxy.deactivate()
            if getattr(sys, proxy.stream_name) is proxy:
                setattr(sys, proxy.stream_name, proxy.original)
        _state.proxies.clear()
        _state.handler = None
        _pending.clear()
