"""How an attempt's end becomes the run's next state. Pure: time and randomness are passed in.

Executors decide retries for errors raised by user code (they run `catch_error`); the
engine decides for deaths the executor could not report (crashes, lapsed leases) from
the retry policy locked on the run at trigger time.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable
from typing import Any

import msgspec
import orjson

from ..retry import Retry, next_attempt_at
from ..store.records import AttemptOutcome
from ..types import RunStatus

ATTEMPT_COMPLETED = "COMPLETED"
ATTEMPT_CRASHED = "CRASHED"

# Final run statuses that clear the run's idempotency key (Trigger.dev v4 semantics).
CLEARS_IDEMPOTENCY = frozenset(
    {
        RunStatus.FAILED.value,
        RunStatus.CRASHED.value,
        RunStatus.SYSTEM_FAILURE.value,
        RunStatus.TIMED_OUT.value,
        RunStatus.EXPIRED.value,
    }
)


def error_json(type_: str, message: str, stack: str = "", code: str = "") -> bytes:
    """A stored error."""
    return orjson.dumps({"type": type_, "message": message, "stack": stack, "code": code})


def success(
    run_id: str,
    attempt: int,
    worker_id: str,
    output: bytes,
    *,
    started_at: int | None,
    finished_at: int,
) -> AttemptOutcome:
    """The attempt returned: the run is COMPLETED with this output."""
    return AttemptOutcome(
        run_id=run_id,
        attempt=attempt,
        worker_id=worker_id,
        status=RunStatus.COMPLETED.value,
        attempt_status=ATTEMPT_COMPLETED,
        finished_at=finished_at,
        started_at=started_at,
        output=output,
    )


def failure(
    run_id: str,
    attempt: int,
    worker_id: str,
    error: bytes,
    *,
    retry_at: int | None,
    final_status: str,
    attempt_status: str,
    started_at: int | None,
    finished_at: int,
    machine: str | None = None,
) -> AttemptOutcome:
    """The attempt failed: retry at `retry_at` (on `machine` when given), or end the run
    with `final_status`."""
    if retry_at is not None:
        return AttemptOutcome(
            run_id=run_id,
            attempt=attempt,
            worker_id=worker_id,
            status=RunStatus.QUEUED.value,
            attempt_status=attempt_status,
            finished_at=finished_at,
            started_at=started_at,
            error=error,
            retry_at=retry_at,
            machine=machine,
        )
    return AttemptOutcome(
        run_id=run_id,
        attempt=attempt,
        worker_id=worker_id,
        status=final_status,
        attempt_status=attempt_status,
        finished_at=finished_at,
        started_at=started_at,
        error=error,
        clear_idempotency_key=final_status in CLEARS_IDEMPOTENCY,
    )


def crash(
    run_id: str,
    attempt: int,
    worker_id: str,
    *,
    max_attempts: int,
    retry: bytes | msgspec.Raw | dict[str, Any],
    reason: str,
    code: str,
    now: int,
    started_at: int | None,
    random: Callable[[], float] = _random.random,
) -> AttemptOutcome:
    """The process running the attempt died: it counts as an attempt; retry if any remain."""
    policy_data = retry if isinstance(retry, dict) else orjson.loads(memoryview(retry))
    policy = Retry.from_json(policy_data).with_max_attempts(max_attempts)
    retry_at = next_attempt_at(now, attempt, policy, random)
    return failure(
        run_id,
        attempt,
        worker_id,
        error_json("TaskRunCrashedError", reason, code=code),
        retry_at=retry_at,
        final_status=RunStatus.CRASHED.value,
        attempt_status=ATTEMPT_CRASHED,
        started_at=started_at,
        finished_at=now,
    )


def oom_retry_machine(policy: Retry, current: str, attempt: int) -> str | None:
    """The bigger machine an out-of-memory attempt is retried on, if the policy names one
    (different from the current one) and attempts remain."""
    target = (policy.out_of_memory or {}).get("machine")
    if not target or target == current or attempt >= policy.max_attempts:
        return None
    return target


def out_of_memory(
    run_id: str,
    attempt: int,
    worker_id: str,
    *,
    machine: str,
    max_attempts: int,
    retry: bytes | msgspec.Raw | dict[str, Any],
    reason: str,
    now: int,
    started_at: int | None,
) -> AttemptOutcome:
    """The attempt ran out of its machine's memory: retried at once on the machine named by
    `retry.out_of_memory`, else the run ends CRASHED."""
    policy_data = retry if isinstance(retry, dict) else orjson.loads(memoryview(retry))
    policy = Retry.from_json(policy_data).with_max_attempts(max_attempts)
    bigger = oom_retry_machine(policy, machine, attempt)
    return failure(
        run_id,
        attempt,
        worker_id,
        error_json("OutOfMemoryError", reason, code="TASK_PROCESS_OOM_KILLED"),
        retry_at=None if bigger is None else now,
        final_status=RunStatus.CRASHED.value,
        attempt_status=ATTEMPT_CRASHED,
        started_at=started_at,
        finished_at=now,
        machine=bigger,
    )
