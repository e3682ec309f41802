"""Task modules and helpers shared by the integration tests.

Task code talks to the test through files in a "probe" directory passed in the payload:
an attempt writes ``started-<run>-<attempt>.json`` when it begins and, for `hold`,
waits until the test creates ``release`` (or ``release-<run>``). So a test knows for
certain that an attempt is running, and decides when it may finish, with no sleeps.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from taskloom.testing import wait_for

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
"""Short leases and backoff, so kill and retry tests take seconds."""

PROBE_TASKS = '''
import asyncio
import json
import os
import time
from pathlib import Path

from taskloom import task

FAST_RETRY = {"max_attempts": 3, "min_timeout_ms": 100, "factor": 2, "randomize": False}


def mark_started(directory, ctx):
    path = Path(directory) / f"started-{ctx.run.id}-{ctx.attempt.number}.json"
    data = {"pid": os.getpid(), "attempt": ctx.attempt.number, "at": time.time()}
    path.with_suffix(".tmp").write_text(json.dumps(data))
    os.replace(path.with_suffix(".tmp"), path)


def released(directory, run_id):
    return (Path(directory) / "release").exists() or (
        Path(directory) / f"release-{run_id}"
    ).exists()


@task(id="hold", retry=FAST_RETRY)
async def hold(payload, ctx):
    """Mark the attempt started, then wait (async) until the test releases it."""
    mark_started(payload["dir"], ctx)
    deadline = time.monotonic() + payload.get("max_wait", 60)
    try:
        while not released(payload["dir"], ctx.run.id):
            if time.monotonic() > deadline:
                raise TimeoutError("the test never released this attempt")
            await asyncio.sleep(0.01)
    except asyncio.CancelledError:
        (Path(payload["dir"]) / f"cancelled-{ctx.run.id}-{ctx.attempt.number}").touch()
        raise
    return {"attempt": ctx.attempt.number, "pid": os.getpid()}


@task(id="hold-sync", retry=FAST_RETRY)
def hold_sync(payload, ctx):
    """`hold` for a plain function (runs in an executor thread)."""
    mark_started(payload["dir"], ctx)
    deadline = time.monotonic() + payload.get("max_wait", 60)
    while not released(payload["dir"], ctx.run.id):
        if time.monotonic() > deadline:
            raise TimeoutError("the test never released this attempt")
        time.sleep(0.01)
    return {"attempt": ctx.attempt.number, "pid": os.getpid()}


@task(id="record", retry=FAST_RETRY)
def record(payload, ctx):
    """Append `<run id> <attempt> <pid> <label>` to <dir>/ledger-<pid> (O_APPEND, one write)."""
    line = f"{ctx.run.id} {ctx.attempt.number} {os.getpid()} {payload.get('label', '')}\\n"
    fd = os.open(
        Path(payload["dir"]) / f"ledger-{os.getpid()}",
        os.O_WRONLY | os.O_APPEND | os.O_CREAT,
        0o644,
    )
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    return payload.get("label")


@task(id="record-slow", retry=FAST_RETRY)
async def record_slow(payload, ctx):
    """`record`, then an async sleep: runs stay in flight long enough to be killed."""
    record.run(payload, ctx)
    await asyncio.sleep(payload.get("sleep", 0.05))
    return payload.get("label")
'''
"""Written as ``trigger/probes.py`` by the `probes` fixture."""


class Probe:
    """The test's side of the probe directory."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)

    def payload(self, **extra: Any) -> dict[str, Any]:
        """A payload for the probe tasks."""
        return {"dir": str(self.dir), **extra}

    def started(self, run_id: str, attempt: int) -> dict[str, Any] | None:
        """What the attempt recorded when it started, None if it has not started."""
        path = self.dir / f"started-{run_id}-{attempt}.json"
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        return data

    def wait_started(self, run_id: str, attempt: int, timeout: float = 15.0) -> dict[str, Any]:
        """Block until the attempt started; return what it recorded."""
        return wait_for(
            lambda: self.started(run_id, attempt),
            timeout,
            message=f"attempt {attempt} of {run_id} did not start",
        )

    def forget(self, run_id: str, attempt: int) -> None:
        """Delete the attempt's started marker (to see the same attempt number start again)."""
        (self.dir / f"started-{run_id}-{attempt}.json").unlink()

    def starts(self) -> list[str]:
        """Names of every started marker (one per attempt that began)."""
        return sorted(p.name for p in self.dir.glob("started-*.json"))

    def cancelled(self, run_id: str, attempt: int) -> bool:
        """True when the attempt saw its cancellation (CancelledError)."""
        return (self.dir / f"cancelled-{run_id}-{attempt}").exists()

    def release(self, run_id: str | None = None) -> None:
        """Let one run's attempts (or all, without `run_id`) finish."""
        (self.dir / ("release" if run_id is None else f"release-{run_id}")).touch()

    def ledger(self) -> list[tuple[str, int, int, str]]:
        """Every line the `record` tasks wrote: (run id, attempt, pid, label)."""
        rows = []
        for path in sorted(self.dir.glob("ledger-*")):
            for line in path.read_text().splitlines():
                run_id, attempt, pid, label = [*line.split(" ", 3), ""][:4]
                rows.append((run_id, int(attempt), int(pid), label))
        return rows
