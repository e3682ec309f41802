"""Global lifecycle hooks, for every run of every task in this project.

taskloom imports ``init.py`` at the root of a task directory before any other module
there (Trigger.dev's ``init.ts``), so hooks registered here always apply. Each hook
takes only the keyword arguments it names. Global hooks run before a task's own;
``catch_error`` is the exception: the task's is asked first.

The names ("log-start-attempt", ...) are optional: registering a name again replaces
the earlier hook instead of adding a second one.
"""

from taskloom import logger, tasks


@tasks.on_start_attempt("log-start-attempt")
def log_start_attempt(ctx, payload, task):
    logger.info(
        f"Run {ctx.run.id} started on task {task} attempt {ctx.run.attempt.number}",
        payload=payload,
    )


@tasks.on_success("log-success")
def log_success(ctx, payload, output):
    logger.info("Task succeeded", task=ctx.task.id, output=output)


@tasks.on_failure("log-failure")
def log_failure(ctx, payload, error):
    # Only once the run has no retry left; never for CANCELED or CRASHED runs.
    logger.info("Task failed", task=ctx.task.id, error=str(error))


@tasks.on_complete("log-complete")
def log_complete(ctx, payload, result):
    logger.info("Task completed", task=ctx.task.id, ok=result.ok)


@tasks.on_wait("log-wait")
def log_wait(ctx, payload, wait, task):
    logger.info("Run paused", run=ctx.run.id, wait=wait.type)


@tasks.on_resume("log-resume")
def log_resume(ctx, payload, wait, task):
    logger.info("Run resumed", run=ctx.run.id, wait=wait.type)


@tasks.on_cancel("log-cancel")
def log_cancel(ctx, signal):
    logger.info("Run cancelled", run=ctx.run.id, reason=signal.reason)


@tasks.catch_error("log-error")
def log_error(ctx, error, retry_delay_ms):
    # Asked after the task's own catch_error (if any) returned None. Returning None
    # keeps the default handling: retry after `retry_delay_ms`, or fail when none is left.
    logger.info("Caught error", task=ctx.task.id, error=str(error), retry_delay_ms=retry_delay_ms)
