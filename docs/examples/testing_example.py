"""docs/testing.md, runnable: test tasks against a real worker with `taskloom.testing`.

This file is both a pytest module and a script. It needs no worker of its own: each test
creates a throwaway project and starts a worker for it.

    pytest docs/examples/testing_example.py
    python docs/examples/testing_example.py
"""

import sys
import tempfile
from pathlib import Path

from taskloom import RunFailedError, runs, tasks
from taskloom.testing import TaskloomProject, wait_for

TASKS = """
from taskloom import AbortTaskRunError, task


@task(id="greet")
def greet(payload):
    if not payload.get("name"):
        raise AbortTaskRunError("a name is required")
    return {"greeting": f"Hello, {payload['name']}!"}
"""


def test_greet(tmp_path: Path) -> None:
    project = TaskloomProject(tmp_path)  # trigger/, taskloom.toml, .taskloom/taskloom.db
    project.write_task_module("greetings", TASKS)  # trigger/greetings.py
    project.write_config(worker={"shutdown_grace_seconds": 5})
    with project.configured(), project.worker(executors=1) as worker:
        # The task is defined in the worker, not here: trigger it by id.
        handle = tasks.trigger("greet", {"name": "Ada"})
        assert handle.result(timeout=30) == {"greeting": "Hello, Ada!"}

        failing = tasks.trigger("greet", {})
        try:
            failing.result(timeout=30)
        except RunFailedError as error:
            assert error.run.status == "FAILED"
            assert error.run.attempt_count == 1  # AbortTaskRunError is never retried
        else:
            raise AssertionError("the run should have failed")

        # Poll a condition with a deadline rather than sleeping.
        wait_for(lambda: len(runs.list(task="greet")) == 2, timeout=10)
        assert worker.terminate(timeout=30) == 0  # SIGTERM: a graceful stop


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as directory:
        test_greet(Path(directory))
    print("test_greet passed")
    sys.exit(0)
