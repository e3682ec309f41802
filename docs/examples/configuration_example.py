"""docs/configuration.md, runnable: where settings come from and where they apply.

Start a worker for the example project in one terminal, then run this script in another:

    taskloom --project docs/examples/project worker
    python docs/examples/configuration_example.py
"""

import sys

import example_project  # puts project/ (and its trigger/) on sys.path
from trigger.settings import show_settings

import taskloom
from taskloom.config import get_config, load_config
from taskloom.errors import InvalidOptionError


def main() -> int:
    # The effective configuration of this process: defaults < taskloom.toml < TASKLOOM_*
    # environment variables < taskloom.configure().
    config = get_config()
    retry = config.retries_default
    print("project root:", config.project_root.name, "| dirs:", config.dirs)
    print("retries.default:", retry.max_attempts, "attempts, first delay", retry.min_timeout_ms)
    print("worker.concurrency:", config.worker_concurrency, "| lease:", config.lease_seconds)
    print("database.synchronous:", config.sqlite_synchronous, "| busy:", config.busy_timeout_ms)

    # An environment variable beats the file (load_config reads, and changes nothing).
    env = {"TASKLOOM_PROJECT_ROOT": str(example_project.PROJECT), "TASKLOOM_MACHINE": "large-1x"}
    print("with TASKLOOM_MACHINE:", load_config(env=env).machine)

    # Task defaults are applied where the run is triggered: this process's configuration.
    print("run with the file's defaults:", show_settings.trigger(None).result(timeout=30))
    taskloom.configure(machine="medium-1x", retries_default={"max_attempts": 5})
    print("run after configure():", show_settings.trigger(None).result(timeout=30))

    # A bad value names its source and changes nothing.
    try:
        taskloom.configure(lease_seconds=0)
    except InvalidOptionError as error:
        print("rejected:", error)
    print("machine still:", get_config().machine)
    return 0


if __name__ == "__main__":
    sys.exit(main())
