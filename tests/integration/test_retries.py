"""Retries and how an attempt's end decides the run's fate, with a real worker."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from taskloom import RunStatus, runs, schema_task, tasks
from taskloom.testing import TaskloomProject

from .conftest import StartWorker

pytestmark = pytest.mark.slow

OUTCOME_TASKS = """
from taskloom import AbortTaskRunError, CompleteTaskWithOutput, task


@task(id="flaky", retry={"max_attempts": 5, "min_timeout_ms": 200, "factor": 2,
                         "randomize": False})
def flaky(payload, ctx):
    if ctx.attempt.number <= 2:
        raise RuntimeError(f"failure on attempt {ctx.attempt.number}")
    return {"succeeded_on": ctx.attempt.number}


@task(id="always-fails", retry={"max_attempts": 3, "min_timeout_ms": 50, "randomize": False})
async def always_fails(payload, ctx):
    raise ValueError(f"attempt {ctx.attempt.number} fails")


@task(id="aborts", retry={"max_attempts": 5, "min_timeout_ms": 50, "randomize": False})
def aborts(payload):
    raise AbortTaskRunError("no point retrying this")


@task(id="completes-early")
async def completes_early(payload):
    raise CompleteTaskWithOutput({"early": payload})


class Opaque:
    pass


@task(id="bad-output", retry={"max_attempts": 1})
def bad_output(payload):
    return {"value": Opaque()}
"""

SCHEMA_TASKS = """
import pydantic

from taskloom import schema_task


class Order(pydantic.BaseModel):
    id: int


@schema_task(id="order", schema=Order,
             retry={"max_attempts": 3, "min_timeout_ms": 50, "randomize": False})
async def order(order, ctx):
    return {"id": order.id, "type": type(order).__name__, "attempt": ctx.attempt.number}
"""


@pytest.fixture
def worker_for_outcomes(project: TaskloomProject, start_worker: StartWorker) -> None:
    project.write_task_module("outcomes", OUTCOME_TASKS)
    project.write_task_module("schemas", SCHEMA_TASKS)
    start_worker(concurrency=10)


def _ms(value: Any) -> float:
    return float(value.timestamp() * 1000)


@pytest.mark.usefixtures("worker_for_outcomes")
def test_retry_backoff_follows_the_policy() -> None:
    handle = tasks.trigger("flaky", {})

    assert handle.result(timeout=20) == {"succeeded_on": 3}
    run = runs.retrieve(handle.id)
    assert run.attempt_count == 3
    assert [(a.number, a.status) for a in run.attempts] == [
        (1, "FAILED"),
        (2, "FAILED"),
        (3, "COMPLETED"),
    ]
    assert run.attempts[0].error is not None
    assert "failure on attempt 1" in run.attempts[0].error.message
    starts = [_ms(a.started_at) for a in run.attempts]
    ends = [_ms(a.finished_at) for a in run.attempts]
    # min_timeout_ms * factor ** (n - 1): 200 ms after attempt 1 ended, 400 ms after attempt 2
    # (counted from the end of the attempt, its hooks included).
    for n, delay in ((1, 200), (2, 400)):
        gap = starts[n] - ends[n - 1]
        assert gap >= delay, f"attempt {n + 1} began {gap} ms after {n} ended (< {delay})"
        assert starts[n] - starts[n - 1] >= delay
        assert gap < delay + 1500, f"attempt {n + 1} began {gap} ms after {n} ended"


@pytest.mark.usefixtures("worker_for_outcomes")
def test_a_task_that_always_fails_ends_failed_after_max_attempts() -> None:
    run = runs.poll(tasks.trigger("always-fails", None), timeout=20)

    assert run.status is RunStatus.FAILED
    assert run.attempt_count == 3
    assert [(a.number, a.status) for a in run.attempts] == [(n, "FAILED") for n in (1, 2, 3)]
    assert run.error is not None
    assert run.error.type == "ValueError"
    assert run.error.message == "attempt 3 fails"
    assert "Traceback" in run.error.stack
    assert [a.error.message for a in run.attempts if a.error] == [
        f"attempt {n} fails" for n in (1, 2, 3)
    ]


@pytest.mark.usefixtures("worker_for_outcomes")
def test_abort_task_run_error_fails_without_retrying() -> None:
    run = runs.poll(tasks.trigger("aborts", None), timeout=20)

    assert run.status is RunStatus.FAILED
    assert run.attempt_count == 1
    assert [(a.number, a.status) for a in run.attempts] == [(1, "FAILED")]
    assert run.error is not None
    assert run.error.type == "AbortTaskRunError"
    assert run.error.message == "no point retrying this"


@pytest.mark.usefixtures("worker_for_outcomes")
def test_complete_task_with_output_completes_the_run() -> None:
    handle = tasks.trigger("completes-early", [1, 2])

    assert handle.result(timeout=20) == {"early": [1, 2]}
    run = runs.retrieve(handle.id)
    assert run.status is RunStatus.COMPLETED
    assert [(a.number, a.status) for a in run.attempts] == [(1, "COMPLETED")]


@pytest.mark.usefixtures("worker_for_outcomes")
def test_a_non_serialisable_output_fails_naming_the_task_and_the_type() -> None:
    run = runs.poll(tasks.trigger("bad-output", None), timeout=20)

    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert "'bad-output'" in run.error.message
    assert "type dict" in run.error.message
    assert "Opaque" in run.error.message
    assert "not JSON serialisable" in run.error.message
    assert run.output is None


@pytest.mark.usefixtures("worker_for_outcomes")
def test_schema_task_rejects_an_invalid_payload_at_trigger_and_creates_nothing() -> None:
    class Order(pydantic.BaseModel):
        id: int

    # schema_task's signature types `schema` as Callable[[Any], Any], which a pydantic
    # model class (keyword-only __init__) does not satisfy, and returns Any.
    @schema_task(id="order", schema=Order)  # type: ignore[arg-type, untyped-decorator]
    async def order(order: Order) -> None:  # the worker's own definition runs
        raise AssertionError("never runs in the test process")

    with pytest.raises(pydantic.ValidationError):
        order.trigger({"id": "not a number"})
    with pytest.raises(pydantic.ValidationError):
        order.trigger({})
    assert runs.list(task="order") == []

    handle = order.trigger({"id": 7})
    assert handle.result(timeout=20) == {"id": 7, "type": "Order", "attempt": 1}
    assert [r.id for r in runs.list()] == [handle.id]


@pytest.mark.usefixtures("worker_for_outcomes")
def test_schema_task_fails_without_retry_when_the_worker_cannot_parse_the_payload() -> None:
    # tasks.trigger by id does not apply the schema (as in Trigger.dev); the worker does,
    # before every attempt, and a payload it rejects is not worth retrying.
    run = runs.poll(tasks.trigger("order", {"id": "not a number"}), timeout=20)

    assert run.status is RunStatus.FAILED
    assert run.attempt_count == 1
    assert [(a.number, a.status) for a in run.attempts] == [(1, "FAILED")]
    assert run.error is not None
    assert run.error.code == "TASK_PAYLOAD_PARSE_ERROR"
    assert run.error.type == "ValidationError"
