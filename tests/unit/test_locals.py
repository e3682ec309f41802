"""`locals`: values scoped to one attempt, shared by its middleware, hooks and run."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import orjson
import pytest

from taskloom import Retry, TaskloomError, locals, task
from taskloom.clock import now_ms
from taskloom.engine.records import ClaimedRun
from taskloom.runtime import registry
from taskloom.runtime.hooks import clear_global
from taskloom.runtime.locals import LocalKey
from taskloom.runtime.report import AttemptResult
from taskloom.worker.executor import Executor
from taskloom.worker.messages import Message, StartAttempt

Next = Callable[[], Awaitable[None]]


@pytest.fixture(autouse=True)
def _clean_registry() -> Iterator[None]:
    known = {t.id for t in registry.all_tasks()}
    clear_global()
    yield
    clear_global()
    for defined in registry.all_tasks():
        if defined.id not in known:
            registry.unregister(defined.id)


class Outbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    def send(self, message: Message) -> None:
        self.messages.append(message)


def start_message(task_id: str, run_id: str, payload: Any = None, attempt: int = 1) -> StartAttempt:
    """The start message the supervisor sends (see `Dispatcher._send_start`)."""
    created_at = now_ms()
    run = ClaimedRun(
        id=run_id,
        task_id=task_id,
        queue=f"task/{task_id}",
        attempt=attempt,
        payload=orjson.dumps(payload),
        max_attempts=3,
        retry=orjson.dumps(Retry(min_timeout_ms=10, randomize=False).to_json()),
        machine="small-1x",
        max_duration=None,
        tags=None,
        metadata=None,
        idempotency_key=None,
        parent_run_id=None,
        root_run_id=None,
        depth=0,
        is_test=False,
        replayed_from=None,
        created_at=created_at,
        concurrency_key=None,
        sort_key=created_at,
    )
    return StartAttempt(run, "DEVELOPMENT")


async def run_attempts(*starts: StartAttempt) -> list[AttemptResult]:
    """Start the attempts together on one executor; return their outcomes in order."""
    executor = Executor(None, Outbox())  # type: ignore[arg-type]
    try:
        for start in starts:
            executor._start(start)
        running = [executor.running[start.run.id].asyncio_task for start in starts]
        return await asyncio.wait_for(asyncio.gather(*running), 20)  # type: ignore[arg-type]
    finally:
        executor.threads.shutdown(wait=False, cancel_futures=True)


# --- keys -----------------------------------------------------------------------------


def test_create_makes_a_distinct_key_each_time() -> None:
    first = locals.create("db")
    second = locals.create("db")

    assert isinstance(first, LocalKey)
    assert first.name == "db"
    assert first != second
    assert repr(first) == "LocalKey('db')"


@pytest.mark.parametrize("name", ["", None, 3])
def test_create_needs_a_name(name: Any) -> None:
    with pytest.raises(TaskloomError, match=r"^locals\.create needs a non-empty name"):
        locals.create(name)


# --- outside a run --------------------------------------------------------------------


def test_outside_a_run_set_and_get_or_throw_raise_and_get_is_none() -> None:
    key = locals.create("db")

    with pytest.raises(
        TaskloomError,
        match=re.escape(
            "locals.set('db') was called outside a run: locals live for one attempt and are "
            "shared by its middleware, hooks and run function"
        ),
    ):
        locals.set(key, "value")
    with pytest.raises(TaskloomError, match=re.escape("locals.get_or_throw('db') was called")):
        locals.get_or_throw(key)
    assert locals.get(key) is None


# --- inside attempts ------------------------------------------------------------------


def test_middleware_hooks_and_run_share_the_attempt_locals() -> None:
    db = locals.create("db")
    seen: list[tuple[str, Any]] = []

    async def middleware(next: Next) -> None:
        assert locals.get(db) is None
        connection = locals.set(db, {"connected": True})
        seen.append(("middleware", dict(connection)))
        await next()
        seen.append(("middleware after", locals.get_or_throw(db)))

    def on_start_attempt() -> None:
        seen.append(("on_start_attempt", dict(locals.get_or_throw(db))))
        locals.get_or_throw(db)["hooks"] = 1

    def run(payload: Any) -> str:  # sync: runs in a thread, sees the same locals
        value = locals.get_or_throw(db)
        seen.append(("run", dict(value)))
        locals.set(db, {**value, "run": True})
        return "ok"

    async def on_complete() -> None:
        seen.append(("on_complete", dict(locals.get(db) or {})))

    task(
        id="shared",
        run=run,
        middleware=middleware,
        on_start_attempt=on_start_attempt,
        on_complete=on_complete,
    )

    [outcome] = asyncio.run(run_attempts(start_message("shared", "run_a")))

    assert outcome.ok is True
    assert seen == [
        ("middleware", {"connected": True}),
        ("on_start_attempt", {"connected": True}),
        ("run", {"connected": True, "hooks": 1}),
        ("on_complete", {"connected": True, "hooks": 1, "run": True}),
        ("middleware after", {"connected": True, "hooks": 1, "run": True}),
    ]


def test_get_or_throw_names_the_missing_local() -> None:
    missing = locals.create("tenant")

    async def run(payload: Any) -> None:
        locals.get_or_throw(missing)

    task(id="missing-local", run=run)

    [outcome] = asyncio.run(run_attempts(start_message("missing-local", "run_m")))

    assert outcome.ok is False
    assert outcome.error is not None
    assert outcome.error.type == "TaskloomError"
    assert outcome.error.message == (
        "local 'tenant' has not been set in this attempt; set it with locals.set(...) in a "
        "middleware or hook that runs before this code"
    )


def test_concurrent_attempts_on_one_executor_do_not_share_locals() -> None:
    user = locals.create("user")
    both_set = threading.Barrier(2, timeout=10)
    seen: dict[str, Any] = {}

    async def middleware(payload: Any, next: Next) -> None:
        locals.set(user, payload["user"])
        await next()

    async def run(payload: Any, ctx: Any) -> str:
        await asyncio.to_thread(both_set.wait)  # both attempts have set their local
        value = locals.get_or_throw(user)
        seen[ctx.run.id] = value
        return str(value)

    task(id="isolated", run=run, middleware=middleware)

    outcomes = asyncio.run(
        run_attempts(
            start_message("isolated", "run_ada", {"user": "ada"}),
            start_message("isolated", "run_bob", {"user": "bob"}),
        )
    )

    assert [bytes(o.output) for o in outcomes] == [b'"ada"', b'"bob"']
    assert seen == {"run_ada": "ada", "run_bob": "bob"}


def test_locals_do_not_survive_into_the_next_attempt() -> None:
    counter = locals.create("counter")
    seen: list[Any] = []

    async def run(payload: Any, ctx: Any) -> None:
        seen.append((ctx.attempt.number, locals.get(counter)))
        locals.set(counter, ctx.attempt.number)

    task(id="per-attempt", run=run)

    async def two_attempts() -> None:
        await run_attempts(start_message("per-attempt", "run_p", attempt=1))
        await run_attempts(start_message("per-attempt", "run_p", attempt=2))

    asyncio.run(two_attempts())

    assert seen == [(1, None), (2, None)]


def test_locals_set_in_a_thread_started_by_run_need_a_copied_context() -> None:
    """A thread that run starts itself sees the locals when it runs in a copy of the
    context (`asyncio.to_thread` does that)."""
    key = locals.create("k")

    async def run(payload: Any) -> Any:
        locals.set(key, "from run")
        return await asyncio.to_thread(locals.get, key)

    task(id="thread-local", run=run)

    [outcome] = asyncio.run(run_attempts(start_message("thread-local", "run_t")))

    assert bytes(outcome.output) == b'"from run"'


def test_dataclass_values_round_trip_unchanged() -> None:
    @dataclasses.dataclass
    class Connection:
        dsn: str

    key = locals.create("conn")
    connection = Connection("sqlite://")
    got: list[Any] = []

    async def middleware(next: Next) -> None:
        assert locals.set(key, connection) is connection
        await next()

    async def run(payload: Any) -> None:
        got.append(locals.get_or_throw(key))

    task(id="identity", run=run, middleware=middleware)

    asyncio.run(run_attempts(start_message("identity", "run_i")))

    assert got == [connection]
    assert got[0] is connection
