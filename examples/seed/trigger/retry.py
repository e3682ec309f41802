"""A task with its own retry options: up to 10 attempts, 500 ms, 900 ms, 1620 ms apart..."""

from taskloom import Retry, logger, task


async def run(payload, ctx):
    # Fails until the attempt the payload names, to show the backoff.
    if ctx.attempt.number < payload.get("succeed_on_attempt", 1):
        raise ConnectionError(f"upstream unavailable on attempt {ctx.attempt.number}")
    logger.info("Succeeded", attempt=ctx.attempt.number)
    return {"attempts": ctx.attempt.number}


task_with_retries = task(
    id="task-with-retries",
    retry=Retry(
        max_attempts=10,
        factor=1.8,
        min_timeout_ms=500,
        max_timeout_ms=30_000,
        randomize=False,
    ),
    run=run,
)
