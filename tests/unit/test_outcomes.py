"""Tests for taskloom.engine.outcomes: how an attempt's end becomes the run's next state."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest

from taskloom.engine import outcomes
from taskloom.engine.outcomes import CLEARS_IDEMPOTENCY, crash, error_json, failure, success
from taskloom.retry import Retry
from taskloom.types import FINAL_STATUSES, RunStatus

NOW = 1_700_000_000_000
POLICY = Retry(max_attempts=3, factor=2, min_timeout_ms=1_000, max_timeout_ms=60_000)


def fixed(value: float) -> Callable[[], float]:
    return lambda: value


def forbidden() -> float:
    raise AssertionError("random() must not be called when randomize is False")


def test_success_completes_the_run_with_its_output() -> None:
    result = success("run_1", 2, "w1", b'{"ok":1}', started_at=NOW - 5, finished_at=NOW)
    assert (result.run_id, result.attempt, result.worker_id) == ("run_1", 2, "w1")
    assert (result.status, result.attempt_status) == ("COMPLETED", "COMPLETED")
    assert (result.output, result.error, result.retry_at) == (b'{"ok":1}', None, None)
    assert (result.started_at, result.finished_at) == (NOW - 5, NOW)
    assert not result.clear_idempotency_key
    assert not result.released


def test_failure_with_a_retry_requeues_the_run() -> None:
    error = error_json("ValueError", "bad input")
    result = failure(
        "run_1",
        1,
        "w1",
        error,
        retry_at=NOW + 2_000,
        final_status="FAILED",
        attempt_status="FAILED",
        started_at=NOW - 5,
        finished_at=NOW,
    )
    assert (result.status, result.attempt_status, result.retry_at) == (
        "QUEUED",
        "FAILED",
        NOW + 2_000,
    )
    assert result.error == error
    assert not result.clear_idempotency_key  # the run is not over


@pytest.mark.parametrize("final", sorted(FINAL_STATUSES - {RunStatus.COMPLETED}))
def test_a_final_failure_clears_the_key_except_when_cancelled(final: RunStatus) -> None:
    result = failure(
        "run_1",
        3,
        "w1",
        b"{}",
        retry_at=None,
        final_status=final.value,
        attempt_status="FAILED",
        started_at=None,
        finished_at=NOW,
    )
    assert result.status == final.value
    assert result.retry_at is None
    # Trigger.dev v4: failed, crashed, timed out and expired runs free their key;
    # successful and cancelled runs keep it.
    assert result.clear_idempotency_key is (final is not RunStatus.CANCELED)


def test_clears_idempotency_is_every_unsuccessful_end_but_cancel() -> None:
    unsuccessful = {s.value for s in FINAL_STATUSES} - {"COMPLETED", "CANCELED"}
    assert unsuccessful == CLEARS_IDEMPOTENCY


def test_error_json_has_every_field() -> None:
    assert orjson.loads(error_json("E", "msg", stack="trace", code="C")) == {
        "type": "E",
        "message": "msg",
        "stack": "trace",
        "code": "C",
    }


# -- crashes ---------------------------------------------------------------------------------


def crash_of(attempt: int, **changes: object) -> outcomes.AttemptOutcome:
    arguments: dict[str, object] = {
        "max_attempts": 3,
        "retry": orjson.dumps(POLICY.to_json()),
        "reason": "worker w1 stopped heartbeating",
        "code": "TASK_RUN_HEARTBEAT_TIMEOUT",
        "now": NOW,
        "started_at": NOW - 100,
        "random": fixed(0.5),
    }
    arguments.update(changes)
    return crash("run_1", attempt, "w1", **arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize(("attempt", "delay_ms"), [(1, 1_500), (2, 3_000)])
def test_a_crash_with_attempts_left_retries_by_the_locked_policy(
    attempt: int, delay_ms: int
) -> None:
    # delay = min(max, (1 + random()) * min_timeout * factor ** (attempt - 1))
    result = crash_of(attempt)
    assert (result.status, result.attempt_status) == ("QUEUED", "CRASHED")
    assert result.retry_at == NOW + delay_ms
    assert (result.finished_at, result.started_at, result.attempt) == (NOW, NOW - 100, attempt)
    assert not result.clear_idempotency_key
    assert result.error is not None
    error = orjson.loads(result.error)
    assert error["type"] == "TaskRunCrashedError"
    assert error["message"] == "worker w1 stopped heartbeating"
    assert error["code"] == "TASK_RUN_HEARTBEAT_TIMEOUT"


def test_a_crash_on_the_last_attempt_ends_the_run_crashed() -> None:
    result = crash_of(3)
    assert (result.status, result.attempt_status, result.retry_at) == ("CRASHED", "CRASHED", None)
    assert result.clear_idempotency_key
    assert result.finished_at == NOW


def test_the_runs_max_attempts_wins_over_the_policy() -> None:
    # max_attempts locked on the run (e.g. a trigger override) decides, not the stored policy.
    assert crash_of(1, max_attempts=1).status == "CRASHED"
    assert crash_of(3, max_attempts=5).status == "QUEUED"


def test_the_policy_may_be_a_dict_and_randomize_off_never_draws() -> None:
    policy = Retry(max_attempts=4, factor=3, min_timeout_ms=100, randomize=False).to_json()
    result = crash_of(3, retry=policy, max_attempts=4, random=forbidden)
    assert result.retry_at == NOW + 100 * 3**2


def test_the_retry_delay_is_capped_by_max_timeout() -> None:
    policy = Retry(max_attempts=20, min_timeout_ms=1_000, max_timeout_ms=5_000)
    result = crash_of(10, retry=policy.to_json(), max_attempts=20, random=fixed(0.99))
    assert result.retry_at == NOW + 5_000
