"""The task module the wait tests run, and the test's side of its files.

Task code reports to the test through a "probe" directory passed in every payload:
`note()` appends one JSON line per event to ``ledger.jsonl`` (one `O_APPEND` write, so
lines from several processes never interleave), and `on_wait` / `on_resume` hooks append
what they were given to ``hooks.jsonl``. Tests wait on those files and on run states with
deadlines; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from taskloom import Run, RunStatus, runs
from taskloom.testing import TaskloomProject, wait_for

FAST_CONFIG: dict[str, Any] = {
    "worker": {
        "lease_seconds": 2,
        "shutdown_grace_seconds": 5,
        "cancel_grace_seconds": 2,
        "poll_interval_seconds": 0.5,
    },
    "retries": {
        "default": {
            "max_attempts": 3,
            "factor": 2,
            "min_timeout_ms": 100,
            "max_timeout_ms": 1000,
            "randomize": False,
        }
    },
}
"""Short leases (a dead worker is noticed in about 2 s) and short backoff."""

WAIT_TASKS = '''
import asyncio
import json
import os
import threading
from datetime import datetime
from pathlib import Path

from taskloom import (
    AbortTaskRunError,
    SubtaskUnwrapError,
    WaitpointTimeoutError,
    batch,
    idempotency_keys,
    queue,
    schema_task,
    task,
    tasks,
    wait,
)
from taskloom.runtime.context import get_context

solo = queue(name="solo", concurrency_limit=1)
ONCE = {"max_attempts": 1}
FAST_RETRY = {"max_attempts": 3, "min_timeout_ms": 100, "factor": 2, "randomize": False}


def note(payload, event, **fields):
    """One line in the probe ledger: {"event": ..., "pid": ..., **fields}."""
    line = json.dumps({"event": event, "pid": os.getpid(), **fields}) + "\\n"
    path = Path(payload["dir"]) / "ledger.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def wait_hook(kind):
    def hook(payload, wait, ctx):
        data = {
            "hook": kind,
            "run": ctx.run.id,
            "type": wait.type,
            "seq": wait.seq,
            "date": None if wait.date is None else wait.date.isoformat(),
            "run_id": wait.run_id,
            "batch_id": wait.batch_id,
            "run_count": wait.run_count,
            "token": wait.token,
        }
        fd = os.open(
            Path(payload["dir"]) / "hooks.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644
        )
        try:
            os.write(fd, (json.dumps(data) + "\\n").encode())
        finally:
            os.close(fd)

    return hook


HOOKS = {"on_wait": wait_hook("on_wait"), "on_resume": wait_hook("on_resume")}


@task(id="echo", retry=ONCE)
async def echo(payload, ctx):
    """A child: returns its value and its links; fails when asked to."""
    note(payload, "echo", run=ctx.run.id, value=payload.get("value"))
    if payload.get("fail"):
        raise AbortTaskRunError(f"echo refuses {payload.get('value')!r}")
    return {
        "value": payload.get("value"),
        "parent": ctx.run.parent_run_id,
        "root": ctx.run.root_run_id,
    }


@task(id="sleeper", queue=solo, retry=ONCE, **HOOKS)
async def sleeper(payload, ctx):
    """Sleeps with wait.for_(seconds=...) or wait.until(iso datetime) on the limit-1 queue."""
    note(payload, "before", run=ctx.run.id, attempt=ctx.attempt.number)
    if "until" in payload:
        await wait.until(datetime.fromisoformat(payload["until"]))
    else:
        await wait.for_(seconds=payload["seconds"])
    note(payload, "after", run=ctx.run.id, attempt=ctx.attempt.number)
    return {"pid": os.getpid()}


@task(id="quick", queue=solo, retry=ONCE)
async def quick(payload, ctx):
    note(payload, "quick", run=ctx.run.id)
    return "quick"


def noted_cancel(payload, ctx):
    note(payload, "on_cancel", run=ctx.run.id)


@task(id="approver", retry=ONCE, on_cancel=noted_cancel, **HOOKS)
async def approver(payload, ctx):
    """Waits for the token in the payload, or for one it creates (noted in the ledger)."""
    token = payload.get("token")
    if token is None:
        made = wait.create_token(
            timeout=payload.get("timeout"),
            idempotency_key=payload.get("key"),
            tags=["approval"],
        )
        note(payload, "token", run=ctx.run.id, token=made.id, cached=made.is_cached)
        token = made
    result = await wait.for_token(token)
    try:
        result.unwrap()
        unwrapped = True
    except WaitpointTimeoutError:
        unwrapped = False
    return {
        "ok": result.ok,
        "output": result.output,
        "error": None if result.error is None else type(result.error).__name__,
        "message": None if result.error is None else str(result.error),
        "unwrapped": unwrapped,
    }


@task(id="solo-parent", queue=solo, retry=ONCE)
async def solo_parent(payload, ctx):
    """A parent on the limit-1 queue whose children run on the same queue."""
    one = await echo.trigger_and_wait(
        {"dir": payload["dir"], "value": "one"}, queue="solo"
    )
    many = await echo.batch_trigger_and_wait(
        [{"payload": {"dir": payload["dir"], "value": n}, "options": {"queue": "solo"}}
         for n in range(3)]
    )
    return {"one": one.unwrap()["value"], "many": [r.unwrap()["value"] for r in many]}


@task(id="fanout", retry=ONCE, **HOOKS)
async def fanout(payload, ctx):
    """Every way to make child runs from inside a run."""
    d = payload["dir"]
    good = await echo.trigger_and_wait({"dir": d, "value": "good"})
    bad = await echo.trigger_and_wait({"dir": d, "value": "bad", "fail": True})
    try:
        bad.unwrap()
        unwrap_error = None
    except SubtaskUnwrapError as error:
        unwrap_error = [type(error).__name__, error.run_id, str(error)]
    by_id = await tasks.trigger_and_wait("echo", {"dir": d, "value": "by-id"})
    items = await echo.batch_trigger_and_wait(
        [{"payload": {"dir": d, "value": n, "fail": n == 1}} for n in range(4)]
    )
    mixed = await batch.trigger_and_wait(
        [
            {"id": "echo", "payload": {"dir": d, "value": "m0"}},
            {"id": "quick", "payload": {"dir": d}},
            {"id": "echo", "payload": {"dir": d, "value": "m2"}},
        ]
    )
    handle = echo.batch_trigger([{"payload": {"dir": d, "value": f"b{n}"}} for n in range(2)])
    other = batch.trigger([{"id": "echo", "payload": {"dir": d, "value": "bt"}}])
    return {
        "good": [good.ok, good.id, good.output, good.error],
        "bad": [bad.ok, bad.id, bad.output, None if bad.error is None else bad.error.message],
        "unwrap_error": unwrap_error,
        "by_id": by_id.output["value"],
        "items": [[r.ok, r.id, (r.output or {}).get("value")] for r in items],
        "items_id": items.id,
        "mixed": [[r.ok, r.output] for r in mixed],
        "batch_trigger": [handle.batch_id, [h.id for h in handle.runs]],
        "batch_dot_trigger": [other.batch_id, [h.id for h in other.runs]],
    }


@task(id="nest", retry=ONCE)
async def nest(payload, ctx):
    """Triggers itself (and waits) until depth 0: a tree of runs three deep."""
    below = None
    if payload["depth"] > 0:
        child = await nest.trigger_and_wait({"dir": payload["dir"], "depth": payload["depth"] - 1})
        below = child.unwrap()
    return {
        "id": ctx.run.id,
        "parent": ctx.run.parent_run_id,
        "root": ctx.run.root_run_id,
        "below": below,
    }


@task(id="gatherer", retry=ONCE, **HOOKS)
async def gatherer(payload, ctx):
    """Parallel waits with asyncio.gather: two children, a batch and a token."""
    d = payload["dir"]
    token = wait.create_token()
    note(payload, "token", run=ctx.run.id, token=token.id)
    a, b, c, t = await asyncio.gather(
        echo.trigger_and_wait({"dir": d, "value": "a"}),
        tasks.trigger_and_wait("echo", {"dir": d, "value": "b"}),
        echo.batch_trigger_and_wait([{"payload": {"dir": d, "value": "c"}}]),
        wait.for_token(token),
    )
    return [a.output["value"], b.output["value"], c.runs[0].output["value"], t.output]


def noted_start(payload, ctx):
    note(payload, "on_start_attempt", run=ctx.run.id)


@task(id="replayer", retry=ONCE, on_start_attempt=noted_start)
async def replayer(payload, ctx):
    """Side effects around a child wait and a token wait, to see what a replay repeats."""
    note(payload, "start", run=ctx.run.id, attempt=ctx.attempt.number)
    child = await echo.trigger_and_wait({"dir": payload["dir"], "value": "child"})
    note(payload, "between", child=child.id)
    token = wait.create_token()
    note(payload, "token", run=ctx.run.id, token=token.id, cached=token.is_cached)
    result = await wait.for_token(token)
    note(payload, "end", output=result.output)
    return {"child": child.output["value"], "token": result.output, "attempt": ctx.attempt.number}


@task(id="flipper", retry=FAST_RETRY)
async def flipper(payload, ctx):
    """Waits for a token the first time; a replay makes a child wait at the same step."""
    marker = Path(payload["dir"]) / f"flipped-{ctx.run.id}"
    if not marker.exists():
        marker.touch()
        await wait.for_token(payload["token"])
    else:
        await echo.trigger_and_wait({"dir": payload["dir"], "value": "flip"})
    return "finished"


# -- parallel waits whose payloads take different times to validate ------------------------
_validated = {"a": threading.Event(), "b": threading.Event()}


def _ordered(data):
    """The schema of `ordered-echo`: in the parent's process, validating `data` waits until
    the item named in data["after"] was validated (so the test decides which of two
    parallel trigger_and_wait calls gets past validation first)."""
    ctx = get_context()
    if ctx is not None and ctx.task.id != "ordered-echo" and data.get("after"):
        _validated[data["after"]].wait(10)
    if ctx is not None and ctx.task.id != "ordered-echo":
        _validated[data["name"]].set()
    return data


@schema_task(id="ordered-echo", schema=_ordered, retry=ONCE)
async def ordered_echo(payload, ctx):
    return payload["name"]


@task(id="ordered-gather", retry=ONCE)
async def ordered_gather(payload, ctx):
    """gather(a, b) children, then a token wait; which child validates first flips between
    the first execution and a replay."""
    for event in _validated.values():
        event.clear()
    first = Path(payload["dir"]) / f"ordered-{ctx.run.id}"
    replaying = first.exists()
    first.touch()
    a_after, b_after = ("a", None) if not replaying else (None, "a")
    a, b = await asyncio.gather(
        ordered_echo.trigger_and_wait({"dir": payload["dir"], "name": "a", "after": a_after}),
        ordered_echo.trigger_and_wait({"dir": payload["dir"], "name": "b", "after": b_after}),
    )
    note(payload, "children", run=ctx.run.id, a=a.output, b=b.output, replaying=replaying)
    token = wait.create_token()
    note(payload, "token", run=ctx.run.id, token=token.id)
    await wait.for_token(token)
    return {"a": a.output, "b": b.output}


@task(id="keyed-parent", retry=FAST_RETRY)
async def keyed_parent(payload, ctx):
    """Triggers `echo` with the idempotency keys the payload asks for."""
    d = payload["dir"]
    ids = {}
    for name, (key, scope) in payload["keys"].items():
        made = key if scope is None else idempotency_keys.create(key, scope=scope)
        handle = echo.trigger({"dir": d, "value": name}, idempotency_key=made)
        ids[name] = handle.id
    if ctx.attempt.number < payload.get("fail_attempts", 0) + 1:
        note(payload, "keyed", run=ctx.run.id, attempt=ctx.attempt.number, ids=ids)
        raise RuntimeError(f"attempt {ctx.attempt.number} fails on purpose")
    note(payload, "keyed", run=ctx.run.id, attempt=ctx.attempt.number, ids=ids)
    return ids


@task(id="cached-waiter", retry=ONCE, **HOOKS)
async def cached_waiter(payload, ctx):
    """trigger_and_wait with a global key whose run may have finished already."""
    key = idempotency_keys.create(payload["key"], scope="global")
    result = await echo.trigger_and_wait({"dir": payload["dir"], "value": "fresh"},
                                         idempotency_key=key)
    return [result.ok, result.id, result.output["value"]]


@task(id="waits-in-sync")
def waits_in_sync(payload, ctx):
    """A plain function cannot wait."""
    asyncio.run(wait.for_(seconds=1))


@task(id="unknown-token", retry=ONCE)
async def unknown_token(payload, ctx):
    await wait.for_token("waitpoint_DOESNOTEXIST")


@task(id="big-batch", retry=ONCE)
async def big_batch(payload, ctx):
    items = [{"payload": {"dir": payload["dir"], "value": n}} for n in range(payload["n"])]
    if payload.get("bad_metadata") == "not-json":
        items[-1]["options"] = {"metadata": {"ids": {1, 2}}}
    elif payload.get("bad_metadata") == "too-big":
        items[-1]["options"] = {"metadata": {"blob": "x" * 300_000}}
    await echo.batch_trigger_and_wait(items)


@task(id="holder", retry=ONCE)
async def holder(payload, ctx):
    """Runs until cancelled (or 60 s), noting when it starts and when it is cancelled."""
    note(payload, "holding", run=ctx.run.id)
    try:
        await asyncio.wait_for(ctx.signal.wait(), 60)
    finally:
        note(payload, "holder-stopped", run=ctx.run.id, aborted=ctx.signal.aborted)


@task(id="holding-parent", retry=ONCE)
async def holding_parent(payload, ctx):
    """Waits for a `holder` child and a batch of two."""
    one, many = await asyncio.gather(
        holder.trigger_and_wait({"dir": payload["dir"]}),
        holder.batch_trigger_and_wait([{"payload": {"dir": payload["dir"]}}] * 2),
    )
    return "never"
'''
"""Written as ``trigger/waits_tasks.py`` in each test's project."""


