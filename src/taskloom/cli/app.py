"""The argument parser, the global options and the dispatch to each command's handler."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..config import configure
from ..errors import TaskloomError
from . import common, dev_cmd, init_cmd, queues_cmd, runs_cmd, trigger_cmd, ui, worker_cmd

_EPILOG = """\
examples:
  taskloom init
  taskloom dev
  taskloom trigger hello-world '{"message": "hi"}' --wait
  taskloom runs list --status FAILED
  taskloom runs show RUN_ID
  taskloom queues list
"""


def build_parser() -> argparse.ArgumentParser:
    """The `taskloom` argument parser with every command."""
    parser = argparse.ArgumentParser(
        prog="taskloom",
        description="Durable background tasks: run workers, trigger tasks, inspect runs.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"taskloom {__version__}")
    parser.add_argument(
        "--project",
        metavar="DIR",
        help="the project root (default: TASKLOOM_PROJECT_ROOT, else the nearest directory "
        "with taskloom.toml or [tool.taskloom])",
    )
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="overrides database_url, e.g. sqlite:///.taskloom/taskloom.db",
    )
    parser.add_argument(
        "--no-colour",
        "--no-color",
        dest="no_colour",
        action="store_true",
        help="never write ANSI colour (as NO_COLOR=1 does)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    init_cmd.register(commands)
    dev_cmd.register(commands)
    worker_cmd.register(commands)
    trigger_cmd.register(commands)
    runs_cmd.register(commands)
    queues_cmd.register(commands)
    return parser


def _apply_global_options(args: argparse.Namespace) -> None:
    overrides: dict[str, object] = {}
    if args.project:
        overrides["project_root"] = args.project
    if args.database_url:
        overrides["database_url"] = args.database_url
    if overrides:
        configure(**overrides)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `taskloom` command line with `argv` (default: `sys.argv[1:]`); return the
    exit code: 0 success, 1 failure, 2 usage error, 130 interrupted."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or a usage error (2)
        return exit_.code if isinstance(exit_.code, int) else common.EXIT_USAGE
    if args.no_colour:
        # Through the environment, so the spinner, errors and child processes agree.
        os.environ["NO_COLOR"] = "1"
    try:
        if getattr(args, "needs_config", True):
            _apply_global_options(args)
        code: int = args.handler(args)
    except TaskloomError as error:
        ui.print_error(str(error))
        return common.EXIT_FAILURE
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return common.EXIT_INTERRUPTED
    except BrokenPipeError:  # `taskloom runs list | head`
        # Python would complain again while flushing stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return common.EXIT_FAILURE
    return code
