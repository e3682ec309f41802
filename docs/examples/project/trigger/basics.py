"""The tasks of docs/tasks.md: both ways to define a task, retries, and early endings."""

from __future__ import annotations

import asyncio
from typing import Any

from taskloom import (
    AbortTaskRunError,
    CompleteTaskWithOutput,
    Context,
    Retry,
    logger,
    schema_task,
    task,
)


# An async task that takes the run's context.
@task(id="hello-world", description="Greets someone and says where it ran")
async def hello_world(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    await asyncio.sleep(0.01)  # async tasks share their executor's event loop
    logger.info("Saying hello", name=payload["name"])
    return {
        "greeting": f"Hello, {payload['name']}!",
        "attempt": ctx.attempt.number,
        "machine": ctx.machine.name,
    }


# A plain function, defined with the call form: it runs in a thread of the executor.
def shout(text: str) -> str:
    return text.upper() + "!"


shout_task = task(id="shout", run=shout, machine="micro")


# Fails twice, then succeeds: the retry policy decides when each new attempt starts.
@task(
    id="flaky",
    retry=Retry(max_attempts=4, factor=2, min_timeout_ms=100, max_timeout_ms=1000, randomize=False),
)
def flaky(payload: dict[str, Any], ctx: Context) -> dict[str, int]:
    if ctx.attempt.number < payload["succeed_on"]:
        raise ConnectionError(f"upstream unavailable on attempt {ctx.attempt.number}")
    return {"attempts": ctx.attempt.number}


# Two ways to end a run early: fail it without retrying, or complete it with an output.
@task(id="check-age")
def check_age(payload: dict[str, Any]) -> str:
    age = payload["age"]
    if age < 0:
        raise AbortTaskRunError(f"impossible age {age}")  # FAILED at once, no retry
    if age >= 18:
        raise CompleteTaskWithOutput("adult")  # COMPLETED with output "adult"
    return "minor"


# A schema task with a plain callable as its schema: it validates (and may convert) the
# payload at trigger() and again before each attempt; `run` receives what it returns.
def cents(data: Any) -> int:
    if not isinstance(data, dict) or not isinstance(data.get("cents"), int) or data["cents"] <= 0:
        raise ValueError(f'expected {{"cents": <positive integer>}}, got {data!r}')
    return int(data["cents"])


@schema_task(id="charge", schema=cents)
def charge(amount: int) -> dict[str, str]:
    return {"charged": f"{amount / 100:.2f} EUR"}
