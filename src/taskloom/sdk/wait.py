"""`wait`: durable waits that free the run's concurrency slot.

A wait of 5 seconds or less is an in-process sleep. A longer wait, a token wait and every
child-run wait make the run WAITING: it holds no concurrency slot, its coroutine stays
parked in its executor, and when the wait completes the run re-enters its queue (at its
original place) and continues where it stopped. If its worker stops or dies meanwhile,
the run continues on another worker by replay: its function runs again from the top and
each wait or child call that already completed returns its recorded result at once, so
code between waits may run again (keep it idempotent, or put it in a child task).

Inside a run these are steps of the run (`taskloom.runtime.wait`); tokens are created,
completed and retrieved outside a run through the client.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from ..errors import InvalidOptionError
from ..runtime import wait as runtime_wait
from ..runtime.steps import current_attempt, run_with_reserved_step
from .client import TokenDetails, current_client
from .results import Token, WaitTokenResult


def _token_id(token: Token | str) -> str:
    return token.id if isinstance(token, Token) else token


class Wait:
    """The `wait` namespace (async functions: only async tasks can wait)."""

    async def for_(
        self,
        *,
        seconds: float = 0,
        minutes: float = 0,
        hours: float = 0,
        days: float = 0,
        weeks: float = 0,
    ) -> None:
        """Wait for a duration: `await wait.for_(minutes=10)`."""
        total = seconds + 60 * minutes + 3600 * hours + 86400 * days + 604800 * weeks
        if not math.isfinite(total) or total < 0:
            raise InvalidOptionError(f"wait.for_ needs a duration of 0 or more, got {total!r} s")
        await runtime_wait.sleep(total, "wait.for_")

    async def until(self, date: datetime) -> None:
        """Wait until a moment (an aware datetime; naive means UTC)."""
        if not isinstance(date, datetime):
            raise InvalidOptionError(f"wait.until needs a datetime, got {date!r}")
        when = date if date.tzinfo is not None else date.replace(tzinfo=UTC)
        seconds = max(0.0, (when - datetime.now(tz=UTC)).total_seconds())
        await runtime_wait.sleep(seconds, "wait.until")

    def create_token(
        self,
        *,
        timeout: str | float | timedelta | datetime | None = None,
        idempotency_key: str | None = None,
        idempotency_key_ttl: str | float | None = None,
        tags: list[str] | str | None = None,
    ) -> Token:
        """A token a run can wait for and anything can complete (`complete_token`).

        `timeout` ("10m", seconds, timedelta or datetime): the wait then ends with
        `ok=False` and a WaitpointTimeoutError. Inside a run the token is recorded, so a
        replay gets the same one.
        """
        runtime = current_attempt.get()
        if runtime is not None:
            return runtime_wait.create_token_in_run(
                runtime,
                timeout=timeout,
                idempotency_key=idempotency_key,
                idempotency_key_ttl=idempotency_key_ttl,
                tags=tags,
            )
        options = runtime_wait.token_options(
            timeout=timeout,
            idempotency_key=idempotency_key,
            idempotency_key_ttl=idempotency_key_ttl,
            tags=tags,
        )
        return current_client().token_create(options)

    async def for_token(self, token: Token | str) -> WaitTokenResult:
        """Wait (without holding a slot) until the token is completed or times out."""
        return await runtime_wait.for_token(token, "wait.for_token")

    def complete_token(self, token: Token | str, data: Any = None) -> bool:
        """Complete a token with `data` (JSON). The first completion wins: later ones (and
        completing a timed-out token) return False. Unknown ids raise an error."""
        return current_client().token_complete(_token_id(token), data)

    def retrieve_token(self, token: Token | str) -> TokenDetails:
        """A token as it is now: `status` ("WAITING", "COMPLETED" or "TIMED_OUT"), the
        `output` it was completed with or the timeout `error`, and when each happened."""
        return current_client().token_retrieve(_token_id(token))

    async def acomplete_token(self, token: Token | str, data: Any = None) -> bool:
        """Async twin of `complete_token`."""
        return await asyncio.to_thread(self.complete_token, token, data)

    async def acreate_token(self, **options: Any) -> Token:
        """Async twin of `create_token`."""
        return await run_with_reserved_step(lambda: self.create_token(**options))

    async def aretrieve_token(self, token: Token | str) -> TokenDetails:
        """Async twin of `retrieve_token`."""
        return await asyncio.to_thread(self.retrieve_token, token)


wait = Wait()
