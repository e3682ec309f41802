"""The supervisor's handle on one executor child process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from typing import Any

from ..config import Config
from .ipc import FROM_EXECUTOR, SupervisorWriter, read_frame
from .messages import Exit, Fatal, Ready, SupervisorMessage

READY_TIMEOUT_SECONDS = 120.0


@dataclass(slots=True)
class ExecutorFailure:
    """Why an executor could not start: a task module failed to import, or it died."""

    module: str | None
    path: str | None
    details: str


def executor_environment(config: Config) -> dict[str, str]:
    """The environment of an executor: the supervisor's, plus its effective settings."""
    env = dict(os.environ)
    env["TASKLOOM_PROJECT_ROOT"] = str(config.project_root)
    env["TASKLOOM_DATABASE_URL"] = config.database_url
    env["TASKLOOM_DIRS"] = ",".join(config.dirs)
    env["TASKLOOM_ENVIRONMENT"] = config.environment
    env["TASKLOOM_MACHINE"] = config.machine
    env["TASKLOOM_SYNCHRONOUS"] = config.sqlite_synchronous
    env["TASKLOOM_CONCURRENCY"] = str(config.worker_concurrency)
    if config.max_duration is not None:
        env["TASKLOOM_MAX_DURATION"] = str(config.max_duration)
    if config.ttl is not None:
        env["TASKLOOM_TTL"] = str(config.ttl)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


@dataclass(eq=False)
class ExecutorProcess:
    """A running executor: its process, its message channel and the runs it holds."""

    index: int
    process: asyncio.subprocess.Process
    reader: asyncio.StreamReader
    writer: SupervisorWriter
    in_flight: set[str] = field(default_factory=set)
    parked: set[str] = field(default_factory=set)  # waiting runs whose coroutines it holds
    specs: list[str] = field(default_factory=list)
    queues: list[dict[str, Any]] = field(default_factory=list)
    retiring: bool = False
    machine: str = "small-1x"
    isolated: bool = False
    memory_limit: int | None = None
    over_memory: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def send(self, message: SupervisorMessage) -> None:
        """Queue a message to the executor (sent with the others of this loop iteration)."""
        self.writer.send(message)

    async def wait_ready(self) -> ExecutorFailure | None:
        """Wait for `ready`; return a failure if a module failed to import or it died."""
        try:
            messages = await asyncio.wait_for(
                read_frame(self.reader, FROM_EXECUTOR), READY_TIMEOUT_SECONDS
            )
        except TimeoutError:
            return ExecutorFailure(None, None, "executor did not become ready in time")
        if messages is None:
            code = await self.process.wait()
            return ExecutorFailure(None, None, f"executor exited with code {code} at start")
        for message in messages:
            if isinstance(message, Fatal):
                return ExecutorFailure(message.module, message.path, message.details)
            if isinstance(message, Ready):
                self.specs = list(message.specs)
                self.queues = list(message.queues)
                return None
        return ExecutorFailure(None, None, f"unexpected first message {messages!r}")

    async def stop(self, timeout: float = 5.0) -> None:
        """Ask the executor to exit; kill it if it does not within `timeout`."""
        if self.process.returncode is not None:
            return
        self.writer.send(Exit())
        with contextlib.suppress(Exception):
            await self.writer.drain()
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.kill()
            await self.process.wait()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGKILL)


def describe_exit(code: int | None) -> str:
    """'exited with code 3' or 'was killed by SIGKILL'."""
    if code is None:
        return "is still running"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with code {code}"


async def spawn_executor(
    index: int, config: Config, *, machine: str | None = None, cpus: list[int] | None = None
) -> ExecutorProcess:
    """Start an executor process connected by a socket pair (pinned to `cpus` if given)."""
    env = executor_environment(config)
    if cpus:
        env["TASKLOOM_EXECUTOR_CPUS"] = ",".join(str(c) for c in cpus)
    parent, child = socket.socketpair()
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "taskloom.worker.executor",
            "--fd",
            str(child.fileno()),
            pass_fds=(child.fileno(),),
            env=env,
            cwd=str(config.project_root),
        )
    finally:
        child.close()
    reader, raw_writer = await asyncio.open_connection(sock=parent, limit=1 << 20)
    executor = ExecutorProcess(index, process, reader, SupervisorWriter(raw_writer))
    executor.machine = machine or config.machine
    return executor
