"""The lifecycle of one attempt, driven in-process through the real `Executor`.

Each test defines a task (and global hooks) in this process, starts an attempt the way
the supervisor does (`Executor._start` with a `StartAttempt` message) and looks at what
came back: the result sent to the supervisor, the attempt's events (hook calls, logs) and
the calls the hooks recorded. Nothing is mocked but the socket to the supervisor.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import orjson
import pytest

from taskloom import (
    AbortTaskRunError,
    CompleteTaskWithOutput,
    Retry,
    locals,
    logger,
    task,
    tasks,
)
from taskloom.clock import now_ms
from taskloom.engine.records import ClaimedRun
from taskloom.errors import TaskRunCancelledError
from taskloom.runtime import registry
from taskloom.runtime.hook_args import HOOK_PARAMETERS
from taskloom.runtime.hooks import clear_global, current_run_hooks, global_hooks
from taskloom.runtime.lifecycle import CompletionResult, RunPromise
from taskloom.runtime.report import AttemptResult
from taskloom.worker.executor import Executor
from taskloom.worker.messages import AttemptEvents, KillRequest, Message, StartAttempt

FAST = Retry(max_attempts=3, factor=2, min_timeout_ms=10, max_timeout_ms=1000, randomize=False)
RUN_ID = "run_unit"

Calls = list[Any]
During = Callable[[Executor, "Outbox"], Awaitable[None]]


# --- harness ----------------------------------------------------------------------------


class Outbox:
    """Stands in for the executor's socket to the supervisor: keeps every message."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def send(self, message: Message) -> None:
        self.messages.append(message)

    def kinds(self) -> list[str]:
        """The kind (wire tag) of every message, in order."""
        return [str(type(message).__struct_config__.tag) for message in self.messages]


@dataclasses.dataclass
class Attempt:
    """What one attempt produced."""

    result: AttemptResult
    outbox: Outbox

    @property
    def events(self) -> list[tuple[str, dict[str, Any]]]:
        """Every event of the attempt in order (flushed batches, then the final one)."""
        batches = [m.events for m in self.outbox.messages if isinstance(m, AttemptEvents)]
        batches.append(self.result.events)
        return [(event.kind, event.data) for batch in batches for event in batch]

    def hooks(self) -> list[tuple[str, str]]:
        """(hook kind, scope) of every recorded hook call, in completion order."""
        return [(d["hook"], d["scope"]) for k, d in self.events if k == "hook"]

    def hook_events(self, kind: str) -> list[dict[str, Any]]:
        return [d for k, d in self.events if k == "hook" and d["hook"] == kind]

    def logs(self) -> list[str]:
        return [d["message"] for k, d in self.events if k == "log"]

    @property
    def ok(self) -> bool:
        return self.result.ok

    @property
    def status(self) -> str:
        return "COMPLETED" if self.ok else self.result.status

    @property
    def output(self) -> bytes:
        """The output's JSON, as the supervisor stores it."""
        return bytes(self.result.output)

    @property
    def error(self) -> dict[str, Any]:
        assert self.result.error is not None
        return msgspec.structs.asdict(self.result.error)


