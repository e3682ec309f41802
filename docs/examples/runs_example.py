"""docs/runs.md, runnable: look at runs, wait for them, cancel, replay and reschedule them.

Start a worker for the example project in one terminal, then run this script in another:

    taskloom --project docs/examples/project worker
    python docs/examples/runs_example.py
"""

import asyncio
import sys
import time

import example_project  # noqa: F401 - puts project/ (and its trigger/) on sys.path
from trigger.jobs import long_job

from taskloom import RunStatus, runs
from taskloom.errors import InvalidOptionError


def wait_until_executing(run_id: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while runs.retrieve(run_id).status is not RunStatus.EXECUTING:
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} did not start within {timeout} s")
        time.sleep(0.05)


def main() -> int:
    # Wait for a run to finish, then read it.
    handle = long_job.trigger({"steps": 3}, tags=["example"])
    run = runs.poll(handle.id, timeout=30)
    print("status:", run.status.value, "| success:", run.is_success, "| final:", run.is_completed)
    print("output:", run.output, "| attempts:", run.attempt_count, "| tags:", run.tags)
    print("timings known:", run.started_at is not None and run.duration_ms is not None)

    # Cancel a run while it executes: its attempt is stopped, the run ends CANCELED.
    long_running = long_job.trigger({"steps": 10_000})
    wait_until_executing(long_running.id)
    print("cancel returns:", runs.cancel(long_running.id).status.value)
    cancelled = runs.poll(long_running.id, timeout=30)
    print("cancelled run:", cancelled.status.value, "| is_cancelled:", cancelled.is_cancelled)

    # Replay: a new run with the same payload and tags.
    replay = runs.replay(handle.id)
    replayed = runs.poll(replay.id, timeout=30)
    print("replay:", replayed.output, "| of the first run:", replayed.replayed_from == handle.id)

    # Reschedule a delayed run: from an hour away to one second away.
    delayed = long_job.trigger({"steps": 1}, delay="1h")
    print("delayed:", runs.retrieve(delayed.id).status.value)
    runs.reschedule(delayed.id, delay="1s")
    print("rescheduled run:", runs.poll(delayed.id, timeout=30).status.value)
    try:
        runs.reschedule(delayed.id, delay="1h")
    except InvalidOptionError as error:
        print("reschedule refused:", str(error).split("; ")[1])

    # List: newest first, filtered.
    done = runs.list(task="long-job", status="COMPLETED", tag="example")
    print("completed with tag 'example':", len(done), "(the first run and its replay)")

    # Subscribe: every change until the run is final (here, from the async twin API).
    async def follow() -> None:
        handle = await long_job.atrigger({"steps": 2})
        seen = [run.status.value async for run in runs.subscribe(handle.id)]
        print("subscribe ends with:", seen[-1])
        again = await runs.aretrieve(handle.id)
        print("aretrieve:", again.output)

    asyncio.run(follow())
    return 0


if __name__ == "__main__":
    sys.exit(main())
