"""`on_success`: after a successful run (its errors are recorded on the run and ignored)."""

from taskloom import logger, task


async def on_success(payload, output, ctx):
    logger.info("Run succeeded", run=ctx.run.id, output=output)


async def run(payload, ctx):
    return {"greeting": f"Hello, {payload['name']}!"}


task_with_on_success = task(id="task-with-on-success", on_success=on_success, run=run)