def start_message(
    task_id: str,
    payload: Any = None,
    *,
    run_id: str = RUN_ID,
    attempt: int = 1,
    max_attempts: int = 3,
    retry: Retry = FAST,
) -> StartAttempt:
    """A start message as the supervisor sends it (`Dispatcher._send_start`)."""
    created_at = now_ms()
    run = ClaimedRun(
        id=run_id,
        task_id=task_id,
        queue=f"task/{task_id}",
        attempt=attempt,
        payload=orjson.dumps(payload),
        max_attempts=max_attempts,
        retry=orjson.dumps(retry.to_json()),
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


async def execute(
    task_id: str,
    payload: Any = None,
    *,
    during: During | None = None,
    grace: float = 2.0,
    **start: Any,
) -> Attempt:
    """Run one attempt on a fresh in-process executor; `during` runs alongside it."""
    outbox = Outbox()
    executor = Executor(None, outbox)  # type: ignore[arg-type]
    executor.config = dataclasses.replace(executor.config, cancel_grace_seconds=grace)
    try:
        message = start_message(task_id, payload, **start)
        executor._start(message)
        state = executor.running[message.run.id]
        assert state.asyncio_task is not None
        if during is not None:
            await during(executor, outbox)
        result = await asyncio.wait_for(state.asyncio_task, 20)
    finally:
        executor.threads.shutdown(wait=False, cancel_futures=True)
    return Attempt(result, outbox)


def attempt(task_id: str, payload: Any = None, **options: Any) -> Attempt:
    return asyncio.run(execute(task_id, payload, **options))


async def until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    """Wait (without blocking the loop) until `condition()` is truthy."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition {condition} did not hold within {timeout} s")
        await asyncio.sleep(0.005)


def cancel_when(condition: Callable[[], object], reason: str = "Canceled by user") -> During:
    async def during(executor: Executor, outbox: Outbox) -> None:
        await until(condition)
        executor._cancel(RUN_ID, reason)

    return during


@pytest.fixture(autouse=True)
def _clean_registry() -> Iterator[None]:
    known = {t.id for t in registry.all_tasks()}
    clear_global()
    yield
    clear_global()
    for defined in registry.all_tasks():
        if defined.id not in known:
            registry.unregister(defined.id)


@pytest.fixture
def calls() -> Calls:
    return []


def recorder(calls: Calls, label: str) -> Callable[..., Any]:
    """An async hook that records its label and every keyword argument it got."""

    async def hook(**kwargs: Any) -> None:
        calls.append((label, kwargs))

    return hook


def labels(calls: Calls) -> list[str]:
    return [c[0] if isinstance(c, tuple) else c for c in calls]


def middleware(calls: Calls, label: str) -> Callable[..., Any]:
    async def wrap(next: Callable[[], Awaitable[None]]) -> None:
        calls.append(f"{label}:before")
        await next()
        calls.append(f"{label}:after")

    return wrap


def deprecated_task(**options: Any) -> Any:
    """`task(...)` with deprecated hooks, without failing on their DeprecationWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return task(**options)


# --- order ----------------------------------------------------------------------------


def test_one_attempt_runs_middleware_and_hooks_in_trigger_dev_order(calls: Calls) -> None:
    tasks.middleware("outer", middleware(calls, "mw:global-1"))
    tasks.middleware("inner", middleware(calls, "mw:global-2"))
    for kind in ("on_start", "on_start_attempt", "on_success", "on_complete"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            getattr(tasks, kind)(f"global-{kind}", recorder(calls, f"{kind}:global"))

    async def run(payload: Any) -> Any:
        calls.append("run")
        return {"ok": payload}

    deprecated_task(
        id="ordered",
        run=run,
        middleware=middleware(calls, "mw:task"),
        init=recorder(calls, "init"),
        on_start=recorder(calls, "on_start:task"),
        on_start_attempt=recorder(calls, "on_start_attempt:task"),
        on_success=recorder(calls, "on_success:task"),
        on_failure=recorder(calls, "on_failure:task"),
        on_complete=recorder(calls, "on_complete:task"),
        cleanup=recorder(calls, "cleanup"),
    )

    done = attempt("ordered", 1)

    assert done.result.ok is True
    assert labels(calls) == [
        "mw:global-1:before",
        "mw:global-2:before",
        "mw:task:before",
        "init",
        "on_start:global",
        "on_start:task",
        "on_start_attempt:global",
        "on_start_attempt:task",
        "run",
        "on_success:global",
        "on_success:task",
        "on_complete:global",
        "on_complete:task",
        "cleanup",
        "mw:task:after",
        "mw:global-2:after",
        "mw:global-1:after",
    ]
    # One hook event per call, recorded when the call ends (middleware end last).
    assert done.hooks() == [
        ("init", "task"),
        ("on_start", "global"),
        ("on_start", "task"),
        ("on_start_attempt", "global"),
        ("on_start_attempt", "task"),
        ("on_success", "global"),
        ("on_success", "task"),
        ("on_complete", "global"),
        ("on_complete", "task"),
        ("cleanup", "task"),
        ("middleware", "task"),
        ("middleware", "global"),
        ("middleware", "global"),
    ]
    assert [e["name"] for e in done.hook_events("middleware")][1:] == ["inner", "outer"]


def test_on_start_runs_on_the_first_attempt_only(calls: Calls) -> None:
    with pytest.warns(DeprecationWarning, match="tasks.on_start is deprecated"):
        tasks.on_start(recorder(calls, "on_start:global"))

    async def run(payload: Any, ctx: Any) -> int:
        calls.append(("run", {"attempt": ctx.attempt.number}))
        return int(ctx.attempt.number)

    deprecated_task(
        id="starts",
        run=run,
        on_start=recorder(calls, "on_start:task"),
        on_start_attempt=recorder(calls, "on_start_attempt"),
    )

    first = attempt("starts", attempt=1)
    second = attempt("starts", attempt=2)

    assert first.ok and second.ok
    assert labels(calls) == [
        "on_start:global",
        "on_start:task",
        "on_start_attempt",
        "run",
        "on_start_attempt",
        "run",
    ]
    assert calls[-1] == ("run", {"attempt": 2})
    assert calls[-2][1]["ctx"].attempt.number == 2
    assert second.hooks() == [("on_start_attempt", "task")]


# --- arguments ------------------------------------------------------------------------


def test_hooks_get_exactly_the_keyword_arguments_of_their_kind(calls: Calls) -> None:
    """With **kwargs a hook receives every name its kind allows, with the right values."""

    def init(payload: Any) -> dict[str, str]:
        return {"conn": f"db-for-{payload['user']}"}

    async def run(payload: Any, ctx: Any) -> dict[str, Any]:
        calls.append(("run", {"init": ctx.init}))
        return {"user": payload["user"]}

    async def middleware_hook(**kwargs: Any) -> None:
        calls.append(("middleware", kwargs))
        await kwargs["next"]()

    deprecated_task(
        id="arguments",
        run=run,
        init=init,
        middleware=middleware_hook,
        on_start=recorder(calls, "on_start"),
        on_start_attempt=recorder(calls, "on_start_attempt"),
        on_success=recorder(calls, "on_success"),
        on_complete=recorder(calls, "on_complete"),
        cleanup=recorder(calls, "cleanup"),
    )

    done = attempt("arguments", {"user": "ada"})

    assert done.ok, done.result
    seen = dict(calls)
    for kind in ("middleware", "on_start", "on_start_attempt", "on_success", "on_complete"):
        assert set(seen[kind]) == set(HOOK_PARAMETERS[kind]), kind
    assert set(seen["cleanup"]) == set(HOOK_PARAMETERS["cleanup"])
    init_value = {"conn": "db-for-ada"}
    assert seen["run"] == {"init": init_value}
    for kind in ("on_start", "on_start_attempt", "on_success", "on_complete", "cleanup"):
        arguments = seen[kind]
        assert arguments["payload"] == {"user": "ada"}
        assert arguments["task"] == "arguments"
        assert arguments["init"] == init_value
        assert arguments["ctx"].run.id == RUN_ID
        assert arguments["ctx"].task.id == "arguments"
        assert arguments["ctx"].init == init_value
        if "signal" in arguments:
            assert arguments["signal"] is arguments["ctx"].signal
    assert seen["middleware"]["ctx"].run.id == RUN_ID
    assert seen["middleware"]["signal"].aborted is False
    assert seen["on_success"]["output"] == {"user": "ada"}
    result = seen["on_complete"]["result"]
    assert isinstance(result, CompletionResult)
    assert (result.ok, result.data, result.error) == (True, {"user": "ada"}, None)


def test_failure_hooks_get_the_error_and_catch_error_the_default_retry(calls: Calls) -> None:
    async def run(payload: Any) -> None:
        raise ValueError("boom")

    async def catch_error(**kwargs: Any) -> None:
        calls.append(("catch_error", kwargs))

    task(
        id="failing-arguments",
        run=run,
        catch_error=catch_error,
        on_failure=recorder(calls, "on_failure"),
        on_complete=recorder(calls, "on_complete"),
    )

    before = now_ms()
    first = attempt("failing-arguments", {"n": 1}, attempt=1)
    last = attempt("failing-arguments", {"n": 1}, attempt=3)

    seen = [(label, arguments) for label, arguments in calls]
    assert [label for label, _ in seen] == [
        "catch_error",
        "catch_error",
        "on_failure",
        "on_complete",
    ]
    retrying = seen[0][1]
    assert set(retrying) == set(HOOK_PARAMETERS["catch_error"])
    assert isinstance(retrying["error"], ValueError)
    assert retrying["payload"] == {"n": 1}
    assert retrying["task"] == "failing-arguments"
    # FAST: 10 ms after attempt 1; none after the last attempt.
    assert retrying["retry_delay_ms"] == 10
    assert isinstance(retrying["retry_at"], datetime)
    assert retrying["retry_at"].timestamp() * 1000 >= before + 10
    assert seen[1][1]["retry_at"] is None
    assert seen[1][1]["retry_delay_ms"] is None
    failure = seen[2][1]
    assert set(failure) == set(HOOK_PARAMETERS["on_failure"])
    assert str(failure["error"]) == "boom"
    result = seen[3][1]["result"]
    assert (result.ok, result.data, str(result.error)) == (False, None, "boom")
    assert first.result.retry_at is not None
    assert (last.status, last.result.retry_at) == ("FAILED", None)


# --- failures, retries and on_failure -----------------------------------------------


def test_on_failure_and_on_complete_run_only_when_no_retry_follows(calls: Calls) -> None:
    tasks.on_failure("alert", recorder(calls, "on_failure:global"))
    tasks.on_complete(recorder(calls, "on_complete:global"))

    async def run(payload: Any, ctx: Any) -> None:
        raise RuntimeError(f"attempt {ctx.attempt.number} failed")

    task(
        id="fails",
        run=run,
        on_failure=recorder(calls, "on_failure:task"),
        on_complete=recorder(calls, "on_complete:task"),
        on_success=recorder(calls, "on_success:task"),
    )

    retried = attempt("fails", attempt=1)
    assert retried.status == "FAILED"
    assert retried.result.retry_at is not None
    assert calls == []
    assert retried.hooks() == []

    final = attempt("fails", attempt=3)
    assert final.result.retry_at is None
    assert final.error["message"] == "attempt 3 failed"
    assert labels(calls) == [
        "on_failure:global",
        "on_failure:task",
        "on_complete:global",
        "on_complete:task",
    ]
    assert str(calls[0][1]["error"]) == "attempt 3 failed"
    assert calls[2][1]["result"].ok is False
    assert next(e["name"] for e in final.hook_events("on_failure")) == "alert"


def test_abort_task_run_error_skips_catch_error_and_retries(calls: Calls) -> None:
    async def run(payload: Any) -> None:
        raise AbortTaskRunError("not worth retrying")

    task(
        id="aborts",
        run=run,
        catch_error=recorder(calls, "catch_error"),
        on_failure=recorder(calls, "on_failure"),
    )

    done = attempt("aborts")

    assert (done.status, done.result.retry_at) == ("FAILED", None)
    assert labels(calls) == ["on_failure"]


def test_complete_task_with_output_succeeds_with_that_output(calls: Calls) -> None:
    async def run(payload: Any) -> None:
        raise CompleteTaskWithOutput({"early": True})

    task(id="early", run=run, on_success=recorder(calls, "on_success"))

    done = attempt("early")

    assert done.result.ok is True
    assert done.output == b'{"early":true}'
    assert labels(calls) == ["on_success"]
    assert calls[0][1]["output"] == {"early": True}


# --- catch_error ----------------------------------------------------------------------


def test_catch_error_asks_the_task_first_then_globals_and_the_first_answer_wins(
    calls: Calls,
) -> None:
    def answering(label: str, answer: Any) -> Callable[..., Any]:
        def hook(error: BaseException) -> Any:
            calls.append(label)
            return answer

        return hook

    tasks.catch_error("first", answering("global-1", None))
    tasks.catch_error("second", answering("global-2", {"skip_retrying": True}))
    tasks.catch_error("third", answering("global-3", {"retry_delay_ms": 5}))

    async def run(payload: Any) -> None:
        raise ValueError("boom")

    task(id="caught", run=run, catch_error=answering("task", None))

    done = attempt("caught")

    assert calls == ["task", "global-1", "global-2"]
    assert (done.status, done.result.retry_at) == ("FAILED", None)
    assert [(e["hook"], e["scope"], e["name"]) for e in done.hook_events("catch_error")] == [
        ("catch_error", "task", f"{answering.__qualname__}.<locals>.hook"),
        ("catch_error", "global", "first"),
        ("catch_error", "global", "second"),
    ]


def test_a_task_catch_error_answer_stops_before_the_global_ones(calls: Calls) -> None:
    tasks.catch_error(lambda: calls.append("global"))

    async def run(payload: Any) -> None:
        raise ValueError("boom")

    def own() -> dict[str, Any]:
        calls.append("task")
        return {"retry_delay_ms": 0}

    task(id="caught-by-task", run=run, catch_error=own)

    done = attempt("caught-by-task")

    assert calls == ["task"]
    assert done.result.retry_at is not None


AT = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("answer", "retry_in_ms", "final", "message"),
    [
        pytest.param(None, 10, False, "boom", id="None: default handling (retry)"),
        pytest.param({}, None, True, "boom", id="{}: fails the run"),
        pytest.param({"skip_retrying": True}, None, True, "boom", id="skip_retrying"),
        pytest.param({"skip_retrying": False}, None, True, "boom", id="skip_retrying=False"),
        pytest.param({"retry_delay_ms": 5000}, 5000, False, "boom", id="retry_delay_ms"),
        pytest.param({"retry_delay_ms": None}, None, True, "boom", id="retry_delay_ms=None"),
        pytest.param(
            {"retry": Retry(min_timeout_ms=3000, factor=1, randomize=False)},
            3000,
            False,
            "boom",
            id="retry policy",
        ),
        pytest.param(
            {"retry": {"max_attempts": 1}}, None, True, "boom", id="retry policy exhausted"
        ),
        pytest.param({"error": ValueError("replaced")}, None, True, "replaced", id="error"),
        pytest.param(
            {"error": KeyError("replaced"), "retry_delay_ms": 20},
            20,
            False,
            "'replaced'",
            id="error and retry",
        ),
        pytest.param(
            {"skip_retrying": True, "retry_delay_ms": 20}, None, True, "boom", id="skip wins"
        ),
    ],
)
def test_catch_error_return_values(
    calls: Calls, answer: Any, retry_in_ms: int | None, final: bool, message: str
) -> None:
    async def run(payload: Any) -> None:
        raise RuntimeError("boom")

    task(
        id="answers",
        run=run,
        catch_error=lambda: answer,
        on_failure=recorder(calls, "on_failure"),
    )

    before = now_ms()
    done = attempt("answers")
    after = now_ms()

    assert done.status == "FAILED"
    assert done.error["message"] == message
    retry_at = done.result.retry_at
    if retry_in_ms is None:
        assert retry_at is None
    else:
        assert before + retry_in_ms <= retry_at <= after + retry_in_ms
    assert labels(calls) == (["on_failure"] if final else [])


def test_catch_error_retry_at_sets_the_next_attempt_time() -> None:
    async def run(payload: Any) -> None:
        raise RuntimeError("boom")

    task(id="retry-at", run=run, catch_error=lambda: {"retry_at": AT})
    naive = AT.replace(tzinfo=None) + timedelta(seconds=1)
    task(id="retry-at-naive", run=run, catch_error=lambda: {"retry_at": naive})

    assert attempt("retry-at").result.retry_at == int(AT.timestamp() * 1000)
    # A naive datetime is UTC.
    assert attempt("retry-at-naive").result.retry_at == int(AT.timestamp() * 1000) + 1000


def test_catch_error_that_raises_crashes_the_run_without_on_failure(calls: Calls) -> None:
    async def run(payload: Any) -> None:
        raise RuntimeError("boom")

    def broken(error: BaseException) -> None:
        raise LookupError("handler bug")

    tasks.catch_error(recorder(calls, "global catch_error"))
    task(
        id="crashes",
        run=run,
        catch_error=broken,
        on_failure=recorder(calls, "on_failure"),
        on_complete=recorder(calls, "on_complete"),
    )

    done = attempt("crashes")

    assert done.result.status == "CRASHED"
    assert done.result.attempt_status == "CRASHED"
    assert done.result.retry_at is None
    assert done.error["code"] == "HANDLE_ERROR_ERROR"
    assert done.error["message"] == (
        f"catch_error hook {broken.__qualname__!r} of task 'crashes' raised LookupError: "
        "handler bug (while handling RuntimeError: boom)"
    )
    assert labels(calls) == ["on_complete"]  # the global catch_error is not asked either
    assert done.hook_events("catch_error")[0]["error"] == {
        "type": "LookupError",
        "message": "handler bug",
    }


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ("retry", "returned str; return None or a dict"),
        ({"retry_later": True}, "unknown key(s) ['retry_later']"),
        ({"retry_at": "tomorrow"}, "retry_at='tomorrow', not a datetime"),
        ({"retry_delay_ms": -1}, "retry_delay_ms=-1; expected milliseconds >= 0"),
        ({"error": "oops"}, "error='oops', not an exception"),
    ],
)
def test_catch_error_with_a_malformed_answer_crashes_the_run(answer: Any, problem: str) -> None:
    async def run(payload: Any) -> None:
        raise RuntimeError("boom")

    task(id="malformed", run=run, catch_error=lambda: answer)

    done = attempt("malformed")

    assert done.result.status == "CRASHED"
    assert done.error["code"] == "HANDLE_ERROR_ERROR"
    assert problem in done.error["message"]
    assert "catch_error hook" in done.error["message"]


