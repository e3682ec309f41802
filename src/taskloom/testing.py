"""Helpers for testing tasks against real workers: a throwaway project, worker
subprocesses and condition waits.

Everything here runs the real thing: task modules in a directory, a SQLite file, a
`taskloom worker` in its own process with its executor children. Nothing is mocked,
so what passes here behaves the same in production. Typical use in a pytest test::

    from taskloom import tasks
    from taskloom.testing import TaskloomProject, wait_for

    def test_hello(tmp_path):
        project = TaskloomProject(tmp_path)
        project.write_task_module("hello", '''
            from taskloom import task

            @task(id="hello")
            def hello(payload):
                return {"echo": payload}
        ''')
        project.write_config(worker={"lease_seconds": 2, "shutdown_grace_seconds": 2})
        with project.configured(), project.worker(concurrency=4) as worker:
            handle = tasks.trigger("hello", 42)
            assert handle.result(timeout=10) == {"echo": 42}
            assert worker.terminate(timeout=10) == 0

Wait on conditions with `wait_for` (a deadline and a short polling interval), never
with fixed sleeps: the test is then as fast as the system and still fails, with a
message, when the condition never holds.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from .config import CONFIG_FILE, Config, load_config
from .sdk import client

__all__ = [
    "TaskloomProject",
    "WaitTimeoutError",
    "WorkerExitedError",
    "WorkerProcess",
    "reset_client",
    "wait_for",
]

T = TypeVar("T")

Message = str | Callable[[], str] | None
"""A failure message, or a function that builds one when the wait fails (to include
state such as a worker's output, read only when needed)."""


class WaitTimeoutError(AssertionError):
    """A condition given to `wait_for` (or a worker wait) did not hold before its deadline.

    An `AssertionError`, so pytest reports it as a test failure with its message.
    """


class WorkerExitedError(AssertionError):
    """A worker process exited while the test expected it to be running (or starting)."""


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float = 10.0,
    interval: float = 0.01,
    message: Message = None,
) -> T:
    """Call `predicate` until it returns a truthy value, and return that value.

    Raises `WaitTimeoutError` after `timeout` seconds, with `message` (a string, or a
    function called then to build it) and the last value seen. Exceptions raised by
    `predicate` propagate at once. The predicate is always called at least once, and
    once more at the deadline, so a condition that holds is never reported missed.

    >>> wait_for(lambda: 2 + 2, timeout=1)
    4
    """
    if timeout < 0 or not math.isfinite(timeout):
        raise ValueError(f"timeout must be a finite number of seconds >= 0, got {timeout!r}")
    if interval <= 0:
        raise ValueError(f"interval must be > 0 seconds, got {interval!r}")
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(interval, left))
    text = message() if callable(message) else message
    name = getattr(predicate, "__name__", repr(predicate))
    detail = f"{text}: " if text else ""
    raise WaitTimeoutError(
        f"{detail}condition {name} did not hold within {timeout} s (last value {value!r})"
    )


def reset_client() -> None:
    """Forget this process's configuration and close its client (`taskloom.sdk.client.reset`:
    the local client's store connection and wake-up socket), so the next call builds a
    new one from the configuration."""
    client.reset()


# --- the project ----------------------------------------------------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _toml_value(value: object, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: TOML cannot hold {value!r}")
        return repr(value)
    if isinstance(value, str | os.PathLike):
        return json.dumps(os.fspath(value))  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item, where) for item in value) + "]"
    if isinstance(value, Mapping):
        items = ", ".join(
            f"{_toml_key(str(k))} = {_toml_value(v, f'{where}.{k}')}" for k, v in value.items()
        )
        return "{ " + items + " }" if items else "{}"
    raise TypeError(f"{where}: cannot write a {type(value).__name__} to TOML: {value!r}")


def _toml_document(keys: Mapping[str, object]) -> str:
    """Top-level scalars first, then one ``[table]`` per dict value."""
    lines = [
        f"{_toml_key(k)} = {_toml_value(v, k)}"
        for k, v in keys.items()
        if not isinstance(v, Mapping)
    ]
    for name, table in keys.items():
        if isinstance(table, Mapping):
            lines.append("")
            lines.append(f"[{_toml_key(name)}]")
            lines.extend(
                f"{_toml_key(str(k))} = {_toml_value(v, f'{name}.{k}')}" for k, v in table.items()
            )
    return "\n".join(lines) + "\n"


