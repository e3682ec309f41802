"""A peer measured in the same run as taskloom: Huey on SQLite (WAL, fsync on).

Usage:  .venv/bin/pip install huey && .venv/bin/python bench/peers.py [--runs 20000]

Prints, for Huey 3 with `SqliteHuey(fsync=True)` and one thread worker (its default):
  enqueue      single enqueues per second
  end-to-end   one producer enqueues N no-op tasks one by one while a consumer runs them
  drain        N tasks enqueued first, then a consumer started
  latency      enqueue-to-start p50/p95/p99 on an idle consumer
Compare with `bench/run.py` run just before or after (these machines are noisy).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

APP = textwrap.dedent(
    """
    import os, time
    from huey import SqliteHuey

    huey = SqliteHuey(filename=os.environ["PEER_DB"], fsync=True, results=True)

    @huey.task()
    def noop(i):
        return 1  # Huey stores no result for None, and the bench counts results

    @huey.task()
    def stamp(i):
        return time.time_ns()
    """
)


def _consumer(root: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PEER_DB=str(root / "huey.db"), PYTHONPATH=str(root))
    return subprocess.Popen(
        [sys.executable, "-m", "huey.bin.huey_consumer", "peerapp.huey", "-w", "1", "-q"],
        env=env,
        cwd=root,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _setup(root: Path):  # type: ignore[no-untyped-def]
    (root / "peerapp.py").write_text(APP)
    os.environ["PEER_DB"] = str(root / "huey.db")
    sys.path.insert(0, str(root))
    sys.modules.pop("peerapp", None)
    import peerapp  # type: ignore[import-not-found]

    return peerapp


def _wait_results(app, n: int, timeout: float = 600) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while app.huey.result_count() < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {app.huey.result_count()} of {n} done")
        time.sleep(0.02)


def bench_enqueue(n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        app = _setup(Path(tmp))
        start = time.perf_counter()
        for i in range(n):
            app.noop(i)
        return {"enqueues_per_s": n / (time.perf_counter() - start)}


def bench_end_to_end(n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        app = _setup(root)
        app.noop(-1)
        consumer = _consumer(root)
        try:
            _wait_results(app, 1)
            start = time.perf_counter()
            for i in range(n):
                app.noop(i)
            _wait_results(app, n + 1)
            return {"runs_per_s": n / (time.perf_counter() - start)}
        finally:
            _stop(consumer)


def bench_drain(n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        app = _setup(root)
        for i in range(n):
            app.noop(i)
        start = time.perf_counter()
        consumer = _consumer(root)
        try:
            _wait_results(app, n)
            return {"including_consumer_start_runs_per_s": n / (time.perf_counter() - start)}
        finally:
            _stop(consumer)


def bench_latency(samples: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        app = _setup(root)
        consumer = _consumer(root)
        latencies = []
        try:
            app.noop(-1)
            _wait_results(app, 1)
            for i in range(samples):
                before = time.time_ns()
                result = app.stamp(i)
                started = result.get(blocking=True, timeout=30)
                latencies.append((started - before) / 1e6)
                time.sleep(0.005)
        finally:
            _stop(consumer)
    latencies.sort()
    return {
        "p50_ms": statistics.median(latencies),
        "p95_ms": latencies[int(len(latencies) * 0.95) - 1],
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20000)
    parser.add_argument("--latency-samples", type=int, default=200)
    args = parser.parse_args()
    for name, run in (
        ("enqueue", lambda: bench_enqueue(args.runs)),
        ("end-to-end", lambda: bench_end_to_end(args.runs)),
        ("drain", lambda: bench_drain(args.runs)),
        ("latency", lambda: bench_latency(args.latency_samples)),
    ):
        result = run()
        line = "  ".join(f"{k}={v:,.2f}" for k, v in result.items())
        print(f"huey {name:10s} {line}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
