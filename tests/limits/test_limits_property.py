"""Concurrency limits hold across worker processes, whatever happens.

Hypothesis draws a scenario: 2-3 real workers, waves of triggers into queues with limits
(per queue, per concurrency key, a total across keys, none), planned failures of first
attempts, cancels, and a SIGKILL of one worker mid-way (the whole process group, as a
dead machine, or the supervisor alone, orphaning its executors). Every attempt writes a
start and an end line to a ledger; afterwards the test rebuilds each execution as a time
span and checks, for every queue and every (queue, key), that no more ran at once than
the limit allows; and that every run reached the status it must have, none was lost, and
every completed run really executed.

How a span ends:
- normally, at the attempt's end line;
- a cancelled run's last attempt: at the latest when `runs.cancel` was called, because
  a CANCELED run holds no slot (its attempt may still be unwinding, and another run may
  start meanwhile);
- an attempt of the killed worker that was rescued (a CRASHED attempt row of that
  worker): not before the rescue, the row's `finished_at`. The run keeps its slot through
  the lease gap, so counting the attempt as running until then makes the check strict:
  nothing else may start in that slot while the dead worker's lease runs out. An orphaned
  executor that kept running past the rescue is still counted (its own end line is
  later). One the worker finished and recorded before it was killed ends at its end line;
  one with no end line (its process was killed with the group) at the kill.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from taskloom import runs, tasks
from taskloom.runtime import registry
from taskloom.testing import TaskloomProject, WorkerProcess, wait_for
from workerfixtures import local_engine

from .support import (
    FAST_CONFIG,
    FINAL,
    LEDGER_TASKS,
    LIMITS,
    TOTAL_LIMITS,
    Interval,
    Ledger,
    max_overlap,
    overlap_report,
)

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("TASKLOOM_LIMITS_EXAMPLES", "5"))
QUEUE_CHOICES = ["task/work", "solo", "pair", "tenants", "wide"]
KEYS = {"pair": [None, "k1", "k2"], "tenants": ["k1", "k2", "k3", "k4"]}


@dataclass(frozen=True)
class Trigger:
    queue: str
    key: str | None
    duration: float
    fail_first: bool
    priority: int


@dataclass
class Plan:
    workers: list[int]  # concurrency of each worker
    waves: list[list[Trigger]]
    cancels: dict[int, list[int]]  # wave -> indexes (into all triggers so far) to cancel
    kill_after_wave: int
    kill_worker: int
    kill_group: bool

    def describe(self) -> str:
        count = sum(len(w) for w in self.waves)
        return (
            f"workers {self.workers}, {count} runs in waves {[len(w) for w in self.waves]}, "
            f"cancels {self.cancels}, kill worker {self.kill_worker} "
            f"({'group' if self.kill_group else 'supervisor only'}) after wave "
            f"{self.kill_after_wave}"
        )


@st.composite
def triggers(draw: st.DrawFn) -> Trigger:
    queue = draw(st.sampled_from(QUEUE_CHOICES))
    key = draw(st.sampled_from(KEYS[queue])) if queue in KEYS else None
    return Trigger(
        queue=queue,
        key=key,
        duration=draw(st.integers(20, 300)) / 1000,
        fail_first=draw(st.sampled_from([False, False, False, False, True])),
        priority=draw(st.sampled_from([0, 0, 0, 1, 10])),
    )


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    workers = draw(st.lists(st.integers(2, 6), min_size=2, max_size=3))
    waves = draw(st.lists(st.lists(triggers(), min_size=4, max_size=12), min_size=2, max_size=4))
    cancels: dict[int, list[int]] = {}
    triggered = 0
    for index, wave in enumerate(waves):
        triggered += len(wave)
        chosen = draw(st.lists(st.integers(0, triggered - 1), max_size=2, unique=True))
        if chosen:
            cancels[index] = chosen
    return Plan(
        workers=workers,
        waves=waves,
        cancels=cancels,
        kill_after_wave=draw(st.integers(0, len(waves) - 2)),
        kill_worker=draw(st.integers(0, len(workers) - 1)),
        kill_group=draw(st.booleans()),
    )


@dataclass
class Outcome:
    """What the test did and saw while running a plan."""

    handles: list[tuple[str, Trigger]] = field(default_factory=list)
    cancelled: dict[str, tuple[float, str]] = field(default_factory=dict)  # id -> (t, before)
    killed_pid: int = 0
    killed_id: str = ""
    killed_at: float = 0.0


def _trigger(ledger: Ledger, item: Trigger) -> str:
    options: dict[str, Any] = {"priority": item.priority}
    if item.queue != "task/work":
        options["queue"] = item.queue
    if item.key is not None:
        options["concurrency_key"] = item.key
    payload = ledger.payload(d=item.duration, fail_first=item.fail_first, key=item.key)
    return tasks.trigger("work", payload, **options).id


def _busy(ledger: Ledger, worker: WorkerProcess) -> bool:
    """True while an attempt of `worker` has started and not ended."""
    return any(i.ppid == worker.pid and i.end is None for i in ledger.intervals())


def _all_final(ids: list[str]) -> bool:
    return all(runs.retrieve(run_id).status.value in FINAL for run_id in ids)


def _execute(plan: Plan, project: TaskloomProject, ledger: Ledger) -> Outcome:
    seen = Outcome()
    workers = [project.worker(concurrency=c, executors=1) for c in plan.workers]
    try:
        for index, wave in enumerate(plan.waves):
            for item in wave:
                seen.handles.append((_trigger(ledger, item), item))
            for target in plan.cancels.get(index, []):
                run_id = seen.handles[target][0]
                before = time.time()
                previous = local_engine().cancel(run_id)  # the status it had
                if run_id not in seen.cancelled:
                    seen.cancelled[run_id] = (before, previous.value)
            if index == plan.kill_after_wave:
                victim = workers[plan.kill_worker]
                ids = [h for h, _ in seen.handles]
                # Mid-way: when the victim holds an attempt (or nothing is left to hold).
                wait_for(lambda: _busy(ledger, victim) or _all_final(ids), timeout=20)  # noqa: B023
                seen.killed_pid, seen.killed_id = victim.pid, victim.worker_id
                seen.killed_at = time.time()
                victim.kill(group=plan.kill_group)
        ids = [h for h, _ in seen.handles]
        wait_for(
            lambda: _all_final(ids),
            timeout=90,
            message=lambda: f"runs not final: {_statuses(ids)}\n{plan.describe()}",
        )
        # A CANCELED run's attempt may still be unwinding; every other ended already.
        wait_for(
            lambda: all(i.end is not None or i.ppid == seen.killed_pid for i in ledger.intervals()),
            timeout=15,
            message="attempts without an end line",
        )
    finally:
        for worker in workers:
            worker.close()
    return seen


def _statuses(ids: list[str]) -> Counter[str]:
    return Counter(runs.retrieve(run_id).status.value for run_id in ids)


def _rescued_at(project: TaskloomProject, worker_id: str) -> dict[tuple[str, int], float]:
    rows = project.query(
        "SELECT run_id, number, finished_at FROM attempts WHERE worker_id = ? AND status = ?",
        (worker_id, "CRASHED"),
    )
    return {(run_id, number): finished / 1000 for run_id, number, finished in rows}


def _spans(
    intervals: list[Interval], seen: Outcome, project: TaskloomProject
) -> dict[int, tuple[float, float]]:
    rescued = _rescued_at(project, seen.killed_id) if seen.killed_id else {}
    final_attempt = {h: runs.retrieve(h).attempt_count for h in seen.cancelled}
    spans: dict[int, tuple[float, float]] = {}
    for index, interval in enumerate(intervals):
        end = interval.end
        if interval.ppid == seen.killed_pid:
            died = end if end is not None else seen.killed_at  # the executor died with it
            held_until = rescued.get((interval.run, interval.attempt))
            # Rescued after the lease lapsed: the slot was held until then. Not rescued: its
            # outcome was written before the kill (or a cancel freed it), at its end.
            end = died if held_until is None else max(died, held_until)
        assert end is not None, f"attempt without an end: {interval}"
        cancel = seen.cancelled.get(interval.run)
        if (
            cancel is not None
            and runs.retrieve(interval.run).status.value == "CANCELED"
            and interval.attempt == final_attempt[interval.run]
        ):
            end = min(end, cancel[0])
        spans[index] = (interval.start, end)
    return spans


def _check_limits(intervals: list[Interval], spans: dict[int, tuple[float, float]]) -> str:
    problems = []
    by_key = max_overlap(
        ((i.queue, i.key), spans[n]) for n, i in enumerate(intervals) if LIMITS[i.queue]
    )
    for (queue, key), (most, at) in by_key.items():
        limit = LIMITS[queue]
        assert limit is not None
        if most > limit:
            problems.append(
                f"queue {queue!r} key {key!r}: {most} at once, limit {limit}:\n"
                + overlap_report(intervals, spans, lambda i: (i.queue, i.key), at)
            )
    by_queue = max_overlap(
        (i.queue, spans[n]) for n, i in enumerate(intervals) if i.queue in TOTAL_LIMITS
    )
    for queue, (most, at) in by_queue.items():
        if most > TOTAL_LIMITS[str(queue)]:
            problems.append(
                f"queue {queue!r}: {most} at once across keys, limit {TOTAL_LIMITS[str(queue)]}"
                f":\n" + overlap_report(intervals, spans, lambda i: i.queue, at)
            )
    return "\n".join(problems)


def _check_runs(seen: Outcome, intervals: list[Interval], project: TaskloomProject) -> str:
    problems = []
    stored = project.query("SELECT COUNT(*) FROM runs")[0][0]
    if stored != len(seen.handles):
        problems.append(f"{len(seen.handles)} runs triggered, {stored} stored")
    by_run: dict[str, list[Interval]] = {}
    for interval in intervals:
        by_run.setdefault(interval.run, []).append(interval)
    for run_id, item in seen.handles:
        run = runs.retrieve(run_id)
        status = run.status.value
        cancel = seen.cancelled.get(run_id)
        executions = by_run.get(run_id, [])
        if cancel is not None and cancel[1] not in FINAL:
            expected = "CANCELED"
            late = [i for i in executions if i.start > cancel[0] and cancel[1] == "QUEUED"]
            if late:
                problems.append(f"{run_id} was cancelled while QUEUED but started: {late}")
        else:
            expected = "COMPLETED"
        if status != expected:
            problems.append(f"{run_id} ({item}) is {status}, expected {expected}: {run.error}")
            continue
        if status == "COMPLETED":
            ok = [i for i in executions if i.how == "ok" and i.attempt == run.attempt_count]
            if not ok or run.output != {"attempt": run.attempt_count, "pid": ok[-1].pid}:
                problems.append(
                    f"{run_id} COMPLETED at attempt {run.attempt_count} with {run.output} "
                    f"but its executions were {executions}"
                )
            if item.fail_first and not any(i.how == "failed" for i in executions):
                # attempt 1 may have been killed instead of failing: then it crashed
                attempts = [a.status for a in run.attempts]
                if attempts[:1] != ["CRASHED"]:
                    problems.append(f"{run_id} should have failed attempt 1: {attempts}")
    return "\n".join(problems)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: every example costs seconds
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=plans())
def test_limits_hold_with_several_workers_cancels_failures_and_a_kill(
    plan: Plan, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("limits")
    project = TaskloomProject(root / "project")
    project.write_config(**FAST_CONFIG)
    project.write_task_module("ledger_tasks", LEDGER_TASKS)
    ledger = Ledger(root / "ledger.jsonl")
    known = {task.id for task in registry.all_tasks()}
    project.configure()
    began = time.monotonic()
    try:
        seen = _execute(plan, project, ledger)
        intervals = ledger.intervals()
        spans = _spans(intervals, seen, project)
        report = "\n".join(
            p for p in (_check_limits(intervals, spans), _check_runs(seen, intervals, project)) if p
        )
        own = max_overlap(((i.run,), spans[n]) for n, i in enumerate(intervals))
        doubled = [run for run, (most, _) in own.items() if most > 1]
        if doubled:
            report += f"\nruns executing twice at once: {doubled}"
        killed = sum(1 for i in intervals if i.ppid == seen.killed_pid)
        print(
            f"{plan.describe()}: {len(intervals)} executions ({killed} on the killed "
            f"worker), statuses "
            f"{dict(_statuses([h for h, _ in seen.handles]))}, "
            f"{time.monotonic() - began:.1f} s"
        )
        assert not report, f"{plan.describe()}\n{report}"
    finally:
        project.reset()
        for task in registry.all_tasks():
            if task.id not in known:
                registry.unregister(task.id)


def test_the_overlap_check_can_fail(tmp_path: Path) -> None:
    """The analysis itself: overlapping spans are counted, touching ones are not."""
    spans = [("q", (0.0, 2.0)), ("q", (1.0, 3.0)), ("q", (3.0, 4.0)), ("r", (5.0, 5.0))]
    assert max_overlap(spans) == {"q": (2, 1.0)}
    ledger = Ledger(tmp_path / "l.jsonl")
    ledger.path.write_text(
        '{"e":"start","run":"r1","att":1,"q":"solo","k":"","t":1.0,"pid":5,"ppid":4}\n'
        '{"e":"start","run":"r2","att":1,"q":"solo","k":"","t":1.5,"pid":6,"ppid":4}\n'
        '{"e":"end","run":"r1","att":1,"q":"solo","k":"","t":2.0,"pid":5,"ppid":4,"how":"ok"}\n'
    )
    intervals = ledger.intervals()
    assert [(i.run, i.end, i.how) for i in intervals] == [("r1", 2.0, "ok"), ("r2", None, None)]
    spans_by_index = {0: (1.0, 2.0), 1: (1.5, 3.0)}
    assert "limit 1" in _check_limits(intervals, spans_by_index)


def test_the_check_catches_a_claim_that_ignores_limits(
    project: TaskloomProject, ledger: Ledger
) -> None:
    """Mutation check: a worker whose claim ignores queue settings breaks `solo`'s limit of
    one, and the analysis above reports it."""
    project.write_task_module("ledger_tasks", LEDGER_TASKS)
    prelude = """
        import taskloom.store.sql.claim as claim
        claim.SELECT_QUEUE_SETTINGS = "SELECT name, NULL, NULL, 0 FROM queues WHERE 0"
    """
    with project.worker(concurrency=4, executors=1, prelude=prelude) as worker:
        ids = [_trigger(ledger, Trigger("solo", None, 0.3, False, 0)) for _ in range(4)]
        wait_for(lambda: _all_final(ids), timeout=30, message=worker.output)
    intervals = ledger.intervals()
    spans = {n: (i.start, i.end or i.start) for n, i in enumerate(intervals)}
    assert "queue 'solo' key '': 4 at once, limit 1" in _check_limits(intervals, spans)
