"""`taskloom runs list|show|cancel|replay`: look at runs and act on them."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from ..sdk.runs import MAX_LIST_LIMIT, runs
from ..types import Run, RunEvent, RunStatus, ms_to_datetime
from . import common, ui
from .trigger_cmd import add_wait_options, duration, positive_int, wait_and_report

_LEVEL_COLOURS = {"debug": "grey", "info": "cyan", "warn": "yellow", "error": "red"}


def _status(text: str) -> str:
    try:
        return RunStatus(text.strip().upper()).value
    except ValueError:
        valid = ", ".join(s.value for s in RunStatus)
        raise argparse.ArgumentTypeError(f"unknown status {text!r}; valid: {valid}") from None


def _limit(text: str) -> int:
    value: int = positive_int(text)
    if value > MAX_LIST_LIMIT:
        raise argparse.ArgumentTypeError(f"at most {MAX_LIST_LIMIT}, got {text!r}")
    return value


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `runs` and its subcommands."""
    group = commands.add_parser("runs", help="list, show, cancel and replay runs")
    sub = group.add_subparsers(dest="runs_command", metavar="COMMAND", required=True)

    listing = sub.add_parser("list", help="list runs, newest first")
    listing.add_argument(
        "--status", dest="statuses", type=_status, nargs="+", action="extend", metavar="S"
    )
    listing.add_argument("--task", dest="task_ids", nargs="+", action="extend", metavar="T")
    listing.add_argument("--tag", metavar="T", help="only runs with this tag")
    listing.add_argument(
        "--since", type=duration, metavar="D", help="only runs created within D, e.g. 1h"
    )
    listing.add_argument("--limit", type=_limit, default=50, metavar="N", help="default 50")
    listing.add_argument("--json", action="store_true", help="print a JSON array of runs")
    listing.set_defaults(handler=run_list)

    show = sub.add_parser("show", help="a run's details, attempts and logs")
    show.add_argument("run_id", metavar="RUN_ID")
    show.add_argument("--json", action="store_true", help="print the run as JSON")
    show.add_argument(
        "--logs",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="include the run's log lines (default: yes)",
    )
    show.set_defaults(handler=run_show)

    cancel = sub.add_parser("cancel", help="cancel a run that has not finished")
    cancel.add_argument("run_id", metavar="RUN_ID")
    cancel.set_defaults(handler=run_cancel)

    replay = sub.add_parser("replay", help="run a run's task again with the same payload")
    replay.add_argument("run_id", metavar="RUN_ID")
    add_wait_options(replay)
    replay.set_defaults(handler=run_replay)


def run_list(args: argparse.Namespace) -> int:
    """Handle `taskloom runs list`."""
    found = runs.list(
        status=args.statuses, task=args.task_ids, tag=args.tag, since=args.since, limit=args.limit
    )
    if args.json:
        common.out(common.to_json([common.run_to_dict(run) for run in found]))
        return common.EXIT_OK
    if not found:
        common.err("No runs found.")
        return common.EXIT_OK
    now = datetime.now(tz=UTC)
    rows = [
        [
            run.id,
            run.task_id,
            run.status.value,
            str(run.attempt_count),
            ui.format_relative(run.created_at, now),
            ui.format_ms(run.duration_ms),
            ", ".join(run.tags),
        ]
        for run in found
    ]
    headers = ["ID", "TASK", "STATUS", "ATTEMPTS", "CREATED", "DURATION", "TAGS"]
    table = ui.render_table(
        headers, rows, colour=common.colour(), column_styles={2: ui.status_colour}
    )
    common.out(table)
    return common.EXIT_OK


def _log_events(run_id: str) -> list[RunEvent]:
    return [event for event in runs.events(run_id) if event.kind == "log"]


def _event_to_dict(event: RunEvent) -> dict[str, Any]:
    data = event.data
    moment = ms_to_datetime(event.ts)
    return {
        "ts": moment.isoformat() if moment is not None else None,
        "attempt": event.attempt,
        "level": data.get("level", "log"),
        "message": data.get("message", ""),
        "attributes": data.get("attributes") or {},
    }


def _heading(text: str, colour: bool) -> str:
    return ui.style(text, bold=True, enabled=colour)


def _level_colour(level: str) -> str | None:
    return _LEVEL_COLOURS.get(level.lower())


def _one_line(text: str) -> str:
    return " ↵ ".join(text.splitlines()) if "\n" in text else text


def _attributes_text(attributes: dict[str, Any]) -> str:
    return " ".join(
        f"{key}={value if isinstance(value, str) else orjson.dumps(value).decode()}"
        for key, value in attributes.items()
    )


