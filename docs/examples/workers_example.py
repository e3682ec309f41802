"""docs/workers.md, runnable: a crash is an attempt and is retried; blocking tasks run
side by side.

Start a worker for the example project in one terminal, then run this script in another:

    taskloom --project docs/examples/project worker
    python docs/examples/workers_example.py
"""

import os
import sys
import time

import example_project  # noqa: F401 - puts project/ (and its trigger/) on sys.path
from trigger.resilience import crash_once, nap

from taskloom import runs


def main() -> int:
    # The first attempt kills its executor process. The worker records that attempt as
    # CRASHED, starts a new executor, and the run goes back to its queue for attempt 2.
    handle = crash_once.trigger(None)
    print("crash-once output:", handle.result(timeout=60))
    run = runs.retrieve(handle.id)
    print("attempts:", [(attempt.number, attempt.status) for attempt in run.attempts])
    first = run.attempts[0].error
    print("first attempt error:", first.type if first else None, first.code if first else None)

    # Twenty blocking attempts of 0.5 s: sync tasks run in the executors' threads, up to
    # `worker.concurrency` (100) at once, so they take about 0.5 s in all, not 10 s.
    began = time.monotonic()
    handles = [nap.trigger(0.5) for _ in range(20)]
    pids = {h.result(timeout=60) for h in handles}
    elapsed = time.monotonic() - began
    print("20 naps of 0.5 s finished in under 5 s:", elapsed < 5)
    print("ran in another process than this script:", os.getpid() not in pids)
    return 0


if __name__ == "__main__":
    sys.exit(main())
