"""Tests for the CLI presentation helpers in taskloom.cli.ui."""

from __future__ import annotations

import io
import re
import threading
from datetime import UTC, datetime, timedelta

import pytest

from taskloom.cli.ui import (
    Spinner,
    format_ms,
    format_relative,
    format_timestamp,
    print_error,
    render_kv,
    render_table,
    status_colour,
    strip_ansi,
    style,
    truncate,
    use_colour,
    visible_width,
)

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
WAIT_TIMEOUT = 5.0


class FakeTTY(io.StringIO):
    """A StringIO that claims to be a terminal and signals every write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.wrote = threading.Condition()

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self.wrote:
            written = super().write(text)
            self.writes += 1
            self.wrote.notify_all()
        return written

    def wait_for(self, predicate_text: str) -> bool:
        with self.wrote:
            return self.wrote.wait_for(
                lambda: predicate_text in self.getvalue(), timeout=WAIT_TIMEOUT
            )


@pytest.fixture
def plain_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_COLOR", "FORCE_COLOR", "TERM"):
        monkeypatch.delenv(name, raising=False)


# --- colour detection -------------------------------------------------------------------


@pytest.mark.usefixtures("plain_env")
def test_use_colour_follows_tty() -> None:
    assert use_colour(FakeTTY()) is True
    assert use_colour(io.StringIO()) is False


@pytest.mark.usefixtures("plain_env")
@pytest.mark.parametrize("value", ["1", "", "false"])
def test_no_color_with_any_value_disables(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("NO_COLOR", value)
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert use_colour(FakeTTY()) is False


@pytest.mark.usefixtures("plain_env")
def test_force_color_enables_on_non_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("TERM", "dumb")
    assert use_colour(io.StringIO()) is True
    monkeypatch.setenv("FORCE_COLOR", "0")
    assert use_colour(FakeTTY()) is False


@pytest.mark.usefixtures("plain_env")
def test_dumb_terminal_disables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "dumb")
    assert use_colour(FakeTTY()) is False


def test_style_only_when_enabled() -> None:
    assert style("ok", fg="green", bold=True, enabled=False) == "ok"
    assert style("ok", enabled=True) == "ok"
    assert style("ok", fg="green", bold=True, enabled=True) == "\x1b[1;32mok\x1b[0m"
    with pytest.raises(ValueError, match="unknown colour 'mauve'"):
        style("ok", fg="mauve", enabled=True)


@pytest.mark.parametrize(
    ("status", "colour"),
    [
        ("COMPLETED", "green"),
        ("FAILED", "red"),
        ("TIMED_OUT", "red"),
        ("CANCELED", "grey"),
        ("EXECUTING", "cyan"),
        ("QUEUED", "yellow"),
        ("WAITING", "magenta"),
        ("completed", "green"),
        ("SOMETHING_NEW", None),
    ],
)
def test_status_colour(status: str, colour: str | None) -> None:
    assert status_colour(status) == colour


# --- widths and tables ------------------------------------------------------------------


def test_visible_width_ignores_ansi_and_counts_wide_characters() -> None:
    assert visible_width("\x1b[1;32mok\x1b[0m") == 2
    assert visible_width("日本") == 4
    assert visible_width("e\u0301") == 1  # e + combining acute accent


def test_truncate_keeps_colour_closed() -> None:
    assert truncate("abcdef", 4) == "abc…"
    assert truncate("abc", 4) == "abc"
    assert truncate("\x1b[31mabcdef\x1b[0m", 4) == "\x1b[31mabc…\x1b[0m"
    assert visible_width(truncate("日本語テキスト", 6)) <= 6


def test_table_aligns_columns() -> None:
    table = render_table(
        ["ID", "STATUS", "TASK"],
        [["run_1", "COMPLETED", "email"], ["run_22", "QUEUED", "resize-image"]],
        colour=False,
    )
    assert table.splitlines() == [
        "ID      STATUS     TASK",
        "run_1   COMPLETED  email",
        "run_22  QUEUED     resize-image",
    ]


def test_table_with_colour_has_same_visible_layout() -> None:
    headers = ["ID", "STATUS", "TASK"]
    rows = [["run_1", "COMPLETED", "email"], ["run_22", "FAILED", "resize-image"]]
    plain = render_table(headers, rows, colour=False)
    coloured = render_table(headers, rows, colour=True, column_styles={1: status_colour})
    assert "\x1b[" in coloured
    assert "\x1b[32mCOMPLETED\x1b[0m" in coloured
    assert "\x1b[31mFAILED\x1b[0m" in coloured
    assert "\x1b[1mID\x1b[0m" in coloured
    assert strip_ansi(coloured) == plain
    assert [visible_width(line) for line in coloured.splitlines()] == [
        visible_width(line) for line in plain.splitlines()
    ]


def test_table_cells_already_coloured_align() -> None:
    rows = [[style("a", fg="red", enabled=True), "x"], ["bbb", "y"]]
    lines = render_table(["K", "V"], rows, colour=False).splitlines()
    assert [strip_ansi(line) for line in lines] == ["K    V", "a    x", "bbb  y"]


def test_table_truncates_widest_column() -> None:
    rows = [["run_1", "x" * 50, "ok"]]
    table = render_table(["ID", "OUTPUT", "S"], rows, colour=False, max_width=30)
    lines = table.splitlines()
    assert max(visible_width(line) for line in lines) == 30
    assert lines[1] == "run_1  " + "x" * 18 + "…  ok"


def test_table_unicode_width() -> None:
    table = render_table(["NAME", "N"], [["日本", "1"], ["abc", "2"]], colour=False)
    assert table.splitlines() == ["NAME  N", "日本  1", "abc   2"]


def test_table_without_rows_is_the_header() -> None:
    assert render_table(["ID", "STATUS"], [], colour=False) == "ID  STATUS"


def test_table_rejects_ragged_rows() -> None:
    with pytest.raises(ValueError, match="row 0 has 1 cells but there are 2 headers"):
        render_table(["ID", "STATUS"], [["run_1"]], colour=False)


def test_kv_aligns_keys_and_indents_continuations() -> None:
    text = render_kv(
        [("id", "run_1"), ("status", "FAILED"), ("error", "boom\n  at line 3")], colour=False
    )
    assert text.splitlines() == [
        "id:     run_1",
        "status: FAILED",
        "error:  boom",
        "          at line 3",
    ]


def test_kv_dims_keys_with_colour() -> None:
    text = render_kv([("id", "run_1")], colour=True)
    assert text == "\x1b[2mid:\x1b[0m run_1"
    assert render_kv([], colour=True) == ""


# --- times ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(seconds=0), "0s ago"),
        (timedelta(seconds=3), "3s ago"),
        (timedelta(minutes=5, seconds=59), "5m ago"),
        (timedelta(hours=2, minutes=1), "2h ago"),
        (timedelta(days=4, hours=23), "4d ago"),
        (timedelta(seconds=-10), "in 10s"),
        (timedelta(hours=-3), "in 3h"),
    ],
)
def test_format_relative(delta: timedelta, expected: str) -> None:
    assert format_relative(NOW - delta, NOW) == expected


def test_format_relative_none_and_naive() -> None:
    assert format_relative(None, NOW) == "-"
    assert format_relative(datetime(2024, 5, 1, 11, 59, 0), NOW) == "1m ago"


def test_format_timestamp_is_local_time() -> None:
    assert format_timestamp(None) == "-"
    local = NOW.astimezone()
    assert format_timestamp(NOW) == local.strftime("%Y-%m-%d %H:%M:%S")
    assert len(format_timestamp(NOW)) == 19


@pytest.mark.parametrize(
    ("ms", "expected"),
    [
        (None, "-"),
        (0, "0ms"),
        (850, "850ms"),
        (1_200, "1.2s"),
        (59_990, "1m 0s"),
        (184_000, "3m 4s"),
        (7_500_000, "2h 5m"),
    ],
)
def test_format_ms(ms: int | None, expected: str) -> None:
    assert format_ms(ms) == expected


# --- spinner and errors -----------------------------------------------------------------


def test_spinner_on_non_tty_prints_each_distinct_update_once() -> None:
    stream = io.StringIO()
    with Spinner("Waiting for run_x", stream=stream) as spinner:
        spinner.update("QUEUED")
        spinner.update("QUEUED")
        spinner.update("EXECUTING")
        spinner.update("EXECUTING")
        spinner.update("COMPLETED")
    assert stream.getvalue() == "Waiting for run_x\nQUEUED\nEXECUTING\nCOMPLETED\n"
    assert not spinner.running


@pytest.mark.usefixtures("plain_env")
def test_spinner_on_tty_animates_and_clears() -> None:
    stream = FakeTTY()
    with Spinner("Waiting for run_x", stream=stream, interval=0.01) as spinner:
        spinner.update("EXECUTING")
        assert stream.wait_for("EXECUTING")
        assert spinner.running
    output = stream.getvalue()
    assert "\r\x1b[2K" in output
    assert "Waiting for run_x" in output
    assert re.search(r"[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] Waiting for run_x \(\d+s\) EXECUTING", strip_ansi(output))
    assert output.endswith("\r\x1b[2K")
    assert not spinner.running
    writes_after_exit = stream.writes
    spinner.stop()  # idempotent, writes nothing more
    assert stream.writes == writes_after_exit


def test_spinner_thread_stops_when_body_raises() -> None:
    stream = FakeTTY()
    spinner = Spinner("Waiting", stream=stream, interval=0.01)
    with pytest.raises(RuntimeError, match="boom"), spinner:
        assert stream.wait_for("Waiting")
        raise RuntimeError("boom")
    assert not spinner.running


@pytest.mark.usefixtures("plain_env")
def test_print_error(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = io.StringIO()
    print_error("run run_x not found", stream=plain)
    assert plain.getvalue() == "error: run run_x not found\n"
    monkeypatch.setenv("FORCE_COLOR", "1")
    coloured = io.StringIO()
    print_error("boom", stream=coloured)
    assert coloured.getvalue() == "\x1b[31merror: boom\x1b[0m\n"
