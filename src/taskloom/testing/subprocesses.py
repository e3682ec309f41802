"""`WorkerProcess`: a real worker (supervisor and executors) started in its own process
group for a test, and the operating-system lookups that watch its processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from .conditions import WaitTimeoutError, WorkerExitedError, wait_for

if TYPE_CHECKING:
    from .project import TaskloomProject

# Started as `python -c WORKER_SCRIPT READY_FILE CONCURRENCY EXECUTORS PRELUDE` (0 = from
# config). The ready file is written by the supervisor once its executors imported the
# task modules and it registered itself, i.e. when it can claim runs.
WORKER_SCRIPT = """\
import json, os, sys

if sys.argv[4]:
    exec(compile(sys.argv[4], "<worker prelude>", "exec"), {"__name__": "__prelude__"})

from taskloom.config import get_config
from taskloom.engine.factory import open_engine
from taskloom.services import maintenance_host
from taskloom.worker.supervisor import run_worker

ready_path, concurrency, executors = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def on_ready(supervisor):
    info = {
        "pid": os.getpid(),
        "worker_id": supervisor.worker_id,
        "executors": [executor.pid for executor in supervisor.executors],
    }
    with open(ready_path + ".tmp", "w") as file:
        json.dump(info, file)
    os.replace(ready_path + ".tmp", ready_path)

