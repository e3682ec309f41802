"""Per-task middleware: runs after the global middleware and before run."""

from taskloom import locals, logger, task

my_local = locals.create("myLocal")


async def middleware(payload, ctx, next):
    locals.set(my_local, "some-value")
    await next()


async def run(payload):
    value = locals.get_or_throw(my_local)
    logger.info("Read myLocal", value=value)
    return value


my_task = task(id="my-task", middleware=middleware, run=run)
