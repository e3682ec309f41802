"""`taskloom worker` and `taskloom migrate`."""

from __future__ import annotations

import argparse

from ..engine.spec import TaskSpec
from ..services import maintenance_host
from ..worker.supervisor import Supervisor, run_worker
from . import common
from .trigger_cmd import positive_int


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `migrate` and `worker`."""
    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.set_defaults(handler=run_migrate)

    worker = commands.add_parser(
        "worker",
        help="run a worker until SIGTERM or Ctrl-C",
        description="Claim and execute runs of the tasks found in the project's task "
        "directories. SIGTERM or Ctrl-C stops it gracefully (running attempts finish); a "
        "second one releases them back to their queues.",
    )
    add_worker_options(worker)
    worker.add_argument(
        "--executors",
        type=positive_int,
        metavar="N",
        help="executor processes (default: config worker.executors, else one per CPU, max 4)",
    )
    worker.set_defaults(handler=run_worker_command)


def add_worker_options(parser: argparse.ArgumentParser) -> None:
    """`--concurrency`, shared by `worker` and `dev`."""
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        metavar="N",
        help="most attempts at once (default: config worker.concurrency, 100)",
    )


def migrate_and_report() -> None:
    """Apply pending migrations and say what happened, with the schema version."""
    with common.admin_engine() as engine:
        applied = engine.migrate()
        database = common.describe_database(engine.config)
        version = engine.schema_version()
    if applied:
        for name in applied:
            common.out(f"Applied migration {name}")
        common.out(f"Database {database} is at schema version {version}")
    else:
        common.out(f"Database {database} is up to date (schema version {version})")


def run_migrate(args: argparse.Namespace) -> int:
    """Handle `taskloom migrate`."""
    migrate_and_report()
    return common.EXIT_OK


def _announce(supervisor: Supervisor) -> None:
    specs = supervisor.executors[0].specs if supervisor.executors else []
    task_ids = [TaskSpec.from_json(spec.encode()).id for spec in specs]
    config = supervisor.config
    if task_ids:
        found = ", ".join(task_ids)
    else:
        found = f"none (no task modules in {', '.join(d + '/' for d in config.dirs)})"
    executors = len(supervisor.executors)
    common.err(
        f"taskloom worker {supervisor.worker_id} ready: "
        f"database {common.describe_database(config)}, "
        f"concurrency {supervisor.concurrency}, "
        f"{executors} executor{'s' if executors != 1 else ''}, tasks: {found}"
    )


def run_worker_command(args: argparse.Namespace) -> int:
    """Handle `taskloom worker`: run until stopped, return the worker's exit code."""
    with common.admin_engine() as engine:
        engine.ensure_schema()
        code = run_worker(
            engine,
            services=maintenance_host,
            concurrency=args.concurrency,
            executors=args.executors,
            on_ready=_announce,
        )
    if code == 0:
        common.err("taskloom worker stopped")
    return code
