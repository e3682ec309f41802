"""Fixtures of the wait tests: a project with the wait task module, and real workers that
never outlive their test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from taskloom.testing import TaskloomProject
from workerfixtures import StartWorker, _isolated_environment, configured_project, start_worker

from .support import FAST_CONFIG, WAIT_TASKS, Probe


@pytest.fixture
def project(tmp_path: Path) -> Iterator[TaskloomProject]:
    """A fresh project with the wait tasks, configured in this process."""
    with configured_project(
        tmp_path / "project", FAST_CONFIG, {"waits_tasks": WAIT_TASKS}
    ) as created:
        yield created


@pytest.fixture
def probe(tmp_path: Path) -> Probe:
    return Probe(tmp_path / "probe")


__all__ = ["StartWorker", "_isolated_environment", "project", "start_worker"]
