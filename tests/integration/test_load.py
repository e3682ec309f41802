"""Two producer processes and two workers on one SQLite file: no run lost, none run twice
(and after a kill -9, duplicates only for runs the killed worker held)."""

from __future__ import annotations

import collections
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from taskloom.testing import TaskloomProject, WorkerProcess, wait_for

from .conftest import StartWorker
from .support import Probe

pytestmark = pytest.mark.slow

RUNS_PER_PRODUCER = 500

# argv: go file, output file, task id, count, producer name. Prints nothing; writes ids.
PRODUCER_SCRIPT = """
import json, os, sys, time
from taskloom import tasks

go, out, task_id, count, name = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
deadline = time.monotonic() + 30
while not os.path.exists(go):
    if time.monotonic() > deadline:
        sys.exit("never started")
    time.sleep(0.001)
payload = {"dir": os.environ["PROBE_DIR"], "sleep": 0.2}
ids = [tasks.trigger(task_id, {**payload, "label": f"{name}-{n}"}).id for n in range(count)]
with open(out, "w") as file:
    json.dump(ids, file)
"""


def _produce(project: TaskloomProject, probe: Probe, tmp_path: Path, task_id: str) -> list[str]:
    """Start two producers at once; return the run ids they were given, in order."""
    go = tmp_path / "go"
    outputs = [tmp_path / f"produced-{n}.json" for n in range(2)]
    producers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                PRODUCER_SCRIPT,
                str(go),
                str(out),
                task_id,
                str(RUNS_PER_PRODUCER),
                f"p{n}",
            ],
            env=project.env({"PROBE_DIR": str(probe.dir)}),
            cwd=project.root,
            stderr=subprocess.PIPE,
        )
        for n, out in enumerate(outputs)
    ]
    try:
        go.touch()
        for producer in producers:
            _, err = producer.communicate(timeout=60)
            assert producer.returncode == 0, err.decode()
    finally:
        for producer in producers:
            producer.kill()
            producer.wait()
    return [run_id for out in outputs for run_id in json.loads(out.read_text())]


def _statuses(project: TaskloomProject) -> dict[str, int]:
    return dict(project.query("SELECT status, count(*) FROM runs GROUP BY status"))


def _wait_all_completed(project: TaskloomProject, count: int, timeout: float) -> None:
    wait_for(
        lambda: _statuses(project) == {"COMPLETED": count},
        timeout,
        interval=0.1,
        message=lambda: f"runs by status: {_statuses(project)}",
    )


def test_two_producers_and_two_workers_execute_every_run_exactly_once(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe, tmp_path: Path
) -> None:
    workers = [start_worker(concurrency=50, executors=1) for _ in range(2)]

    produced = _produce(project, probe, tmp_path, "record")

    total = 2 * RUNS_PER_PRODUCER
    assert len(set(produced)) == total
    _wait_all_completed(project, total, timeout=60)
    assert {row[0] for row in project.query("SELECT id FROM runs")} == set(produced)
    ledger = probe.ledger()
    executions = collections.Counter(run_id for run_id, _, _, _ in ledger)
    assert set(executions) == set(produced), "a run completed without executing"
    assert max(executions.values()) == 1, [r for r, n in executions.items() if n > 1]
    assert {attempt for _, attempt, _, _ in ledger} == {1}
    pids = {pid for worker in workers for pid in worker.executor_pids()}
    assert {pid for _, _, pid, _ in ledger} <= pids
    assert project.query("SELECT count(*), max(number) FROM attempts") == [(total, 1)]
    assert all(worker.is_running() for worker in workers)


def test_kill_9_of_one_worker_under_load_loses_nothing(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe, tmp_path: Path
) -> None:
    victim, survivor = (start_worker(concurrency=50, executors=1) for _ in range(2))
    victim_executors = set(victim.executor_pids())

    produced = _produce(project, probe, tmp_path, "record-slow")
    total = len(produced)
    wait_for(lambda: len(probe.ledger()) >= total // 5, timeout=30, interval=0.02)
    # Freeze the supervisor so the runs it holds cannot change, note them, then kill -9
    # its whole process group (supervisor and executors) as a machine crash would.
    held = wait_for(
        lambda: _freeze_holding(project, victim),
        timeout=20,
        message="the victim never held runs",
    )
    victim.kill(group=True)

    _wait_all_completed(project, total, timeout=60)
    _check_at_least_once(project, probe, produced, victim, survivor, victim_executors, held)


def _freeze_holding(project: TaskloomProject, worker: WorkerProcess) -> set[str]:
    """SIGSTOP the worker and return the runs it holds; if none, let it go on (empty set)."""
    worker.signal(signal.SIGSTOP)
    held = {
        run_id
        for (run_id,) in project.query(
            "SELECT id FROM runs WHERE worker_id = ? AND status IN ('DEQUEUED', 'EXECUTING')",
            [worker.worker_id],
        )
    }
    if not held:
        worker.signal(signal.SIGCONT)
    return held


def _check_at_least_once(
    project: TaskloomProject,
    probe: Probe,
    produced: list[str],
    victim: WorkerProcess,
    survivor: WorkerProcess,
    victim_executors: set[int],
    held_at_kill: set[str],
) -> None:
    ledger = probe.ledger()
    executions = collections.defaultdict(list)
    for run_id, attempt, pid, _ in ledger:
        executions[run_id].append((attempt, pid))
    assert set(executions) == set(produced), "a run completed without executing"
    attempts = collections.defaultdict(list)
    for run_id, number, status, worker_id in project.query(
        "SELECT run_id, number, status, worker_id FROM attempts ORDER BY run_id, number"
    ):
        attempts[run_id].append((number, status, worker_id))

    crashed = {run_id for run_id, rows in attempts.items() if len(rows) > 1}
    # Exactly the runs the victim held when it died were attempted again: attempt 1
    # crashed there, attempt 2 completed on the survivor.
    assert held_at_kill, "the kill came too late: the victim held no runs"
    assert crashed == held_at_kill
    for run_id in crashed:
        assert attempts[run_id] == [
            (1, "CRASHED", victim.worker_id),
            (2, "COMPLETED", survivor.worker_id),
        ], run_id
    for run_id, runs_of_it in executions.items():
        if len(runs_of_it) == 1:
            continue
        assert run_id in crashed, f"{run_id} executed twice but was never rescued"
        assert len(runs_of_it) == 2, runs_of_it
        (first_attempt, first_pid), (second_attempt, second_pid) = sorted(runs_of_it)
        assert first_pid in victim_executors and first_attempt == 1
        assert second_pid not in victim_executors and second_attempt == 2
    assert survivor.is_running()
