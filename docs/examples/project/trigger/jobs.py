"""The task of docs/runs.md: a job of many small steps, to watch, cancel and replay."""

from __future__ import annotations

import asyncio
from typing import Any

from taskloom import Context, logger, task


@task(id="long-job")
async def long_job(payload: dict[str, Any], ctx: Context) -> dict[str, Any]:
    for step in range(payload["steps"]):
        await asyncio.sleep(0.05)  # cancelling the run cancels this await
        if step % 20 == 0:
            logger.info("progress", step=step, of=payload["steps"])
    return {"steps": payload["steps"], "replay": ctx.run.is_replay}
