"""`taskloom queues ...` run for real: `python -m taskloom` in a temporary project, with a
worker subprocess holding runs so the counts mean something. Waits poll a condition
with a deadline, never a fixed sleep."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

COMMAND_TIMEOUT = 60.0
READY = re.compile(r"taskloom worker worker_\w+ ready: ")

TASKS = """\
import asyncio
import os

from taskloom import queue, task

emails = queue(name="emails", concurrency_limit=2)
tenants = queue(name="tenants", concurrency_limit=1, total_concurrency_limit=3)


@task(id="send", queue=emails)
async def send(payload):
    while not os.path.exists(payload["release"]):
        await asyncio.sleep(0.01)
    return "sent"


@task(id="sync-tenant", queue=tenants)
async def sync_tenant(payload):
    return "synced"


@task(id="plain")
def plain(payload):
    return payload
"""


def cli_env() -> dict[str, str]:
    dropped = {"CI", "NO_COLOR", "FORCE_COLOR", "TERM", "PYTHONWARNINGS"}
    env = {
        k: v for k, v in os.environ.items() if k not in dropped and not k.startswith("TASKLOOM_")
    }
    env.update(NO_COLOR="1", PYTHONUNBUFFERED="1")
    return env


def run_cli(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskloom", *args],
        cwd=project,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


def ok(project: Path, *args: str) -> str:
    result = run_cli(project, *args)
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def show(project: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ok(project, "queues", "show", name, "--json"))
    return data


def wait_until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "trigger").mkdir(parents=True)
    (root / "trigger" / "tasks.py").write_text(TASKS, encoding="utf-8")
    (root / "taskloom.toml").write_text(
        textwrap.dedent(
            f"""\
            dirs = ["trigger"]
            database_url = "sqlite:///{root / "db" / "taskloom.db"}"

            [worker]
            executors = 1
            poll_interval_seconds = 0.2
            """
        ),
        encoding="utf-8",
    )
    return root


@pytest.fixture
def worker(project: Path) -> Iterator[subprocess.Popen[str]]:
    """`taskloom worker` until the test ends (SIGTERM, must exit 0)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "taskloom", "worker", "--concurrency", "8"],
        cwd=project,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(line.rstrip("\n") for line in process.stdout or []),
        daemon=True,
    )
    reader.start()
    try:
        wait_until(lambda: any(READY.search(line) for line in lines), "the worker to start")
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            code = -9
        reader.join(5)
        if process.stdout is not None:
            process.stdout.close()
        assert code == 0, "\n".join(lines)


def test_queues_before_any_worker_declared_them(project: Path) -> None:
    result = run_cli(project, "queues", "list")
    assert result.returncode == 0
    assert result.stdout == ""
    assert "No queues yet" in result.stderr
    assert json.loads(ok(project, "queues", "list", "--json")) == []
    missing = run_cli(project, "queues", "show", "emails")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error: unknown queue 'emails' (known queues: none yet)"


def test_list_show_pause_resume_override_reset(
    project: Path, worker: subprocess.Popen[str], tmp_path: Path
) -> None:
    release = tmp_path / "release"
    payload = json.dumps({"release": str(release)})
    for _ in range(3):
        ok(project, "trigger", "send", payload)
    wait_until(lambda: show(project, "emails")["running"] == 2, "two runs holding emails")

    table = ok(project, "queues", "list").splitlines()
    assert re.split(r"\s{2,}", table[0]) == ["NAME", "TYPE", "RUNNING", "QUEUED", "LIMIT", "PAUSED"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows == {
        "emails": ["emails", "custom", "2", "1", "2", "no"],
        "task/plain": ["task/plain", "task", "0", "0", "none", "no"],
        "tenants": ["tenants", "custom", "0", "0", "1", "no"],
    }
    details = ok(project, "queues", "show", "tenants")
    assert re.search(r"^total across keys:\s+3$", details, re.MULTILINE), details
    assert re.search(r"^limit in code:\s+1$", details, re.MULTILINE), details

    raised = run_cli(project, "queues", "override", "emails", "3")
    assert raised.returncode == 0
    assert raised.stdout.strip() == "Queue emails: limit 3 (the code says 2)"
    wait_until(lambda: show(project, "emails")["running"] == 3, "the override to take effect")
    listed = run_cli(project, "queues", "list")
    assert re.search(r"^emails\s+custom\s+3\s+0\s+3\*\s+no$", listed.stdout, re.MULTILINE)
    assert "* overridden; `taskloom queues reset NAME`" in listed.stderr
    shown = show(project, "emails")
    assert (shown["concurrency_limit"], shown["base_concurrency_limit"]) == (3, 2)
    assert shown["override_concurrency_limit"] == 3 and shown["overridden_at"]

    paused = ok(project, "queues", "pause", "emails").strip()
    assert paused == "Paused queue emails: nothing new starts; 3 running will finish, 0 queued wait"
    ok(project, "trigger", "send", payload)
    assert show(project, "emails")["paused"] is True
    release.touch()  # the three running finish; the new one stays queued while paused
    wait_until(lambda: show(project, "emails")["running"] == 0, "running runs to finish")
    assert show(project, "emails")["queued"] == 1
    assert re.search(r"^emails\s+custom\s+0\s+1\s+3\*\s+yes$", ok(project, "queues", "list"), re.M)

    resumed = json.loads(ok(project, "queues", "resume", "emails", "--json"))
    assert resumed["paused"] is False
    wait_until(lambda: show(project, "emails")["queued"] == 0, "the queued run to start")
    reset = run_cli(project, "queues", "reset", "emails")
    assert reset.stdout.strip() == "Queue emails: back to limit 2 from the code"
    after = show(project, "emails")
    assert (after["concurrency_limit"], after["override_concurrency_limit"]) == (2, None)
    assert after["overridden_at"] is None


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("queues",), 2, "the following arguments are required: COMMAND"),
        (("queues", "pause"), 2, "the following arguments are required: NAME"),
        (("queues", "override", "emails", "-1"), 2, "expected a whole number from 0 to 100000"),
        (("queues", "override", "emails", "two"), 2, "expected a whole number >= 0, got 'two'"),
        (("queues", "show", "nope"), 1, "error: unknown queue 'nope' (known queues: emails, "),
        (("queues", "pause", "nope"), 1, "error: unknown queue 'nope'"),
        (("queues", "override", "nope", "2"), 1, "error: unknown queue 'nope'"),
    ],
)
def test_bad_queue_commands(
    project: Path, worker: subprocess.Popen[str], args: tuple[str, ...], code: int, message: str
) -> None:
    result = run_cli(project, *args)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert message in result.stderr
