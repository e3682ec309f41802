"""`on_complete`: after the run succeeded or failed for good; `result.ok` tells which."""

from taskloom import Retry, logger, task


async def on_complete(payload, result, ctx):
    if result.ok:
        logger.info("Run succeeded", data=result.data)
    else:
        logger.info("Run failed", error=str(result.error))


async def run(payload, ctx):
    if payload.get("fail"):
        raise ValueError(f"asked to fail (attempt {ctx.attempt.number})")
    return {"sum": sum(payload["numbers"])}


task_with_on_complete = task(
    id="task-with-on-complete",
    on_complete=on_complete,
    retry=Retry(max_attempts=2, min_timeout_ms=100, randomize=False),
    run=run,
)
