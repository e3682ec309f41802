"""Retry policies and the backoff they imply. Pure: the time and the randomness are passed in.

The delay after failed attempt ``n`` (1-based) is
``round(min(max_timeout_ms, r * min_timeout_ms * factor ** (n - 1)))`` with
``r = 1 + random()`` when `Retry.randomize`, else 1 (Trigger.dev's formula).

>>> policy = Retry(max_attempts=10, factor=1.8, min_timeout_ms=500, randomize=False)
>>> [retry_delay_ms(policy, n) for n in (1, 2, 3)]
[500, 900, 1620]
>>> next_attempt_at(0, 10, policy) is None
True
"""

from __future__ import annotations

import dataclasses
import math
import random as _random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Self, TypeGuard

from .errors import InvalidOptionError
from .machines import MACHINE_PRESETS

__all__ = ["MAX_ATTEMPTS_CEILING", "Retry", "next_attempt_at", "retry_delay_ms"]

MAX_ATTEMPTS_CEILING = 250
"""No run is ever attempted more often than this (Trigger.dev's MAX_TASK_RUN_ATTEMPTS)."""

_FIELDS = (
    "max_attempts",
    "factor",
    "min_timeout_ms",
    "max_timeout_ms",
    "randomize",
    "out_of_memory",
)


