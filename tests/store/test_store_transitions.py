"""The store's statements can make no status change the transition table does not allow.

Every statement that writes a run's status is run against a run forced into each of the
13 statuses (with a holder, an attempt and due times that make it a candidate), with the
parameters that aim it at that run; a statement whose target status is a parameter is run
with every target too. Whatever changed must be an edge of `TRANSITIONS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from storekit import T0, insert, new_run, register

from storeops import StoreOps
from taskloom.engine.states import TRANSITIONS, can_transition
from taskloom.store.records import (
    AttemptStart,
    AttemptStarts,
    ClaimRequest,
    RunCancel,
    RunFinish,
    RunRelease,
    Suspension,
)
from taskloom.store.sql.session import Session
from taskloom.types import RunStatus

WORKER = "w-transitions"
NOW = T0 + 60_000
STATUSES = [status.value for status in RunStatus]

FORCE = """
UPDATE runs SET status = :status, worker_id = :worker_id, resume_worker = :worker_id,
    attempt = 1, delay_until = :past, available_at = :past, expires_at = :past,
    suspended = 1
WHERE id = :id
"""


def forced(store: StoreOps, status: str) -> str:
    """A run in `status`, held by WORKER at attempt 1, due for everything time-based."""
    run_id = insert(store, new_run(ttl_ms=1_000))
    params = {"status": status, "worker_id": WORKER, "past": T0, "id": run_id}
    store.store.write(lambda s: s.run(FORCE, params), "force")
    return run_id


def finish(target: str) -> Callable[[Session, str], Any]:
    def apply(session: Session, run_id: str) -> None:
        session.runs_finish(
            [
                RunFinish(
                    run_id=run_id,
                    attempt=1,
                    worker_id=WORKER,
                    status=target,
                    output=None,
                    error=None,
                    retry_at=None,
                    finished_at=NOW,
                    started_at=NOW,
                    released=False,
                    clear_idempotency_key=False,
                    machine=None,
                    now=NOW,
                )
            ]
        )

    return apply


STATEMENTS: dict[str, Callable[[Session, str], Any]] = {
    "run_cancel": lambda s, run_id: s.run_cancel(
        RunCancel(run_id, s.run_guard(run_id).status, b"{}", NOW)  # type: ignore[union-attr]
    ),
    "runs_promote_delayed": lambda s, run_id: s.runs_promote_delayed(NOW, 100),
    "runs_expire": lambda s, run_id: s.runs_expire(NOW, 100),
    "runs_claim": lambda s, run_id: s.runs_claim(ClaimRequest(WORKER, NOW, 100)),
    "runs_start": lambda s, run_id: s.runs_start(
        AttemptStarts(WORKER, [AttemptStart(run_id, 1, NOW)], NOW)
    ),
    "runs_release": lambda s, run_id: s.runs_release(RunRelease(WORKER, [run_id], False, NOW)),
    "run_suspend": lambda s, run_id: s.run_suspend(Suspension(run_id, 1, WORKER), NOW),
    "runs_requeue_waiting": lambda s, run_id: s.runs_requeue_waiting([run_id], NOW),
    **{f"runs_finish to {target}": finish(target) for target in STATUSES},
}


@pytest.mark.parametrize("statement", sorted(STATEMENTS))
def test_a_statement_makes_only_changes_the_table_allows(store: StoreOps, statement: str) -> None:
    register(store, WORKER, NOW)
    apply = STATEMENTS[statement]
    seen: list[tuple[str, str]] = []
    for status in STATUSES:
        run_id = forced(store, status)
        store.store.write(lambda s, run_id=run_id: apply(s, run_id), statement)
        record = store.run_get(run_id)
        assert record is not None
        seen.append((status, record.status))
    forbidden = [
        (was, now)
        for was, now in seen
        if was != now and not can_transition(RunStatus(was), RunStatus(now))
    ]
    assert forbidden == [], f"{statement} made changes the transition table forbids"


def test_every_status_has_a_row_in_the_table() -> None:
    assert set(TRANSITIONS) == set(RunStatus)


def test_the_statements_make_the_changes_the_engine_relies_on(store: StoreOps) -> None:
    """The other half: the guarded statements do make their edge (so the test above is
    not passing because nothing ever changes)."""
    register(store, WORKER, NOW)
    expected = {
        "run_cancel": ("QUEUED", "CANCELED"),
        "runs_promote_delayed": ("DELAYED", "QUEUED"),
        "runs_expire": ("QUEUED", "EXPIRED"),
        "runs_start": ("DEQUEUED", "EXECUTING"),
        "runs_release": ("EXECUTING", "QUEUED"),
        "run_suspend": ("EXECUTING", "WAITING"),
        "runs_requeue_waiting": ("WAITING", "QUEUED"),
        "runs_finish to COMPLETED": ("EXECUTING", "COMPLETED"),
        "runs_finish to QUEUED": ("DEQUEUED", "QUEUED"),
    }
    for statement, (was, now) in expected.items():
        run_id = forced(store, was)
        store.store.write(lambda s, run_id=run_id, st=statement: STATEMENTS[st](s, run_id), "x")
        record = store.run_get(run_id)
        assert record is not None and record.status == now, statement
    claimed = forced(store, "QUEUED")
    store.store.write(
        lambda s: s.run("UPDATE runs SET expires_at = NULL WHERE id = ?", [claimed]), "x"
    )
    store.store.write(lambda s: STATEMENTS["runs_claim"](s, claimed), "claim")
    record = store.run_get(claimed)
    assert record is not None and record.status == "DEQUEUED"