# --- errors in hooks ------------------------------------------------------------------


def raising(kind: str) -> Callable[..., Any]:
    async def hook(**kwargs: Any) -> None:
        raise RuntimeError(f"{kind} broke")

    return hook


@pytest.mark.parametrize("kind", ["init", "on_start", "on_start_attempt"])
def test_an_error_before_run_fails_the_attempt_and_it_retries(calls: Calls, kind: str) -> None:
    async def run(payload: Any) -> None:
        calls.append("run")

    deprecated_task(
        id="hook-fails",
        run=run,
        catch_error=recorder(calls, "catch_error"),
        on_failure=recorder(calls, "on_failure"),
        **{kind: raising(kind)},
    )

    retried = attempt("hook-fails", attempt=1)
    final = attempt("hook-fails", attempt=3)

    assert retried.status == "FAILED"
    assert retried.error["message"] == f"{kind} broke"
    assert retried.result.retry_at is not None
    assert retried.hook_events(kind)[0]["error"] == {
        "type": "RuntimeError",
        "message": f"{kind} broke",
    }
    # on_start only runs on attempt 1; the last attempt then succeeds without it.
    if kind == "on_start":
        assert final.ok
        assert labels(calls) == ["catch_error", "run"]
    else:
        assert (final.status, final.result.retry_at) == ("FAILED", None)
        assert labels(calls) == ["catch_error", "catch_error", "on_failure"]


