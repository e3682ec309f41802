"""Injected time: every time decision in taskloom goes through a `Clock`.

Production code uses `SYSTEM_CLOCK`; tests use `FakeClock` and move time by hand
instead of sleeping::

    clock = FakeClock()
    deadline = clock.now_ms() + 5_000
    clock.advance(5)
    assert clock.now_ms() == deadline
"""

from __future__ import annotations

import math
import time
from typing import Protocol, runtime_checkable

from .errors import InvalidOptionError

__all__ = ["SYSTEM_CLOCK", "Clock", "FakeClock", "SystemClock", "now_ms"]


@runtime_checkable
class Clock(Protocol):
    """A source of wall-clock and monotonic time."""

    def now_ms(self) -> int:
        """Wall-clock time in whole milliseconds since the Unix epoch."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards; only differences are meaningful."""
        ...


class SystemClock:
    """The real clock of this machine."""

    __slots__ = ()

    def now_ms(self) -> int:
        """Wall-clock time in whole milliseconds since the Unix epoch."""
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        """`time.monotonic()`."""
        return time.monotonic()

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK: Clock = SystemClock()
"""The process-wide real clock."""


def now_ms() -> int:
    """The real wall-clock time in whole milliseconds since the epoch (events, attempts)."""
    return time.time_ns() // 1_000_000


class FakeClock:
    """A clock that only moves when told to, for tests.

    `advance` moves the wall clock and the monotonic clock together; `set` moves
    only the wall clock (as an NTP correction would), so the monotonic clock
    never goes backwards.
    """

    __slots__ = ("_monotonic", "_now_ms")

    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self._now_ms = _check_ms(start_ms, "FakeClock start_ms")
        self._monotonic = 1_000.0

    def now_ms(self) -> int:
        """The fake wall-clock time in milliseconds since the epoch."""
        return self._now_ms

    def monotonic(self) -> float:
        """The fake monotonic time in seconds."""
        return self._monotonic

    def advance(self, seconds: float = 0, *, ms: int = 0) -> None:
        """Move both clocks forward by `seconds` plus `ms` milliseconds.

        >>> clock = FakeClock(start_ms=0)
        >>> clock.advance(1.5, ms=250)
        >>> clock.now_ms()
        1750
        """
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise InvalidOptionError(
                f"FakeClock.advance: seconds must be a number, got {seconds!r}"
            )
        if isinstance(ms, bool) or not isinstance(ms, int):
            raise InvalidOptionError(f"FakeClock.advance: ms must be an integer, got {ms!r}")
        if not math.isfinite(seconds) or seconds < 0 or ms < 0:
            raise InvalidOptionError(
                "FakeClock.advance: time only moves forward; "
                f"got seconds={seconds!r}, ms={ms!r} (both must be finite and >= 0)"
            )
        total_ms = seconds * 1000 + ms
        self._now_ms += round(total_ms)
        self._monotonic += total_ms / 1000

    def set(self, ms: int) -> None:
        """Set the wall clock to `ms` since the epoch (either direction); monotonic is unchanged."""
        self._now_ms = _check_ms(ms, "FakeClock.set")

    def __repr__(self) -> str:
        return f"FakeClock(now_ms={self._now_ms}, monotonic={self._monotonic})"


def _check_ms(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidOptionError(
            f"{what}: expected an integer number of milliseconds, got {value!r}"
        )
    return value