sys.exit(
    run_worker(
        open_engine(get_config()),
        services=maintenance_host,
        concurrency=concurrency or None,
        executors=executors or None,
        on_ready=on_ready,
    )
)
"""

EXECUTOR_MODULE = "taskloom.worker.executor"


def _proc_table() -> list[tuple[int, str, int, int]]:
    """(pid, state, parent pid, process group) of every process, from /proc."""
    table: list[tuple[int, str, int, int]] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as file:
                stat = file.read().decode(errors="replace")
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 3:
            table.append((int(entry.name), fields[0], int(fields[1]), int(fields[2])))
    return table


def _is_live(state: str) -> bool:
    return state not in ("Z", "X", "x")


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            return file.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _ps_children(pid: int) -> list[int]:
    """Children running the executor module, from ``ps`` (where there is no /proc)."""
    listing = subprocess.run(
        ["ps", "-A", "-o", "pid=,ppid=,stat=,command="],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = []
    for line in listing.splitlines():
        parts = line.split(None, 3)
        if (
            len(parts) == 4
            and int(parts[1]) == pid
            and not parts[2].startswith("Z")
            and EXECUTOR_MODULE in parts[3]
        ):
            found.append(int(parts[0]))
    return found


class WorkerProcess:
    """A real worker (supervisor and executors) in its own process group, for tests.

    Its stdout and stderr go to files (read them with `output`). Use it as a context
    manager, or call `close`: the whole process group, executors included, is killed
    on the way out whatever happened, so no worker outlives its test.

    `concurrency` and `executors` default to the project's configuration; `env` is
    added to the project's environment (`TaskloomProject.env`). `prelude` is Python
    source run in the supervisor process before the worker starts: a place for fault
    injection (wrap a store method to stall or fail at a chosen moment).

    >>> with project.worker(concurrency=2, executors=1) as worker:  # doctest: +SKIP
    ...     worker.executor_pids()
    [12345]
    """

    def __init__(
        self,
        project: TaskloomProject,
        *,
        concurrency: int | None = None,
        executors: int | None = None,
        env: Mapping[str, str] | None = None,
        prelude: str | None = None,
    ) -> None:
        for name, value in (("concurrency", concurrency), ("executors", executors)):
            if value is not None and (isinstance(value, bool) or value < 1):
                raise ValueError(f"{name} must be an integer >= 1 or None, got {value!r}")
        self.project = project
        self.concurrency = concurrency
        self.executors = executors
        self.extra_env = dict(env or {})
        self.prelude = textwrap.dedent(prelude or "")
        self.directory = project._next_worker_dir()
        self.ready_path = self.directory / "ready.json"
        self.stdout_path = self.directory / "stdout.log"
        self.stderr_path = self.directory / "stderr.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._ready: dict[str, Any] | None = None

    # -- starting -------------------------------------------------------------------
    @property
    def command(self) -> list[str]:
        """The command line that starts the worker."""
        return [
            sys.executable,
            "-c",
            WORKER_SCRIPT,
            str(self.ready_path),
            str(self.concurrency or 0),
            str(self.executors or 0),
            self.prelude,
        ]

    def start(self) -> Self:
        """Start the worker process (returns at once; see `wait_ready`)."""
        if self._process is not None:
            raise RuntimeError(f"worker {self.directory.name} was already started")
        with contextlib.suppress(FileNotFoundError):
            self.ready_path.unlink()
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self._process = subprocess.Popen(
                self.command,
                cwd=self.project.root,
                env=self.project.env(self.extra_env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,  # its own process group, so close() reaches executors
            )
        return self

    @property
    def process(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError("the worker was not started; call start() first")
        return self._process

    @property
    def pid(self) -> int:
        """The supervisor's process id."""
        return self.process.pid

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until the worker can claim runs (executors up, worker registered).

        Raises `WorkerExitedError` with its output if it exits first, and
        `WaitTimeoutError` after `timeout` seconds.
        """

        def ready() -> bool:
            if self.ready_path.exists():
                return True
            if self.process.poll() is not None:
                raise WorkerExitedError(
                    f"worker exited with code {self.process.returncode} before it was "
                    f"ready:\n{self.output()}"
                )
            return False

        wait_for(
            ready,
            timeout,
            interval=0.02,
            message=lambda: f"worker pid {self.pid} not ready; output so far:\n{self.output()}",
        )
        self._ready = json.loads(self.ready_path.read_text(encoding="utf-8"))

    @property
    def worker_id(self) -> str:
        """The id the worker registered under (as in attempts' ``worker_id``) once ready."""
        if self._ready is None:
            raise RuntimeError("the worker is not ready yet; call wait_ready() first")
        return str(self._ready["worker_id"])

    # -- looking at it --------------------------------------------------------------
    def executor_pids(self) -> list[int]:
        """The process ids of the worker's live executor children, sorted.

        Read from the operating system (``/proc``, or ``ps`` without it), so it shows
        replacements of killed executors and never a dead (zombie) one.
        """
        if not self.is_running():
            return []
        if os.path.isdir("/proc/self"):
            pids = [
                pid
                for pid, state, parent, _ in _proc_table()
                if parent == self.pid and _is_live(state) and EXECUTOR_MODULE in _cmdline(pid)
            ]
        else:
            pids = _ps_children(self.pid)
        return sorted(pids)

    def group_pids(self) -> list[int]:
        """Live processes of the worker's process group, sorted: the supervisor, its
        executors and anything they started (orphans included). Empty after `close`."""
        if self._process is None:
            return []
        group = self._process.pid
        if os.path.isdir("/proc/self"):
            return sorted(
                pid for pid, state, _, pgrp in _proc_table() if pgrp == group and _is_live(state)
            )
        try:
            os.killpg(group, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [group]  # without /proc: alive, members unknown

    def is_running(self) -> bool:
        """True while the supervisor process has not exited."""
        return self._process is not None and self._process.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit code once it exited (negative: killed by that signal), else None."""
        return self.process.poll()

    def stdout(self) -> str:
        """Everything the worker wrote to stdout so far."""
        return self._read(self.stdout_path)

    def stderr(self) -> str:
        """Everything the worker wrote to stderr so far (its log lines go here)."""
        return self._read(self.stderr_path)

    def output(self) -> str:
        """stdout then stderr, labelled, for failure messages."""
        return f"--- stdout ---\n{self.stdout()}--- stderr ---\n{self.stderr()}"

    @staticmethod
    def _read(path: Path) -> str:
        try:
            return path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    # -- stopping -------------------------------------------------------------------
    def wait(self, timeout: float = 30.0) -> int:
        """Wait for the supervisor to exit; return its exit code (`WaitTimeoutError` if not)."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise WaitTimeoutError(
                f"worker pid {self.pid} still running after {timeout} s:\n{self.output()}"
            ) from None

    def terminate(self, timeout: float = 30.0) -> int:
        """Send SIGTERM (a graceful drain) and wait up to `timeout` s; return the exit code.

        A worker that does not exit in time is killed, with its executors, and
        `WaitTimeoutError` is raised.
        """
        self.signal(signal.SIGTERM)
        try:
            return self.wait(timeout)
        except WaitTimeoutError:
            self.kill(group=True)
            raise

    def kill(self, *, group: bool = False) -> None:
        """SIGKILL the supervisor (its executors are then orphaned, as after a crash of
        the supervisor alone), or with `group` the whole process group at once (as when
        the machine dies). Returns once the supervisor is dead."""
        if group:
            self._kill_group()
        else:
            self.signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)

    def signal(self, sig: int, *, group: bool = False) -> None:
        """Send `sig` to the supervisor, or with `group` to its whole process group (as a
        service manager such as systemd does). A no-op once the supervisor exited."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(self.process.pid, sig)
            else:
                self.process.send_signal(sig)

    def _kill_group(self) -> None:
        if self._process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, signal.SIGKILL)

    def close(self) -> None:
        """Kill whatever is left of the process group, reap the supervisor and wait until
        no process of the group is alive. Idempotent."""
        if self._process is None:
            return
        self._kill_group()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(10)
        with contextlib.suppress(WaitTimeoutError):
            wait_for(lambda: not self.group_pids(), timeout=10, interval=0.005)

    def __enter__(self) -> Self:
        if self._process is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "not started" if self._process is None else f"pid {self._process.pid}"
        return f"<WorkerProcess {self.directory.name} {state} of {self.project.root}>"
