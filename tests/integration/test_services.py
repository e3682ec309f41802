"""The background services inside real workers: the elected worker runs them, a DELAYED
wake-up wakes them, and a worker that stops resigns its leadership."""

from __future__ import annotations

import time

import pytest

from taskloom import tasks
from taskloom.services import MAINTENANCE_LEADER
from taskloom.testing import TaskloomProject, WorkerProcess, wait_for

from .conftest import StartWorker
from .support import Probe

pytestmark = pytest.mark.slow


def leader(project: TaskloomProject) -> str | None:
    """The worker id holding the maintenance leadership (the row is deleted on resign)."""
    rows = project.query("SELECT holder FROM leaders WHERE name = ?", [MAINTENANCE_LEADER])
    return str(rows[0][0]) if rows else None


def wait_leads(project: TaskloomProject, worker: WorkerProcess, timeout: float = 10) -> None:
    wait_for(
        lambda: leader(project) == worker.worker_id,
        timeout=timeout,
        message=f"{worker.worker_id} never led",
    )


def test_a_delayed_trigger_wakes_the_leaders_services_without_waiting_for_the_poll(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe
) -> None:
    # With a 60 s poll, nothing promotes a run that became delayed after the services'
    # last look but the DELAYED wake-up the trigger sends.
    project.write_config(worker={"poll_interval_seconds": 60})
    worker = start_worker()
    wait_leads(project, worker)
    triggered = time.monotonic()
    handle = tasks.trigger("record", probe.payload(label="woken"), delay="1s")
    assert handle.result(timeout=15) == "woken"
    assert time.monotonic() - triggered < 10


def test_a_stopping_worker_resigns_so_another_leads_before_the_lease_lapses(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe
) -> None:
    project.write_config(worker={"lease_seconds": 60, "poll_interval_seconds": 0.2})
    first = start_worker()
    wait_leads(project, first)
    second = start_worker()
    assert leader(project) == first.worker_id  # one leader at a time

    assert first.terminate() == 0
    wait_leads(project, second, timeout=10)  # far sooner than the 60 s lease
    handle = tasks.trigger("record", probe.payload(label="led"), delay="0.5s")
    assert handle.result(timeout=15) == "led"

    assert second.terminate() == 0
    assert leader(project) is None