def test_an_error_in_middleware_fails_the_attempt_through_catch_error(calls: Calls) -> None:
    async def broken(next: Callable[[], Awaitable[None]]) -> None:
        raise ConnectionError("database down")

    tasks.middleware("db", broken)

    async def run(payload: Any) -> None:
        calls.append("run")

    task(
        id="middleware-fails",
        run=run,
        on_start_attempt=recorder(calls, "on_start_attempt"),
        catch_error=recorder(calls, "catch_error"),
    )

    done = attempt("middleware-fails")

    assert done.status == "FAILED"
    assert done.error["type"] == "ConnectionError"
    assert done.result.retry_at is not None
    assert labels(calls) == ["catch_error"]
    assert done.hook_events("middleware")[0]["error"] == {
        "type": "ConnectionError",
        "message": "database down",
    }


def test_an_error_in_cleanup_fails_an_attempt_that_succeeded(calls: Calls) -> None:
    async def run(payload: Any) -> str:
        calls.append("run")
        return "done"

    deprecated_task(
        id="cleanup-fails",
        run=run,
        cleanup=raising("cleanup"),
        on_success=recorder(calls, "on_success"),
    )

    done = attempt("cleanup-fails")

    assert done.status == "FAILED"
    assert done.error["message"] == "cleanup broke"
    assert done.result.retry_at is not None
    assert labels(calls) == ["run", "on_success"]


