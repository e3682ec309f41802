"""A queue with a concurrency limit of 1: its runs execute one at a time."""

import asyncio

from taskloom import task


async def run(payload, ctx):
    await asyncio.sleep(payload.get("seconds", 0.1))
    return {"run": ctx.run.id}


one_at_a_time = task(
    id="one-at-a-time",
    queue={"concurrency_limit": 1},
    run=run,
)
