"""The tasks of docs/workers.md: a task whose first attempt kills its own process, and a
blocking one to show concurrency."""

from __future__ import annotations

import os
import time

from taskloom import Context, task


@task(id="crash-once", retry={"max_attempts": 3, "min_timeout_ms": 100, "randomize": False})
def crash_once(payload: None, ctx: Context) -> dict[str, int]:
    if ctx.attempt.number == 1:
        os._exit(1)  # the executor process dies in the middle of the attempt
    return {"attempt": ctx.attempt.number}


@task(id="nap")
def nap(seconds: float) -> int:
    time.sleep(seconds)  # blocks its thread only: other attempts keep running
    return os.getpid()
