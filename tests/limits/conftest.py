"""Fixtures of the queues-and-limits tests: a project per test, workers that never leak,
and a ledger that task code appends its starts and ends to."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from taskloom.sdk import registry
from taskloom.testing import TaskloomProject, WorkerProcess

from .support import FAST_CONFIG, Ledger

StartWorker = Callable[..., WorkerProcess]


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("TASKLOOM_"):
            monkeypatch.delenv(name)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[TaskloomProject]:
    """A fresh project (own directory and SQLite file), configured in this process."""
    created = TaskloomProject(tmp_path / "project")
    created.write_config(**FAST_CONFIG)
    created.configure()
    known = {task.id for task in registry.all_tasks()}
    try:
        yield created
    finally:
        created.reset()
        for task in registry.all_tasks():  # tasks a test defined in this process
            if task.id not in known:
                registry.unregister(task.id)


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    """The file the `LEDGER_TASKS` append to, and its analysis."""
    return Ledger(tmp_path / "ledger.jsonl")


@pytest.fixture
def start_worker(project: TaskloomProject) -> Iterator[StartWorker]:
    """Start a ready worker of the project; every worker is killed at teardown, and the
    output of each is printed (pytest shows it when the test fails)."""
    started: list[WorkerProcess] = []

    def start(**options: Any) -> WorkerProcess:
        options.setdefault("executors", 1)
        worker = WorkerProcess(
            project,
            concurrency=options.pop("concurrency", None),
            executors=options.pop("executors"),
            env=options.pop("env", None),
            prelude=options.pop("prelude", None),
        )
        started.append(worker)
        worker.start()
        if options.pop("wait_ready", True):
            worker.wait_ready(options.pop("timeout", 60.0))
        assert not options, f"unknown options {options}"
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.close()
            print(f"==== {worker!r} exit {worker.returncode}\n{worker.output()}")
