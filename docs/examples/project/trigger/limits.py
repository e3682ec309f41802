"""The tasks of docs/queues.md: a queue that runs one run at a time, and one limited per
customer (with a cap over all customers)."""

from __future__ import annotations

import asyncio
import time

from taskloom import queue, task

one_at_a_time = queue(name="one-at-a-time", concurrency_limit=1)
per_customer = queue(name="per-customer", concurrency_limit=1, total_concurrency_limit=2)


@task(id="render-video", queue=one_at_a_time)
async def render_video(payload: dict[str, str]) -> list[float]:
    began = time.time()
    await asyncio.sleep(0.3)
    return [began, time.time()]


@task(id="sync-account", queue=per_customer)
async def sync_account(payload: dict[str, str]) -> list[float]:
    began = time.time()
    await asyncio.sleep(0.5)
    return [began, time.time()]
