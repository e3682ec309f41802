"""Fixtures of the wait tests: a project with the wait task module, and real workers that
never outlive their test."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from taskloom.sdk import registry
from taskloom.testing import TaskloomProject, WorkerProcess

from .support import FAST_CONFIG, WAIT_TASKS, Probe

StartWorker = Callable[..., WorkerProcess]


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("TASKLOOM_"):
            monkeypatch.delenv(name)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[TaskloomProject]:
    """A fresh project with the wait tasks, configured in this process."""
    created = TaskloomProject(tmp_path / "project")
    created.write_config(**FAST_CONFIG)
    created.write_task_module("waits_tasks", WAIT_TASKS)
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
def probe(tmp_path: Path) -> Probe:
    return Probe(tmp_path / "probe")


@pytest.fixture
def start_worker(project: TaskloomProject) -> Iterator[StartWorker]:
    """Start a ready worker (one executor unless asked); all are killed at teardown, and
    their output printed (pytest shows it when the test fails)."""
    started: list[WorkerProcess] = []

    def start(**options: Any) -> WorkerProcess:
        worker = WorkerProcess(
            project,
            concurrency=options.pop("concurrency", None),
            executors=options.pop("executors", 1),
            env=options.pop("env", None),
        )
        started.append(worker)
        worker.start()
        worker.wait_ready(options.pop("timeout", 60.0))
        assert not options, f"unknown options {options}"
        return worker

    try:
        yield start
    finally:
        for worker in started:
            worker.close()
            print(f"==== {worker!r} exit {worker.returncode}\n{worker.output()}")
