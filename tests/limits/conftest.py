"""Fixtures of the queues-and-limits tests: a project per test, workers that never leak,
and a ledger that task code appends its starts and ends to."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from taskloom.testing import TaskloomProject
from workerfixtures import StartWorker, _isolated_environment, configured_project, start_worker

from .support import FAST_CONFIG, Ledger


@pytest.fixture
def project(tmp_path: Path) -> Iterator[TaskloomProject]:
    """A fresh project (own directory and SQLite file), configured in this process."""
    with configured_project(tmp_path / "project", FAST_CONFIG, {}) as created:
        yield created


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    """The file the `LEDGER_TASKS` append to, and its analysis."""
    return Ledger(tmp_path / "ledger.jsonl")


__all__ = ["StartWorker", "_isolated_environment", "project", "start_worker"]
