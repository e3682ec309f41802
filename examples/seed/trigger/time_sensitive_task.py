"""A task whose runs expire if they are not dequeued within 10 minutes."""

from taskloom import task


async def run(payload, ctx):
    return {"run": ctx.run.id}


time_sensitive_task = task(
    id="time-sensitive-task",
    ttl="10m",  # Also accepts a number of seconds, e.g. 600
    run=run,
)
