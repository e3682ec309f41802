"""Tests for taskloom.clock."""

from __future__ import annotations

import doctest
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskloom import clock
from taskloom.clock import SYSTEM_CLOCK, Clock, FakeClock, SystemClock
from taskloom.errors import InvalidOptionError


def test_system_clock_reads_the_real_clock() -> None:
    before = time.time_ns() // 1_000_000
    now = SYSTEM_CLOCK.now_ms()
    after = time.time_ns() // 1_000_000
    assert isinstance(now, int)
    assert before <= now <= after


def test_system_clock_monotonic_never_goes_back() -> None:
    readings = [SYSTEM_CLOCK.monotonic() for _ in range(100)]
    assert readings == sorted(readings)


def test_both_clocks_satisfy_the_protocol() -> None:
    assert isinstance(SystemClock(), Clock)
    assert isinstance(FakeClock(), Clock)


def test_fake_clock_starts_where_told() -> None:
    assert FakeClock().now_ms() == 1_700_000_000_000
    assert FakeClock(start_ms=42).now_ms() == 42


def test_fake_clock_stands_still_until_advanced() -> None:
    fake = FakeClock()
    assert fake.now_ms() == fake.now_ms()
    assert fake.monotonic() == fake.monotonic()


def test_advance_moves_both_clocks() -> None:
    fake = FakeClock(start_ms=1_000)
    mono = fake.monotonic()
    fake.advance(2.5)
    assert fake.now_ms() == 3_500
    assert fake.monotonic() == pytest.approx(mono + 2.5)
    fake.advance(ms=250)
    assert fake.now_ms() == 3_750
    assert fake.monotonic() == pytest.approx(mono + 2.75)
    fake.advance(1, ms=1)
    assert fake.now_ms() == 4_751


@given(st.lists(st.tuples(st.floats(0, 1e6), st.integers(0, 10**9)), max_size=20))
def test_advance_accumulates(steps: list[tuple[float, int]]) -> None:
    fake = FakeClock(start_ms=0)
    mono = fake.monotonic()
    for seconds, ms in steps:
        before = fake.now_ms()
        fake.advance(seconds, ms=ms)
        assert fake.now_ms() == before + round(seconds * 1000 + ms)
    total = sum(seconds + ms / 1000 for seconds, ms in steps)
    assert fake.monotonic() == pytest.approx(mono + total)


@pytest.mark.parametrize(
    ("seconds", "ms"),
    [(-1, 0), (0, -1), (float("nan"), 0), (float("inf"), 0), (True, 0), (0, 1.5), ("1", 0)],
)
def test_advance_rejects_going_back_or_junk(seconds: object, ms: object) -> None:
    fake = FakeClock(start_ms=0)
    with pytest.raises(InvalidOptionError):
        fake.advance(seconds, ms=ms)  # type: ignore[arg-type]
    assert fake.now_ms() == 0


def test_set_moves_wall_clock_only() -> None:
    fake = FakeClock()
    mono = fake.monotonic()
    fake.set(5)
    assert fake.now_ms() == 5
    assert fake.monotonic() == mono
    fake.set(2_000_000_000_000)
    assert fake.now_ms() == 2_000_000_000_000


@pytest.mark.parametrize("bad", [1.5, "10", None, True])
def test_set_and_start_require_integer_ms(bad: object) -> None:
    with pytest.raises(InvalidOptionError, match="milliseconds"):
        FakeClock().set(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionError):
        FakeClock(start_ms=bad)  # type: ignore[arg-type]


def test_docstring_examples() -> None:
    assert doctest.testmod(clock).failed == 0
