"""Presentation helpers for the ``taskloom`` command line: colour, tables, times, spinners.

Nothing here knows about runs or stores; ``cli.py`` feeds it plain strings.

>>> print(render_table(["ID", "STATUS"], [["run_1", "COMPLETED"]], colour=False))
ID     STATUS
run_1  COMPLETED
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import threading
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TextIO

_BASIC_COLOURS = ("black", "red", "green", "yellow", "blue", "magenta", "cyan", "white")
COLOURS: Mapping[str, int] = {
    **{name: 30 + offset for offset, name in enumerate(_BASIC_COLOURS)},
    "grey": 90,
    "gray": 90,
}
"""Colour names accepted by :func:`style`, mapped to their ANSI foreground codes."""

_STATUS_COLOURS: Mapping[str, str] = {
    **dict.fromkeys(["FAILED", "CRASHED", "SYSTEM_FAILURE", "TIMED_OUT"], "red"),
    **dict.fromkeys(["QUEUED", "DELAYED", "PENDING_VERSION"], "yellow"),
    **dict.fromkeys(["EXECUTING", "DEQUEUED"], "cyan"),
    **dict.fromkeys(["CANCELED", "EXPIRED"], "grey"),
    "COMPLETED": "green",
    "WAITING": "magenta",
}

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_ANSI_OR_CHAR = re.compile(rf"{_ANSI_ESCAPE.pattern}|.", re.DOTALL)
_RESET = "\x1b[0m"
_CLEAR_LINE = "\r\x1b[2K"
_ELLIPSIS = "…"
_COLUMN_GAP = "  "
_MIN_COLUMN_WIDTH = 3
_SPINNER_FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


def _is_tty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def use_colour(stream: TextIO) -> bool:
    """Whether to write ANSI colour to ``stream``.

    ``NO_COLOR`` (set to anything) always wins; then ``FORCE_COLOR`` enables colour
    (unless it is ``0`` or ``false``); then ``TERM=dumb`` disables it; otherwise colour
    is used only when the stream is a TTY.
    """
    if "NO_COLOR" in os.environ:
        return False
    force = os.environ.get("FORCE_COLOR")
    if force is not None:
        return force.strip().lower() not in ("0", "false")
    if os.environ.get("TERM") == "dumb":
        return False
    return _is_tty(stream)


def style(
    text: str,
    *,
    fg: str | None = None,
    bold: bool = False,
    dim: bool = False,
    enabled: bool,
) -> str:
    """Wrap ``text`` in ANSI codes when ``enabled``; return it unchanged otherwise.

    ``fg`` is a name from :data:`COLOURS`, e.g. ``style("ok", fg="green", enabled=True)``.
    """
    if fg is not None and fg not in COLOURS:
        raise ValueError(f"unknown colour {fg!r}; expected one of {', '.join(COLOURS)}")
    if not enabled:
        return text
    codes = [str(code) for flag, code in ((bold, 1), (dim, 2)) if flag]
    if fg is not None:
        codes.append(str(COLOURS[fg]))
    if not codes:
        return text
    return f"\x1b[{';'.join(codes)}m{text}{_RESET}"


def status_colour(status: str) -> str | None:
    """The colour name for a run status (``"COMPLETED"`` -> ``"green"``), or None if unknown."""
    return _STATUS_COLOURS.get(status.upper())


def strip_ansi(text: str) -> str:
    """``text`` without ANSI escape sequences."""
    return _ANSI_ESCAPE.sub("", text)


def _char_width(char: str) -> int:
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf", "Cc"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def visible_width(text: str) -> int:
    """Terminal columns ``text`` occupies: ANSI codes count 0, wide East Asian characters 2."""
    return sum(_char_width(char) for char in strip_ansi(text))


def truncate(text: str, width: int) -> str:
    """Shorten ``text`` to at most ``width`` visible columns, ending it with "…" if cut.

    ANSI codes before the cut are kept, and a reset is appended so colour cannot leak.
    """
    if visible_width(text) <= width:
        return text
    if width <= 0:
        return ""
    budget = width - visible_width(_ELLIPSIS)
    kept: list[str] = []
    for token in _ANSI_OR_CHAR.findall(text):
        if not token.startswith("\x1b"):
            budget -= _char_width(token)
            if budget < 0:
                break
        kept.append(token)
    return "".join(kept) + _ELLIPSIS + (_RESET if "\x1b" in text else "")


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - visible_width(text))


def _default_max_width() -> int | None:
    if _is_tty(sys.stdout):
        return shutil.get_terminal_size().columns
    return None


def render_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    colour: bool,
    column_styles: Mapping[int, Callable[[str], str | None]] | None = None,
    max_width: int | None = None,
) -> str:
    """Lay out ``rows`` under ``headers`` in aligned columns separated by two spaces.

    Widths are measured in visible columns (see :func:`visible_width`). When the table is
    wider than ``max_width`` (default: the terminal's width if stdout is a TTY, else no
    limit) the widest column is shortened with "…", repeatedly, down to a few columns.
    ``column_styles`` maps a column index to a function giving a colour name for a cell,
    e.g. ``{1: status_colour}``. Returns the lines joined by newlines, with no trailing
    newline.
    """
    widths = [visible_width(header) for header in headers]
    for index, row in enumerate(rows):
        if len(row) != len(headers):
            raise ValueError(
                f"table row {index} has {len(row)} cells but there are {len(headers)} headers"
            )
        widths = [max(width, visible_width(cell)) for width, cell in zip(widths, row, strict=True)]

    limit = max_width if max_width is not None else _default_max_width()
    if limit is not None and widths:
        excess = sum(widths) + len(_COLUMN_GAP) * (len(widths) - 1) - limit
        while excess > 0:
            widest = max(range(len(widths)), key=widths.__getitem__)
            if widths[widest] <= _MIN_COLUMN_WIDTH:
                break
            widths[widest] -= 1
            excess -= 1

    styles = column_styles or {}
    header_cells = [
        style(truncate(h, w), bold=True, enabled=colour)
        for h, w in zip(headers, widths, strict=True)
    ]
    lines = [_join_cells(header_cells, widths)]
    for row in rows:
        cells = []
        for index, (value, width) in enumerate(zip(row, widths, strict=True)):
            cell = truncate(value, width)
            colour_of = styles.get(index)
            if colour and colour_of is not None:
                cell = style(cell, fg=colour_of(strip_ansi(value)), enabled=True)
            cells.append(cell)
        lines.append(_join_cells(cells, widths))
    return "\n".join(lines)


def _join_cells(cells: Sequence[str], widths: Sequence[int]) -> str:
    padded = [_pad(cell, width) for cell, width in zip(cells[:-1], widths[:-1], strict=True)]
    return _COLUMN_GAP.join([*padded, *cells[-1:]]).rstrip(" ")


def render_kv(pairs: Sequence[tuple[str, str]], *, colour: bool) -> str:
    """Render ``pairs`` as aligned ``key: value`` lines; keys are dimmed when ``colour``.

    Continuation lines of a multi-line value are indented under the value column:

    >>> print(render_kv([("id", "run_1"), ("error", "boom\\nat line 3")], colour=False))
    id:    run_1
    error: boom
           at line 3
    """
    if not pairs:
        return ""
    key_width = max(visible_width(key) for key, _ in pairs) + 1  # +1 for the colon
    indent = " " * (key_width + 1)
    lines = []
    for key, value in pairs:
        label = style(_pad(f"{key}:", key_width), dim=True, enabled=colour)
        first, *rest = value.split("\n")
        lines.append(f"{label} {first}".rstrip(" "))
        lines.extend(f"{indent}{line}".rstrip(" ") for line in rest)
    return "\n".join(lines)


def _aware(dt: datetime) -> datetime:
    # taskloom stores UTC; a naive datetime is taken to be UTC too.
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def format_timestamp(dt: datetime | None) -> str:
    """``dt`` in local time as ``YYYY-MM-DD HH:MM:SS``, or ``"-"`` for None."""
    if dt is None:
        return "-"
    return _aware(dt).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def format_relative(dt: datetime | None, now: datetime) -> str:
    """``dt`` relative to ``now``: ``"3s ago"``, ``"5m ago"``, ``"4d ago"``, ``"in 10s"``.

    Units are floored; ``"-"`` for None.
    """
    if dt is None:
        return "-"
    seconds = int((_aware(now) - _aware(dt)).total_seconds())
    amount = abs(seconds)
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if amount >= size:
            text = f"{amount // size}{unit}"
            break
    else:
        text = f"{amount}s"
    return f"{text} ago" if seconds >= 0 else f"in {text}"


def format_ms(ms: int | None) -> str:
    """A duration in milliseconds for humans: ``"850ms"``, ``"1.2s"``, ``"3m 4s"``, ``"2h 5m"``."""
    if ms is None:
        return "-"
    ms = max(0, ms)
    if ms < 1_000:
        return f"{ms}ms"
    tenths = round(ms / 100)
    if tenths < 600:
        return f"{tenths // 10}.{tenths % 10}s"
    seconds = round(ms / 1_000)
    if seconds < 3_600:
        return f"{seconds // 60}m {seconds % 60}s"
    return f"{seconds // 3_600}h {seconds % 3_600 // 60}m"


def _format_elapsed(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole}s" if whole < 60 else f"{whole // 60}m {whole % 60}s"


class Spinner:
    """Show that the CLI is waiting, with the latest status.

    On a TTY a background thread redraws ``⠋ message (elapsed) update`` about ten times a
    second and the line is cleared on exit. Elsewhere (pipes, CI logs) the message is
    printed once and then each update that differs from the previous one, one per line.

    >>> with Spinner("Waiting for run_x") as spinner:  # doctest: +SKIP
    ...     spinner.update("EXECUTING")
    """

    def __init__(
        self, message: str, *, stream: TextIO | None = None, interval: float = 0.1
    ) -> None:
        """Prepare a spinner writing to ``stream`` (default: ``sys.stderr`` at call time)."""
        self.message = message
        self._stream = stream if stream is not None else sys.stderr
        self._interval = interval
        self._animated = _is_tty(self._stream)
        self._colour = use_colour(self._stream)
        self._lock = threading.Lock()
        self._stop_requested = threading.Event()
        self._thread: threading.Thread | None = None
        self._text = ""
        self._printed_text: str | None = None
        self._started_at = 0.0
        self._state = "new"  # new -> running -> stopped

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop` (and while the thread is alive)."""
        return self._state == "running" or (self._thread is not None and self._thread.is_alive())

    def start(self) -> None:
        """Begin showing the spinner; called by ``with``."""
        if self._state != "new":
            return
        self._state = "running"
        self._started_at = time.monotonic()
        if self._animated:
            self._thread = threading.Thread(target=self._animate, name="taskloom-spinner")
            self._thread.daemon = True
            self._thread.start()
        else:
            self._write(f"{self.message}\n")
            self._print_text_if_new()

    def update(self, text: str) -> None:
        """Set the text shown after the message, e.g. the run's latest status."""
        with self._lock:
            self._text = text
        if self._state == "running" and not self._animated:
            self._print_text_if_new()

    def stop(self) -> None:
        """Stop the animation thread and clear the line; safe to call more than once."""
        if self._state == "stopped":
            return
        was_running = self._state == "running"
        self._state = "stopped"
        self._stop_requested.set()
        if self._thread is not None:
            self._thread.join()
        if was_running and self._animated:
            self._write(_CLEAR_LINE)

    def __enter__(self) -> Spinner:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _write(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()

    def _print_text_if_new(self) -> None:
        with self._lock:
            text = self._text
            if not text or text == self._printed_text:
                return
            self._printed_text = text
        self._write(f"{text}\n")

    def _animate(self) -> None:
        frame = 0
        while True:
            self._write(_CLEAR_LINE + self._render_line(_SPINNER_FRAMES[frame]))
            frame = (frame + 1) % len(_SPINNER_FRAMES)
            if self._stop_requested.wait(self._interval):
                return

    def _render_line(self, frame: str) -> str:
        with self._lock:
            text = self._text
        elapsed = _format_elapsed(time.monotonic() - self._started_at)
        # Keep one column spare: a line that wraps cannot be cleared with \r.
        width = shutil.get_terminal_size().columns - 1
        parts = [
            style(frame, fg="cyan", enabled=self._colour),
            self.message,
            style(f"({elapsed})", dim=True, enabled=self._colour),
        ]
        if text:
            parts.append(style(text, fg=status_colour(text), enabled=self._colour))
        return truncate(" ".join(parts), width)


def print_error(message: str, *, stream: TextIO | None = None) -> None:
    """Write ``error: message`` to ``stream`` (default ``sys.stderr``), red when colour is on."""
    target = stream if stream is not None else sys.stderr
    target.write(style(f"error: {message}", fg="red", enabled=use_colour(target)) + "\n")
    target.flush()
