"""A task whose attempts may use at most 300 seconds of compute."""

from taskloom import task


async def run(payload, ctx):
    return {"max_duration": ctx.run.max_duration}


long_task = task(
    id="long-task",
    max_duration=300,  # 300 seconds or 5 minutes
    run=run,
)
