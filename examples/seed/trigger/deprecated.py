"""The deprecated hooks: `on_start`, `init` and `cleanup` still work.

Each warns once per task (DeprecationWarning) when the task is defined. Use
`on_start_attempt` (checking `ctx.attempt.number == 1`) instead of `on_start`, and
middleware with `locals` instead of `init` and `cleanup`.
"""

from taskloom import logger, task, tasks


# A global on_start: once per run, before its first attempt (deprecated).
@tasks.on_start("log-start")
def log_start(ctx, payload, task):
    logger.info(f"Run {ctx.run.id} started on task {task}")


async def run(payload, ctx):
    logger.info("Running", attempt=ctx.attempt.number, init=ctx.init)
    if ctx.attempt.number < payload.get("succeed_on_attempt", 1):
        raise RuntimeError(f"attempt {ctx.attempt.number} failed")
    return {"attempt": ctx.attempt.number}


RETRY_ONCE = {"max_attempts": 2, "min_timeout_ms": 100, "randomize": False}


# on_start: called once per run, before the first attempt only.
async def on_start(payload, ctx):
    logger.info("on_start", attempt=ctx.attempt.number)


task_with_on_start = task(id="task-with-on-start", on_start=on_start, retry=RETRY_ONCE, run=run)


# init: called before every attempt.
async def init(payload, ctx):
    logger.info("init", attempt=ctx.attempt.number)


task_with_init = task(id="task-with-init", init=init, run=run)


# init can return data, given to run (`ctx.init`), cleanup, on_success and on_failure.
async def init_with_data(payload, ctx):
    return {"some_data": "someValue"}


async def run_with_init(payload, ctx):
    logger.info("init data", some_data=ctx.init["some_data"])  # "someValue"
    return ctx.init


async def on_success(init, output):
    logger.info("on_success", init=init)


task_with_init_return = task(
    id="task-with-init-return",
    init=init_with_data,
    on_success=on_success,
    run=run_with_init,
)


# cleanup: called after run on every attempt, whether it succeeded or not.
async def cleanup(payload, ctx):
    logger.info("cleanup", attempt=ctx.attempt.number)


task_with_cleanup = task(id="task-with-cleanup", cleanup=cleanup, retry=RETRY_ONCE, run=run)