@pytest.mark.parametrize("kind", ["on_success", "on_complete"])
def test_errors_in_success_hooks_are_recorded_and_ignored(calls: Calls, kind: str) -> None:
    getattr(tasks, kind)("broken-global", raising(f"global {kind}"))

    async def run(payload: Any) -> str:
        return "fine"

    task(
        id="success-hook-fails",
        run=run,
        on_success=raising(kind) if kind == "on_success" else recorder(calls, "on_success"),
        on_complete=recorder(calls, "on_complete"),
    )

    done = attempt("success-hook-fails")

    assert done.ok
    assert done.output == b'"fine"'
    errors = [(e["scope"], e["error"]) for e in done.hook_events(kind)]
    assert errors[0] == ("global", {"type": "RuntimeError", "message": f"global {kind} broke"})
    if kind == "on_success":
        assert errors[1] == ("task", {"type": "RuntimeError", "message": "on_success broke"})
    # The hooks after the broken ones still ran.
    assert "on_complete" in labels(calls)


def test_errors_in_on_failure_are_recorded_and_ignored(calls: Calls) -> None:
    tasks.on_failure("broken", raising("global on_failure"))

    async def run(payload: Any) -> None:
        raise ValueError("the real error")

    task(
        id="failure-hook-fails",
        run=run,
        on_failure=raising("on_failure"),
        on_complete=recorder(calls, "on_complete"),
    )

    done = attempt("failure-hook-fails", attempt=3)

    assert done.status == "FAILED"
    assert done.error["message"] == "the real error"
    assert [e["error"]["message"] for e in done.hook_events("on_failure")] == [
        "global on_failure broke",
        "on_failure broke",
    ]
    assert labels(calls) == ["on_complete"]


def test_output_that_is_not_json_fails_without_on_success(calls: Calls) -> None:
    async def run(payload: Any) -> Any:
        return {"value": object()}

    task(id="bad-output", run=run, on_success=recorder(calls, "on_success"))

    done = attempt("bad-output")

    assert done.status == "FAILED"
    assert done.error["code"] == "TASK_OUTPUT_ERROR"
    assert "not JSON serialisable" in done.error["message"]
    assert calls == []


# --- middleware and next() -------------------------------------------------------------


def test_middleware_that_never_calls_next_fails_the_attempt(calls: Calls) -> None:
    async def forgetful(ctx: Any) -> None:
        calls.append("middleware")

    async def run(payload: Any) -> None:
        calls.append("run")

    task(id="no-next", run=run, middleware=forgetful)

    done = attempt("no-next")

    assert done.status == "FAILED"
    assert done.error["type"] == "MiddlewareError"
    assert done.error["message"] == (
        "middleware 'test_middleware_that_never_calls_next_fails_the_attempt.<locals>.forgetful'"
        " of task 'no-next' returned without calling `await next()`; the attempt did not run"
    )
    assert done.result.retry_at is not None
    assert calls == ["middleware"]


