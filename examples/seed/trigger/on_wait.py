"""`on_wait` / `on_resume`: called when the run pauses for a wait and when it continues.

`wait.type` is "duration", "task", "batch" or "token". (A wait of 5 seconds or less
sleeps in place, without pausing the run, and calls neither.)
"""

from taskloom import logger, task, wait


async def on_wait(wait):
    logger.info("Run paused", wait=wait.type)


async def on_resume(wait):
    logger.info("Run resumed", wait=wait.type)


async def run(payload, ctx):
    logger.info("Run started", run=ctx.run.id)

    await wait.for_(seconds=payload.get("seconds", 10))

    logger.info("Run finished", run=ctx.run.id)


task_with_on_wait = task(
    id="task-with-on-wait",
    on_wait=on_wait,
    on_resume=on_resume,
    run=run,
)
