"""`taskloom trigger TASK_ID [PAYLOAD_JSON]`: trigger a task by id, optionally wait for it."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

from ..durations import parse_duration, parse_instant
from ..errors import InvalidOptionError, UnknownTaskError
from ..machines import resolve_machine
from ..sdk.polling import RunTimeoutError
from ..sdk.task import tasks
from ..types import Run
from . import common, ui

FIRST_POLL_SECONDS = 0.05
MAX_POLL_SECONDS = 0.2


def _checked(check: Callable[[str], object]) -> Callable[[str], str]:
    """An argparse `type` that validates with `check` and keeps the text as given."""

    def parse(text: str) -> str:
        try:
            check(text)
        except InvalidOptionError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        return text

    return parse


def _number_at_least(minimum: float, kind: type[int] | type[float]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a number >= {minimum}, got {text!r}")
        return value

    return parse


positive_int = _number_at_least(1, int)
"""An argparse `type` for integers >= 1 (`--concurrency`, `--limit`, ...)."""

duration = _checked(lambda text: parse_duration(text, what="duration"))
"""An argparse `type` for durations such as ``30``, ``10s``, ``1h30m``."""


def add_wait_options(parser: argparse.ArgumentParser) -> None:
    """`--wait`, `--timeout` and `--json`, shared by `trigger` and `runs replay`."""
    parser.add_argument(
        "--wait", action="store_true", help="wait for the run to finish and print its output"
    )
    parser.add_argument(
        "--timeout",
        type=_number_at_least(0, float),
        metavar="SECONDS",
        help="with --wait: give up waiting after this many seconds (the run carries on)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `trigger` command."""
    parser = commands.add_parser(
        "trigger",
        help="trigger a task by id",
        description="Trigger a task by id. A worker must have run once with the task's code, "
        "so that the task is registered.",
    )
    parser.add_argument("task_id", metavar="TASK_ID")
    parser.add_argument(
        "payload", metavar="PAYLOAD_JSON", nargs="?", help="the payload, as one JSON document"
    )
    add_wait_options(parser)
    parser.add_argument(
        "--delay",
        type=_checked(lambda text: parse_instant(text, now_ms=0, what="--delay")),
        metavar="D",
        help="start later: a duration ('10m', '1h30m') or an ISO-8601 date-time",
    )
    parser.add_argument(
        "--tag",
        dest="tags",
        action="append",
        metavar="T",
        help="add a tag (repeat for more, at most 10)",
    )
    parser.add_argument("--idempotency-key", metavar="K")
    parser.add_argument(
        "--priority",
        type=_number_at_least(0, float),
        metavar="SECONDS",
        help="run ahead of runs queued up to this many seconds earlier",
    )
    parser.add_argument("--max-attempts", type=positive_int, metavar="N")
    parser.add_argument("--queue", metavar="Q", help="queue name (default: the task's queue)")
    parser.add_argument("--concurrency-key", metavar="K")
    parser.add_argument(
        "--machine",
        type=_checked(lambda text: resolve_machine(text, what="--machine")),
        metavar="M",
        help="machine preset, e.g. small-1x, large-2x",
    )
    parser.add_argument(
        "--ttl", type=duration, metavar="D", help="expire if not started within this duration"
    )
    parser.set_defaults(handler=run_trigger)


_OPTION_NAMES = (
    "delay",
    "tags",
    "idempotency_key",
    "priority",
    "max_attempts",
    "queue",
    "concurrency_key",
    "machine",
    "ttl",
)


def run_trigger(args: argparse.Namespace) -> int:
    """Handle `taskloom trigger`."""
    try:
        payload = common.parse_payload(args.payload)
    except ValueError as error:
        ui.print_error(str(error))
        return common.EXIT_USAGE
    options = {name: getattr(args, name) for name in _OPTION_NAMES}
    options = {name: value for name, value in options.items() if value is not None}
    try:
        handle = tasks.trigger(args.task_id, payload, **options)
    except UnknownTaskError as error:
        ui.print_error(str(error))
        common.err(
            "hint: a worker registers the tasks it finds in the task directories when it "
            "starts: run `taskloom dev` (or restart `taskloom worker` after adding a task)"
        )
        return common.EXIT_FAILURE
    if not args.wait:
        if args.json:
            data = {"id": handle.id, "task_id": handle.task_id, "is_cached": handle.is_cached}
            common.out(common.to_json(data))
        else:
            common.out(handle.id)
            note = " (an existing run: the idempotency key matched)" if handle.is_cached else ""
            common.err(
                common.dim(
                    f"Triggered {handle.task_id}{note}; see `taskloom runs show {handle.id}`",
                    sys.stderr,
                )
            )
        return common.EXIT_OK
    if not args.json:
        common.out(handle.id)
    return wait_and_report(handle.id, timeout=args.timeout, as_json=args.json)


def wait_for_run(run_id: str, timeout: float | None, spinner: ui.Spinner) -> Run:
    """Poll the run until it is final, showing its status; RunTimeoutError after `timeout`."""
    client = common.client()
    deadline = None if timeout is None else time.monotonic() + timeout
    interval = FIRST_POLL_SECONDS
    while True:
        run = client.run_retrieve(run_id)
        spinner.update(run.status.value)
        if run.is_completed:
            return run
        if deadline is not None and time.monotonic() >= deadline:
            raise RunTimeoutError(
                f"run {run.id} of task {run.task_id!r} is still {run.status.value} after "
                f"{timeout:g} s; it carries on (see `taskloom runs show {run.id}`)"
            )
        pause = interval if deadline is None else min(interval, deadline - time.monotonic())
        time.sleep(max(0.0, pause))
        interval = min(interval * 1.5, MAX_POLL_SECONDS)


def wait_and_report(run_id: str, *, timeout: float | None, as_json: bool) -> int:
    """Wait for a run, print its output (or error), and return the exit code: 0 on COMPLETED."""
    run = common.client().run_retrieve(run_id)
    try:
        with ui.Spinner(f"Waiting for {run.id} ({run.task_id})") as spinner:
            run = wait_for_run(run_id, timeout, spinner)
    except KeyboardInterrupt:
        common.err(f"Stopped waiting; the run carries on: taskloom runs show {run_id}")
        return common.EXIT_INTERRUPTED
    if as_json:
        common.out(common.to_json(common.run_to_dict(run, with_attempts=True)))
        return common.EXIT_OK if run.is_success else common.EXIT_FAILURE
    attempts = f"{run.attempt_count} attempt{'s' if run.attempt_count != 1 else ''}"
    summary = f"{run.status.value} in {ui.format_ms(run.duration_ms)} ({attempts})"
    if run.is_success:
        common.err(
            ui.style(
                summary, fg=ui.status_colour(run.status.value), enabled=common.colour(sys.stderr)
            )
        )
        common.out(common.to_json(run.output))
        return common.EXIT_OK
    detail = f": {common.error_text(run.error)}" if run.error is not None else ""
    ui.print_error(f"run {run.id} of task {run.task_id!r} ended {summary}{detail}")
    return common.EXIT_FAILURE
