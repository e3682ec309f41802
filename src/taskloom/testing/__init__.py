"""Helpers for testing tasks against real workers: a throwaway project, worker
subprocesses and condition waits.

Everything here runs the real thing: task modules in a directory, a SQLite file, a
`taskloom worker` in its own process with its executor children. Nothing is mocked,
so what passes here behaves the same in production. Typical use in a pytest test::

    from taskloom import tasks
    from taskloom.testing import TaskloomProject, wait_for

    def test_hello(tmp_path):
        project = TaskloomProject(tmp_path)
        project.write_task_module("hello", '''
            from taskloom import task

            @task(id="hello")
            def hello(payload):
                return {"echo": payload}
        ''')
        project.write_config(worker={"lease_seconds": 2, "shutdown_grace_seconds": 2})
        with project.configured(), project.worker(concurrency=4) as worker:
            handle = tasks.trigger("hello", 42)
            assert handle.result(timeout=10) == {"echo": 42}
            assert worker.terminate(timeout=10) == 0

Wait on conditions with `wait_for` (a deadline and a short polling interval), never
with fixed sleeps: the test is then as fast as the system and still fails, with a
message, when the condition never holds.
"""

from .conditions import WaitTimeoutError as WaitTimeoutError
from .conditions import WorkerExitedError as WorkerExitedError
from .conditions import wait_for as wait_for
from .project import TaskloomProject as TaskloomProject
from .project import reset_client as reset_client
from .subprocesses import WorkerProcess as WorkerProcess

__all__ = [
    "TaskloomProject",
    "WaitTimeoutError",
    "WorkerExitedError",
    "WorkerProcess",
    "reset_client",
    "wait_for",
]
