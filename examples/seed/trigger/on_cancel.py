"""`on_cancel`: called when a run is cancelled while it executes.

`ctx.signal` fires at once; run keeps going while the on_cancel hooks run (up to
`cancel_grace_seconds`, 30 s by default), so a hook can `await run_promise` for the
run's output (or its error). Then the attempt is stopped and the run ends CANCELED.
"""

import asyncio
import contextlib

from taskloom import logger, task


async def run(payload, ctx):
    logger.info("Waiting 10 seconds, or until the run is cancelled")
    # The signal ends the wait early when the task is cancelled 👇
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(ctx.signal.wait(), timeout=10)

    # Do some more work here

    return {
        "message": "Hello, world!",
    }


async def on_cancel(run_promise):
    # You can await the run_promise to get the output of the task
    output = await run_promise
    logger.info("Run output after cancel", output=output)


cancel_example_task = task(id="cancel-example", run=run, on_cancel=on_cancel)
