"""Durations and instants as users write them: ``"1h30m"``, ``90``, ``timedelta``, ``datetime``.

Pure functions; the current time is always passed in.

>>> parse_duration("1h30m", what="delay")
5400.0
>>> parse_instant("10s", now_ms=1_000, what="delay")
11000
>>> format_duration(65)
'1m 5s'
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

from .errors import InvalidOptionError

__all__ = ["ACCEPTED_DURATIONS", "format_duration", "parse_duration", "parse_instant"]

ACCEPTED_DURATIONS = (
    "a number of seconds >= 0, a timedelta, or a string such as "
    "'30', '500ms', '10s', '5m', '1.5h', '1h30m', '2d' or '2w' (units ms, s, m, h, d, w)"
)
"""How the accepted duration forms are described in error messages."""

_ACCEPTED_INSTANTS = (
    "a duration from now (" + ACCEPTED_DURATIONS + "), a datetime, "
    "or an ISO-8601 date-time such as '2026-01-01T10:00:00Z'"
)

_UNIT_SECONDS: dict[str, float] = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3_600.0,
    "d": 86_400.0,
    "w": 604_800.0,
}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
# "ms" must come before "m" and "s" in the alternation.
_PART = re.compile(rf"\s*({_NUMBER})\s*(ms|s|m|h|d|w)\s*", re.IGNORECASE)
_BARE_NUMBER = re.compile(rf"\s*{_NUMBER}\s*")
_ISO_DATE = re.compile(r"\s*\d{4}-\d{2}-\d{2}")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
# The largest instant a datetime (and so the dashboard and the API) can show: 9999-12-31.
_MAX_INSTANT_MS = (datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC) - _EPOCH) // _ONE_MS


def parse_duration(value: object, *, what: str) -> float:
    """Return the number of seconds `value` stands for.

    Accepts an int or float of seconds (finite, >= 0), a `timedelta`, or a string
    of one or more ``<number><unit>`` parts (units ``ms s m h d w``, any case,
    spaces allowed between parts) or a bare number of seconds.
    Anything else raises `InvalidOptionError` naming `what`.

    >>> parse_duration("1h52m18s", what="delay")
    6738.0
    >>> parse_duration("500ms", what="delay")
    0.5
    """
    seconds: float
    if isinstance(value, bool):
        raise _bad_duration(value, what)
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, str):
        seconds = _parse_duration_text(value, what)
    else:
        raise _bad_duration(value, what)
    if not math.isfinite(seconds) or seconds < 0:
        raise _bad_duration(value, what)
    return seconds


def _parse_duration_text(text: str, what: str) -> float:
    if _BARE_NUMBER.fullmatch(text):
        return float(text)
    total = 0.0
    seen: set[str] = set()
    position = 0
    for match in _PART.finditer(text):
        if match.start() != position:
            break
        number, unit = match.group(1), match.group(2).lower()
        if unit in seen:
            raise InvalidOptionError(
                f"{what}: unit {unit!r} appears twice in {text!r}; expected {ACCEPTED_DURATIONS}"
            )
        seen.add(unit)
        total += float(number) * _UNIT_SECONDS[unit]
        position = match.end()
    if not seen or position != len(text):
        raise _bad_duration(text, what)
    return total


def _bad_duration(value: object, what: str) -> InvalidOptionError:
    return InvalidOptionError(f"{what}: expected {ACCEPTED_DURATIONS}, got {value!r}")


def parse_instant(value: object, *, now_ms: int, what: str) -> int:
    """Return an absolute time in milliseconds since the epoch.

    A duration in any form `parse_duration` accepts is added to `now_ms`; an aware
    `datetime` is converted as is and a naive one is read as UTC; a string that
    starts with a ``YYYY-MM-DD`` date is parsed as ISO 8601 (``Z`` allowed, no
    offset means UTC).

    >>> parse_instant("2026-01-01T00:00:00Z", now_ms=0, what="delay")
    1767225600000
    """
    if isinstance(value, datetime):
        return _datetime_to_ms(value)
    if isinstance(value, str) and _ISO_DATE.match(value):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise InvalidOptionError(
                f"{what}: {value!r} is not a valid ISO-8601 date-time; "
                f"expected {_ACCEPTED_INSTANTS}"
            ) from None
        return _datetime_to_ms(parsed)
    if isinstance(value, bool) or not isinstance(value, int | float | str | timedelta):
        raise InvalidOptionError(f"{what}: expected {_ACCEPTED_INSTANTS}, got {value!r}")
    instant = now_ms + round(parse_duration(value, what=what) * 1000)
    if instant > _MAX_INSTANT_MS:
        raise InvalidOptionError(f"{what}: {value!r} from now is after the year 9999")
    return instant


def _datetime_to_ms(moment: datetime) -> int:
    if moment.tzinfo is None or moment.utcoffset() is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _ONE_MS


def format_duration(seconds: float) -> str:
    """A compact human form of a number of seconds, to the two largest units.

    >>> [format_duration(s) for s in (0.85, 12, 65, 7380, 273600)]
    ['850ms', '12s', '1m 5s', '2h 3m', '3d 4h']
    """
    if not math.isfinite(seconds):
        return str(seconds)
    if seconds < 0:
        return "-" + format_duration(-seconds)
    total_ms = round(seconds * 1000)
    if total_ms < 1_000:
        return f"{total_ms}ms"
    if total_ms < 10_000 and total_ms % 1_000 >= 100:
        return f"{total_ms // 100 / 10}s"
    whole = total_ms // 1_000
    if whole < 60:
        return f"{whole}s"
    for unit, size, small_unit, small_size in (
        ("d", 86_400, "h", 3_600),
        ("h", 3_600, "m", 60),
        ("m", 60, "s", 1),
    ):
        if whole >= size:
            big, rest = divmod(whole, size)
            small = rest // small_size
            return f"{big}{unit} {small}{small_unit}" if small else f"{big}{unit}"
    raise AssertionError("unreachable")  # pragma: no cover
