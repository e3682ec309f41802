"""Fairness across concurrency keys, measured: a key with a big backlog does not starve
keys with one run each, whether what binds is the worker's capacity or the queue's total
cap across keys.

Two measurements: claim by claim on the store (exact counts, a FakeClock), and with a
real worker (starts recorded in the ledger). Each prints what it measured.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from taskloom import tasks
from taskloom.clock import FakeClock
from taskloom.store.records import ClaimedRun
from taskloom.testing import TaskloomProject, wait_for

from .conftest import StartWorker
from .enginekit import T0, FakeWorker, declare, open_engine, spec, trigger
from .support import LEDGER_HELPERS, Ledger

BIG_BACKLOG = 1_000
SMALL_KEYS = 5

# (per-key limit, total cap across keys, worker capacity)
BINDINGS = {
    "worker capacity": (5, None, 4),
    "total cap across keys": (3, 3, 20),
}


@pytest.mark.parametrize("binding", list(BINDINGS))
def test_small_keys_start_within_a_few_claims(
    tmp_path: Path, binding: str, capsys: pytest.CaptureFixture[str]
) -> None:
    limit, total, capacity = BINDINGS[binding]
    clock = FakeClock(start_ms=T0)
    task = spec("tenant-job", queue="tenants")
    with open_engine(tmp_path, [task], clock) as engine:
        declare(engine, "tenants", limit, total)
        for _ in range(BIG_BACKLOG):
            trigger(engine, task, concurrency_key="big")
            clock.advance(ms=1)
        small = {
            trigger(engine, task, concurrency_key=f"small-{n}"): f"small-{n}"
            for n in range(SMALL_KEYS)
        }
        worker = FakeWorker(engine)
        held: list[ClaimedRun] = []
        waiting = set(small)
        claims = big_before = 0
        started_at_claim: dict[str, int] = {}
        while waiting and claims < 200:
            if held:  # one slot frees per tick: the oldest run in flight completes
                clock.advance(ms=10)
                worker.complete(held.pop(0))
            got = worker.claim(capacity - len(held))
            claims += 1
            held += got
            for run in got:
                if run.id in waiting:
                    waiting.discard(run.id)
                    started_at_claim[small[run.id]] = claims
                elif waiting:
                    big_before += 1
    with capsys.disabled():
        print(
            f"\n[fairness, {binding}] {SMALL_KEYS} keys with 1 run each behind a key with "
            f"{BIG_BACKLOG}: all started within {max(started_at_claim.values(), default=-1)} "
            f"claims ({started_at_claim}); {big_before} big-key runs started meanwhile"
        )
    assert not waiting, f"small keys never started in {claims} claims: {sorted(waiting)}"
    # Round robin over the sub-queues: each claim serves at least one new sub-queue, so
    # (1 big + 5 small) sub-queues are all reached within 6 claims.
    assert max(started_at_claim.values()) <= SMALL_KEYS + 1
    assert big_before <= SMALL_KEYS * capacity


FAIR_TASKS = (
    LEDGER_HELPERS
    + """
import asyncio

from taskloom import queue, task

capped = queue(name="capped", concurrency_limit=2, total_concurrency_limit=2)
keyed = queue(name="keyed", concurrency_limit=5)


@task(id="tenant-job")
async def tenant_job(payload, ctx):
    note(payload, ctx, "start")
    await asyncio.sleep(payload.get("d", 0.005))
    note(payload, ctx, "end")
"""
)

# queue, worker concurrency: the total cap binds in "capped", the worker in "keyed"
REAL_BINDINGS = {"total cap across keys": ("capped", 8), "worker capacity": ("keyed", 2)}


@pytest.mark.slow
@pytest.mark.parametrize("binding", list(REAL_BINDINGS))
def test_small_keys_are_not_starved_by_a_big_backlog_on_a_real_worker(
    project: TaskloomProject,
    start_worker: StartWorker,
    ledger: Ledger,
    binding: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    queue, concurrency = REAL_BINDINGS[binding]
    project.write_task_module("fair_tasks", FAIR_TASKS)
    start_worker(concurrency=concurrency)
    backlog = 200
    big = [
        tasks.trigger("tenant-job", ledger.payload(key="big"), queue=queue, concurrency_key="big")
        for _ in range(backlog)
    ]
    wait_for(lambda: ledger.starts() >= 10, timeout=20, message="the backlog did not start")
    triggered_at: dict[str, float] = {}
    for n in range(3):
        key = f"small-{n}"
        at = time.time()
        handle = tasks.trigger(
            "tenant-job", ledger.payload(key=key), queue=queue, concurrency_key=key
        )
        triggered_at[handle.id] = at
    wait_for(
        lambda: set(triggered_at) <= ledger.started_runs(),
        timeout=20,
        message=lambda: f"small keys not started; {ledger.starts()} starts so far",
    )
    starts = [e for e in ledger.entries() if e.event == "start"]
    waited: dict[str, tuple[int, float]] = {}
    for run_id, at in triggered_at.items():
        began = next(e.t for e in starts if e.run == run_id)
        big_meanwhile = sum(1 for e in starts if e.key == "big" and at <= e.t < began)
        waited[run_id] = (big_meanwhile, began - at)
    big_left = backlog - sum(1 for e in starts if e.key == "big")
    with capsys.disabled():
        print(
            f"\n[fairness, real worker, {binding}] small-key runs started after "
            + ", ".join(f"{n} big-key starts / {s * 1000:.0f} ms" for n, s in waited.values())
            + f"; {big_left} of {backlog} big-key runs still queued then"
        )
    assert big_left > 0, "the backlog drained first: the measurement proves nothing"
    assert all(n <= 3 * concurrency for n, _ in waited.values()), waited
    assert all(seconds < 2.0 for _, seconds in waited.values()), waited
    del big


def test_paused_sub_queues_do_not_delay_a_runnable_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = FakeClock(start_ms=T0)
    task = spec("tenant-job", queue="held")
    with open_engine(tmp_path, [task], clock) as engine:
        declare(engine, "held", 1)
        declare(engine, "open")
        for n in range(200):  # a paused queue whose 200 keys each have a ready run
            trigger(engine, task, concurrency_key=f"tenant-{n:03d}")
        assert engine.queues.pause("held", True).paused
        runnable = trigger(engine, task, queue="open")
        worker = FakeWorker(engine)
        claims = 0
        claimed: list[ClaimedRun] = []
        while not claimed and claims < 100:
            claims += 1
            claimed = worker.claim(5)
        with capsys.disabled():
            print(f"\n[paused sub-queues] a runnable run behind 200 paused ones: claim {claims}")
        assert [run.id for run in claimed] == [runnable]
        assert claims == 1, f"the runnable run was claimed at claim {claims}"