@pytest.mark.parametrize("swallow", [False, True])
def test_middleware_that_calls_next_twice_fails_the_attempt(calls: Calls, swallow: bool) -> None:
    async def twice(next: Callable[[], Awaitable[None]]) -> None:
        await next()
        try:
            await next()
        except Exception:
            if not swallow:
                raise

    tasks.middleware("twice", twice)

    async def run(payload: Any) -> None:
        calls.append("run")

    task(id="next-twice", run=run)

    done = attempt("next-twice")

    assert calls == ["run"]  # the second next() does not run the attempt again
    assert done.status == "FAILED"
    assert done.error["type"] == "MiddlewareError"
    assert done.error["message"] == (
        "middleware 'twice' of task 'next-twice' called next() twice; call it exactly once"
    )


def test_middleware_sees_errors_of_inner_middleware_through_next(calls: Calls) -> None:
    async def outer(next: Callable[[], Awaitable[None]]) -> None:
        try:
            await next()
        except ConnectionError as error:
            calls.append(f"outer saw {error}")
            raise

    async def inner(next: Callable[[], Awaitable[None]]) -> None:
        raise ConnectionError("inner broke")

    tasks.middleware("outer", outer)

    async def run(payload: Any) -> None:
        calls.append("run")

    task(id="nested", run=run, middleware=inner)

    done = attempt("nested")

    assert calls == ["outer saw inner broke"]
    assert done.error["message"] == "inner broke"


# --- sync code ------------------------------------------------------------------------


def test_sync_hooks_and_a_sync_run_follow_the_same_order(calls: Calls) -> None:
    key = locals.create("request")

    async def mw(next: Callable[[], Awaitable[None]]) -> None:
        locals.set(key, "req-1")
        await next()

    def on_start_attempt(ctx: Any) -> None:
        calls.append(("on_start_attempt", locals.get_or_throw(key)))

    def run(payload: Any, ctx: Any) -> dict[str, Any]:
        calls.append(("run", locals.get_or_throw(key), threading.current_thread().name))
        return {"sync": True}

    def on_success(output: Any) -> None:
        calls.append(("on_success", output))

    task(
        id="sync",
        run=run,
        middleware=mw,
        on_start_attempt=on_start_attempt,
        on_success=on_success,
    )

    done = attempt("sync")

    assert done.ok
    assert calls[0] == ("on_start_attempt", "req-1")
    assert calls[1][:2] == ("run", "req-1")
    assert calls[1][2].startswith("attempt")  # an executor thread, not the event loop
    assert calls[2] == ("on_success", {"sync": True})


# --- hook events ----------------------------------------------------------------------


def test_every_hook_call_is_an_event_with_name_scope_duration_and_error() -> None:
    async def slow_start() -> None:
        await asyncio.sleep(0.05)

    tasks.on_start_attempt("slow", slow_start)
    tasks.on_success(raising("on_success"))

    async def run(payload: Any) -> str:
        return "ok"

    task(id="evented", run=run)

    done = attempt("evented")

    start, success = (d for k, d in done.events if k == "hook")
    assert set(start) == {"hook", "name", "scope", "ts", "duration_ms", "error"}
    assert (start["hook"], start["name"], start["scope"], start["error"]) == (
        "on_start_attempt",
        "slow",
        "global",
        None,
    )
    assert start["duration_ms"] >= 45
    assert isinstance(start["ts"], int)
    assert success["name"] == "raising.<locals>.hook"
    assert success["error"] == {"type": "RuntimeError", "message": "on_success broke"}


# --- waits ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class WaitInfo:
    type: str
    date: str


def test_fire_wait_and_fire_resume_call_global_then_task_hooks(calls: Calls) -> None:
    tasks.on_wait("db", recorder(calls, "on_wait:global"))
    tasks.on_resume("db", recorder(calls, "on_resume:global"))
    tasks.on_wait("broken", raising("on_wait"))
    wait = WaitInfo(type="duration", date="2030-01-01T00:00:00Z")

    async def run(payload: Any) -> str:
        target = current_run_hooks.get()
        assert target is not None
        calls.append("run: waiting")
        await target.fire_wait(wait)
        await target.fire_resume(wait)
        calls.append("run: resumed")
        return "waited"

    task(
        id="waits",
        run=run,
        on_wait=recorder(calls, "on_wait:task"),
        on_resume=recorder(calls, "on_resume:task"),
    )

    done = attempt("waits", {"p": 1})

    assert done.ok
    assert labels(calls) == [
        "run: waiting",
        "on_wait:global",
        "on_wait:task",
        "on_resume:global",
        "on_resume:task",
        "run: resumed",
    ]
    for _, arguments in calls[1:5]:
        assert set(arguments) == set(HOOK_PARAMETERS["on_wait"])
        assert arguments["wait"] is wait
        assert arguments["payload"] == {"p": 1}
        assert arguments["task"] == "waits"
    assert done.hooks()[:3] == [("on_wait", "global")] * 2 + [("on_wait", "task")]
    assert done.hook_events("on_wait")[1]["error"]["message"] == "on_wait broke"


# --- cancellation -----------------------------------------------------------------------


