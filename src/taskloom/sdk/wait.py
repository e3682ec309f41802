"""`wait`: durable waits that free the run's concurrency slot.

A wait of 5 seconds or less is an in-process sleep. A longer wait, a token wait and every
child-run wait make the run WAITING: it holds no concurrency slot, its coroutine stays
parked in its executor, and when the wait completes the run re-enters its queue (at its
original place) and continues where it stopped. If its worker stops or dies meanwhile,
the run continues on another worker by replay: its function runs again from the top and
each wait or child call that already completed returns its recorded result at once, so
code between waits may run again (keep it idempotent, or put it in a child task).
"""

from __future__ import annotations

import asyncio
import math
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from ..clock import now_ms
from ..durations import parse_duration, parse_instant
from ..engine.records import NewWaitpoint
from ..errors import InvalidOptionError, WaitpointTimeoutError
from ..ids import new_id
from ..runtime.attempt import WaitInfo, attempt_runtime, current_attempt, run_with_reserved_step
from ..types import ms_to_datetime
from .client import current_engine
from .results import Token, WaitTokenResult

IN_PROCESS_LIMIT_SECONDS = 5.0
MAX_TOKEN_TAGS = 10


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
        await self._sleep(total, "wait.for_")

    async def until(self, date: datetime) -> None:
        """Wait until a moment (an aware datetime; naive means UTC)."""
        if not isinstance(date, datetime):
            raise InvalidOptionError(f"wait.until needs a datetime, got {date!r}")
        when = date if date.tzinfo is not None else date.replace(tzinfo=UTC)
        await self._sleep(max(0.0, (when - datetime.now(tz=UTC)).total_seconds()), "wait.until")

    async def _sleep(self, seconds: float, what: str) -> None:
        runtime = attempt_runtime(what)
        runtime.require_async(what)
        ref = runtime.next_ref()
        recorded = runtime.replayed(ref, "duration")
        if recorded is None and seconds <= IN_PROCESS_LIMIT_SECONDS:
            await asyncio.sleep(seconds)  # short: keep the slot
            return
        resume_at = now_ms() + round(seconds * 1000)
        if recorded is None:
            waitpoint = NewWaitpoint(new_id("waitpoint"), "DURATION", resume_at=resume_at)
            recorded = await asyncio.to_thread(
                current_engine().register_wait, ref, "duration", waitpoint=waitpoint
            )
        info = WaitInfo("duration", ref.seq, date=ms_to_datetime(resume_at))
        await runtime.wait_for(recorded, info)

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
        ref = None
        if runtime is not None:
            ref = runtime.next_ref()
            recorded = runtime.replayed(ref, "token-create")
            if recorded is not None and recorded.result is not None:
                return Token(orjson.loads(recorded.result)["id"], is_cached=True)
        now = now_ms()
        resume_at = (
            None if timeout is None else parse_instant(timeout, now_ms=now, what="token timeout")
        )
        tag_list = [tags] if isinstance(tags, str) else list(tags or [])
        if len(tag_list) > MAX_TOKEN_TAGS or not all(
            isinstance(t, str) and 0 < len(t) <= 128 for t in tag_list
        ):
            raise InvalidOptionError(
                f"token tags must be at most {MAX_TOKEN_TAGS} strings of 1 to 128 characters, "
                f"got {tags!r}"
            )
        key_expires = None
        if idempotency_key is not None:
            ttl = (
                30 * 86400
                if idempotency_key_ttl is None
                else parse_duration(idempotency_key_ttl, what="token idempotency_key_ttl")
            )
            key_expires = now + round(ttl * 1000)
        engine = current_engine()
        record = engine.create_token(
            NewWaitpoint(
                new_id("waitpoint"),
                "TOKEN",
                resume_at=resume_at,
                idempotency_key=idempotency_key,
                idempotency_expires_at=key_expires,
                tags=orjson.dumps(tag_list) if tag_list else None,
            )
        )
        if ref is not None:
            recorded = engine.register_wait(
                ref, "token-create", result=orjson.dumps({"id": record.id})
            )
            first = orjson.loads(recorded.result or b"{}").get("id")
            if first and first != record.id:  # recorded by an earlier run of this step
                return Token(first, _token_url(first), is_cached=True)
        return Token(record.id, _token_url(record.id), is_cached=record.created_at < now)

    async def for_token(self, token: Token | str) -> WaitTokenResult:
        """Wait (without holding a slot) until the token is completed or times out."""
        runtime = attempt_runtime("wait.for_token")
        runtime.require_async("wait.for_token")
        token_id = token.id if isinstance(token, Token) else token
        if not isinstance(token_id, str) or not token_id:
            raise InvalidOptionError(f"wait.for_token needs a token or its id, got {token!r}")
        ref = runtime.next_ref()
        recorded = runtime.replayed(ref, "token")
        if recorded is None:
            engine = current_engine()
            await asyncio.to_thread(engine.waitpoint, token_id)  # a clear error if unknown
            recorded = await asyncio.to_thread(
                engine.register_wait, ref, "token", waitpoint_id=token_id
            )
        info = WaitInfo("token", ref.seq, token=token_id)
        data = orjson.loads(await runtime.wait_for(recorded, info))
        if data.get("ok"):
            return WaitTokenResult(True, data.get("output"))
        message = (data.get("error") or {}).get("message", f"token {token_id} timed out")
        return WaitTokenResult(False, error=WaitpointTimeoutError(message))

    def complete_token(self, token: Token | str, data: Any = None) -> bool:
        """Complete a token with `data` (JSON). The first completion wins: later ones (and
        completing a timed-out token) return False. Unknown ids raise an error."""
        token_id = token.id if isinstance(token, Token) else token
        try:
            output = orjson.dumps(data)
        except TypeError as error:
            raise InvalidOptionError(
                f"the data completing token {token_id} is not JSON serialisable: {error}"
            ) from None
        return current_engine().complete_token(token_id, output)

    async def acomplete_token(self, token: Token | str, data: Any = None) -> bool:
        """Async twin of `complete_token`."""
        return await asyncio.to_thread(self.complete_token, token, data)

    async def acreate_token(self, **options: Any) -> Token:
        """Async twin of `create_token`."""
        return await run_with_reserved_step(lambda: self.create_token(**options))


def _token_url(token_id: str) -> str | None:
    base = os.environ.get("TASKLOOM_API_URL")
    if not base:
        return None
    return f"{base.rstrip('/')}/api/v1/waitpoints/tokens/{token_id}/complete"


wait = Wait()
