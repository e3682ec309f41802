"""`taskloom dev`: migrate, run a worker as a child process, restart it when task code changes.

The worker is a child process (`python -m taskloom worker`), so a reload is a clean new
interpreter: no stale modules, no half-reloaded state. A thread polls the task
directories' ``.py`` files (mtime and size) every half second; no extra dependency.
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from ..config import Config, get_config
from ..worker.discovery import SKIPPED_DIRS
from . import common
from .worker_cmd import add_worker_options, migrate_and_report

POLL_SECONDS = 0.5

Snapshot = dict[Path, tuple[int, int]]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `dev`."""
    parser = commands.add_parser(
        "dev",
        help="development loop: migrate, run a worker, reload it when task code changes",
    )
    add_worker_options(parser)
    parser.set_defaults(handler=run_dev)


def _python_files(config: Config) -> Iterator[Path]:
    root = config.project_root
    for directory in config.dirs:
        base = root / directory
        if not base.is_dir():
            continue
        for path in base.rglob("*.py"):
            if not any(part in SKIPPED_DIRS for part in path.relative_to(root).parts):
                yield path


def snapshot(config: Config) -> Snapshot:
    """(mtime_ns, size) of every ``.py`` file under the task directories."""
    result: Snapshot = {}
    for path in _python_files(config):
        with contextlib.suppress(OSError):  # deleted between listing and stat
            stat = path.stat()
            result[path] = (stat.st_mtime_ns, stat.st_size)
    return result


def changed_paths(before: Snapshot, after: Snapshot) -> list[Path]:
    """Files added, removed or modified between two snapshots, sorted."""
    return sorted(
        path for path in before.keys() | after.keys() if before.get(path) != after.get(path)
    )


@dataclass(frozen=True, slots=True)
class _Changed:
    paths: list[Path]


@dataclass(frozen=True, slots=True)
class _Exited:
    process: subprocess.Popen[bytes]


_Message = _Changed | _Exited


class _Watcher(threading.Thread):
    """Polls the task directories and posts a `_Changed` message for each change."""

    def __init__(self, config: Config, inbox: queue.Queue[_Message]) -> None:
        super().__init__(name="taskloom-dev-watcher", daemon=True)
        self.config = config
        self.inbox = inbox
        self.stopping = threading.Event()
        self.last = snapshot(config)

    def run(self) -> None:
        while not self.stopping.wait(POLL_SECONDS):
            current = snapshot(self.config)
            paths = changed_paths(self.last, current)
            if paths:
                self.last = current
                self.inbox.put(_Changed(paths))


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


class DevLoop:
    """The worker child and its restarts; `run()` until Ctrl-C or SIGTERM."""

    def __init__(self, config: Config, worker_command: list[str]) -> None:
        self.config = config
        self.worker_command = worker_command
        self.inbox: queue.Queue[_Message] = queue.Queue()
        self.child: subprocess.Popen[bytes] | None = None

    def _start(self) -> None:
        # Its own process group: Ctrl-C reaches only this process, which stops the
        # worker once, gracefully (a second signal to a worker releases its runs).
        child = subprocess.Popen(self.worker_command, process_group=0)
        self.child = child
        threading.Thread(
            target=self._report_exit, args=(child,), name="taskloom-dev-child", daemon=True
        ).start()

    def _report_exit(self, child: subprocess.Popen[bytes]) -> None:
        child.wait()
        self.inbox.put(_Exited(child))

    def _stop(self) -> None:
        child, self.child = self.child, None
        if child is None or child.poll() is not None:
            return
        child.send_signal(signal.SIGTERM)
        interrupts = 0
        while True:
            try:
                child.wait()
                return
            except KeyboardInterrupt:
                interrupts += 1
                if interrupts == 1:
                    common.err("Stopping now: running attempts go back to their queues")
                    child.send_signal(signal.SIGINT)
                else:
                    child.kill()

    def run(self) -> int:
        """Run the worker, restart it on change, stop it on Ctrl-C or SIGTERM."""
        watcher = _Watcher(self.config, self.inbox)
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            self._start()
            watcher.start()
            self._loop()
        except KeyboardInterrupt:
            common.err("\nStopping the worker…")
        finally:
            watcher.stopping.set()
            self._stop()
            signal.signal(signal.SIGTERM, previous)
        common.err("taskloom dev stopped")
        return common.EXIT_OK

    def _loop(self) -> None:
        root = self.config.project_root
        while True:
            message = self.inbox.get()
            if isinstance(message, _Changed):
                names = ", ".join(_relative(path, root) for path in message.paths[:3])
                more = len(message.paths) - 3
                names += f" and {more} more" if more > 0 else ""
                common.err(f"Changed: {names}; restarting the worker")
                self._stop()
                self._start()
            elif message.process is self.child:
                code = message.process.returncode
                self.child = None
                common.err(
                    f"The worker exited with code {code}; fix the problem above and save a "
                    "task file to start it again"
                )


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _banner(config: Config, prefix: str) -> str:
    dirs = ", ".join(f"{d}/" for d in config.dirs)
    return "\n".join(
        [
            "taskloom dev",
            f"  project:  {config.project_root}",
            f"  database: {common.describe_database(config)}",
            f"  watching: {dirs} (the worker restarts when a .py file changes)",
            "",
            "There is no dashboard yet. Watch runs with:",
            f"  {prefix} runs list",
            f"  {prefix} runs show RUN_ID",
            "Trigger a task with:",
            f'  {prefix} trigger TASK_ID \'{{"key": "value"}}\' --wait',
            "Press Ctrl-C to stop.",
            "",
        ]
    )


def run_dev(args: argparse.Namespace) -> int:
    """Handle `taskloom dev`."""
    migrate_and_report()
    config = get_config()
    global_options = ["--project", str(config.project_root)]
    if args.database_url:
        global_options += ["--database-url", args.database_url]
    if args.no_colour:
        global_options.append("--no-colour")
    shown = ["taskloom"]
    if args.project:
        shown += ["--project", args.project]
    if args.database_url:
        shown += ["--database-url", args.database_url]
    common.out(_banner(config, shlex.join(shown)))
    worker = [sys.executable, "-m", "taskloom", *global_options, "worker"]
    if args.concurrency is not None:
        worker += ["--concurrency", str(args.concurrency)]
    return DevLoop(config, worker).run()
