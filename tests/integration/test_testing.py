"""The helpers of `taskloom.testing` themselves."""

from __future__ import annotations

import os
import signal
import time

import pytest

from taskloom import tasks
from taskloom.errors import InvalidOptionError
from taskloom.retry import Retry
from taskloom.testing import (
    TaskloomProject,
    WaitTimeoutError,
    WorkerExitedError,
    wait_for,
)

from .support import Probe

pytestmark = pytest.mark.slow


def test_wait_for_returns_the_first_truthy_value() -> None:
    values = iter([0, None, "", 3])
    assert wait_for(lambda: next(values), timeout=5, interval=0.001) == 3


def test_wait_for_fails_with_the_message_and_the_last_value() -> None:
    began = time.monotonic()
    with pytest.raises(WaitTimeoutError) as raised:
        wait_for(lambda: [], timeout=0.05, message=lambda: "still empty")
    assert 0.05 <= time.monotonic() - began < 1
    assert "still empty" in str(raised.value)
    assert "within 0.05 s" in str(raised.value)
    assert "last value []" in str(raised.value)
    assert isinstance(raised.value, AssertionError)


def test_wait_for_lets_the_predicate_s_exceptions_through() -> None:
    def broken() -> bool:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        wait_for(broken, timeout=5)


def test_write_config_merges_tables_and_is_read_by_taskloom(project: TaskloomProject) -> None:
    project.write_config(worker={"concurrency": 7}, ttl="1h", machine="small-2x")
    project.write_config(
        worker={"executors": 2},
        retries={"default": {"max_attempts": 5, "randomize": False}},
    )

    config = project.load_config()

    assert (config.worker_concurrency, config.executors) == (7, 2)
    assert config.lease_seconds == 2  # from the fixture's first call
    assert config.ttl == 3600
    assert config.machine == "small-2x"
    assert config.retries_default == Retry(max_attempts=5, randomize=False)
    assert config.database_url == project.database_url
    assert config.project_root == project.root
    assert config.dirs == ("trigger",)


def test_write_config_rejects_an_unknown_key_at_once(project: TaskloomProject) -> None:
    before = project.config_path.read_text()
    with pytest.raises(InvalidOptionError, match=r"worker\.lease"):
        project.write_config(worker={"lease": 2})
    assert project.config_path.read_text() == before
    project.write_config(worker={"executors": 3})  # the bad key is not remembered
    assert project.load_config().executors == 3


def test_a_worker_that_cannot_start_raises_with_its_output(project: TaskloomProject) -> None:
    project.write_task_module("broken", "raise RuntimeError('cannot import me')\n")

    with pytest.raises(WorkerExitedError, match="cannot import me"):
        project.worker(executors=1)


def test_closing_a_worker_leaves_no_process_behind(project: TaskloomProject, probe: Probe) -> None:
    with project.worker(concurrency=2, executors=2) as worker:
        handle = tasks.trigger("hold-sync", probe.payload(max_wait=30))
        probe.wait_started(handle.id, 1)
        executors = worker.executor_pids()
        assert len(executors) == 2
        group = os.getpgid(worker.pid)
        assert group == worker.pid  # a session and process group of its own
        assert all(os.getpgid(pid) == group for pid in executors)
        assert worker.group_pids() == sorted([worker.pid, *executors])
        worker.kill()  # the supervisor only: its executors live on for a moment

    assert worker.group_pids() == []
    assert not worker.is_running()
    assert worker.returncode == -signal.SIGKILL
    assert worker.executor_pids() == []
