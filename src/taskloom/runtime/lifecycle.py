"""The lifecycle of one attempt: middleware, hooks, `run`, error handling and cancellation.

Order (Trigger.dev's, see docs/lifecycle.md):

    global middleware → task middleware → (inside next())
        init → on_start (attempt 1) → on_start_attempt → run
        → on error: catch_error (task first, then global; first answer wins)
        → on_success, or on_failure when no retry follows → on_complete → cleanup

Global hooks run before the task's own. Errors in middleware, init, on_start,
on_start_attempt and cleanup fail the attempt; errors in on_success, on_failure and
on_complete are recorded and ignored; an error in catch_error ends the run CRASHED.
Every hook call is recorded as a `hook` event with its duration and error.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson

from ..clock import now_ms
from ..config import Config
from ..engine.outcomes import oom_retry_machine
from ..engine.records import ClaimedRun
from ..errors import (
    AbortTaskRunError,
    CompleteTaskWithOutput,
    InvalidOptionError,
    MaxDurationExceededError,
    OutOfMemoryError,
    TaskloomError,
    TaskRunCancelledError,
)
from ..retry import Retry, next_attempt_at
from ..types import RunStatus
from .context import CancelSignal, Context
from .controls import ComputeBudget, RunPromise, swallow_cancellation
from .decisions import Decision, failed_outcome, interpret_answer
from .definition import TaskDefinition
from .hook_args import BoundHook
from .hooks import GLOBAL_HOOK_NAMES, current_run_hooks, global_snapshot
from .locals import attempt_locals
from .report import AttemptResult, succeeded


@dataclass(frozen=True, slots=True)
class CompletionResult:
    """What `on_complete` hooks receive as `result`: `ok`, and `data` or `error`."""

    ok: bool
    data: Any = None
    error: BaseException | None = None


class MiddlewareError(TaskloomError):
    """A middleware did not call `next()` exactly once."""


class Lifecycle:
    """Runs one attempt of a task and decides its outcome."""

    def __init__(
        self,
        task: TaskDefinition[Any, Any],
        run: ClaimedRun,
        payload: Any,
        ctx: Context,
        config: Config,
        threads: Executor,
        emit: Callable[[str, dict[str, Any]], None],
        request_kill: Callable[[str], None],
    ) -> None:
        self.task = task
        self.claimed = run
        self.ctx = ctx
        self.signal: CancelSignal = ctx.signal
        self.config = config
        self.threads = threads
        self.emit = emit
        self.request_kill = request_kill
        self.attempt: int = run.attempt
        self.payload: Any = payload
        self.init_value: Any = None
        self.locals: dict[Any, Any] = {}
        self.run_hooks: list[BoundHook] = []
        self.cancel_reason: str | None = None
        self.run_task: asyncio.Future[Any] | None = None
        self.in_sync_run = False
        self.body_task: asyncio.Task[Any] | None = None
        self.run_done: asyncio.Future[Any] | None = None
        self.stop_status = "CANCELED"  # or TIMED_OUT once max_duration passes
        self.budget = ComputeBudget(run.max_duration, self.time_out)
        # The attempt's contextvars (locals, log sink, ctx): on_cancel hooks run in them.
        self.attempt_context: contextvars.Context | None = None
        self.cancel_task: asyncio.Task[None] | None = None
        self.finishing = False  # the attempt's own work is over; only on_cancel may remain
        self._globals = global_snapshot()  # global hooks as they are when the attempt starts
        self._hookless = not self._globals and not task.hooks

    # -- hooks ----------------------------------------------------------------------
    def hooks(self, kind: str) -> list[BoundHook]:
        """Global hooks first, then the task's; `catch_error` is asked task-first. Hooks
        registered inside this run come last."""
        if self._hookless and not self.run_hooks:
            return []
        own = self.task.hooks.get(kind)
        found = list(self._globals.get(kind, ())) if kind in _GLOBAL_KINDS else []
        if own is not None:
            found = [own, *found] if kind == "catch_error" else [*found, own]
        return [*found, *(hook for hook in self.run_hooks if hook.kind == kind)]

    @property
    def task_id(self) -> str:
        return self.task.id

    def add_run_hook(self, hook: BoundHook) -> None:
        """`tasks.on_cancel(fn)` (or another run-scoped kind) called inside the run; a
        repeated name replaces the earlier hook of that kind."""
        if hook.name is not None:
            for index, existing in enumerate(self.run_hooks):
                if existing.kind == hook.kind and existing.name == hook.name:
                    self.run_hooks[index] = hook
                    return
        self.run_hooks.append(hook)

    def arguments(self, **extra: Any) -> dict[str, Any]:
        """What every hook may take, plus the call site's extras."""
        return {
            "payload": self.payload,
            "ctx": self.ctx,
            "signal": self.signal,
            "task": self.task.id,
            "init": self.init_value,
            **extra,
        }

    async def call(self, hook: BoundHook, available: Mapping[str, Any]) -> Any:
        """Call one hook, recording the call (and any error, which is re-raised)."""
        began = time.perf_counter()
        error: BaseException | None = None
        try:
            return await hook.call(available)
        except BaseException as exc:
            error = exc
            raise
        finally:
            self.emit(
                "hook",
                {
                    "hook": hook.kind,
                    "name": hook.label,
                    "scope": hook.scope,
                    "ts": now_ms(),
                    "duration_ms": round((time.perf_counter() - began) * 1000, 3),
                    "error": None
                    if error is None
                    else {"type": type(error).__name__, "message": str(error)},
                },
            )

    async def call_all(self, kind: str, *, ignore: bool, **extra: Any) -> None:
        """Call every hook of a kind in order, with the arguments every hook may take plus
        `extra`; with `ignore`, errors are only recorded."""
        hooks = self.hooks(kind)
        if not hooks:
            return
        available = self.arguments(**extra)
        for hook in hooks:
            if ignore:
                try:
                    await self.call(hook, available)
                except Exception:
                    continue
            else:
                await self.call(hook, available)

    async def fire_wait(self, wait: Any) -> None:
        """A wait begins: its time is not compute time; call `on_wait` hooks (errors
        recorded and ignored). For the waits feature."""
        self.budget.pause()
        await self.call_all("on_wait", ignore=True, wait=wait)

    async def fire_resume(self, wait: Any) -> None:
        """A wait ended: compute time counts again; call `on_resume` hooks."""
        self.budget.resume()
        await self.call_all("on_resume", ignore=True, wait=wait)

    # -- the attempt ----------------------------------------------------------------
    async def execute(self) -> AttemptResult:
        """Run the attempt to its outcome (what the supervisor gets); never raises.

        When the run was cancelled, the outcome waits for the `on_cancel` hooks (at most
        the grace period), so their calls and logs belong to the attempt.
        """
        attempt_locals.set(self.locals)
        current_run_hooks.set(self)
        self.attempt_context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        self.run_done = loop.create_future()
        self.body_task = asyncio.current_task()
        self.budget.start()
        try:
            outcome = await self._execute_body()
        except asyncio.CancelledError:
            if self.cancel_reason is None:
                raise
            swallow_cancellation()
            outcome = self._cancelled()
        finally:
            self.budget.stop()
        await self._settle()
        return outcome

    async def _execute_body(self) -> AttemptResult:
        outcome: AttemptResult | None = None

        async def innermost() -> None:
            nonlocal outcome
            outcome = await self._hooks_and_run()

        chain = [*self._globals.get("middleware", ())]
        own = self.task.hooks.get("middleware")
        if own is not None:
            chain.append(own)
        try:
            if chain:
                await self._through_middleware(chain, innermost)
            else:
                await innermost()
        except asyncio.CancelledError:
            if self.cancel_reason is None:
                raise
            swallow_cancellation()
            return self._cancelled()
        except Exception as error:
            if self.cancel_reason is not None:
                return self._cancelled()
            return failed_outcome(await self.decide(error))
        if self.cancel_reason is not None:
            return self._cancelled()
        assert outcome is not None
        return outcome

    async def _settle(self) -> None:
        """The attempt's work is over: release `run_promise` waiters and let the
        `on_cancel` hooks finish (they are bounded by the grace period)."""
        self.finishing = True
        done = self.run_done
        if done is not None and not done.done():
            done.set_exception(
                TaskRunCancelledError(
                    f"run of task {self.task.id!r} did not return: the attempt ended before it "
                    "finished"
                )
            )
            done.exception()  # retrieved: awaiting run_promise is optional
        if self.cancel_task is not None:
            with contextlib.suppress(Exception):
                await self.cancel_task

    async def _through_middleware(
        self, chain: list[BoundHook], innermost: Callable[[], Awaitable[None]]
    ) -> None:
        async def step(index: int) -> None:
            if index == len(chain):
                await innermost()
                return
            middleware = chain[index]
            calls = 0

            async def next_() -> None:
                nonlocal calls
                calls += 1
                if calls > 1:
                    raise MiddlewareError(
                        f"middleware {middleware.label!r} of task {self.task.id!r} called "
                        "next() twice; call it exactly once"
                    )
                await step(index + 1)

            await self.call(middleware, self.arguments(next=next_))
            if calls > 1:  # the middleware caught the error of its second call
                raise MiddlewareError(
                    f"middleware {middleware.label!r} of task {self.task.id!r} called "
                    "next() twice; call it exactly once"
                )
            if calls == 0:
                raise MiddlewareError(
                    f"middleware {middleware.label!r} of task {self.task.id!r} returned "
                    "without calling `await next()`; the attempt did not run"
                )

        await step(0)

    async def _hooks_and_run(self) -> AttemptResult:
        try:
            init = self.task.hooks.get("init")
            if init is not None:
                self.init_value = await self.call(init, self.arguments())
                self.ctx = msgspec.structs.replace(self.ctx, init=self.init_value)
            if self.attempt == 1:
                await self.call_all("on_start", ignore=False)
            await self.call_all("on_start_attempt", ignore=False)
            output = await self._run()
        except CompleteTaskWithOutput as early:
            output = early.output
        except asyncio.CancelledError:
            if self.cancel_reason is None:
                raise
            swallow_cancellation()
            return await self._after_cancel()
        except Exception as error:
            if self.cancel_reason is not None:
                return await self._after_cancel()
            return await self._after_failure(await self.decide(error))
        if self.cancel_reason is not None:
            return await self._after_cancel()
        return await self._after_success(output)

    async def _run(self) -> Any:
        fn = self.task.run
        args = (self.payload, self.ctx) if self.task.takes_context else (self.payload,)
        assert self.run_done is not None
        done = self.run_done
        try:
            if self.task.is_async:
                # Awaited in the attempt's own task (no task of its own: cheaper); stopping
                # the attempt cancels that task, which interrupts `run` where it awaits.
                output = await fn(*args)
            else:
                context = contextvars.copy_context()
                loop = asyncio.get_running_loop()
                self.in_sync_run = True
                self.run_task = loop.run_in_executor(self.threads, lambda: context.run(fn, *args))
                output = await self.run_task
        except asyncio.CancelledError:
            if not done.done():
                done.set_exception(
                    TaskRunCancelledError(f"run of task {self.task.id!r} was stopped")
                )
                done.exception()
            raise
        except CompleteTaskWithOutput as early:
            if not done.done():
                done.set_result(early.output)
            raise
        except BaseException as error:
            if not done.done():
                done.set_exception(error)
                done.exception()  # retrieved: awaiting run_promise is optional
            raise
        finally:
            self.in_sync_run = False
        if not done.done():
            done.set_result(output)
        return output

    async def _after_success(self, output: Any) -> AttemptResult:
        try:
            data = orjson.dumps(output)
        except TypeError as error:
            problem = TypeError(
                f"task {self.task.id!r} returned a value of type {type(output).__name__} that "
                f"is not JSON serialisable ({error})"
            )
            decision = await self.decide(problem)
            decision.code = "TASK_OUTPUT_ERROR"
            return await self._after_failure(decision)
        limit = self.config.output_limit_bytes
        if len(data) > limit:
            too_large = ValueError(
                f"task {self.task.id!r} returned {len(data):,} bytes of output, over the "
                f"limit of {limit:,} bytes"
            )
            return await self._after_failure(
                Decision(too_large, None, code="TASK_OUTPUT_TOO_LARGE")
            )
        await self.call_all("on_success", ignore=True, output=output)
        result = CompletionResult(ok=True, data=output)
        await self.call_all("on_complete", ignore=True, result=result)
        cleanup_failure = await self._cleanup()
        if cleanup_failure is not None:
            return failed_outcome(cleanup_failure)
        return succeeded(data)

    async def _after_failure(self, decision: Decision) -> AttemptResult:
        final = not decision.retries
        # on_failure is for user-code failures only, not CRASHED/SYSTEM_FAILURE/CANCELED.
        if final and decision.status is RunStatus.FAILED:
            await self.call_all("on_failure", ignore=True, error=decision.error)
        if final:
            result = CompletionResult(ok=False, error=decision.error)
            await self.call_all("on_complete", ignore=True, result=result)
        await self._cleanup()  # the attempt failed already; a cleanup error is only recorded
        return failed_outcome(decision)

    async def _after_cancel(self) -> AttemptResult:
        if self.stop_status == "CANCELED":  # a timed-out attempt runs no more hooks
            await self._cleanup()
        return self._cancelled()

    async def _cleanup(self) -> Decision | None:
        hook = self.task.hooks.get("cleanup")
        if hook is None:
            return None
        try:
            await self.call(hook, self.arguments())
        except Exception as error:
            return await self.decide(error)
        return None

    # -- failures -------------------------------------------------------------------
    def policy(self) -> Retry:
        """The retry policy locked on the run."""
        policy = Retry.from_json(orjson.loads(memoryview(self.claimed.retry)))
        return policy.with_max_attempts(self.claimed.max_attempts)

    async def decide(self, error: BaseException) -> Decision:
        """Whether and when the next attempt runs, asking `catch_error` hooks."""
        if isinstance(error, AbortTaskRunError):
            return Decision(error, None)
        now = now_ms()
        policy = self.policy()
        if isinstance(error, OutOfMemoryError | MemoryError):
            bigger = oom_retry_machine(policy, self.claimed.machine, self.attempt)
            return Decision(
                error,
                None if bigger is None else now,
                RunStatus.CRASHED,
                "CRASHED",
                "TASK_PROCESS_OOM",
                machine=bigger,
            )
        default_at = next_attempt_at(now, self.attempt, policy, random.random)
        available = {
            "payload": self.payload,
            "error": error,
            "ctx": self.ctx,
            "retry_at": None
            if default_at is None
            else datetime.fromtimestamp(default_at / 1000, tz=UTC),
            "retry_delay_ms": None if default_at is None else default_at - now,
            "task": self.task.id,
        }
        for hook in self.hooks("catch_error"):
            try:
                answer = await self.call(hook, available)
            except Exception as hook_error:
                crashed = TaskloomError(
                    f"catch_error hook {hook.label!r} of task {self.task.id!r} raised "
                    f"{type(hook_error).__name__}: {hook_error} (while handling "
                    f"{type(error).__name__}: {error})"
                )
                crashed.__cause__ = hook_error
                return Decision(crashed, None, RunStatus.CRASHED, "CRASHED", "HANDLE_ERROR_ERROR")
            if answer is None:
                continue
            try:
                return interpret_answer(
                    answer,
                    error,
                    where=f"catch_error hook {hook.label!r} of task {self.task.id!r}",
                    attempt=self.attempt,
                    policy=policy,
                    now=now,
                )
            except InvalidOptionError as bad:
                return Decision(bad, None, RunStatus.CRASHED, "CRASHED", "HANDLE_ERROR_ERROR")
        if default_at is None:
            return Decision(error, None)
        return Decision(error, None, delay_ms=default_at - now)  # from the attempt's end

    def _cancelled(self) -> AttemptResult:
        reason = self.cancel_reason or "cancelled"
        if self.stop_status == "TIMED_OUT":
            return failed_outcome(
                Decision(
                    MaxDurationExceededError(reason),
                    None,
                    RunStatus.TIMED_OUT,
                    "TIMED_OUT",
                    "MAX_DURATION_EXCEEDED",
                )
            )
        return failed_outcome(
            Decision(
                TaskRunCancelledError(reason),
                None,
                RunStatus.CANCELED,
                "CANCELED",
                "TASK_RUN_CANCELLED",
            )
        )

    # -- cancellation ---------------------------------------------------------------
    def cancel(self, reason: str, grace_seconds: float) -> None:
        """Cancel the attempt: fire the signal, give `on_cancel` hooks up to the grace
        period while `run` keeps going, then stop it (at once without hooks)."""
        if self.cancel_reason is not None:
            return
        self.cancel_reason = reason
        self.signal.abort(reason)
        hooks = self.hooks("on_cancel")
        if not hooks or self.finishing:
            self._stop()
            return
        # In the attempt's context: the hooks see its locals, and their logs are its logs.
        self.cancel_task = asyncio.get_running_loop().create_task(
            self._cancel_hooks(hooks, grace_seconds), context=self.attempt_context
        )

    async def _cancel_hooks(self, hooks: list[BoundHook], grace_seconds: float) -> None:
        assert self.run_done is not None
        available = self.arguments(run_promise=RunPromise(self.run_done))

        async def call_each() -> None:
            for hook in hooks:
                try:
                    await self.call(hook, available)
                except Exception:
                    continue

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(call_each(), grace_seconds)
        self._stop()

    def time_out(self) -> None:
        """The attempt used its max_duration of compute time: fire the signal and stop it;
        the run ends TIMED_OUT, is not retried, and runs no success/failure hooks."""
        if self.cancel_reason is not None:
            return
        seconds = self.claimed.max_duration
        self.stop_status = "TIMED_OUT"
        self.cancel_reason = (
            f"max_duration exceeded: task {self.task.id!r} used its {seconds} s of compute "
            f"time in attempt {self.attempt}"
        )
        self.signal.abort(self.cancel_reason)
        self._stop()

    def _stop(self) -> None:
        """Stop whatever the attempt is doing now."""
        if self.finishing:
            return
        if self.run_task is not None and not self.run_task.done():
            if self.in_sync_run:
                # A thread cannot be interrupted: stop the process.
                self.request_kill(self.stop_status)
                return
            self.run_task.cancel()
            return
        if self.body_task is not None and not self.body_task.done():
            self.body_task.cancel()


_GLOBAL_KINDS = frozenset(GLOBAL_HOOK_NAMES)
