"""Waits inside a run, and waitpoint tokens: the durable steps behind the sdk's `wait`.

A wait of 5 seconds or less is an in-process sleep. A longer wait, a token wait and every
child-run wait make the run WAITING: it holds no concurrency slot, its coroutine stays
parked in its executor, and when the wait completes the run re-enters its queue (at its
original place) and continues where it stopped. Each wait is a step of the run (see
`attempt`), recorded through the attempt's engine, so a replay returns its result at once.

Tokens can be created anywhere: inside a run the creation is a step too (a replay gets
the same token); outside a run the sdk's client creates them (`create_token` below is
what the local client does).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from ..clock import now_ms
from ..durations import parse_duration, parse_instant
from ..engine.engine import Engine
from ..engine.records import NewWaitpoint
from ..errors import InvalidOptionError, WaitpointTimeoutError
from ..ids import new_id
from ..types import ms_to_datetime
from .results import Token, WaitTokenResult
from .steps import AttemptRuntime, WaitInfo, attempt_runtime

IN_PROCESS_LIMIT_SECONDS = 5.0
MAX_TOKEN_TAGS = 10
DEFAULT_TOKEN_KEY_TTL_SECONDS = 30 * 86400

Timeout = str | float | timedelta | datetime


@dataclass(frozen=True, slots=True)
class TokenOptions:
    """A token to create, its options checked and resolved to moments (ms since epoch).

    `timeout_at`: when a wait for it ends with a timeout (None: never).
    `idempotency_key` (global, kept until `idempotency_key_expires_at`): creating a token
    with the same key again returns the first one. `tags`: at most 10.
    """

    timeout_at: int | None = None
    idempotency_key: str | None = None
    idempotency_key_expires_at: int | None = None
    tags: tuple[str, ...] = ()


def token_options(
    *,
    timeout: Timeout | None = None,
    idempotency_key: str | None = None,
    idempotency_key_ttl: str | float | None = None,
    tags: list[str] | str | None = None,
) -> TokenOptions:
    """`wait.create_token`'s options, checked (InvalidOptionError says what is wrong)."""
    now = now_ms()
    timeout_at = (
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
            DEFAULT_TOKEN_KEY_TTL_SECONDS
            if idempotency_key_ttl is None
            else parse_duration(idempotency_key_ttl, what="token idempotency_key_ttl")
        )
        key_expires = now + round(ttl * 1000)
    return TokenOptions(timeout_at, idempotency_key, key_expires, tuple(tag_list))


def token_url(token_id: str) -> str | None:
    """Where a server completes the token over HTTP (only when `TASKLOOM_API_URL` is set)."""
    base = os.environ.get("TASKLOOM_API_URL")
    if not base:
        return None
    return f"{base.rstrip('/')}/api/v1/waitpoints/tokens/{token_id}/complete"


def create_token(engine: Engine, options: TokenOptions) -> Token:
    """Create a token (or find the one holding its idempotency key: `is_cached`)."""
    now = engine.clock.now_ms()  # the clock the engine stamps `created_at` with
    record = engine.waits.create_token(
        NewWaitpoint(
            new_id("waitpoint"),
            "TOKEN",
            resume_at=options.timeout_at,
            idempotency_key=options.idempotency_key,
            idempotency_expires_at=options.idempotency_key_expires_at,
            tags=orjson.dumps(list(options.tags)) if options.tags else None,
        )
    )
    return Token(record.id, token_url(record.id), is_cached=record.created_at < now)


def create_token_in_run(
    runtime: AttemptRuntime,
    *,
    timeout: Timeout | None = None,
    idempotency_key: str | None = None,
    idempotency_key_ttl: str | float | None = None,
    tags: list[str] | str | None = None,
) -> Token:
    """Create a token as a step of the run: a replay gets the token made the first time."""
    ref = runtime.next_ref()
    recorded = runtime.replayed(ref, "token-create")
    if recorded is not None and recorded.result is not None:
        return Token(orjson.loads(recorded.result)["id"], is_cached=True)
    options = token_options(
        timeout=timeout,
        idempotency_key=idempotency_key,
        idempotency_key_ttl=idempotency_key_ttl,
        tags=tags,
    )
    token = create_token(runtime.engine, options)
    recorded = runtime.engine.waits.register(
        ref, "token-create", result=orjson.dumps({"id": token.id})
    )
    first = orjson.loads(recorded.result or b"{}").get("id")
    if first and first != token.id:  # recorded by an earlier run of this step
        return Token(first, token_url(first), is_cached=True)
    return token


def token_output(token_id: str, data: Any) -> bytes:
    """The JSON completing a token, or InvalidOptionError when `data` is not JSON."""
    try:
        return orjson.dumps(data)
    except TypeError as error:
        raise InvalidOptionError(
            f"the data completing token {token_id} is not JSON serialisable: {error}"
        ) from None


async def sleep(seconds: float, what: str) -> None:
    """Wait `seconds` inside an async run: in process when short, else a DURATION waitpoint."""
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
            runtime.engine.waits.register, ref, "duration", waitpoint=waitpoint
        )
    info = WaitInfo("duration", ref.seq, date=ms_to_datetime(resume_at))
    await runtime.wait_for(recorded, info)


async def for_token(token: Token | str, what: str) -> WaitTokenResult:
    """Wait (without holding a slot) until a token is completed or times out."""
    runtime = attempt_runtime(what)
    runtime.require_async(what)
    token_id = token.id if isinstance(token, Token) else token
    if not isinstance(token_id, str) or not token_id:
        raise InvalidOptionError(f"{what} needs a token or its id, got {token!r}")
    ref = runtime.next_ref()
    recorded = runtime.replayed(ref, "token")
    if recorded is None:
        engine = runtime.engine
        await asyncio.to_thread(engine.waits.get, token_id)  # a clear error if unknown
        recorded = await asyncio.to_thread(
            engine.waits.register, ref, "token", waitpoint_id=token_id
        )
    info = WaitInfo("token", ref.seq, token=token_id)
    data = orjson.loads(await runtime.wait_for(recorded, info))
    if data.get("ok"):
        return WaitTokenResult(True, data.get("output"))
    message = (data.get("error") or {}).get("message", f"token {token_id} timed out")
    return WaitTokenResult(False, error=WaitpointTimeoutError(message))
