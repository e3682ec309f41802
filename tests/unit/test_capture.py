"""Tests for taskloom.runtime.capture: print and logging inside runs become run events.

pytest swaps sys.stdout and sys.stderr between a test's phases, so capture is
installed inside each test body (`capturing()`), over StringIO stand-ins for
the real streams, and always uninstalled before the test ends.
"""

from __future__ import annotations

import asyncio
import contextvars
import io
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from taskloom.runtime.capture import (
    CaptureStream,
    RunLogHandler,
    flush_partial,
    install_capture,
    uninstall_capture,
)
from taskloom.runtime.logger import current_span_id, logger
from taskloom.runtime.sink import CollectingSink, current_sink, use_sink

Event = tuple[str, dict[str, Any]]


@contextmanager
def capturing(
    out: io.StringIO | None = None, err: io.StringIO | None = None
) -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """Install capture over fresh stand-in streams with a WARNING root; undo it all after."""
    out = out if out is not None else io.StringIO()
    err = err if err is not None else io.StringIO()
    saved_streams = sys.stdout, sys.stderr
    root = logging.getLogger()
    saved_level = root.level
    sys.stdout, sys.stderr = out, err
    root.setLevel(logging.WARNING)
    install_capture()
    try:
        yield out, err
    finally:
        uninstall_capture()
        sys.stdout, sys.stderr = saved_streams
        root.setLevel(saved_level)


@contextmanager
def root_without_handlers() -> Iterator[None]:
    """Empty the root logger's handler list in place (pytest's own handlers come back after)."""
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers.clear()
    try:
        yield
    finally:
        root.handlers[:] = saved