def test_cancel_fires_the_signal_and_on_cancel_hooks_get_the_run_output(calls: Calls) -> None:
    """The seed's cancel example: run notices the signal and finishes; on_cancel awaits
    run_promise for its output, in the attempt's context (locals, logs)."""
    key = locals.create("db")
    started = threading.Event()

    async def mw(next: Callable[[], Awaitable[None]]) -> None:
        locals.set(key, "connection")
        await next()
        calls.append("middleware after next")

    async def run(payload: Any, ctx: Any) -> dict[str, Any]:
        started.set()
        try:
            reason = await asyncio.wait_for(ctx.signal.wait(), 10)
        except TimeoutError:
            reason = "not cancelled"
        calls.append(("run saw", reason, ctx.signal.aborted, ctx.signal.reason))
        await asyncio.sleep(0.05)  # "do some more work here"
        return {"message": "Hello, world!"}

    async def global_on_cancel(ctx: Any, signal: Any) -> None:
        calls.append(("global on_cancel", signal.aborted, locals.get(key)))
        logger.info("Run cancelled", run=ctx.run.id)

    async def on_cancel(run_promise: Any, payload: Any, task: str) -> None:
        assert isinstance(run_promise, RunPromise)
        output = await run_promise
        calls.append(("task on_cancel", output, payload, task, locals.get(key)))

    tasks.on_cancel(global_on_cancel)
    task(
        id="cancel-example",
        run=run,
        middleware=mw,
        on_cancel=on_cancel,
        on_success=recorder(calls, "on_success"),
        on_failure=recorder(calls, "on_failure"),
        on_complete=recorder(calls, "on_complete"),
    )

    done = attempt("cancel-example", {"m": 1}, during=cancel_when(started.is_set, "stop it"))

    assert done.result.status == "CANCELED"
    assert done.result.attempt_status == "CANCELED"
    assert done.result.retry_at is None
    assert done.error["code"] == "TASK_RUN_CANCELLED"
    assert calls == [
        ("global on_cancel", True, "connection"),
        ("run saw", "stop it", True, "stop it"),
        "middleware after next",
        ("task on_cancel", {"message": "Hello, world!"}, {"m": 1}, "cancel-example", "connection"),
    ]
    # The hooks' calls and logs are the attempt's, even though they ran past its end.
    assert done.logs() == ["Run cancelled"]
    assert done.hooks() == [
        ("on_cancel", "global"),
        ("middleware", "task"),
        ("on_cancel", "task"),
    ]


def test_run_promise_raises_the_run_error(calls: Calls) -> None:
    started = threading.Event()

    async def run(payload: Any, ctx: Any) -> None:
        started.set()
        await ctx.signal.wait()
        raise ConnectionAbortedError("stream aborted")

    async def on_cancel(run_promise: Any) -> None:
        try:
            await run_promise
        except ConnectionAbortedError as error:
            calls.append(f"run failed: {error}")

    task(id="cancel-error", run=run, on_cancel=on_cancel, catch_error=recorder(calls, "catch"))

    done = attempt("cancel-error", during=cancel_when(started.is_set))

    assert done.result.status == "CANCELED"
    assert calls == ["run failed: stream aborted"]  # catch_error is not asked


def test_cancel_without_on_cancel_hooks_stops_async_run_at_once(calls: Calls) -> None:
    started = threading.Event()

    async def run(payload: Any) -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            calls.append("run cancelled")
            raise

    task(id="cancel-now", run=run, on_failure=recorder(calls, "on_failure"))

    began = time.monotonic()
    done = attempt("cancel-now", during=cancel_when(started.is_set), grace=30)

    assert time.monotonic() - began < 5
    assert done.result.status == "CANCELED"
    assert calls == ["run cancelled"]
    assert "kill" not in done.outbox.kinds()


def test_on_cancel_hooks_get_at_most_the_grace_period(calls: Calls) -> None:
    started = threading.Event()

    async def run(payload: Any) -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            calls.append("run cancelled")
            raise

    async def stuck(run_promise: Any) -> None:
        calls.append("on_cancel waits for run")
        await run_promise

    task(id="cancel-grace", run=run, on_cancel=stuck)

    began = time.monotonic()
    done = attempt("cancel-grace", during=cancel_when(started.is_set), grace=0.3)
    elapsed = time.monotonic() - began

    assert 0.3 <= elapsed < 5
    assert done.result.status == "CANCELED"
    assert calls == ["on_cancel waits for run", "run cancelled"]
    assert done.hook_events("on_cancel")[0]["error"]["type"] == "CancelledError"


def test_on_cancel_registered_inside_run_applies_to_that_run(calls: Calls) -> None:
    started = threading.Event()

    async def run(payload: Any, ctx: Any) -> str:
        chunks: list[str] = []

        async def save_chunks() -> None:
            calls.append(("saved", list(chunks)))

        tasks.on_cancel(save_chunks)
        while not ctx.signal.aborted:
            chunks.append("chunk")
            if len(chunks) == 2:
                started.set()
            await asyncio.sleep(0.001)
        return "".join(chunks)

    task(id="chat", run=run)

    done = attempt("chat", during=cancel_when(started.is_set))

    assert done.result.status == "CANCELED"
    [(label, saved)] = calls
    assert label == "saved"
    assert saved[:2] == ["chunk", "chunk"]
    assert done.hook_events("on_cancel")[0]["scope"] == "run"
    assert global_hooks("on_cancel") == []  # not registered for other runs