def _details(run: Run) -> list[tuple[str, str]]:
    now = datetime.now(tz=UTC)
    colour = common.colour()

    def when(moment: datetime | None) -> str:
        if moment is None:
            return "-"
        return f"{ui.format_timestamp(moment)} ({ui.format_relative(moment, now)})"

    queue = run.queue + (f" (concurrency key {run.concurrency_key})" if run.concurrency_key else "")
    pairs = [
        ("id", run.id),
        ("task", run.task_id),
        ("status", common.status_text(run.status.value)),
        ("queue", queue),
        ("attempts", f"{run.attempt_count} of at most {run.max_attempts}"),
        ("machine", run.machine),
        ("created", when(run.created_at)),
    ]
    if run.delay_until is not None:
        pairs.append(("delayed until", when(run.delay_until)))
    pairs += [
        ("started", when(run.started_at)),
        ("finished", when(run.finished_at)),
        ("duration", ui.format_ms(run.duration_ms)),
        ("tags", ", ".join(run.tags) or "-"),
        ("metadata", common.to_json(run.metadata) if run.metadata else "-"),
        ("idempotency key", run.idempotency_key or "-"),
        ("parent", run.parent_run_id or "-"),
        ("root", run.root_run_id or "-"),
    ]
    if run.replayed_from:
        pairs.append(("replay of", run.replayed_from))
    pairs.append(("payload", common.to_json(run.payload)))
    if run.status is RunStatus.COMPLETED:
        pairs.append(("output", common.to_json(run.output)))
    if run.error is not None:
        pairs.append(("error", ui.style(common.error_text(run.error), fg="red", enabled=colour)))
    return pairs


def run_show(args: argparse.Namespace) -> int:
    """Handle `taskloom runs show`."""
    run = runs.retrieve(args.run_id)
    events = _log_events(run.id) if args.logs else []
    if args.json:
        data = common.run_to_dict(run, with_attempts=True)
        if args.logs:
            data["logs"] = [_event_to_dict(event) for event in events]
        common.out(common.to_json(data))
        return common.EXIT_OK
    colour = common.colour()
    common.out(ui.render_kv(_details(run), colour=colour))
    common.out()
    common.out(_heading("Attempts", colour))
    if run.attempts:
        rows = [
            [
                str(attempt.number),
                attempt.status,
                ui.format_timestamp(attempt.started_at),
                ui.format_ms(attempt.duration_ms),
                _one_line(str(attempt.error)) if attempt.error is not None else "",
            ]
            for attempt in run.attempts
        ]
        headers = ["#", "STATUS", "STARTED", "DURATION", "ERROR"]
        styles = {1: ui.status_colour}
        common.out(ui.render_table(headers, rows, colour=colour, column_styles=styles))
    else:
        common.out(common.dim("(none yet)"))
    if not args.logs:
        return common.EXIT_OK
    common.out()
    common.out(_heading("Logs", colour))
    if not events:
        common.out(common.dim("(none)"))
        return common.EXIT_OK
    rows = []
    for event in events:
        data = _event_to_dict(event)
        moment = ms_to_datetime(event.ts)
        stamp = moment.astimezone().strftime("%H:%M:%S.%f")[:-3] if moment else "-"
        rows.append(
            [
                stamp,
                str(data["level"]).upper(),
                _one_line(str(data["message"])),
                _attributes_text(data["attributes"]),
            ]
        )
    level_styles = {1: _level_colour}
    table = ui.render_table(
        ["TIME", "LEVEL", "MESSAGE", "ATTRIBUTES"], rows, colour=colour, column_styles=level_styles
    )
    common.out(table)
    return common.EXIT_OK


def run_cancel(args: argparse.Namespace) -> int:
    """Handle `taskloom runs cancel`."""
    cancellation = common.client().run_cancel(args.run_id)
    previous, run = cancellation.previous_status, cancellation.run
    if previous.is_final:
        common.out(
            f"{run.id} already ended {common.status_text(previous.value)}; nothing to cancel"
        )
        return common.EXIT_OK
    common.out(
        f"{run.id}: {common.status_text(previous.value)} -> {common.status_text(run.status.value)}"
    )
    return common.EXIT_OK


def run_replay(args: argparse.Namespace) -> int:
    """Handle `taskloom runs replay`."""
    handle = runs.replay(args.run_id)
    if args.wait:
        if not args.json:
            common.out(handle.id)
        return wait_and_report(handle.id, timeout=args.timeout, as_json=args.json)
    if args.json:
        common.out(common.to_json({"id": handle.id, "task_id": handle.task_id}))
    else:
        common.out(handle.id)
        common.err(
            common.dim(f"Replaying {args.run_id} as {handle.id} ({handle.task_id})", sys.stderr)
        )
    return common.EXIT_OK
