"""taskloom benchmark: many runs waiting at once on one worker.

Usage:  .venv/bin/python bench/waits.py [--runs 10000] [--mode until|token] [--ahead 30]
                                       [--replay]

One worker (default settings: executors and concurrency from the defaults) on a fresh
SQLite file; N runs of an async task that each make one durable wait:

  until   every run calls `wait.until(moment)`, the same moment `--ahead` seconds after
          the triggers began (it must leave time for every run to reach WAITING). The
          worker's own waitpoint service completes all N waits when the moment comes.
  token   every run calls `wait.for_token(token)` on one token created before; when all
          are WAITING, one `wait.complete_token` call completes all N waits at once.

Prints: the time to trigger N runs (batches of 1,000), the time until all were WAITING,
the worker's memory while they wait (RSS of the supervisor and each executor, from /proc,
and the total), then the time from their waits completing (the moment, or the
complete_token call) to the last run COMPLETED, from the runs' own `finished_at`. Exits 1
when the total RSS is over `--rss-limit-mb` (300 by default) or a step times out.

With `--replay` (token mode), the worker is stopped (SIGTERM) once all runs wait and a
new one started before the token is completed: every run then continues by replay on the
new worker instead of in place.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

TASKS = textwrap.dedent(
    """
    from datetime import datetime

    from taskloom import task, wait


    @task(id="waiter", retry={"max_attempts": 1})
    async def waiter(payload):
        if "token" in payload:
            await wait.for_token(payload["token"])
        else:
            await wait.until(datetime.fromisoformat(payload["until"]))
        return payload["n"]
    """
)


@contextmanager
def project() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="taskloom-bench-waits-") as tmp:
        root = Path(tmp)
        (root / "trigger").mkdir()
        (root / "trigger" / "bench_waits.py").write_text(TASKS)
        (root / "taskloom.toml").write_text('database_url = "sqlite:///bench.db"\n')
        yield root


@contextmanager
def worker(root: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A default worker of the project, ready to claim; stopped with SIGTERM at the end."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKLOOM_")}
    env["TASKLOOM_PROJECT_ROOT"] = str(root)
    code = (
        "import sys\n"
        "from taskloom.config import get_config\n"
        "from taskloom.engine.factory import open_engine\n"
        "from taskloom.services import maintenance_host\n"
        "from taskloom.worker.supervisor import run_worker\n"
        "sys.exit(run_worker(open_engine(get_config()), services=maintenance_host))\n"
    )
    running = "SELECT COUNT(*) FROM workers WHERE status = 'RUNNING'"
    before = count(root, running)
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=root)
    try:
        wait_until(lambda: count(root, running) > before, 60, "worker start")
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def count(root: Path, query: str) -> int:
    db = root / "bench.db"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=10) as conn:
            return int(conn.execute(query).fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def wait_until(predicate: Any, timeout: float, what: str = "condition") -> float:
    """Poll `predicate` every 50 ms until it holds; return the seconds it took."""
    began = time.monotonic()
    while not predicate():
        if time.monotonic() - began > timeout:
            raise TimeoutError(f"{what} did not happen within {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - began


def rss_kb(pid: int) -> int:
    """A process's resident set size in KiB (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as file:
            for line in file:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def process_tree(root_pid: int) -> list[int]:
    """The process and its descendants (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as file:
                stat = file.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def bench(runs: int, mode: str, ahead: float, timeout: float, replay: bool) -> dict[str, Any]:
    from taskloom import batch, wait
    from taskloom.config import get_config
    from taskloom.engine.factory import open_engine
    from taskloom.sdk.client import configure, reset

    result: dict[str, Any] = {"runs": runs, "mode": mode, "replay": replay}
    with project() as root:
        reset()
        configure(project_root=root)
        with contextlib.closing(open_engine(get_config())) as engine:
            engine.migrate()  # before the worker starts
        with worker(root) as proc:
            began = time.monotonic()
            moment = datetime.now(tz=UTC) + timedelta(seconds=ahead)
            token = wait.create_token() if mode == "token" else None
            for start in range(0, runs, 1000):
                items = []
                for n in range(start, min(runs, start + 1000)):
                    payload: dict[str, Any] = {"n": n}
                    if token is not None:
                        payload["token"] = token.id
                    else:
                        payload["until"] = moment.isoformat()
                    items.append({"id": "waiter", "payload": payload})
                batch.trigger(items)
            result["trigger_s"] = round(time.monotonic() - began, 2)
            waiting = "SELECT COUNT(*) FROM runs WHERE status = 'WAITING'"
            wait_until(lambda: count(root, waiting) >= runs, timeout, "all runs WAITING")
            result["all_waiting_after_s"] = round(time.monotonic() - began, 2)
            if mode == "until" and datetime.now(tz=UTC) >= moment:
                raise SystemExit(
                    f"the runs were not all WAITING before the moment ({ahead} s after the "
                    "first trigger): rerun with a larger --ahead"
                )
            tree = process_tree(proc.pid)
            memory = {pid: rss_kb(pid) for pid in tree}
            result["rss_mb"] = {
                "supervisor": round(memory[proc.pid] / 1024, 1),
                "executors": [round(memory[p] / 1024, 1) for p in tree if p != proc.pid],
                "total": round(sum(memory.values()) / 1024, 1),
            }
            if replay:
                stopped = time.monotonic()
                stop(proc)
                result["stop_s"] = round(time.monotonic() - stopped, 2)
            with worker(root) if replay else contextlib.nullcontext():
                if token is not None:
                    released = time.time()
                    assert wait.complete_token(token, {"go": True})
                else:
                    released = moment.timestamp()
                done = "SELECT COUNT(*) FROM runs WHERE status = 'COMPLETED'"
                wait_until(lambda: count(root, done) >= runs, timeout, "all runs COMPLETED")
            last = count(root, "SELECT MAX(finished_at) FROM runs")
            result["completion_to_all_done_s"] = round(last / 1000 - released, 2)
            result["resumed_runs_per_s"] = round(runs / max(last / 1000 - released, 1e-9))
            failed = count(root, "SELECT COUNT(*) FROM runs WHERE status != 'COMPLETED'")
            result["not_completed"] = failed
            result["attempts_per_run"] = count(root, "SELECT MAX(attempt) FROM runs")
        reset()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--mode", choices=["until", "token"], default="until")
    parser.add_argument(
        "--ahead", type=float, default=30.0, help="until mode: seconds to the shared moment"
    )
    parser.add_argument(
        "--replay", action="store_true", help="token mode: continue every run on a new worker"
    )
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--rss-limit-mb", type=float, default=300.0)
    args = parser.parse_args()
    if args.replay and args.mode != "token":
        parser.error("--replay needs --mode token")
    result = bench(args.runs, args.mode, args.ahead, args.timeout, args.replay)
    print(json.dumps(result, indent=2))
    if result["rss_mb"]["total"] > args.rss_limit_mb:
        print(
            f"worker RSS {result['rss_mb']['total']} MB is over {args.rss_limit_mb} MB",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
