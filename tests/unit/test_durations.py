"""Tests for taskloom.durations."""

from __future__ import annotations

import calendar
import doctest
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskloom import durations
from taskloom.durations import format_duration, parse_duration, parse_instant
from taskloom.errors import InvalidOptionError

WHAT = "delay of task 'x'"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (0, 0.0),
        (30, 30.0),
        (1.5, 1.5),
        ("30", 30.0),
        ("0", 0.0),
        ("2.5", 2.5),
        ("10s", 10.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1h52m18s", 6738.0),
        ("2d", 172_800.0),
        ("2w", 1_209_600.0),
        ("500ms", 0.5),
        ("1.5h", 5400.0),
        (".5m", 30.0),
        ("1H30M", 5400.0),
        ("1h 30m", 5400.0),
        (" 1h 30m ", 5400.0),
        ("2 m", 120.0),
        ("1m1ms", 60.001),
        ("1w2d3h4m5s6ms", 604_800 + 172_800 + 10_800 + 240 + 5 + 0.006),
        ("30s1h", 3630.0),
        (timedelta(minutes=2), 120.0),
        (timedelta(0), 0.0),
    ],
)
def test_parse_duration_accepts(value: object, seconds: float) -> None:
    assert parse_duration(value, what=WHAT) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "10x",
        "-5m",
        "m",
        "1h30",
        "h1",
        "1.2.3s",
        "1e3s",
        "ten seconds",
        "5m5m",
        None,
        True,
        False,
        float("nan"),
        float("inf"),
        -1,
        -0.5,
        timedelta(seconds=-1),
        [10],
        "9" * 400,
    ],
)
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(InvalidOptionError) as caught:
        parse_duration(value, what=WHAT)
    message = str(caught.value)
    assert message.startswith(WHAT)
    assert repr(value) in message or "twice" in message
    assert "'1h30m'" in message


def test_invalid_option_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="10x"):
        parse_duration("10x", what=WHAT)


units = st.sampled_from(
    [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400), ("w", 604800)]
)


@given(
    st.lists(
        st.tuples(units, st.integers(0, 10_000)),
        min_size=1,
        max_size=6,
        unique_by=lambda p: p[0][0],
    )
)
def test_parse_duration_sums_parts(parts: list[tuple[tuple[str, float], int]]) -> None:
    text = "".join(f"{n}{unit}" for (unit, _), n in parts)
    expected = sum(n * size for (_, size), n in parts)
    assert parse_duration(text, what=WHAT) == pytest.approx(expected)


@given(st.floats(min_value=0, max_value=1e12, allow_nan=False))
def test_parse_duration_numbers_pass_through(seconds: float) -> None:
    assert parse_duration(seconds, what=WHAT) == seconds


@given(st.integers(min_value=0, max_value=10**12))
def test_parse_duration_bare_number_strings_are_seconds(seconds: int) -> None:
    assert parse_duration(str(seconds), what=WHAT) == seconds


NOW = 1_700_000_000_000


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10s", NOW + 10_000),
        (90, NOW + 90_000),
        (0.0015, NOW + 2),
        (timedelta(hours=1), NOW + 3_600_000),
        ("2026-01-01T10:00:00Z", 1_767_261_600_000),
        ("2026-01-01T10:00:00+02:00", 1_767_254_400_000),
        ("2026-01-01T10:00:00", 1_767_261_600_000),
        ("2026-01-01", 1_767_225_600_000),
        ("2026-01-01T10:00:00.123Z", 1_767_261_600_123),
        (datetime(2026, 1, 1, 10, tzinfo=UTC), 1_767_261_600_000),
        (datetime(2026, 1, 1, 10), 1_767_261_600_000),
        (datetime(2026, 1, 1, 11, tzinfo=timezone(timedelta(hours=1))), 1_767_261_600_000),
    ],
)
def test_parse_instant(value: object, expected: int) -> None:
    assert parse_instant(value, now_ms=NOW, what=WHAT) == expected


@pytest.mark.parametrize(
    "value",
    ["2026-13-01T10:00:00Z", "2026-01-01Tnoon", "-5m", "", "soon", None, True, 1j, "99999999999w"],
)
def test_parse_instant_rejects(value: object) -> None:
    with pytest.raises(InvalidOptionError) as caught:
        parse_instant(value, now_ms=NOW, what=WHAT)
    assert str(caught.value).startswith(WHAT)
    assert repr(value) in str(caught.value)


@given(st.datetimes(timezones=st.just(UTC)))
def test_parse_instant_round_trips_datetimes(moment: datetime) -> None:
    ms = parse_instant(moment, now_ms=0, what=WHAT)
    assert ms == calendar.timegm(moment.utctimetuple()) * 1000 + moment.microsecond // 1000
    assert parse_instant(moment.isoformat(), now_ms=0, what=WHAT) == ms


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0ms"),
        (0.85, "850ms"),
        (0.9994, "999ms"),
        (0.9996, "1s"),
        (1.5, "1.5s"),
        (9.99, "9.9s"),
        (12, "12s"),
        (12.7, "12s"),
        (59.9, "59s"),
        (60, "1m"),
        (65, "1m 5s"),
        (3600, "1h"),
        (3605, "1h"),
        (7380, "2h 3m"),
        (86400, "1d"),
        (273_600, "3d 4h"),
        (-65, "-1m 5s"),
        (float("inf"), "inf"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(min_value=1, max_value=10**9))
def test_format_duration_reparses_to_at_most_the_value(seconds: int) -> None:
    text = format_duration(seconds).replace(" ", "")
    parsed = parse_duration(text, what=WHAT)
    assert parsed <= seconds
    # Two units keep the error under one unit of the second-largest kind (< 1/24 of a day etc.).
    assert seconds - parsed < max(1.0, seconds / 20)


def test_docstring_examples() -> None:
    assert doctest.testmod(durations).failed == 0