def test_run_promise_is_released_when_the_attempt_ends_before_run(calls: Calls) -> None:
    entered = threading.Event()
    proceed = asyncio.Event()

    async def on_start_attempt() -> None:
        entered.set()
        await proceed.wait()
        raise RuntimeError("start failed")

    async def run(payload: Any) -> None:
        calls.append("run")

    async def on_cancel(run_promise: Any) -> None:
        proceed.set()
        try:
            await run_promise
        except TaskRunCancelledError as error:
            calls.append(str(error))

    task(id="cancel-before-run", run=run, on_start_attempt=on_start_attempt, on_cancel=on_cancel)

    began = time.monotonic()
    done = attempt("cancel-before-run", during=cancel_when(entered.is_set), grace=30)

    assert time.monotonic() - began < 5  # not the grace period
    assert done.result.status == "CANCELED"
    assert calls == [
        "run of task 'cancel-before-run' did not return: the attempt ended before it finished"
    ]


def test_cancelling_a_sync_run_without_on_cancel_asks_to_stop_the_process_at_once(
    calls: Calls,
) -> None:
    started = threading.Event()
    release = threading.Event()

    def run(payload: Any) -> str:
        started.set()
        release.wait(10)
        return "finished in its thread"

    task(id="sync-cancel", run=run, on_success=recorder(calls, "on_success"))

    async def during(executor: Executor, outbox: Outbox) -> None:
        await until(started.is_set)
        executor._cancel(RUN_ID, "Canceled by user")
        assert outbox.kinds()[-1] == "kill"  # synchronously, no grace period
        kill = outbox.messages[-1]
        assert isinstance(kill, KillRequest)
        assert (kill.run_id, kill.attempt, kill.reason) == (RUN_ID, 1, "Canceled by user")
        release.set()  # (the supervisor would kill the process; here the thread returns)

    done = attempt("sync-cancel", during=during, grace=30)

    assert done.result.status == "CANCELED"
    assert calls == []


def test_cancelling_a_sync_run_with_on_cancel_stops_it_after_the_hooks(calls: Calls) -> None:
    started = threading.Event()
    release = threading.Event()

    def run(payload: Any, ctx: Any) -> str:
        started.set()
        release.wait(10)
        return "finished in its thread"

    async def on_cancel(signal: Any) -> None:
        await asyncio.sleep(0.05)
        calls.append(("on_cancel", signal.reason))

    task(id="sync-cancel-hook", run=run, on_cancel=on_cancel)

    async def during(executor: Executor, outbox: Outbox) -> None:
        await until(started.is_set)
        executor._cancel(RUN_ID, "Canceled by user")
        assert "kill" not in outbox.kinds()
        await until(lambda: "kill" in outbox.kinds())
        assert calls == [("on_cancel", "Canceled by user")]
        # The hook's event was shipped before the kill request.
        kinds = outbox.kinds()
        assert kinds.index("events") < kinds.index("kill")
        release.set()

    done = attempt("sync-cancel-hook", during=during, grace=30)

    assert done.result.status == "CANCELED"
    events = next(m for m in done.outbox.messages if isinstance(m, AttemptEvents))
    assert events.events[0].kind == "hook"


# --- hooks registered inside a run ------------------------------------------------------


def test_hooks_registered_inside_a_run_apply_to_that_run_only(calls: Calls) -> None:
    tasks.on_success("global", recorder(calls, "on_success:global"))

    async def run(payload: Any, ctx: Any) -> int:
        attempt = ctx.attempt.number
        tasks.on_success(recorder(calls, f"on_success:run{attempt}"))
        tasks.on_complete("named", recorder(calls, f"replaced{attempt}"))
        tasks.on_complete("named", recorder(calls, f"on_complete:run{attempt}"))
        return int(attempt)

    task(id="registers", run=run, on_success=recorder(calls, "on_success:task"))

    first = attempt("registers", attempt=1)
    attempt("registers", attempt=2)

    assert labels(calls) == [
        "on_success:global",
        "on_success:task",
        "on_success:run1",
        "on_complete:run1",
        "on_success:global",
        "on_success:task",
        "on_success:run2",
        "on_complete:run2",
    ]
    assert [h.label for h in global_hooks("on_success")] == ["global"]
    assert global_hooks("on_complete") == []
    assert [(e["scope"], e["name"]) for e in first.hook_events("on_complete")] == [("run", "named")]


def test_catch_error_registered_inside_a_run_is_asked_last(calls: Calls) -> None:
    async def run(payload: Any) -> None:
        def skip() -> dict[str, bool]:
            calls.append("run catch_error")
            return {"skip_retrying": True}

        tasks.catch_error(skip)
        raise RuntimeError("boom")

    task(id="run-catch", run=run, catch_error=lambda: calls.append("task catch_error"))

    done = attempt("run-catch")

    assert calls == ["task catch_error", "run catch_error"]
    assert (done.status, done.result.retry_at) == ("FAILED", None)


@pytest.mark.parametrize("kind", ["middleware", "on_start", "on_start_attempt"])
def test_hooks_that_could_no_longer_run_cannot_be_registered_inside_a_run(kind: str) -> None:
    async def hook(**kwargs: Any) -> None:
        return None

    async def run(payload: Any) -> None:
        getattr(tasks, kind)(hook)

    task(id="too-late", run=run)

    done = attempt("too-late")

    assert done.status == "FAILED"
    assert done.error["message"] == (
        f"tasks.{kind}(...) was called inside a run of task 'too-late', where it could never "
        f"run: this attempt is past its {kind} hooks. Register global hooks at module level, "
        "in init.py of your task directory"
    )
    assert global_hooks(kind) == []
