"""Tasks the demo triggers: a greeting, a flaky call that succeeds on retry, a sync task
that fails for good, one that reports progress with logs and spans, and one that waits
for a child run and a timer without holding a worker slot."""

import asyncio
import time

from taskloom import AbortTaskRunError, Context, logger, task, wait


@task(id="hello-world", description="Greets, and shows what a run knows about itself")
async def hello_world(payload: dict, ctx: Context) -> dict:
    logger.info("Hello!", name=payload.get("name", "world"), attempt=ctx.attempt.number)
    return {"greeting": f"Hello, {payload.get('name', 'world')}!", "run": ctx.run.id}


@task(id="flaky-api", retry={"max_attempts": 4, "min_timeout_ms": 300, "randomize": False})
async def flaky_api(payload: dict, ctx: Context) -> dict:
    if ctx.attempt.number < payload.get("succeed_on_attempt", 3):
        raise ConnectionError(f"upstream unavailable (attempt {ctx.attempt.number})")
    return {"status": "ok", "attempts_needed": ctx.attempt.number}


@task(id="charge-card")
def charge_card(payload: dict) -> dict:
    """A sync task (runs in a thread): an invalid card is not worth retrying."""
    if not str(payload.get("card", "")).startswith("4"):
        raise AbortTaskRunError(f"card {payload.get('card')!r} was declined")
    time.sleep(0.1)
    return {"charged": payload.get("amount", 0)}


@task(id="build-report")
async def build_report(payload: dict) -> dict:
    rows = 0
    for section in ("users", "orders", "refunds"):
        with logger.trace(f"load {section}", section=section) as span:
            await asyncio.sleep(0.2)
            rows += 100
            span.set_attribute("rows", 100)
        print(f"loaded {section}")
    return {"rows": rows}


@task(id="publish-report", description="Waits for a child run and a timer without a slot")
async def publish_report(payload: dict, ctx: Context) -> dict:
    report = await build_report.trigger_and_wait({})  # a child run; this run is WAITING
    logger.info("report built", rows=report.unwrap()["rows"])
    await wait.for_(seconds=6)  # over 5 s: WAITING, holding no concurrency slot
    return {"published": True, "rows": report.output["rows"], "child": report.id}
