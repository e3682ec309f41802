"""Triggering: idempotency keys (also across processes) and a locked database."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from taskloom import RunStatus, runs, tasks
from taskloom.errors import StoreBusyError
from taskloom.testing import TaskloomProject, wait_for

from .conftest import StartWorker
from .support import Probe

pytestmark = pytest.mark.slow

FAILING_TASK = """
from taskloom import AbortTaskRunError, task


@task(id="refuses")
def refuses(payload):
    raise AbortTaskRunError("refused")
"""

# argv: go file, output file, number of keys. Triggers keys in order once `go` exists.
TRIGGER_KEYS_SCRIPT = """
import json, os, sys, time
from taskloom import tasks

go, out, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
tasks.trigger  # import everything before the start line
deadline = time.monotonic() + 30
while not os.path.exists(go):
    if time.monotonic() > deadline:
        sys.exit("never started")
    time.sleep(0.001)
ids = {}
for n in range(count):
    handle = tasks.trigger("record", {"dir": os.environ["PROBE_DIR"], "label": f"key-{n}"},
                           idempotency_key=f"key-{n}")
    ids[f"key-{n}"] = [handle.id, handle.is_cached]
with open(out, "w") as file:
    json.dump(ids, file)
"""


def test_the_same_idempotency_key_returns_the_same_run(
    start_worker: StartWorker, probe: Probe
) -> None:
    start_worker()
    first = tasks.trigger("record", probe.payload(label="a"), idempotency_key="order-1")
    second = tasks.trigger("record", probe.payload(label="b"), idempotency_key="order-1")

    assert second.id == first.id
    assert (first.is_cached, second.is_cached) == (False, True)
    assert first.result(timeout=10) == "a"
    # Kept after success: still the same run, not executed again.
    third = tasks.trigger("record", probe.payload(label="c"), idempotency_key="order-1")
    assert third.id == first.id
    other = tasks.trigger("record", probe.payload(label="d"), idempotency_key="order-2")
    assert other.id != first.id
    assert other.result(timeout=10) == "d"
    assert sorted(label for _, _, _, label in probe.ledger()) == ["a", "d"]


def test_a_failed_run_releases_its_idempotency_key(
    project: TaskloomProject, start_worker: StartWorker
) -> None:
    project.write_task_module("refusing", FAILING_TASK)
    start_worker()
    first = tasks.trigger("refuses", 1, idempotency_key="k")
    assert tasks.trigger("refuses", 2, idempotency_key="k").id == first.id
    assert runs.poll(first, timeout=10).status is RunStatus.FAILED

    again = tasks.trigger("refuses", 3, idempotency_key="k")

    assert again.id != first.id
    assert not again.is_cached
    assert runs.retrieve(again).payload == 3
    assert runs.retrieve(first).idempotency_key is None
    assert runs.poll(again, timeout=10).status is RunStatus.FAILED
    assert {r.id for r in runs.list(task="refuses")} == {first.id, again.id}


def test_concurrent_triggers_with_one_key_from_four_processes_create_one_run(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe, tmp_path: Path
) -> None:
    start_worker(concurrency=20)
    keys = 40
    go = tmp_path / "go"
    outputs = [tmp_path / f"ids-{n}.json" for n in range(4)]
    producers = [
        subprocess.Popen(
            [sys.executable, "-c", TRIGGER_KEYS_SCRIPT, str(go), str(out), str(keys)],
            env=project.env({"PROBE_DIR": str(probe.dir)}),
            cwd=project.root,
            stderr=subprocess.PIPE,
        )
        for out in outputs
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

    results = [json.loads(out.read_text()) for out in outputs]
    for n in range(keys):
        key = f"key-{n}"
        ids = {result[key][0] for result in results}
        assert len(ids) == 1, f"{key} made runs {ids}"
        assert sorted(result[key][1] for result in results) == [False, True, True, True]
    created = runs.list(task="record", limit=1000)
    assert len(created) == keys
    wait_for(
        lambda: all(r.status is RunStatus.COMPLETED for r in runs.list(task="record", limit=1000)),
        timeout=20,
    )
    assert sorted(label for _, _, _, label in probe.ledger()) == sorted(
        f"key-{n}" for n in range(keys)
    )


# argv: database file, "locked" marker, "unlock" file. Holds the write lock until `unlock`.
HOLD_LOCK_SCRIPT = """
import os, sqlite3, sys, time
db, locked, unlock = sys.argv[1:4]
conn = sqlite3.connect(db, isolation_level=None, timeout=0)
conn.execute("BEGIN IMMEDIATE")
open(locked, "w").close()
deadline = time.monotonic() + 60
while not os.path.exists(unlock) and time.monotonic() < deadline:
    time.sleep(0.005)
conn.execute("ROLLBACK")
conn.close()
"""


def test_a_locked_database_makes_trigger_fail_with_store_busy_and_write_nothing(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe, tmp_path: Path
) -> None:
    worker = start_worker()  # registers the task catalog and creates the schema
    assert worker.terminate(10) == 0
    project.configure(busy_timeout_ms=300)
    assert runs.list() == []
    locked, unlock = tmp_path / "locked", tmp_path / "unlock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            HOLD_LOCK_SCRIPT,
            str(project.database_path),
            str(locked),
            str(unlock),
        ]
    )
    try:
        wait_for(locked.exists, timeout=10, message="the lock holder did not start")
        began = time.monotonic()
        with pytest.raises(StoreBusyError) as raised:
            tasks.trigger("record", probe.payload(label="blocked"))
        waited = time.monotonic() - began
    finally:
        unlock.touch()
        holder.wait(10)

    message = str(raised.value)
    assert str(project.database_path) in message
    assert "locked" in message and "300 ms" in message
    assert "nothing was written" in message
    assert 0.3 <= waited < 3
    assert runs.list() == []
    assert project.query("SELECT count(*) FROM runs") == [(0,)]
    # Once the lock is gone, triggering works again.
    assert runs.retrieve(tasks.trigger("record", probe.payload())).status is RunStatus.QUEUED
