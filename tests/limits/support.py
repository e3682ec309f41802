"""Task modules and helpers shared by the queues-and-limits tests.

Task code reports to the test through a ledger: one JSON line per attempt start and end,
appended with a single `write` to a file opened with O_APPEND, so lines from several
executors of several workers never mix. Each line has the run, the attempt, the queue
and concurrency key, the wall-clock time, the executor's pid and its parent (the worker
supervisor). From the lines the test rebuilds every attempt as an interval and computes
the most attempts that ever ran at once per queue and per (queue, key).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taskloom.testing import wait_for

FAST_CONFIG: dict[str, Any] = {
    "worker": {
        "lease_seconds": 2,
        "shutdown_grace_seconds": 5,
        "cancel_grace_seconds": 1,
        "poll_interval_seconds": 0.5,
        "memory_check_seconds": 0.05,
    },
    "retries": {
        "default": {
            "max_attempts": 3,
            "factor": 1,
            "min_timeout_ms": 50,
            "max_timeout_ms": 50,
            "randomize": False,
        }
    },
}
"""Short leases, polls and backoff, so kill and retry scenarios take seconds."""

FINAL = frozenset(
    {"COMPLETED", "CANCELED", "FAILED", "CRASHED", "SYSTEM_FAILURE", "EXPIRED", "TIMED_OUT"}
)

LEDGER_HELPERS = '''
import json
import os
import time


def note(payload, ctx, event, **extra):
    """Append one line to the ledger named in the payload (one O_APPEND write)."""
    line = json.dumps(
        {
            "e": event,
            "run": ctx.run.id,
            "att": ctx.attempt.number,
            "q": ctx.queue.name,
            "k": payload.get("key") or "",
            "t": time.time(),
            "pid": os.getpid(),
            "ppid": os.getppid(),
            **extra,
        }
    )
    fd = os.open(payload["ledger"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\\n").encode())
    finally:
        os.close(fd)
'''

LEDGER_TASKS = (
    LEDGER_HELPERS
    + '''
import asyncio

from taskloom import queue, task

solo = queue(name="solo", concurrency_limit=1)
pair = queue(name="pair", concurrency_limit=2)
tenants = queue(name="tenants", concurrency_limit=2, total_concurrency_limit=3)
wide = queue(name="wide")


@task(id="work", queue={"concurrency_limit": 2})
async def work(payload, ctx):
    """Sleep `d` seconds between a start and an end line; fail attempt 1 if asked."""
    note(payload, ctx, "start")
    how = "ok"
    try:
        await asyncio.sleep(payload.get("d", 0.05))
        if payload.get("fail_first") and ctx.attempt.number == 1:
            how = "failed"
            raise RuntimeError("planned failure of attempt 1")
        return {"attempt": ctx.attempt.number, "pid": os.getpid()}
    except asyncio.CancelledError:
        how = "cancelled"
        raise
    finally:
        note(payload, ctx, "end", how=how)


@task(id="hold", queue={"concurrency_limit": 10})
async def hold(payload, ctx):
    """Run until the file named `release` exists."""
    note(payload, ctx, "start")
    try:
        while not os.path.exists(payload["release"]):
            await asyncio.sleep(0.005)
        return {"attempt": ctx.attempt.number}
    finally:
        note(payload, ctx, "end")
'''
)
"""Written as ``trigger/ledger_tasks.py``: task `work` (own queue `task/work`, limit 2),
task `hold` (runs until a file exists; own queue, limit 10) and the shared queues `solo`
(1), `pair` (2 per key), `tenants` (2 per key, 3 in total) and `wide` (no limit)."""

LIMITS = {"task/work": 2, "task/hold": 10, "solo": 1, "pair": 2, "tenants": 2, "wide": None}
"""Per (queue, key) limits of `LEDGER_TASKS`' queues."""
TOTAL_LIMITS = {"task/work": 2, "solo": 1, "tenants": 3}
"""Per-queue limits across keys (a queue without keys: its limit)."""


