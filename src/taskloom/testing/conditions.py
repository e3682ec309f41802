"""Waiting on conditions in tests: `wait_for` with a deadline, and the errors a failed
wait raises (both `AssertionError`s, so pytest reports them as test failures)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

Message = str | Callable[[], str] | None
"""A failure message, or a function that builds one when the wait fails (to include
state such as a worker's output, read only when needed)."""


class WaitTimeoutError(AssertionError):
    """A condition given to `wait_for` (or a worker wait) did not hold before its deadline.

    An `AssertionError`, so pytest reports it as a test failure with its message.
    """


class WorkerExitedError(AssertionError):
    """A worker process exited while the test expected it to be running (or starting)."""


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float = 10.0,
    interval: float = 0.01,
    message: Message = None,
) -> T:
    """Call `predicate` until it returns a truthy value, and return that value.

    Raises `WaitTimeoutError` after `timeout` seconds, with `message` (a string, or a
    function called then to build it) and the last value seen. Exceptions raised by
    `predicate` propagate at once. The predicate is always called at least once, and
    once more at the deadline, so a condition that holds is never reported missed.

    >>> wait_for(lambda: 2 + 2, timeout=1)
    4
    """
    if timeout < 0 or not math.isfinite(timeout):
        raise ValueError(f"timeout must be a finite number of seconds >= 0, got {timeout!r}")
    if interval <= 0:
        raise ValueError(f"interval must be > 0 seconds, got {interval!r}")
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(interval, left))
    text = message() if callable(message) else message
    name = getattr(predicate, "__name__", repr(predicate))
    detail = f"{text}: " if text else ""
    raise WaitTimeoutError(
        f"{detail}condition {name} did not hold within {timeout} s (last value {value!r})"
    )