class Probe:
    """The test's side of the probe directory."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)

    def payload(self, **extra: Any) -> dict[str, Any]:
        return {"dir": str(self.dir), **extra}

    def ledger(self, event: str | None = None, **match: Any) -> list[dict[str, Any]]:
        """Ledger lines (optionally of one event, with fields equal to `match`)."""
        lines = _json_lines(self.dir / "ledger.jsonl")
        return [
            line
            for line in lines
            if (event is None or line["event"] == event)
            and all(line.get(k) == v for k, v in match.items())
        ]

    def hooks(self, run_id: str | None = None) -> list[dict[str, Any]]:
        lines = _json_lines(self.dir / "hooks.jsonl")
        return [line for line in lines if run_id is None or line["run"] == run_id]

    def wait_ledger(
        self, event: str, count: int = 1, timeout: float = 20.0, **match: Any
    ) -> list[dict[str, Any]]:
        """Block until the ledger holds `count` lines of `event` (matching `match`)."""

        def enough() -> list[dict[str, Any]] | None:
            found = self.ledger(event, **match)
            return found if len(found) >= count else None

        return wait_for(
            enough,
            timeout,
            message=lambda: f"ledger has no {count} x {event} {match}: {self.ledger()}",
        )

    def token_of(self, run_id: str, timeout: float = 20.0) -> str:
        """The id of the token a run created (it notes it in the ledger)."""
        return str(self.wait_ledger("token", run=run_id, timeout=timeout)[-1]["token"])


def _json_lines(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def wait_status(run_id: str, status: RunStatus, timeout: float = 20.0) -> Run:
    """Block until the run has `status`; return it."""

    def reached() -> Run | None:
        run = runs.retrieve(run_id)
        return run if run.status is status else None

    return wait_for(
        reached,
        timeout,
        message=lambda: f"run {run_id} is {runs.retrieve(run_id).status.value}, not {status}",
    )


def finished(run_id: str, timeout: float = 30.0) -> Run:
    """Block until the run is final; return it."""
    return runs.poll(run_id, timeout=timeout)


def run_python(project: TaskloomProject, source: str, *args: str, timeout: float = 60) -> str:
    """Run Python source in a new process of the project; return its stdout (it must exit 0)."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source), *args],
        cwd=project.root,
        env=project.env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def spawn_python(project: TaskloomProject, source: str, *args: str) -> subprocess.Popen[str]:
    """Start Python source in a new process of the project (see `run_python`)."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(source), *args],
        cwd=project.root,
        env=project.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def column(project: TaskloomProject, run_id: str, name: str) -> Any:
    """One column of a run's row (for what the public API does not show: depth, queue_ts)."""
    assert name.isidentifier()
    rows = project.query(f"SELECT {name} FROM runs WHERE id = ?", (run_id,))
    assert rows, f"no run {run_id}"
    return rows[0][0]