class ListHandler(logging.Handler):
    """Keeps the records it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def stream_log(message: str, stream: str = "stdout", span_id: str | None = None) -> Event:
    level = "log" if stream == "stdout" else "error"
    return (
        "log",
        {"level": level, "message": message, "attributes": {"stream": stream}, "span_id": span_id},
    )


def without_ts(events: list[Event]) -> list[Event]:
    stripped: list[Event] = []
    for kind, data in events:
        rest = dict(data)
        assert isinstance(rest.pop("ts"), int)
        stripped.append((kind, rest))
    return stripped


# --- print / stdout / stderr ---------------------------------------------------


def test_printed_lines_become_events_and_do_not_reach_the_real_stream() -> None:
    sink = CollectingSink()
    with capturing() as (out, err), use_sink(sink):
        print("one")
        print("two\nthree")
        print("a", "b", sep="-")
        assert sys.stdout.write("part") == 4
        assert sys.stdout.write("ial\n\nnext") == 9
        print(" line")
        print("oops", file=sys.stderr)
    assert without_ts(sink.events) == [
        stream_log("one"),
        stream_log("two"),
        stream_log("three"),
        stream_log("a-b"),
        stream_log("partial"),
        stream_log(""),
        stream_log("next line"),
        stream_log("oops", "stderr"),
    ]
    assert out.getvalue() == ""
    assert err.getvalue() == ""


def test_partial_lines_wait_for_newline_flush_or_flush_partial() -> None:
    sink = CollectingSink()
    with capturing(), use_sink(sink):
        print("no newline yet", end="")
        print("err tail", end="", file=sys.stderr)
        assert sink.events == []
        flush_partial(sink)
        assert without_ts(sink.events) == [
            stream_log("no newline yet"),
            stream_log("err tail", "stderr"),
        ]
        flush_partial()  # nothing pending: nothing emitted
        assert len(sink.events) == 2
        print("flushed", end="", flush=True)
        assert without_ts(sink.events)[2:] == [stream_log("flushed")]
        sys.stdout.flush()
        assert len(sink.events) == 3


def test_print_outside_a_run_passes_through_unchanged() -> None:
    with capturing() as (out, err):
        assert isinstance(sys.stdout, CaptureStream)
        print("hello", end="")
        print(" world")
        print("warning!", file=sys.stderr)
        assert sys.stdout.write("raw") == 3
    assert out.getvalue() == "hello world\nraw"
    assert err.getvalue() == "warning!\n"


def test_print_outside_a_run_reaches_pytests_capture(capsys: pytest.CaptureFixture[str]) -> None:
    # No stand-ins here: the proxy wraps whatever pytest installed.
    install_capture()
    try:
        print("visible")
        sink = CollectingSink()
        with use_sink(sink):
            print("captured")
    finally:
        uninstall_capture()
    assert capsys.readouterr().out == "visible\n"
    assert [data["message"] for _, data in sink.events] == ["captured"]


def test_print_in_a_thread_with_a_copied_context_is_captured() -> None:
    sink = CollectingSink()
    with capturing() as (out, _), use_sink(sink):

        def work() -> None:
            print("from", "thread")
            print("tail", end="")

        thread = threading.Thread(target=contextvars.copy_context().run, args=(work,))
        thread.start()
        thread.join()
        # A thread that does not copy the context is not part of the run.
        bare = threading.Thread(target=print, args=("not ours",))
        bare.start()
        bare.join()
        flush_partial(sink)
    assert without_ts(sink.events) == [stream_log("from thread"), stream_log("tail")]
    assert out.getvalue() == "not ours\n"


def test_partial_lines_are_kept_per_attempt() -> None:
    sink_a, sink_b = CollectingSink(), CollectingSink()
    context_a, context_b = contextvars.Context(), contextvars.Context()
    context_a.run(current_sink.set, sink_a)
    context_b.run(current_sink.set, sink_b)
    with capturing() as (out, _):
        context_a.run(print, "a1", end="")
        context_b.run(print, "b1", end="")
        context_a.run(print, "a2")
        context_b.run(print, "b2", end="")
        print("outside")
        context_b.run(flush_partial)
    assert without_ts(sink_a.events) == [stream_log("a1a2")]
    assert without_ts(sink_b.events) == [stream_log("b1b2")]
    assert out.getvalue() == "outside\n"


def test_concurrent_async_attempts_keep_their_own_output() -> None:
    sinks = {"a": CollectingSink(), "b": CollectingSink()}

    async def attempt(name: str, my_turn: asyncio.Event, their_turn: asyncio.Event) -> None:
        with use_sink(sinks[name]):
            async with logger.trace(f"span-{name}") as span:
                print(f"{name}-start", end="")
                their_turn.set()
                await my_turn.wait()
                print(f"-{name}-end")
                print(f"{name} again", span.id == current_span_id())
            their_turn.set()

    async def main() -> None:
        turn_a, turn_b = asyncio.Event(), asyncio.Event()
        await asyncio.gather(attempt("a", turn_a, turn_b), attempt("b", turn_b, turn_a))

    with capturing():
        asyncio.run(main())
    for name, sink in sinks.items():
        span_id = sink.of_kind("span_start")[0]["span_id"]
        logs = [(d["message"], d["span_id"]) for d in sink.of_kind("log")]
        assert logs == [(f"{name}-start-{name}-end", span_id), (f"{name} again True", span_id)]


def test_printed_lines_carry_the_current_span() -> None:
    sink = CollectingSink()
    with capturing(), use_sink(sink):
        with logger.trace("step") as span:
            print("inside")
        print("after")
    assert [(d["message"], d["span_id"]) for d in sink.of_kind("log")] == [
        ("inside", span.id),
        ("after", None),
    ]


def test_proxy_behaves_like_the_stream_it_wraps(tmp_path: Path) -> None:
    with (tmp_path / "out.txt").open("w", encoding="utf-8") as real_out:
        saved = sys.stdout
        sys.stdout = real_out
        install_capture()
        try:
            proxy = sys.stdout
            assert isinstance(proxy, CaptureStream)
            assert isinstance(proxy, io.TextIOBase)
            assert proxy.original is real_out
            assert proxy.fileno() == real_out.fileno()
            assert proxy.isatty() is False
            assert proxy.encoding == "utf-8"
            assert proxy.errors == real_out.errors
            assert proxy.buffer is real_out.buffer
            assert proxy.closed is False
            assert proxy.writable() is True
            assert proxy.name == real_out.name  # delegated via __getattr__
            proxy.writelines(["x", "y\n"])
            not_text: Any = b"bytes"
            with pytest.raises(TypeError, match="must be str"):
                proxy.write(not_text)
        finally:
            uninstall_capture()
            sys.stdout = saved
    assert (tmp_path / "out.txt").read_text(encoding="utf-8") == "xy\n"


def test_install_is_idempotent_and_uninstall_restores_everything() -> None:
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdout, sys.stderr
    is_enabled_for = logging.Logger.isEnabledFor
    call_handlers = logging.Logger.callHandlers
    sys.stdout, sys.stderr = out, err
    try:
        install_capture()
        proxy_out, proxy_err = sys.stdout, sys.stderr
        install_capture()
        assert sys.stdout is proxy_out
        assert sys.stderr is proxy_err
        assert logging.Logger.isEnabledFor is not is_enabled_for
        uninstall_capture()
        assert sys.stdout is out
        assert sys.stderr is err
        assert logging.Logger.isEnabledFor is is_enabled_for
        assert logging.Logger.callHandlers is call_handlers
        assert isinstance(proxy_out, CaptureStream)
        assert not proxy_out.active
        uninstall_capture()  # a second uninstall is harmless
        # A stale reference to the proxy only writes through now.
        sink = CollectingSink()
        with use_sink(sink):
            proxy_out.write("late\n")
        assert sink.events == []
        assert out.getvalue() == "late\n"
    finally:
        uninstall_capture()
        sys.stdout, sys.stderr = saved


# --- logging -------------------------------------------------------------------


def test_logging_records_in_a_run_become_events_with_mapped_levels() -> None:
    sink = CollectingSink()
    app = logging.getLogger("test_capture.app")
    with capturing(), use_sink(sink):
        app.info("hello %s", "world")
        app.warning("careful")
        app.error("bad")
        app.critical("worse")
        app.debug("not captured at the default level")
        assert logging.getLogger().level == logging.WARNING  # root level untouched
    assert without_ts(sink.events) == [
        (
            "log",
            {
                "level": level,
                "message": message,
                "attributes": {"logger": "test_capture.app"},
                "span_id": None,
            },
        )
        for level, message in [
            ("info", "hello world"),
            ("warn", "careful"),
            ("error", "bad"),
            ("error", "worse"),
        ]
    ]


def test_debug_records_are_captured_when_the_configuration_enables_them() -> None:
    sink = CollectingSink()
    chatty = logging.getLogger("test_capture.chatty")
    chatty.setLevel(logging.DEBUG)
    try:
        with capturing(), use_sink(sink):
            chatty.debug("details")
    finally:
        chatty.setLevel(logging.NOTSET)
    assert [(d["level"], d["message"]) for d in sink.of_kind("log")] == [("debug", "details")]


def test_an_explicit_logger_level_is_respected_in_runs() -> None:
    sink = CollectingSink()
    noisy = logging.getLogger("test_capture.noisy")
    noisy.setLevel(logging.ERROR)
    try:
        with capturing(), use_sink(sink):
            noisy.info("dropped")
            noisy.getChild("child").warning("dropped too")
            noisy.error("kept")
    finally:
        noisy.setLevel(logging.NOTSET)
    assert [d["message"] for d in sink.of_kind("log")] == ["kept"]


def test_logging_exc_info_includes_the_traceback() -> None:
    sink = CollectingSink()
    with capturing(), use_sink(sink):
        try:
            raise ValueError("bad value")
        except ValueError:
            logging.getLogger("test_capture.exc").exception("failed to %s", "parse")
    [data] = sink.of_kind("log")
    assert data["level"] == "error"
    assert data["message"].startswith("failed to parse\nTraceback (most recent call last):\n")
    assert data["message"].endswith("\nValueError: bad value")
    assert "test_logging_exc_info_includes_the_traceback" in data["message"]


def test_logging_extra_attributes_are_merged_and_made_json_safe() -> None:
    sink = CollectingSink()
    with capturing(), use_sink(sink), logger.trace("work") as span:
        logging.getLogger("test_capture.extra").warning(
            "with extras", extra={"attributes": {"order": 7, "obj": {1, 2}, "logger": "spoof"}}
        )
    [data] = sink.of_kind("log")
    assert data["attributes"] == {"logger": "test_capture.extra", "order": 7, "obj": "{1, 2}"}
    assert data["span_id"] == span.id


def test_a_record_is_emitted_once_even_if_the_handler_is_also_attached() -> None:
    sink = CollectingSink()
    app = logging.getLogger("test_capture.attached")
    handler = RunLogHandler()
    app.addHandler(handler)
    try:
        with capturing(), use_sink(sink):
            app.warning("once")
    finally:
        app.removeHandler(handler)
    assert [d["message"] for d in sink.of_kind("log")] == ["once"]


def test_taskloom_task_and_internal_records_are_not_captured() -> None:
    sink = CollectingSink()
    with capturing(), use_sink(sink):
        logger.warn("once")  # emitted by the logger itself, not the stdlib
        logging.getLogger("taskloom.task").warning("skipped")
        logging.getLogger("taskloom.internal").error("skipped")
        logging.getLogger("taskloom.internal.executor").error("skipped")
    assert [(d["message"], d["attributes"]) for d in sink.of_kind("log")] == [("once", {})]


def test_logging_outside_a_run_is_not_captured_and_behaves_as_configured() -> None:
    sink = CollectingSink()
    seen = ListHandler()
    app = logging.getLogger("test_capture.outside")
    app.addHandler(seen)
    try:
        with capturing():
            app.info("below the root level")
            app.warning("shown")
            with use_sink(sink):
                app.info("for the run only")
                app.warning("for both")
    finally:
        app.removeHandler(seen)
    assert [r.getMessage() for r in seen.records] == ["shown", "for both"]
    assert [d["message"] for d in sink.of_kind("log")] == ["for the run only", "for both"]


def test_a_stream_handler_on_the_proxy_does_not_double_emit() -> None:
    sink = CollectingSink()
    with capturing() as (_, err):
        # Created after installation, so it writes to the stderr proxy (as basicConfig would).
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s:%(message)s"))
        app = logging.getLogger("test_capture.stream")
        app.addHandler(handler)
        try:
            with use_sink(sink):
                app.warning("one line")
        finally:
            app.removeHandler(handler)
    assert [(d["level"], d["message"]) for d in sink.of_kind("log")] == [("warn", "one line")]
    assert err.getvalue() == "WARNING:one line\n"


def test_last_resort_and_basic_config_work_as_without_capture() -> None:
    sink = CollectingSink()
    with root_without_handlers(), capturing() as (_, err):
        assert logging.getLogger().handlers == []  # capture adds no handler to root
        app = logging.getLogger("test_capture.bare")
        app.warning("last resort")
        app.info("dropped as usual")
        with use_sink(sink):
            app.warning("run only")
        assert err.getvalue() == "last resort\n"
        logging.basicConfig(format="configured:%(message)s")
        app.warning("after basicConfig")
        assert err.getvalue() == "last resort\nconfigured:after basicConfig\n"
    assert [d["message"] for d in sink.of_kind("log")] == ["run only"]
