"""What follows a failed attempt: the default retry, or what `catch_error` answered."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import InvalidOptionError
from ..retry import MAX_ATTEMPTS_CEILING, Retry, retry_delay_ms
from ..types import RunStatus
from .report import AttemptError, AttemptResult, failed

CATCH_ERROR_KEYS = frozenset({"skip_retrying", "retry_at", "retry_delay_ms", "retry", "error"})


@dataclass(slots=True)
class Decision:
    """What follows a failed attempt."""

    error: BaseException
    retry_at: int | None  # an absolute time (ms), from a `catch_error` retry_at
    status: RunStatus = RunStatus.FAILED
    attempt_status: str = "FAILED"
    code: str = ""
    machine: str | None = None  # the machine of the retry, when it changes
    delay_ms: int | None = None  # or a delay, counted from the end of the attempt

    @property
    def retries(self) -> bool:
        """True when another attempt follows."""
        return self.retry_at is not None or self.delay_ms is not None


def interpret_answer(
    answer: Any,
    error: BaseException,
    *,
    where: str,
    attempt: int,
    policy: Retry,
    now: int,
) -> Decision:
    """Trigger.dev's reading of a `catch_error` answer: `skip_retrying` first, then
    `retry_at`, `retry_delay_ms`, `retry`; a dict with none of them (`{}`, only
    `error`, `skip_retrying=False`) fails the run. A key set to None counts as absent."""
    if not isinstance(answer, Mapping):
        raise InvalidOptionError(
            f"{where} returned {type(answer).__name__}; return None or a dict with "
            f"{', '.join(sorted(CATCH_ERROR_KEYS))}"
        )
    unknown = set(answer) - CATCH_ERROR_KEYS
    if unknown:
        raise InvalidOptionError(
            f"{where} returned unknown key(s) {sorted(unknown)}; valid keys are "
            f"{', '.join(sorted(CATCH_ERROR_KEYS))}"
        )
    given = {key: value for key, value in answer.items() if value is not None}
    recorded = given.get("error", error)
    if not isinstance(recorded, BaseException):
        raise InvalidOptionError(f"{where} returned error={recorded!r}, not an exception")
    if given.get("skip_retrying") or attempt >= MAX_ATTEMPTS_CEILING:
        return Decision(recorded, None)
    if "retry_at" in given:
        when = given["retry_at"]
        if not isinstance(when, datetime):
            raise InvalidOptionError(f"{where} returned retry_at={when!r}, not a datetime")
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return Decision(recorded, max(now, int(when.timestamp() * 1000)))
    if "retry_delay_ms" in given:
        delay = given["retry_delay_ms"]
        if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
            raise InvalidOptionError(
                f"{where} returned retry_delay_ms={delay!r}; expected milliseconds >= 0"
            )
        return Decision(recorded, None, delay_ms=round(delay))
    if "retry" in given:
        policy = Retry.from_value(given["retry"], what=where, default=policy)
        if attempt >= policy.max_attempts:
            return Decision(recorded, None)
        return Decision(recorded, None, delay_ms=retry_delay_ms(policy, attempt, random.random))
    return Decision(recorded, None)  # no retry information: the run fails


def failed_outcome(decision: Decision) -> AttemptResult:
    """The result of a failed attempt."""
    return failed(
        AttemptError.of(decision.error, code=decision.code),
        retry_at=decision.retry_at,
        retry_delay_ms=decision.delay_ms,
        status=decision.status.value,
        attempt_status=decision.attempt_status,
        machine=decision.machine,
    )
