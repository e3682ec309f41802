"""docs/tasks.md, runnable: trigger the tasks of project/trigger/basics.py and show what
they return.

Start a worker for the example project in one terminal, then run this script in another:

    taskloom --project docs/examples/project worker
    python docs/examples/tasks_example.py
"""

import sys

import example_project  # noqa: F401 - puts project/ (and its trigger/) on sys.path
from trigger.basics import charge, check_age, flaky, hello_world, shout_task

from taskloom import RunFailedError, runs


def main() -> int:
    # An async task with (payload, ctx).
    print("hello-world:", hello_world.trigger({"name": "Ada"}).result(timeout=30))

    # A sync task defined with task(id=..., run=fn); Task.run is the original function.
    print("shout:", shout_task.trigger("quiet please").result(timeout=30))
    print("shout, called directly:", shout_task.run("no worker needed"))

    # Two failed attempts, then a success.
    handle = flaky.trigger({"succeed_on": 3})
    print("flaky:", handle.result(timeout=30))
    print("flaky attempts:", [attempt.status for attempt in runs.retrieve(handle.id).attempts])

    # AbortTaskRunError fails the run at once; CompleteTaskWithOutput completes it.
    try:
        check_age.trigger({"age": -1}).result(timeout=30)
    except RunFailedError as error:
        run = error.run
        print("check-age -1:", run.status.value, f"after {run.attempt_count} attempt,", run.error)
    print("check-age 30:", check_age.trigger({"age": 30}).result(timeout=30))
    print("check-age 12:", check_age.trigger({"age": 12}).result(timeout=30))

    # A schema task validates at trigger(): a bad payload raises here and creates nothing.
    try:
        charge.trigger({"cents": "ten"})
    except ValueError as error:
        print("charge rejected:", error)
    print("charge:", charge.trigger({"cents": 1250}).result(timeout=30))
    return 0


if __name__ == "__main__":
    sys.exit(main())
