"""Tests for taskloom.retry."""

from __future__ import annotations

import dataclasses
import doctest
from collections.abc import Callable
from itertools import count

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskloom import retry
from taskloom.errors import InvalidOptionError
from taskloom.retry import MAX_ATTEMPTS_CEILING, Retry, next_attempt_at, retry_delay_ms

WHAT = "retry of task 'send-email'"


def fixed(value: float) -> Callable[[], float]:
    return lambda: value


def forbidden() -> float:
    raise AssertionError("random() must not be called when randomize is False")


def test_defaults_match_trigger_dev() -> None:
    policy = Retry()
    assert (
        policy.max_attempts,
        policy.factor,
        policy.min_timeout_ms,
        policy.max_timeout_ms,
        policy.randomize,
        policy.out_of_memory,
    ) == (3, 2, 1000, 60000, True, None)
    assert MAX_ATTEMPTS_CEILING == 250


def test_is_frozen_and_hashable() -> None:
    policy = Retry(out_of_memory={"machine": "large-1x"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.max_attempts = 5  # type: ignore[misc]
    assert hash(policy) == hash(Retry(out_of_memory={"machine": "large-1x"}))
    assert {Retry(), Retry()} == {Retry()}


def test_out_of_memory_is_copied() -> None:
    oom = {"machine": "large-1x"}
    policy = Retry(out_of_memory=oom)
    oom["machine"] = "micro"
    assert policy.out_of_memory == {"machine": "large-1x"}


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"max_attempts": 0}, "max_attempts must be an integer from 1 to 250, got 0"),
        ({"max_attempts": 251}, "max_attempts must be an integer from 1 to 250, got 251"),
        ({"max_attempts": 2.0}, "max_attempts must be an integer from 1 to 250, got 2.0"),
        ({"max_attempts": True}, "max_attempts must be an integer from 1 to 250, got True"),
        ({"factor": 0.5}, "factor must be a finite number >= 1, got 0.5"),
        ({"factor": float("inf")}, "factor must be a finite number >= 1, got inf"),
        ({"factor": float("nan")}, "factor must be a finite number >= 1, got nan"),
        ({"factor": "2"}, "factor must be a finite number >= 1, got '2'"),
        ({"min_timeout_ms": -1}, "min_timeout_ms must be an integer >= 0, got -1"),
        ({"min_timeout_ms": 1.5}, "min_timeout_ms must be an integer >= 0, got 1.5"),
        (
            {"max_timeout_ms": 999},
            "max_timeout_ms must be an integer >= min_timeout_ms (1000), got 999",
        ),
        ({"randomize": 1}, "randomize must be True or False, got 1"),
        ({"out_of_memory": {"machine": "huge"}}, "out_of_memory must be None or {'machine'"),
        ({"out_of_memory": {"machine": "large-1x", "x": 1}}, "large-2x, got {'machine'"),
        ({"out_of_memory": {}}, "out_of_memory must be None"),
        ({"out_of_memory": "large-1x"}, "got 'large-1x'"),
    ],
)
def test_validation(options: dict[str, object], fragment: str) -> None:
    with pytest.raises(InvalidOptionError) as direct:
        Retry(**options)  # type: ignore[arg-type]
    assert str(direct.value).startswith("Retry: ")
    assert fragment in str(direct.value)
    with pytest.raises(InvalidOptionError) as via_dict:
        Retry.from_value(options, what=WHAT, default=Retry())
    assert str(via_dict.value).startswith(f"{WHAT}: ")
    assert fragment in str(via_dict.value)


def test_from_value_message_is_exact() -> None:
    with pytest.raises(InvalidOptionError) as caught:
        Retry.from_value({"max_attempts": 0}, what=WHAT, default=Retry())
    assert str(caught.value) == f"{WHAT}: max_attempts must be an integer from 1 to 250, got 0"


def test_from_value_forms() -> None:
    default = Retry(max_attempts=7)
    assert Retry.from_value(None, what=WHAT, default=default) is default
    policy = Retry(factor=3)
    assert Retry.from_value(policy, what=WHAT, default=default) is policy
    # Missing keys take the class defaults, not `default` (Trigger.dev merges with built-ins).
    assert Retry.from_value({"max_attempts": 10}, what=WHAT, default=default) == Retry(
        max_attempts=10
    )


def test_from_value_rejects_unknown_keys_and_types() -> None:
    with pytest.raises(InvalidOptionError) as caught:
        Retry.from_value({"maxAttempts": 3, "factor": 2}, what=WHAT, default=Retry())
    assert "'maxAttempts'" in str(caught.value)
    assert "max_attempts" in str(caught.value)
    assert str(caught.value).startswith(WHAT)
    with pytest.raises(InvalidOptionError, match="got 3"):
        Retry.from_value(3, what=WHAT, default=Retry())  # type: ignore[arg-type]


