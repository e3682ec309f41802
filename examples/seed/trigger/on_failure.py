"""`on_failure`: once the run has failed for good, after its last retry."""

from taskloom import Retry, logger, task


async def on_failure(payload, error, ctx):
    logger.info("Run failed for good", attempt=ctx.attempt.number, error=str(error))


async def run(payload, ctx):
    raise RuntimeError(f"attempt {ctx.attempt.number} failed")


task_with_on_failure = task(
    id="task-with-on-failure",
    on_failure=on_failure,
    retry=Retry(max_attempts=3, min_timeout_ms=100, factor=1, randomize=False),
    run=run,
)
