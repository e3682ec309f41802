"""An executor: a warm child process of a worker that imports the task modules once and
runs attempts. Async attempts share its event loop; sync attempts run in its threads.

Started as `python -m taskloom.worker.executor --fd N`, where N is its end of a socket
pair with the supervisor. Messages in (see `messages`): start, resume, cancel, abandon,
exit. Messages out: ready (or fatal), started, events, wait, kill, done.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal as os_signal
import socket
import sys
from concurrent.futures import ThreadPoolExecutor

import msgspec

from ..clock import now_ms
from ..config import get_config
from ..engine.engine import Engine
from ..engine.factory import open_engine
from ..engine.records import RecordedWait
from ..runtime import registry
from ..runtime.capture import install_capture
from ..runtime.context import CancelSignal
from ..runtime.metadata import flush, has_pending
from ..runtime.queues import declared_queues, is_declared
from ..runtime.report import AttemptError, AttemptResult, Event, failed
from ..runtime.runner import AttemptRunner, AttemptSink, AttemptState
from .discovery import TaskImportError, import_tasks
from .ipc import FROM_SUPERVISOR, ExecutorWriter, read_frame
from .messages import (
    AbandonAttempt,
    AttemptDone,
    AttemptEvents,
    AttemptStarted,
    CancelAttempt,
    Exit,
    Fatal,
    KillRequest,
    Ready,
    ResumeAttempt,
    StartAttempt,
    Waiting,
)

EVENT_FLUSH_SECONDS = 0.2
METADATA_FLUSH_EVERY = 4  # event flushes: metadata is written every 0.8 s


class Executor:
    """The executor's event loop side: receives starts, runs attempts, reports outcomes."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: ExecutorWriter, engine: Engine | None = None
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.config = get_config()
        self.threads = ThreadPoolExecutor(
            max_workers=max(4, self.config.worker_concurrency), thread_name_prefix="attempt"
        )
        self.running: dict[str, AttemptState] = {}
        # One engine (one store connection, opened on first use) for every attempt of this
        # process: their waits, child runs, tokens and metadata go through it.
        if engine is None:
            engine = open_engine(
                self.config, local_specs=registry.spec_lookup(self.config), local_queues=is_declared
            )
        self.engine = engine

    async def serve(self) -> None:
        """Handle the supervisor's messages until it says exit or the channel closes."""
        flusher = asyncio.create_task(self._flush_events_periodically())
        try:
            while True:
                messages = await read_frame(self.reader, FROM_SUPERVISOR)
                if messages is None:
                    return
                for message in messages:
                    match message:
                        case StartAttempt():
                            self._start(message)
                        case AbandonAttempt():
                            self._abandon(message.run_id, message.reason)
                        case ResumeAttempt():
                            self._resume(message.run_id, message.attempt, message.waits)
                        case CancelAttempt():
                            self._cancel(message.run_id, message.reason)
                        case Exit():
                            return
        finally:
            flusher.cancel()

    def _start(self, start: StartAttempt) -> None:
        run = start.run
        state = AttemptState(
            run_id=run.id,
            attempt=run.attempt,
            task=registry.get(run.task_id),
            signal=CancelSignal(),
            sink=AttemptSink(run.id, run.attempt),
            started_at=now_ms(),
        )
        self.running[run.id] = state
        self.writer.send(AttemptStarted(run.id, state.attempt, state.started_at))
        state.asyncio_task = asyncio.create_task(self._run(state, start))

    async def _run(self, state: AttemptState, start: StartAttempt) -> AttemptResult:
        if state.task is None:
            known = ", ".join(t.id for t in registry.all_tasks())
            problem = LookupError(
                f"task {start.run.task_id!r} is not defined in this worker's task modules "
                f"(defined here: {known or 'none'})"
            )
            result = failed(
                AttemptError.of(problem, code="COULD_NOT_FIND_TASK"),
                retry_at=None,
                status="SYSTEM_FAILURE",
                attempt_status="FAILED",
            )
        else:
            runner = AttemptRunner(
                state.task,
                start.run,
                start.environment,
                state,
                self.config,
                self.threads,
                request_kill=lambda status: self._request_kill(state, status),
                suspend=lambda seq: self.writer.send(Waiting(state.run_id, state.attempt, seq)),
                engine=self.engine,
            )
            state.runner = runner
            try:
                result = await runner.run()
            except asyncio.CancelledError:
                result = failed(
                    AttemptError(
                        "TaskRunCancelledError",
                        state.cancel_reason or "cancelled",
                        code="TASK_RUN_CANCELLED",
                    ),
                    retry_at=None,
                    status="CANCELED",
                    attempt_status="CANCELED",
                )
            except BaseException as error:  # the runner itself broke: never lose the attempt
                result = failed(
                    AttemptError.of(error, code="TASK_EXECUTOR_ERROR"),
                    retry_at=None,
                    status="SYSTEM_FAILURE",
                    attempt_status="FAILED",
                )
        self.running.pop(state.run_id, None)
        finished_at = now_ms()
        await self._flush_metadata(state)
        retry_at = result.retry_at
        if result.retry_delay_ms is not None:  # a delay counts from the attempt's end
            retry_at = finished_at + result.retry_delay_ms
        result = msgspec.structs.replace(
            result,
            retry_at=retry_at,
            retry_delay_ms=None,
            started_at=state.started_at,
            finished_at=finished_at,
            events=state.sink.take(),
        )
        self.writer.send(AttemptDone(state.run_id, state.attempt, result))
        return result

    async def _flush_metadata(self, state: AttemptState) -> None:
        """Write the attempt's metadata and tag changes (off the event loop)."""
        runtime = None if state.runner is None else state.runner.runtime
        if runtime is None or not has_pending(runtime):
            return
        try:
            refused = await asyncio.to_thread(flush, runtime, self.engine)
        except Exception as error:  # the run goes on; the failure is on its log
            problem = f"metadata not saved: {error}"
        else:
            if not refused:
                return
            problem = (
                f"metadata changes to run(s) {', '.join(refused)} were not applied: they "
                "would take the metadata over 256 KB"
            )
        state.sink.emit("log", {"level": "error", "message": problem, "attributes": {}})

    def _abandon(self, run_id: str, reason: str) -> None:
        """Drop an attempt without hooks: its run continues on another worker (released on
        shutdown, or rescued after this worker lost its lease)."""
        state = self.running.get(run_id)
        if state is None:
            return
        state.signal.abort(reason)
        if state.asyncio_task is not None and (state.task is None or state.task.is_async):
            state.asyncio_task.cancel()
        # A sync attempt's thread cannot be stopped: it runs on, its outcome is refused.

    def _resume(self, run_id: str, attempt: int, waits: tuple[RecordedWait, ...]) -> None:
        """Completed waits of a parked attempt: its coroutine continues."""
        state = self.running.get(run_id)
        if state is None or state.attempt != attempt or state.runner is None:
            return
        runtime = state.runner.runtime
        if runtime is not None:
            runtime.deliver(waits)

    def _cancel(self, run_id: str, reason: str) -> None:
        state = self.running.get(run_id)
        if state is None:
            return
        state.cancel_reason = reason
        if state.runner is not None and state.runner.lifecycle is not None:
            state.runner.cancel(reason)
        else:  # not begun: stop it where it is
            state.signal.abort(reason)
            if state.asyncio_task is not None:
                state.asyncio_task.cancel()

    def _request_kill(self, state: AttemptState, status: str) -> None:
        """A cancelled sync attempt cannot be interrupted in its thread: ask the supervisor
        to stop this process. The attempt is recorded CANCELED; the other attempts this
        executor holds go back to their queues without using an attempt."""
        self._send_events(state)
        reason = state.cancel_reason or ""
        if state.runner is not None and state.runner.lifecycle is not None:
            reason = state.runner.lifecycle.cancel_reason or reason
        self.writer.send(KillRequest(state.run_id, state.attempt, reason, status))

    def _send_events(self, state: AttemptState) -> None:
        events: list[Event] = state.sink.take()
        if events:
            self.writer.send(AttemptEvents(state.run_id, state.attempt, events))

    async def _flush_events_periodically(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(EVENT_FLUSH_SECONDS)
            ticks += 1
            if ticks % METADATA_FLUSH_EVERY == 0:
                for state in list(self.running.values()):
                    await self._flush_metadata(state)
            for state in list(self.running.values()):
                self._send_events(state)


async def _main(fd: int) -> int:
    sock = socket.socket(fileno=fd)
    reader, raw_writer = await asyncio.open_connection(sock=sock)
    writer = ExecutorWriter(raw_writer)
    config = get_config()
    try:
        modules = import_tasks(config)
    except TaskImportError as error:
        writer.send(Fatal(error.module, str(error.path), error.details))
        await writer.drain()
        return 3
    specs = [task.spec_for(config).to_json().decode() for task in registry.all_tasks()]
    queues = [
        {"name": q.name, "limit": q.concurrency_limit, "total": q.total_concurrency_limit}
        for q in declared_queues()
    ]
    writer.send(Ready(os.getpid(), modules, specs, queues))
    executor = Executor(reader, writer)
    try:
        await executor.serve()
    finally:
        await writer.drain()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of an executor process."""
    parser = argparse.ArgumentParser(prog="taskloom-executor")
    parser.add_argument("--fd", type=int, required=True)
    args = parser.parse_args(argv)
    # The supervisor decides when we stop: ignore the terminal's Ctrl-C, and a SIGTERM
    # sent to the whole process group (systemd, job control) is the supervisor's to drain.
    # An orphaned executor still exits: its channel to the supervisor closes.
    os_signal.signal(os_signal.SIGINT, os_signal.SIG_IGN)
    os_signal.signal(os_signal.SIGTERM, os_signal.SIG_IGN)
    cpus = os.environ.get("TASKLOOM_EXECUTOR_CPUS")
    if cpus and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})  # the machine's CPU share
    install_capture()
    code = asyncio.run(_main(args.fd))
    sys.stdout.flush()
    os._exit(code)  # do not wait for abandoned sync attempt threads


if __name__ == "__main__":
    main()