policies = st.builds(
    Retry,
    max_attempts=st.integers(1, MAX_ATTEMPTS_CEILING),
    factor=st.floats(1, 10),
    min_timeout_ms=st.integers(0, 100_000),
    max_timeout_ms=st.integers(100_000, 10_000_000),
    randomize=st.booleans(),
    out_of_memory=st.none() | st.sampled_from(["micro", "large-2x"]).map(lambda m: {"machine": m}),
)


@given(policies)
def test_json_round_trip(policy: Retry) -> None:
    assert Retry.from_json(policy.to_json()) == policy


def test_from_json_validates() -> None:
    with pytest.raises(InvalidOptionError, match="stored retry policy"):
        Retry.from_json({"max_attempts": -1})


def test_with_max_attempts() -> None:
    policy = Retry(factor=1.5)
    assert policy.with_max_attempts(9) == Retry(factor=1.5, max_attempts=9)
    assert policy.max_attempts == 3
    with pytest.raises(InvalidOptionError):
        policy.with_max_attempts(0)
    with pytest.raises(InvalidOptionError):
        policy.with_max_attempts(MAX_ATTEMPTS_CEILING + 1)


def test_trigger_docs_example_factor_1_8() -> None:
    policy = Retry(max_attempts=10, factor=1.8, min_timeout_ms=500, randomize=False)
    delays = [retry_delay_ms(policy, n, forbidden) for n in (1, 2, 3, 4)]
    assert delays == [500, 900, 1620, 2916]


def test_factor_2_defaults_and_cap() -> None:
    policy = Retry(max_attempts=20, randomize=False)
    delays = [retry_delay_ms(policy, n) for n in range(1, 10)]
    assert delays == [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]


def test_jitter_uses_the_injected_random() -> None:
    policy = Retry()
    assert retry_delay_ms(policy, 1, fixed(0.0)) == 1000
    assert retry_delay_ms(policy, 1, fixed(0.5)) == 1500
    assert retry_delay_ms(policy, 2, fixed(0.25)) == 2500
    assert retry_delay_ms(policy, 1, fixed(0.9995)) == 2000
    assert retry_delay_ms(Retry(min_timeout_ms=3), 1, fixed(0.5)) == 5  # 4.5: half rounds up
    assert retry_delay_ms(policy, 10, fixed(0.99)) == 60000


def test_huge_attempt_numbers_do_not_overflow() -> None:
    policy = Retry(max_attempts=250, factor=10, randomize=False)
    assert retry_delay_ms(policy, 250) == 60000
    assert retry_delay_ms(policy, 10**6) == 60000
    zero = Retry(min_timeout_ms=0, max_timeout_ms=0, factor=10)
    assert retry_delay_ms(zero, 10**6, fixed(0.5)) == 0


@given(policies, st.integers(1, 10_000), st.floats(0, 1, exclude_max=True))
def test_jitter_bounds(policy: Retry, attempt: int, r: float) -> None:
    delay = retry_delay_ms(policy, attempt, fixed(r))
    try:
        growth = policy.factor ** (attempt - 1)
    except OverflowError:
        growth = float("inf")
    base = policy.min_timeout_ms * growth if policy.min_timeout_ms else 0.0
    low = min(policy.max_timeout_ms, base)
    high = min(policy.max_timeout_ms, 2 * base)
    assert low - 0.5 <= delay <= high + 0.5
    assert 0 <= delay <= policy.max_timeout_ms


@given(policies, st.integers(1, 300))
def test_delays_never_shrink_without_jitter(policy: Retry, attempt: int) -> None:
    steady = dataclasses.replace(policy, randomize=False)
    assert retry_delay_ms(steady, attempt) <= retry_delay_ms(steady, attempt + 1)


def test_next_attempt_at_and_exhaustion() -> None:
    policy = Retry(max_attempts=3, randomize=False)
    assert next_attempt_at(10_000, 1, policy) == 11_000
    assert next_attempt_at(10_000, 2, policy) == 12_000
    assert next_attempt_at(10_000, 3, policy) is None
    assert next_attempt_at(10_000, 4, policy) is None
    assert next_attempt_at(10_000, 1, Retry(max_attempts=1)) is None


@given(policies, st.integers(1, 300))
def test_next_attempt_at_property(policy: Retry, attempt: int) -> None:
    calls = count()

    def rand() -> float:
        next(calls)
        return 0.5

    at = next_attempt_at(0, attempt, policy, rand)
    if attempt >= policy.max_attempts:
        assert at is None
        assert next(calls) == 0
    else:
        assert at == retry_delay_ms(policy, attempt, fixed(0.5))


@pytest.mark.parametrize("attempt", [0, -1, 1.0, True])
def test_attempt_must_be_positive_int(attempt: object) -> None:
    with pytest.raises(InvalidOptionError, match="attempt"):
        retry_delay_ms(Retry(), attempt)  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionError, match="attempt"):
        next_attempt_at(0, attempt, Retry())  # type: ignore[arg-type]


def test_docstring_examples() -> None:
    assert doctest.testmod(retry).failed == 0