@dataclass(slots=True)
class Entry:
    """One ledger line."""

    event: str
    run: str
    attempt: int
    queue: str
    key: str
    t: float
    pid: int
    ppid: int
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Interval:
    """One execution of an attempt: from its start line to its end line (None: no end)."""

    run: str
    attempt: int
    queue: str
    key: str
    pid: int
    ppid: int
    start: float
    end: float | None = None
    how: str | None = None


class Ledger:
    """The test's side of the ledger file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def payload(self, **extra: Any) -> dict[str, Any]:
        """A payload for the ledger tasks."""
        return {"ledger": str(self.path), **extra}

    def entries(self) -> list[Entry]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        found = []
        for line in text.splitlines():
            data = json.loads(line)
            found.append(
                Entry(
                    data.pop("e"),
                    data.pop("run"),
                    data.pop("att"),
                    data.pop("q"),
                    data.pop("k"),
                    data.pop("t"),
                    data.pop("pid"),
                    data.pop("ppid"),
                    data,
                )
            )
        return found

    def intervals(self) -> list[Interval]:
        """Every execution, in start order. An end closes the open execution of the same
        (run, attempt, pid)."""
        open_: dict[tuple[str, int, int], Interval] = {}
        done: list[Interval] = []
        for entry in sorted(self.entries(), key=lambda e: e.t):
            ident = (entry.run, entry.attempt, entry.pid)
            if entry.event == "start":
                interval = Interval(
                    entry.run,
                    entry.attempt,
                    entry.queue,
                    entry.key,
                    entry.pid,
                    entry.ppid,
                    entry.t,
                )
                open_[ident] = interval
                done.append(interval)
            elif entry.event == "end" and ident in open_:
                interval = open_.pop(ident)
                interval.end = entry.t
                interval.how = entry.extra.get("how")
        return sorted(done, key=lambda i: i.start)

    def started(self, run_id: str) -> bool:
        return any(e.event == "start" and e.run == run_id for e in self.entries())

    def ended(self, run_id: str) -> bool:
        return any(e.event == "end" and e.run == run_id for e in self.entries())

    def wait_started(self, *run_ids: str, timeout: float = 15.0) -> None:
        """Block until every run has started an attempt."""
        wait_for(
            lambda: set(run_ids) <= self.started_runs(),
            timeout,
            message=lambda: f"not started: {set(run_ids) - self.started_runs()}",
        )

    def starts(self) -> int:
        return sum(1 for e in self.entries() if e.event == "start")

    def started_runs(self) -> set[str]:
        return {e.run for e in self.entries() if e.event == "start"}


Span = tuple[float, float]


def max_overlap(
    spans: Iterable[tuple[Hashable, Span]],
) -> dict[Hashable, tuple[int, float]]:
    """The most spans of each group open at once, and a moment when it happened.

    Spans are half-open [start, end): one that ends exactly when another starts does not
    overlap it. Empty spans (end <= start) never count.
    """
    events: dict[Hashable, list[tuple[float, int]]] = defaultdict(list)
    for group, (start, end) in spans:
        if end > start:
            events[group] += [(start, 1), (end, -1)]
    result: dict[Hashable, tuple[int, float]] = {}
    for group, points in events.items():
        points.sort()  # at equal times -1 sorts before +1: ends first
        current = best = 0
        when = 0.0
        for moment, step in points:
            current += step
            if current > best:
                best, when = current, moment
        result[group] = (best, when)
    return result


def overlap_report(
    intervals: list[Interval],
    spans: dict[int, Span],
    group: Callable[[Interval], Hashable],
    at: float,
) -> str:
    """The executions of a group open at time `at`, for a failure message."""
    lines = []
    for index, interval in enumerate(intervals):
        start, end = spans[index]
        if start <= at < end:
            lines.append(
                f"  {group(interval)} run {interval.run} attempt {interval.attempt} pid "
                f"{interval.pid} (worker pid {interval.ppid}) [{start:.3f}, {end:.3f}) "
                f"how={interval.how}"
            )
    return "\n".join(lines)
