"""Fixtures of the integration tests: a project per test, workers that never leak."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from taskloom.testing import TaskloomProject
from workerfixtures import StartWorker, _isolated_environment, configured_project, start_worker

from .support import FAST_CONFIG, PROBE_TASKS, Probe


@pytest.fixture
def project(tmp_path: Path) -> Iterator[TaskloomProject]:
    """A fresh project (own directory and SQLite file), configured in this process."""
    with configured_project(tmp_path / "project", FAST_CONFIG, {}) as created:
        yield created


@pytest.fixture
def probe(project: TaskloomProject, tmp_path: Path) -> Probe:
    """The probe task module written into the project, and the test's end of it."""
    project.write_task_module("probes", PROBE_TASKS)
    return Probe(tmp_path / "probe")


__all__ = ["StartWorker", "_isolated_environment", "project", "start_worker"]
