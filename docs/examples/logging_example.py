"""docs/logging.md, runnable: a run's log events, read back with `runs.events` and the CLI.

Start a worker for the example project in one terminal, then run this script in another:

    taskloom --project docs/examples/project worker
    python docs/examples/logging_example.py
"""

import logging
import subprocess
import sys

import example_project  # noqa: F401 - puts project/ (and its trigger/) on sys.path
from trigger.reports import build_report

from taskloom import logger, runs


def main() -> int:
    handle = build_report.trigger({"sections": ["users", "orders", "refunds"]})
    print("output:", handle.result(timeout=30))

    # Every event of the run, in order: its status changes and what its attempt reported.
    for event in runs.events(handle.id):
        data = event.data
        if event.kind == "log":
            in_span = " (in a span)" if data["span_id"] else ""
            print(f"log {data['level']}: {data['message']} {data['attributes']}{in_span}")
        elif event.kind == "span_end":
            print(f"span {data['name']!r} ended: {data['attributes']}")

    # The same log lines, as `taskloom runs show RUN_ID` prints them.
    shown = subprocess.run(
        [sys.executable, "-m", "taskloom", "--no-colour", "runs", "show", handle.id],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    print("runs show has a Logs section:", "\nLogs\n" in shown)

    # Outside a run, logger writes to the standard `logging` logger "taskloom.task".
    logging.basicConfig(
        level=logging.INFO, format="%(name)s %(levelname)s %(message)s", stream=sys.stdout
    )
    logger.info("not in a run", where="a script")
    return 0


if __name__ == "__main__":
    sys.exit(main())