@dataclass(frozen=True, slots=True)
class Retry:
    """How often, and how far apart, a failed run is attempted again.

    `max_attempts` counts every attempt, the first included. `out_of_memory`,
    e.g. ``{"machine": "large-1x"}``, retries an attempt that ran out of memory
    on a bigger machine preset.

    Invalid values raise `InvalidOptionError` when the policy is built.
    """

    max_attempts: int = 3
    factor: float = 2
    min_timeout_ms: int = 1000
    max_timeout_ms: int = 60000
    randomize: bool = True
    out_of_memory: dict[str, str] | None = None

    def __post_init__(self) -> None:
        problem = _find_problem(
            max_attempts=self.max_attempts,
            factor=self.factor,
            min_timeout_ms=self.min_timeout_ms,
            max_timeout_ms=self.max_timeout_ms,
            randomize=self.randomize,
            out_of_memory=self.out_of_memory,
        )
        if problem is not None:
            raise InvalidOptionError(f"Retry: {problem}")
        if self.out_of_memory is not None:
            # A private copy: a caller mutating their dict must not change a frozen policy.
            object.__setattr__(self, "out_of_memory", dict(self.out_of_memory))

    def __hash__(self) -> int:
        oom = None if self.out_of_memory is None else tuple(sorted(self.out_of_memory.items()))
        return hash(
            (
                self.max_attempts,
                self.factor,
                self.min_timeout_ms,
                self.max_timeout_ms,
                self.randomize,
                oom,
            )
        )

    @classmethod
    def from_value(
        cls, value: Retry | Mapping[str, Any] | None, *, what: str, default: Retry
    ) -> Retry:
        """Build a policy from what a user passed as `retry`.

        `value` may be a `Retry`, a dict with some of its fields (missing ones take
        the class defaults, as Trigger.dev merges a task's partial retry options
        with the built-in defaults), or None for `default`. Errors are
        `InvalidOptionError` prefixed with `what`, e.g. ``"retry of task 'x': ..."``.
        """
        if value is None:
            return default
        if isinstance(value, Retry):
            return value
        if not isinstance(value, Mapping):
            raise InvalidOptionError(
                f"{what}: expected a Retry(...) or a dict with keys {', '.join(_FIELDS)}, "
                f"got {value!r}"
            )
        unknown = [key for key in value if key not in _FIELDS]
        if unknown:
            raise InvalidOptionError(
                f"{what}: unknown key(s) {', '.join(repr(k) for k in unknown)}; "
                f"accepted keys are {', '.join(_FIELDS)}"
            )
        fields = {name: value.get(name, getattr(_DEFAULT, name)) for name in _FIELDS}
        problem = _find_problem(**fields)
        if problem is not None:
            raise InvalidOptionError(f"{what}: {problem}")
        return cls(**fields)

    def to_json(self) -> dict[str, Any]:
        """The policy as a JSON-ready dict (every field, `out_of_memory` may be None)."""
        return {
            "max_attempts": self.max_attempts,
            "factor": self.factor,
            "min_timeout_ms": self.min_timeout_ms,
            "max_timeout_ms": self.max_timeout_ms,
            "randomize": self.randomize,
            "out_of_memory": None if self.out_of_memory is None else dict(self.out_of_memory),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Retry:
        """The inverse of `to_json`; missing keys take the defaults."""
        return cls.from_value(data, what="stored retry policy", default=_DEFAULT)

    def with_max_attempts(self, max_attempts: int) -> Self:
        """A copy with another `max_attempts` (validated like the constructor)."""
        return dataclasses.replace(self, max_attempts=max_attempts)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _find_problem(
    *,
    max_attempts: object,
    factor: object,
    min_timeout_ms: object,
    max_timeout_ms: object,
    randomize: object,
    out_of_memory: object,
) -> str | None:
    """What is wrong with these field values, in words, or None when they are valid."""
    if not _is_int(max_attempts) or not 1 <= max_attempts <= MAX_ATTEMPTS_CEILING:
        return (
            f"max_attempts must be an integer from 1 to {MAX_ATTEMPTS_CEILING}, "
            f"got {max_attempts!r}"
        )
    if (
        isinstance(factor, bool)
        or not isinstance(factor, int | float)
        or not math.isfinite(factor)
        or factor < 1
    ):
        return f"factor must be a finite number >= 1, got {factor!r}"
    if not _is_int(min_timeout_ms) or min_timeout_ms < 0:
        return f"min_timeout_ms must be an integer >= 0, got {min_timeout_ms!r}"
    if not _is_int(max_timeout_ms) or max_timeout_ms < min_timeout_ms:
        return (
            f"max_timeout_ms must be an integer >= min_timeout_ms ({min_timeout_ms}), "
            f"got {max_timeout_ms!r}"
        )
    if not isinstance(randomize, bool):
        return f"randomize must be True or False, got {randomize!r}"
    if out_of_memory is not None:
        presets = ", ".join(MACHINE_PRESETS)
        if (
            not isinstance(out_of_memory, Mapping)
            or set(out_of_memory) != {"machine"}
            or out_of_memory["machine"] not in MACHINE_PRESETS
        ):
            return (
                "out_of_memory must be None or {'machine': <preset>} with a preset among "
                f"{presets}, got {out_of_memory!r}"
            )
    return None


_DEFAULT = Retry()


def retry_delay_ms(
    policy: Retry, attempt: int, random: Callable[[], float] = _random.random
) -> int:
    """Milliseconds to wait after failed attempt `attempt` (1-based) before the next one.

    `random` returns a float in [0, 1); it is only called when `policy.randomize`.
    Never overflows: large attempt numbers simply give `max_timeout_ms`.
    """
    if not _is_int(attempt) or attempt < 1:
        raise InvalidOptionError(f"attempt must be an integer >= 1, got {attempt!r}")
    jitter = 1.0 + random() if policy.randomize else 1.0
    if policy.min_timeout_ms == 0:
        return 0
    try:
        raw = jitter * policy.min_timeout_ms * float(policy.factor) ** (attempt - 1)
    except OverflowError:
        raw = math.inf
    delay = min(float(policy.max_timeout_ms), raw)
    # Half up, as JavaScript's Math.round does (Python's round() is half to even).
    return math.floor(delay + 0.5)


def next_attempt_at(
    now_ms: int, attempt: int, policy: Retry, random: Callable[[], float] = _random.random
) -> int | None:
    """When to start the attempt after failed attempt `attempt`, or None if none is left.

    >>> next_attempt_at(1_000, 1, Retry(randomize=False))
    2000
    >>> next_attempt_at(1_000, 3, Retry())  # the default allows 3 attempts
    """
    if not _is_int(attempt) or attempt < 1:
        raise InvalidOptionError(f"attempt must be an integer >= 1, got {attempt!r}")
    if attempt >= policy.max_attempts:
        return None
    return now_ms + retry_delay_ms(policy, attempt, random)
