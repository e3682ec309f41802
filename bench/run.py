"""taskloom benchmark: the SQLite store at default durability (synchronous=FULL).

Usage:  .venv/bin/python bench/run.py [--runs 20000] [--latency-samples 500] [--only NAME]

Prints, in one run on this machine:
  trigger      single `trigger()` calls per second
  end-to-end   one producer triggers N no-op runs one by one while a default worker runs them
  drain        N runs queued first, then a default worker started (runs/s from its first start)
  latency      trigger-to-start p50/p95/p99 on an idle worker
  idle         an idle worker's CPU use (% of one core) and memory (RSS of all its processes)
  sqlite-raw   the floor of this disk: single-row FULL commits/s and batched claim+complete/s
Each scenario uses a fresh project directory and database file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TASKS = textwrap.dedent(
    """
    import time
    from taskloom import queue, task

    @task(id="noop")
    async def noop(payload):
        return None

    @task(id="stamp")
    async def stamp(payload):
        return time.time_ns()

    QUEUES = [queue(name=f"bench-{i:03d}", concurrency_limit=1000) for i in range(100)]
    """
)


@contextmanager
def project() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="taskloom-bench-") as tmp:
        root = Path(tmp)
        (root / "trigger").mkdir()
        (root / "trigger" / "bench_tasks.py").write_text(TASKS)
        config = 'database_url = "sqlite:///bench.db"\n'
        worker = [
            f"{key} = {int(os.environ[name])}"
            for key, name in (
                ("executors", "BENCH_EXECUTORS"),
                ("concurrency", "BENCH_CONCURRENCY"),
            )
            if os.environ.get(name)  # to compare settings; the figures use the defaults
        ]
        if worker:
            config += "[worker]\n" + "\n".join(worker) + "\n"
        (root / "taskloom.toml").write_text(config)
        yield root


def configure(root: Path) -> None:
    from taskloom.config import get_config
    from taskloom.engine.factory import open_engine
    from taskloom.sdk import client

    client.reset()
    client.configure(project_root=root)
    with contextlib.closing(open_engine(get_config())) as engine:
        engine.migrate()  # before the worker starts


@contextmanager
def worker(root: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = dict(os.environ, TASKLOOM_PROJECT_ROOT=str(root))
    code = (
        "import sys\n"
        "from taskloom.config import get_config\n"
        "from taskloom.engine.factory import open_engine\n"
        "from taskloom.services import maintenance_host\n"
        "from taskloom.worker.supervisor import run_worker\n"
        "sys.exit(run_worker(open_engine(get_config()), services=maintenance_host))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=root)
    try:
        wait_worker_ready(root)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_worker_ready(root: Path, timeout: float = 60) -> None:
    db = root / "bench.db"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists():
            try:
                with sqlite3.connect(db, timeout=5) as conn:
                    row = conn.execute(
                        "SELECT COUNT(*) FROM workers WHERE status = 'RUNNING'"
                    ).fetchone()
                if row and row[0] > 0:
                    return
            except sqlite3.OperationalError:
                pass
        time.sleep(0.02)
    raise TimeoutError("worker did not start")


def count_done(root: Path) -> int:
    with sqlite3.connect(root / "bench.db", timeout=10) as conn:
        return int(
            conn.execute("SELECT COUNT(*) FROM runs WHERE status = 'COMPLETED'").fetchone()[0]
        )


def wait_done(root: Path, n: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while count_done(root) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {count_done(root)} of {n} runs completed")
        time.sleep(0.02)


def bench_trigger(n: int) -> dict[str, float]:
    with project() as root:
        configure(root)
        sys.path.insert(0, str(root))
        import trigger.bench_tasks as mod

        mod.noop.trigger({"i": -1})  # open the connection
        start = time.perf_counter()
        for i in range(n):
            mod.noop.trigger({"i": i})
        elapsed = time.perf_counter() - start
        sys.path.remove(str(root))
    return {"triggers_per_s": n / elapsed}


def bench_end_to_end(n: int) -> dict[str, float]:
    with project() as root:
        configure(root)
        sys.path.insert(0, str(root))
        import trigger.bench_tasks as mod

        with worker(root):
            start = time.perf_counter()
            for i in range(n):
                mod.noop.trigger({"i": i})
            produced = time.perf_counter() - start
            wait_done(root, n)
            elapsed = time.perf_counter() - start
        sys.path.remove(str(root))
    return {"runs_per_s": n / elapsed, "producer_triggers_per_s": n / produced}


def _drain(n: int, options: Callable[[int], dict[str, Any]]) -> dict[str, float]:
    """N runs queued first (each with `options(i)`), then a worker started."""
    with project() as root:
        configure(root)
        sys.path.insert(0, str(root))
        import trigger.bench_tasks as mod

        for i in range(n):
            mod.noop.trigger({"i": i}, **options(i))
        launched = time.perf_counter()
        with worker(root):
            wait_done(root, n)
            total = time.perf_counter() - launched
        with sqlite3.connect(root / "bench.db") as conn:
            first, last = conn.execute(
                "SELECT MIN(started_at), MAX(finished_at) FROM runs"
            ).fetchone()
        sys.path.remove(str(root))
    busy = max((last - first) / 1000, 1e-9)
    return {"runs_per_s": n / busy, "including_worker_start_runs_per_s": n / total}


def bench_drain(n: int) -> dict[str, float]:
    """The drain with every run on one queue."""
    return _drain(n, lambda i: {})


def bench_drain_keys(n: int) -> dict[str, float]:
    """The drain, with the runs spread over 100 queues and 1,000 concurrency keys."""
    return _drain(n, lambda i: {"queue": f"bench-{i % 100:03d}", "concurrency_key": f"k{i % 1000}"})


def bench_latency(samples: int) -> dict[str, float]:
    from taskloom.config import get_config
    from taskloom.engine.factory import open_engine

    with project() as root:
        configure(root)
        sys.path.insert(0, str(root))
        import trigger.bench_tasks as mod

        engine = open_engine(get_config())  # reads without attempts: the cheapest poll
        latencies = []
        with worker(root), contextlib.closing(engine):
            for _ in range(samples):
                before = time.time_ns()
                handle = mod.stamp.trigger(None)
                while True:
                    run = engine.retrieve(handle.id, with_attempts=False)
                    if run.is_completed:
                        break
                    time.sleep(0.001)
                latencies.append((run.output - before) / 1e6)
                time.sleep(0.005)  # idle between samples
        sys.path.remove(str(root))
    latencies.sort()
    return {
        "p50_ms": statistics.median(latencies),
        "p95_ms": latencies[int(len(latencies) * 0.95) - 1],
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
    }


def _tree_stats(pid: int) -> tuple[float, int]:
    """CPU seconds and RSS bytes of a process and its children."""
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    ticks = os.sysconf("SC_CLK_TCK")
    page = os.sysconf("SC_PAGE_SIZE")
    cpu = 0.0
    rss = 0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / ticks
            rss += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * page
        except OSError:
            continue
    return cpu, rss


def bench_idle(seconds: float) -> dict[str, float]:
    with project() as root, worker(root) as proc:
        time.sleep(2)  # let start-up settle
        cpu_before, _ = _tree_stats(proc.pid)
        time.sleep(seconds)
        cpu_after, rss = _tree_stats(proc.pid)
    return {
        "cpu_percent_of_one_core": 100 * (cpu_after - cpu_before) / seconds,
        "rss_mb": rss / 2**20,
    }


def bench_sqlite_raw(n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(Path(tmp) / "raw.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, status TEXT, payload BLOB)")
        start = time.perf_counter()
        for _ in range(n):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t (status, payload) VALUES ('Q', ?)", (b"{}",))
            conn.execute("COMMIT")
        single = n / (time.perf_counter() - start)
        conn.execute("CREATE INDEX t_q ON t (id) WHERE status = 'Q'")
        start = time.perf_counter()
        done = 0
        while done < n:
            conn.execute("BEGIN IMMEDIATE")
            rows = conn.execute(
                "UPDATE t SET status = 'R' WHERE id IN "
                "(SELECT id FROM t WHERE status = 'Q' ORDER BY id LIMIT 500) RETURNING id"
            ).fetchall()
            conn.executemany("UPDATE t SET status = 'C' WHERE id = ?", rows)
            conn.execute("COMMIT")
            done += len(rows)
            if not rows:
                break
        batched = done / (time.perf_counter() - start)
    return {"single_full_commits_per_s": single, "batched_claim_complete_per_s": batched}


SCENARIOS = ("sqlite-raw", "trigger", "end-to-end", "drain", "drain-keys", "latency", "idle")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20000)
    parser.add_argument("--latency-samples", type=int, default=500)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--only", choices=SCENARIOS, action="append")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    chosen = args.only or list(SCENARIOS)
    results: dict[str, dict[str, float]] = {}
    for name in chosen:
        if name == "sqlite-raw":
            results[name] = bench_sqlite_raw(args.runs)
        elif name == "trigger":
            results[name] = bench_trigger(args.runs)
        elif name == "end-to-end":
            results[name] = bench_end_to_end(args.runs)
        elif name == "drain":
            results[name] = bench_drain(args.runs)
        elif name == "drain-keys":
            results[name] = bench_drain_keys(args.runs)
            single = results.get("drain", {}).get("runs_per_s")
            if single:
                results[name]["ratio_to_drain"] = results[name]["runs_per_s"] / single
        elif name == "latency":
            results[name] = bench_latency(args.latency_samples)
        elif name == "idle":
            results[name] = bench_idle(args.idle_seconds)
        print(
            f"{name:12s} " + "  ".join(f"{k}={v:,.2f}" for k, v in results[name].items()),
            flush=True,
        )
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
