"""`on_start_attempt` runs before every attempt; check the attempt number for the first.

Both tasks fail their first attempt (when the payload asks) so the retry shows the
hook running again.
"""

from taskloom import Retry, logger, task

RETRY_ONCE = Retry(max_attempts=2, min_timeout_ms=100, randomize=False)


async def run(payload, ctx):
    if ctx.attempt.number < payload.get("succeed_on_attempt", 1):
        raise RuntimeError(f"attempt {ctx.attempt.number} failed")
    return {"attempt": ctx.attempt.number}


async def log_every_attempt(payload, ctx):
    logger.info("Attempt starting", attempt=ctx.run.attempt.number, payload=payload)


task_with_on_start_attempt = task(
    id="task-with-on-start-attempt",
    on_start_attempt=log_every_attempt,
    retry=RETRY_ONCE,
    run=run,
)


async def log_first_attempt(payload, ctx):
    if ctx.run.attempt.number == 1:
        logger.info("Run started on attempt 1", run=ctx.run.id)


task_with_on_start_first_attempt = task(
    id="task-with-on-start-attempt-first",
    on_start_attempt=log_first_attempt,
    retry=RETRY_ONCE,
    run=run,
)
