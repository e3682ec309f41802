"""Child runs from inside a run: every API, results in item order, links to the parent,
a parent and its children on one limit-1 queue, parallel waits, cancelling a parent."""

from __future__ import annotations

import pytest

from taskloom import RunStatus, runs, tasks, wait
from taskloom.testing import TaskloomProject, wait_for

from .conftest import StartWorker
from .support import Probe, column, finished, wait_status

pytestmark = pytest.mark.slow


def test_a_parent_and_its_children_on_one_limit_1_queue_complete(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe
) -> None:
    start_worker(concurrency=4)
    parent = tasks.trigger("solo-parent", probe.payload())

    assert parent.result(timeout=30) == {"one": "one", "many": [0, 1, 2]}

    children = runs.list(task="echo")
    assert len(children) == 4
    parent_ts = column(project, parent.id, "queue_ts")
    for child in children:
        assert child.status is RunStatus.COMPLETED
        assert (child.parent_run_id, child.root_run_id) == (parent.id, parent.id)
        assert column(project, child.id, "queue") == "solo"
        assert column(project, child.id, "depth") == 1
        # A child takes its parent's place in the queues, ahead of newer work.
        assert column(project, child.id, "queue_ts") == parent_ts
    # The queue never ran two at once: each child started after the parent waited.
    assert runs.retrieve(parent.id).attempt_count == 1


def test_grandchildren_know_their_parent_root_and_depth(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe
) -> None:
    start_worker()
    top = tasks.trigger("nest", probe.payload(depth=2))

    out = top.result(timeout=30)

    child, grandchild = out["below"], out["below"]["below"]
    assert (out["id"], out["parent"], out["root"]) == (top.id, None, None)
    assert (child["parent"], child["root"]) == (top.id, top.id)
    assert (grandchild["parent"], grandchild["root"]) == (child["id"], top.id)
    assert grandchild["below"] is None
    depths = [
        column(project, run_id, "depth") for run_id in (top.id, child["id"], grandchild["id"])
    ]
    assert depths == [0, 1, 2]
    assert runs.retrieve(grandchild["id"]).root_run_id == top.id


def test_every_way_to_make_children(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe
) -> None:
    start_worker(concurrency=8)
    parent = tasks.trigger("fanout", probe.payload())

    out = parent.result(timeout=30)

    good_ok, good_id, good_output, good_error = out["good"]
    assert (good_ok, good_error) == (True, None)
    assert good_output == {"value": "good", "parent": parent.id, "root": parent.id}
    bad_ok, bad_id, bad_output, bad_message = out["bad"]
    assert (bad_ok, bad_output) == (False, None)
    assert "echo refuses 'bad'" in bad_message
    assert runs.retrieve(bad_id).status is RunStatus.FAILED
    assert out["unwrap_error"][:2] == ["SubtaskUnwrapError", bad_id]
    assert "echo refuses 'bad'" in out["unwrap_error"][2]
    assert out["by_id"] == "by-id"
    # batch_trigger_and_wait: in item order, a failed item does not raise.
    assert [[ok, value] for ok, _, value in out["items"]] == [
        [True, 0],
        [False, None],
        [True, 2],
        [True, 3],
    ]
    item_ids = [run_id for _, run_id, _ in out["items"]]
    for index, run_id in enumerate(item_ids):
        run = runs.retrieve(run_id)
        assert run.payload["value"] == index
        assert run.parent_run_id == parent.id
        assert column(project, run_id, "batch_id") == out["items_id"]
    assert out["mixed"] == [
        [True, {"value": "m0", "parent": parent.id, "root": parent.id}],
        [True, "quick"],
        [True, {"value": "m2", "parent": parent.id, "root": parent.id}],
    ]
    # batch_trigger and batch.trigger inside a run: children, not waited for.
    batch_id, ids = out["batch_trigger"]
    assert batch_id.startswith("batch_") and len(ids) == 2
    assert [runs.retrieve(i).payload["value"] for i in ids] == ["b0", "b1"]
    other_batch, other_ids = out["batch_dot_trigger"]
    assert other_batch != batch_id and len(other_ids) == 1
    for run_id in [*ids, *other_ids]:
        assert runs.retrieve(run_id).parent_run_id == parent.id
        assert finished(run_id).status is RunStatus.COMPLETED
    # on_wait / on_resume: one pair per wait, with its details.
    hooks = probe.hooks(parent.id)
    waits = [h for h in hooks if h["hook"] == "on_wait"]
    resumes = [h for h in hooks if h["hook"] == "on_resume"]
    assert [(h["type"], h["seq"]) for h in waits] == [
        ("task", 1),
        ("task", 2),
        ("task", 3),
        ("batch", 4),
        ("batch", 5),
    ]
    assert [(h["type"], h["seq"]) for h in resumes] == [(h["type"], h["seq"]) for h in waits]
    assert (waits[0]["run_id"], waits[1]["run_id"]) == (good_id, bad_id)
    assert (waits[3]["batch_id"], waits[3]["run_count"]) == (out["items_id"], 4)
    assert waits[4]["run_count"] == 3
    # Every child ran once.
    assert sorted((str(line["value"]) for line in probe.ledger("echo")), key=str) == sorted(
        ["good", "bad", "by-id", "0", "1", "2", "3", "m0", "m2", "b0", "b1", "bt"]
    )


def test_parallel_waits_with_gather(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe
) -> None:
    start_worker(concurrency=8)
    parent = tasks.trigger("gatherer", probe.payload())
    token = probe.token_of(parent.id)
    # The children end; the parent still waits for the token, without a slot.
    probe.wait_ledger("echo", count=3)
    wait_status(parent.id, RunStatus.WAITING)

    assert wait.complete_token(token, {"t": 1}) is True

    assert parent.result(timeout=20) == ["a", "b", "c", {"t": 1}]
    waits = [h for h in probe.hooks(parent.id) if h["hook"] == "on_wait"]
    assert sorted(h["type"] for h in waits) == ["batch", "task", "task", "token"]
    assert runs.retrieve(parent.id).attempt_count == 1
    assert len(probe.ledger("token", run=parent.id)) == 1  # continued in place


def test_cancelling_a_parent_cancels_its_children(
    project: TaskloomProject, start_worker: StartWorker, probe: Probe
) -> None:
    start_worker(concurrency=8)
    parent = tasks.trigger("holding-parent", probe.payload())
    probe.wait_ledger("holding", count=3)
    wait_status(parent.id, RunStatus.WAITING)
    children = runs.list(task="holder")
    assert len(children) == 3

    runs.cancel(parent.id)

    assert runs.retrieve(parent.id).status is RunStatus.CANCELED
    for child in children:
        assert runs.retrieve(child.id).status is RunStatus.CANCELED
        assert child.parent_run_id == parent.id
    # Their attempts were stopped on the worker (signal.aborted), within a second or so.
    stopped = probe.wait_ledger("holder-stopped", count=3, timeout=5)
    assert all(line["aborted"] for line in stopped)
    wait_for(
        lambda: (
            all(a.status == "CANCELED" for c in children for a in runs.retrieve(c.id).attempts)
            and all(runs.retrieve(c.id).attempts for c in children)
        ),
        timeout=10,
        message="the children's attempts were not recorded CANCELED",
    )
    assert runs.retrieve(parent.id).status is RunStatus.CANCELED
