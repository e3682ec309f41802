"""Idempotency keys: scopes inside and outside runs, TTL, which final states keep a key,
reset, keys in batches, trigger_and_wait on a finished keyed run, and races between
processes."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from taskloom import RunStatus, idempotency_keys, queues, runs, tasks
from taskloom.testing import TaskloomProject, wait_for

from .conftest import StartWorker
from .support import Probe, column, finished, spawn_python

pytestmark = pytest.mark.slow

# argv: go file, probe dir. Waits for `go`, then triggers with three kinds of keys.
RACE_SCRIPT = """
import json, os, sys, time
from taskloom import batch, idempotency_keys, tasks

go, probe = sys.argv[1], sys.argv[2]
tasks.trigger, batch.trigger  # import everything before the start line
deadline = time.monotonic() + 30
while not os.path.exists(go):
    if time.monotonic() > deadline:
        sys.exit("never started")
    time.sleep(0.001)
plain = tasks.trigger("echo", {"dir": probe, "value": "plain"}, idempotency_key="race-plain")
made = idempotency_keys.create(["race", "made"], scope="global")
scoped = tasks.trigger("echo", {"dir": probe, "value": "made"}, idempotency_key=made)
in_batch = batch.trigger(
    [{"id": "echo", "payload": {"dir": probe, "value": "batch"},
      "options": {"idempotency_key": "race-batch"}}]
)
print(json.dumps({
    "plain": [plain.id, plain.is_cached],
    "made": [scoped.id, scoped.is_cached],
    "batch": [in_batch.runs[0].id, in_batch.runs[0].is_cached],
}))
"""


def test_four_processes_racing_with_one_key_make_one_run(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe
) -> None:
    start_worker()
    go = probe.dir / "go"
    racers = [spawn_python(project, RACE_SCRIPT, str(go), str(probe.dir)) for _ in range(4)]
    go.touch()
    results = []
    for racer in racers:
        out, err = racer.communicate(timeout=60)
        assert racer.returncode == 0, err
        results.append(json.loads(out))

    for name in ("plain", "made", "batch"):
        ids = {result[name][0] for result in results}
        assert len(ids) == 1, (name, results)
        assert sorted(result[name][1] for result in results) == [False, True, True, True]
        assert finished(ids.pop()).status is RunStatus.COMPLETED
    assert len(runs.list(task="echo")) == 3
    assert sorted(line["value"] for line in probe.ledger("echo")) == ["batch", "made", "plain"]


def test_key_scopes_inside_runs(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe
) -> None:
    start_worker(concurrency=4)
    keys = {
        "raw": ["k", None],  # a plain string inside a run: scoped to that run
        "run": ["k", "run"],
        "attempt": ["k", "attempt"],
        "global": ["k", "global"],
    }
    parents = [
        tasks.trigger("keyed-parent", probe.payload(keys=keys, fail_attempts=1)) for _ in range(2)
    ]
    for parent in parents:
        run = finished(parent.id)
        assert (run.status, run.attempt_count) == (RunStatus.COMPLETED, 2)
    seen = {(line["run"], line["attempt"]): line["ids"] for line in probe.ledger("keyed")}
    p1, p2 = (p.id for p in parents)
    # "run" (and a plain string): the same child across a parent's attempts, not across parents.
    assert seen[p1, 1]["raw"] == seen[p1, 2]["raw"] == seen[p1, 1]["run"] == seen[p1, 2]["run"]
    assert seen[p2, 1]["run"] == seen[p2, 2]["run"] != seen[p1, 1]["run"]
    # "attempt": a new child on each attempt.
    assert seen[p1, 1]["attempt"] != seen[p1, 2]["attempt"]
    assert seen[p2, 1]["attempt"] != seen[p1, 1]["attempt"]
    # "global": one child for everyone.
    assert len({ids["global"] for ids in seen.values()}) == 1
    children = runs.list(task="echo")
    assert len(children) == 2 + 4 + 1  # run-scoped, attempt-scoped, global
    assert len({c.id for c in children}) == 7


def test_keys_outside_runs_are_global_and_last_30_days(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe
) -> None:
    start_worker()
    first = tasks.trigger("echo", probe.payload(value=1), idempotency_key="outside")
    again = tasks.trigger("echo", probe.payload(value=2), idempotency_key="outside")
    assert (again.id, again.is_cached) == (first.id, True)
    made = tasks.trigger("echo", probe.payload(), idempotency_key=idempotency_keys.create("x"))
    made_global = tasks.trigger(
        "echo", probe.payload(), idempotency_key=idempotency_keys.create("x", scope="global")
    )
    assert made_global.id == made.id  # outside a run every scope is global
    expires = column(project, first.id, "idempotency_expires_at")
    created = column(project, first.id, "created_at")
    assert expires - created == 30 * 24 * 3600 * 1000


def test_a_key_expires_after_its_ttl(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe
) -> None:
    start_worker()
    first = tasks.trigger("echo", probe.payload(), idempotency_key="ttl", idempotency_key_ttl=1)
    assert finished(first.id).status is RunStatus.COMPLETED

    def new_run() -> str | None:
        handle = tasks.trigger(
            "echo", probe.payload(), idempotency_key="ttl", idempotency_key_ttl="1s"
        )
        return None if handle.is_cached else handle.id

    second = wait_for(new_run, timeout=5, interval=0.05, message="the key never expired")
    assert second != first.id
    run = runs.retrieve(first.id)
    assert second and run.created_at is not None
    assert runs.retrieve(second).created_at - run.created_at >= timedelta(seconds=1)


def test_which_final_states_keep_a_key(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe
) -> None:
    start_worker()
    done = tasks.trigger("echo", probe.payload(), idempotency_key="done")
    failed = tasks.trigger("echo", probe.payload(fail=True), idempotency_key="failed")
    assert finished(done.id).status is RunStatus.COMPLETED
    assert finished(failed.id).status is RunStatus.FAILED
    queues.pause("task/echo")
    cancelled = tasks.trigger("echo", probe.payload(), idempotency_key="cancelled")
    runs.cancel(cancelled.id)
    expired = tasks.trigger("echo", probe.payload(), idempotency_key="expired", ttl=1)
    assert finished(expired.id, timeout=10).status is RunStatus.EXPIRED
    queues.resume("task/echo")

    again = {
        key: tasks.trigger("echo", probe.payload(), idempotency_key=key)
        for key in ("done", "failed", "cancelled", "expired")
    }

    assert (again["done"].id, again["done"].is_cached) == (done.id, True)
    assert (again["cancelled"].id, again["cancelled"].is_cached) == (cancelled.id, True)
    assert again["failed"].id != failed.id and not again["failed"].is_cached
    assert again["expired"].id != expired.id and not again["expired"].is_cached
    assert runs.retrieve(failed.id).idempotency_key is None
    assert runs.retrieve(done.id).idempotency_key == "done"


def test_reset_forgets_a_key(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe
) -> None:
    start_worker()
    made = idempotency_keys.create(["invoice", "7"], scope="global")
    first = tasks.trigger("echo", probe.payload(), idempotency_key="plain")
    second = tasks.trigger("echo", probe.payload(), idempotency_key=made)
    for handle in (first, second):
        assert finished(handle.id).status is RunStatus.COMPLETED

    assert idempotency_keys.reset("echo", "plain") is True
    assert idempotency_keys.reset("echo", made) is True
    assert idempotency_keys.reset("echo", "plain") is False
    assert idempotency_keys.reset("quick", made) is False  # keys are per task

    assert tasks.trigger("echo", probe.payload(), idempotency_key="plain").id != first.id
    assert tasks.trigger("echo", probe.payload(), idempotency_key=made).id != second.id


def test_each_batch_item_has_its_own_key(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe
) -> None:
    start_worker()
    existing = tasks.trigger("echo", probe.payload(value="old"), idempotency_key="item-old")
    from taskloom import batch

    handle = batch.trigger(
        [
            {
                "id": "echo",
                "payload": probe.payload(value=0),
                "options": {"idempotency_key": "item-old"},
            },
            {
                "id": "echo",
                "payload": probe.payload(value=1),
                "options": {"idempotency_key": "item-new"},
            },
            {
                "id": "echo",
                "payload": probe.payload(value=2),
                "options": {"idempotency_key": "item-new"},
            },
            {"id": "echo", "payload": probe.payload(value=3)},
        ]
    )

    ids = [h.id for h in handle.runs]
    assert [h.is_cached for h in handle.runs] == [True, False, True, False]
    assert ids[0] == existing.id and ids[1] == ids[2] and len(set(ids)) == 3
    for run_id in set(ids):
        assert finished(run_id).status is RunStatus.COMPLETED
    assert sorted(str(line["value"]) for line in probe.ledger("echo")) == ["1", "3", "old"]


def test_trigger_and_wait_on_a_finished_keyed_run_returns_at_once(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe
) -> None:
    start_worker()
    key = idempotency_keys.create("finished-child", scope="global")
    done = tasks.trigger("echo", probe.payload(value="first"), idempotency_key=key)
    assert finished(done.id).status is RunStatus.COMPLETED

    parent = tasks.trigger("cached-waiter", probe.payload(key="finished-child"))

    assert parent.result(timeout=15) == [True, done.id, "first"]
    assert probe.hooks(parent.id) == []  # it never waited
    assert [line["value"] for line in probe.ledger("echo")] == ["first"]
