"""`catch_error`: decide per error whether and when a failed attempt is retried.

Return None for the default (retry with the task's backoff, the global catch_error
hooks being asked next), or a dict: {"skip_retrying": True}, {"retry_at": datetime},
{"retry_delay_ms": 5000}, {"retry": Retry(...)}, and/or {"error": replacement}.
A dict with no retry key fails the run.
"""

from taskloom import Retry, task


class RateLimitError(Exception):
    def __init__(self, retry_after_ms):
        super().__init__(f"rate limited, retry after {retry_after_ms} ms")
        self.retry_after_ms = retry_after_ms


async def catch_error(payload, error, ctx, retry_delay_ms):
    if isinstance(error, RateLimitError):
        return {"retry_delay_ms": error.retry_after_ms}
    if isinstance(error, ValueError):
        return {"skip_retrying": True, "error": ValueError(f"invalid input: {error}")}
    return None  # default handling


async def run(payload, ctx):
    if ctx.attempt.number < payload.get("rate_limited_until_attempt", 0):
        raise RateLimitError(payload.get("retry_after_ms", 300))
    if "invalid" in payload:
        raise ValueError(payload["invalid"])
    if ctx.attempt.number < payload.get("flaky_until_attempt", 0):
        raise ConnectionError(f"flaky on attempt {ctx.attempt.number}")
    return {"attempt": ctx.attempt.number}


task_with_catch_error = task(
    id="task-with-catch-error",
    catch_error=catch_error,
    retry=Retry(max_attempts=3, min_timeout_ms=100, factor=1, randomize=False),
    run=run,
)
