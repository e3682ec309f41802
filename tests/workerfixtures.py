"""Fixtures shared by the test directories that run real workers (integration, limits,
waits): each directory's conftest imports them and defines its own `project`."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from taskloom.engine.engine import Engine
from taskloom.runtime import registry
from taskloom.sdk.client import LocalClient, current_client
from taskloom.testing import TaskloomProject, WorkerProcess

StartWorker = Callable[..., WorkerProcess]


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No TASKLOOM_* variable of the caller's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("TASKLOOM_"):
            monkeypatch.delenv(name)


def local_engine() -> Engine:
    """The engine behind this process's client (a `LocalClient` on the configured
    project), for assertions on what the public API does not show."""
    client = current_client()
    assert isinstance(client, LocalClient), client
    return client.engine


@contextmanager
def configured_project(
    directory: Path, config: Mapping[str, Any], modules: Mapping[str, str] = {}
) -> Iterator[TaskloomProject]:
    """A fresh project (own directory and SQLite file) with `config` and task `modules`,
    configured in this process; tasks a test defined here are forgotten afterwards."""
    created = TaskloomProject(directory)
    created.write_config(**config)
    for name, source in modules.items():
        created.write_task_module(name, source)
    created.configure()
    known = {task.id for task in registry.all_tasks()}
    try:
        yield created
    finally:
        created.reset()
        for task in registry.all_tasks():
            if task.id not in known:
                registry.unregister(task.id)


@pytest.fixture
def start_worker(project: TaskloomProject) -> Iterator[StartWorker]:
    """Start a ready worker of the project (one executor unless asked); every worker is
    killed at teardown, and the output of each is printed (pytest shows it on failure)."""
    started: list[WorkerProcess] = []

    def start(**options: Any) -> WorkerProcess:
        worker = WorkerProcess(
            project,
            concurrency=options.pop("concurrency", None),
            executors=options.pop("executors", 1),
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
