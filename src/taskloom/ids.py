"""Sortable unique ids: ``<prefix>_<ULID>``, e.g. ``run_01JD8X3V4TQ6M2K5B7N9P0R1S2``.

The ULID is 26 Crockford base32 characters: a 48-bit millisecond timestamp then
80 random bits. Within a process ids are strictly increasing, also within one
millisecond (the random part is incremented), so sorting ids sorts them by
creation. The random bits come from `os.urandom`; a forked child starts a fresh
sequence so it never repeats its parent's ids.

>>> run_id = new_id("run")
>>> run_id.startswith("run_") and len(run_id) == 30
True
"""

from __future__ import annotations

import os
import threading
import time

from .errors import InvalidOptionError

__all__ = ["ULID_LENGTH", "id_timestamp_ms", "new_id"]

ULID_LENGTH = 26
"""Characters in the ULID part of an id."""

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Two base32 characters per 10-bit chunk: 13 lookups encode the 130 bits of a ULID.
_PAIRS = tuple(a + b for a in _ALPHABET for b in _ALPHABET)
_DECODE = {char: index for index, char in enumerate(_ALPHABET)}
_DECODE.update({char.lower(): index for char, index in list(_DECODE.items())})
# Crockford's readability aliases.
_DECODE.update({"O": 0, "o": 0, "I": 1, "i": 1, "L": 1, "l": 1})

_RANDOM_BITS = 80
_RANDOM_MAX = (1 << _RANDOM_BITS) - 1

_lock = threading.Lock()
_last_ms = -1
_last_random = 0


def _reset_after_fork() -> None:
    global _last_ms, _last_random  # noqa: PLW0603 - process-wide sequence state
    global _lock  # noqa: PLW0603
    _lock = threading.Lock()
    _last_ms = -1
    _last_random = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def new_id(prefix: str) -> str:
    """A new id ``f"{prefix}_{ulid}"``, greater than every id this process made before.

    >>> a, b = new_id("run"), new_id("run")
    >>> a < b
    True
    """
    global _last_ms, _last_random  # noqa: PLW0603 - process-wide sequence state
    now = time.time_ns() // 1_000_000
    with _lock:
        if now > _last_ms:
            _last_ms = now
            _last_random = int.from_bytes(os.urandom(10))
        else:
            # Same millisecond, or the wall clock stepped back: stay monotonic.
            _last_random += 1
            if _last_random > _RANDOM_MAX:
                _last_ms += 1
                _last_random = int.from_bytes(os.urandom(10))
        value = (_last_ms << _RANDOM_BITS) | _last_random
    pairs = _PAIRS
    return (
        f"{prefix}_"
        f"{pairs[value >> 120]}{pairs[(value >> 110) & 1023]}{pairs[(value >> 100) & 1023]}"
        f"{pairs[(value >> 90) & 1023]}{pairs[(value >> 80) & 1023]}{pairs[(value >> 70) & 1023]}"
        f"{pairs[(value >> 60) & 1023]}{pairs[(value >> 50) & 1023]}{pairs[(value >> 40) & 1023]}"
        f"{pairs[(value >> 30) & 1023]}{pairs[(value >> 20) & 1023]}{pairs[(value >> 10) & 1023]}"
        f"{pairs[value & 1023]}"
    )


def id_timestamp_ms(id: str) -> int:
    """The creation time, in milliseconds since the epoch, encoded in an id from `new_id`.

    Raises `InvalidOptionError` when `id` does not end in ``_<ULID>``.
    """
    ulid = id.rpartition("_")[2] if isinstance(id, str) else ""
    if len(ulid) != ULID_LENGTH or ulid[0] not in "01234567":
        raise InvalidOptionError(f"{id!r} is not a taskloom id (<prefix>_<26-character ULID>)")
    value = 0
    for char in ulid:
        digit = _DECODE.get(char)
        if digit is None:
            raise InvalidOptionError(
                f"{id!r} is not a taskloom id: {char!r} is not a Crockford base32 character"
            )
        value = (value << 5) | digit
    return value >> _RANDOM_BITS