class TaskloomProject:
    """A project directory for tests: task modules, ``taskloom.toml`` and a SQLite file.

    `root` is created if needed (a pytest ``tmp_path`` is ideal). The config file is
    written at once with the task directories and the absolute database URL, so a
    worker started anywhere uses this project's database.

    >>> project = TaskloomProject(tmp_path)  # doctest: +SKIP
    >>> project.write_config(worker={"lease_seconds": 2})  # doctest: +SKIP
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        dirs: Sequence[str] = ("trigger",),
        database: str = "taskloom.db",
    ) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.dirs = tuple(dirs)
        if not self.dirs:
            raise ValueError("a project needs at least one task directory")
        for directory in self.dirs:
            (self.root / directory).mkdir(parents=True, exist_ok=True)
        self.database_path = self.root / ".taskloom" / database
        """The SQLite file of this project."""
        self._config: dict[str, object] = {}
        self._workers = 0
        self.write_config()

    @property
    def database_url(self) -> str:
        """``sqlite:////absolute/path/to/taskloom.db``."""
        return f"sqlite:///{self.database_path}"

    @property
    def config_path(self) -> Path:
        """The project's ``taskloom.toml``."""
        return self.root / CONFIG_FILE

    def write_task_module(self, name: str, source: str, *, directory: str | None = None) -> Path:
        """Write ``<directory>/<name>.py`` (first task directory by default); return its path.

        `source` is dedented, so it can be an indented triple-quoted string. `name` may
        contain slashes for sub-packages (``"billing/invoices"``). Write ``"init"`` for
        the directory's ``init.py``, imported before every other module.
        """
        if not name or name.endswith(".py") or name.startswith("/"):
            raise ValueError(f"module name must be like 'billing' or 'sub/billing', got {name!r}")
        path = self.root / (directory or self.dirs[0]) / f"{name}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip("\n"), encoding="utf-8")
        return path

    def write_config(self, **keys: object) -> Path:
        """Merge `keys` into ``taskloom.toml`` and rewrite it; return its path.

        Keys are the file's keys; a dict value is a table whose keys are merged with
        earlier calls' (``worker={"lease_seconds": 2}``); a dict inside a table is
        written as an inline table (``retries={"default": {"max_attempts": 1}}``).
        ``dirs`` and ``database_url`` default to this project's. The file is
        validated by taskloom's own loader, so a bad key fails here (and the file is
        left as it was), not in a worker.
        """
        merged = dict(self._config)
        for key, value in keys.items():
            current = merged.get(key)
            if isinstance(value, Mapping) and isinstance(current, Mapping):
                merged[key] = {**current, **value}
            elif isinstance(value, Mapping):
                merged[key] = dict(value)
            else:
                merged[key] = value
        document = {"dirs": list(self.dirs), "database_url": self.database_url, **merged}
        path = self.config_path
        previous = path.read_text(encoding="utf-8") if path.exists() else None
        path.write_text(_toml_document(document), encoding="utf-8")
        try:
            self.load_config()
        except BaseException:
            if previous is None:
                path.unlink()
            else:
                path.write_text(previous, encoding="utf-8")
            raise
        self._config = merged
        return path

    def load_config(self) -> Config:
        """The configuration a worker of this project sees (files and `env()`, no overrides)."""
        return load_config(self.root, self.env())

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """An environment for processes of this project: this process's, without its
        ``TASKLOOM_*`` variables, plus the project root, its database and `extra`."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASKLOOM_")}
        env["TASKLOOM_PROJECT_ROOT"] = str(self.root)
        env["TASKLOOM_DATABASE_URL"] = self.database_url
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.update(extra or {})
        return env

    def configure(self, **overrides: object) -> Config:
        """Point this process (triggers, `runs`, ...) at the project; forget earlier config.

        `overrides` are `taskloom.configure` options applied on top. Undo with `reset`.
        """
        reset_client()
        return client.configure(project_root=self.root, database_url=self.database_url, **overrides)

    def reset(self) -> None:
        """Forget this process's configuration and close its client (see `reset_client`)."""
        reset_client()

    @contextlib.contextmanager
    def configured(self, **overrides: object) -> Iterator[Config]:
        """`configure` for the body of a ``with`` block, then `reset`."""
        try:
            yield self.configure(**overrides)
        finally:
            self.reset()

    def worker(
        self,
        *,
        concurrency: int | None = None,
        executors: int | None = None,
        env: Mapping[str, str] | None = None,
        prelude: str | None = None,
        wait_ready: bool = True,
        ready_timeout: float = 60.0,
    ) -> WorkerProcess:
        """Start a worker for this project (see `WorkerProcess`) and, by default, wait until
        it is ready to claim runs."""
        worker = WorkerProcess(
            self, concurrency=concurrency, executors=executors, env=env, prelude=prelude
        )
        worker.start()
        if wait_ready:
            try:
                worker.wait_ready(ready_timeout)
            except BaseException:
                worker.close()
                raise
        return worker

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only query on the project database, for assertions on what the
        public API does not show (the ``workers`` table, counts over many runs). Before
        anything created the schema the database is empty: ``sqlite_master`` has no rows."""
        conn = sqlite3.connect(self.database_path, timeout=10)
        try:
            conn.execute("PRAGMA query_only = ON")
            return conn.execute(sql, tuple(params)).fetchall()
        finally:
            conn.close()

    def _next_worker_dir(self) -> Path:
        self._workers += 1
        path = self.root / ".taskloom" / "test-workers" / f"worker-{self._workers}"
        path.mkdir(parents=True, exist_ok=True)
        return path


# --- workers --------------------------------------------------------------------------

# Started as `python -c WORKER_SCRIPT READY_FILE CONCURRENCY EXECUTORS PRELUDE` (0 = from
# config). The ready file is written by the supervisor once its executors imported the
# task modules and it registered itself, i.e. when it can claim runs.
WORKER_SCRIPT = """\
import json, os, sys

if sys.argv[4]:
    exec(compile(sys.argv[4], "<worker prelude>", "exec"), {"__name__": "__prelude__"})

from taskloom.config import get_config
from taskloom.engine.factory import open_engine
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
