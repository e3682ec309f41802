"""What an attempt hands back to its supervisor: its events and its result.

They are msgspec Structs because they cross the process boundary as they are, inside the
executor's `events` and `done` messages (`taskloom.worker.messages`); `array_like` keeps
them compact on the wire.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .failures import error_dict


class Event(msgspec.Struct, frozen=True, array_like=True):
    """One event of an attempt (a log line, a span edge, a hook call): when, what, data.

    `data` is JSON-safe (see `sink.json_safe`).
    """

    ts: int
    kind: str
    data: dict[str, Any]


class AttemptError(msgspec.Struct, frozen=True, array_like=True):
    """The error an attempt failed with, as it is stored on the attempt and the run."""

    type: str
    message: str
    stack: str = ""
    code: str = ""

    @classmethod
    def of(cls, error: BaseException, *, code: str = "") -> AttemptError:
        """The stored form of an exception: type, message, traceback (clipped) and code."""
        return cls(**error_dict(error, code=code))


NO_OUTPUT = msgspec.Raw(b"null")
"""The output of a failed attempt."""


class AttemptResult(msgspec.Struct, frozen=True, array_like=True):
    """How an attempt ended, as the executor reports it.

    A success carries the output (its JSON, passed to the store undecoded); a
    failure carries the error, when to retry (`retry_at`, ms, or None for no retry; an
    executor turns a `retry_delay_ms` into it, counted from the attempt's end), the
    run's final `status` when there is no retry, the attempt's status and the machine of
    the retry when it changes. The executor adds the attempt's timing and its last events.
    """

    ok: bool
    output: msgspec.Raw = NO_OUTPUT
    error: AttemptError | None = None
    retry_at: int | None = None
    retry_delay_ms: int | None = None
    status: str = "COMPLETED"
    attempt_status: str = "COMPLETED"
    machine: str | None = None
    started_at: int | None = None
    finished_at: int = 0
    events: list[Event] = []


def succeeded(output: bytes) -> AttemptResult:
    """A successful attempt that returned `output` (JSON bytes)."""
    return AttemptResult(True, msgspec.Raw(output))


def failed(
    error: AttemptError,
    *,
    retry_at: int | None,
    status: str,
    attempt_status: str,
    machine: str | None = None,
    retry_delay_ms: int | None = None,
) -> AttemptResult:
    """A failed attempt: retried at `retry_at` (or `retry_delay_ms` after it ends), or the
    run ends with `status`."""
    return AttemptResult(
        False,
        error=error,
        retry_at=retry_at,
        retry_delay_ms=retry_delay_ms,
        status=status,
        attempt_status=attempt_status,
        machine=machine,
    )
