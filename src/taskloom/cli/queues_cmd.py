"""`taskloom queues list|show|pause|resume|override|reset`: look at queues and manage them.

Queues are declared by the task modules (each task's own `task/<id>` queue, and shared
ones made with `queue()`); a worker records them when it starts. Pausing stops new
starts (executing runs finish); an override replaces the code's concurrency limit until
it is reset.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..runtime.queues import MAX_CONCURRENCY_LIMIT
from ..sdk.queues import queues
from ..types import QueueDetails
from . import common, ui

OVERRIDE_MARK = "*"


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}") from None
    if not 0 <= value <= MAX_CONCURRENCY_LIMIT:
        raise argparse.ArgumentTypeError(
            f"expected a whole number from 0 to {MAX_CONCURRENCY_LIMIT}, got {text!r}"
        )
    return value


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `queues` and its subcommands."""
    group = commands.add_parser(
        "queues",
        help="list queues, pause and resume them, override their limits",
        description="Queues as the workers declared them, with running and queued counts.",
    )
    sub = group.add_subparsers(dest="queues_command", metavar="COMMAND", required=True)

    listing = sub.add_parser("list", help="every queue with its counts and limit")
    listing.add_argument("--json", action="store_true", help="print a JSON array of queues")
    listing.set_defaults(handler=queue_list)

    show = sub.add_parser("show", help="one queue's details")
    show.add_argument("name", metavar="NAME")
    show.add_argument("--json", action="store_true", help="print the queue as JSON")
    show.set_defaults(handler=queue_show)

    pause = sub.add_parser("pause", help="start nothing new from a queue (running runs finish)")
    pause.add_argument("name", metavar="NAME")
    pause.add_argument("--json", action="store_true", help="print the queue as JSON")
    pause.set_defaults(handler=queue_pause)

    resume = sub.add_parser("resume", help="start runs from a paused queue again")
    resume.add_argument("name", metavar="NAME")
    resume.add_argument("--json", action="store_true", help="print the queue as JSON")
    resume.set_defaults(handler=queue_resume)

    override = sub.add_parser(
        "override", help="replace a queue's concurrency limit until `queues reset`"
    )
    override.add_argument("name", metavar="NAME")
    override.add_argument("limit", type=_limit, metavar="LIMIT", help="0 or more; 0 starts nothing")
    override.add_argument("--json", action="store_true", help="print the queue as JSON")
    override.set_defaults(handler=queue_override)

    reset = sub.add_parser("reset", help="go back to the concurrency limit from the code")
    reset.add_argument("name", metavar="NAME")
    reset.add_argument("--json", action="store_true", help="print the queue as JSON")
    reset.set_defaults(handler=queue_reset)


def queue_to_dict(queue: QueueDetails) -> dict[str, Any]:
    """A queue as JSON data (the shape `--json` prints)."""
    return {
        "name": queue.name,
        "type": queue.type,
        "running": queue.running,
        "queued": queue.queued,
        "paused": queue.paused,
        "concurrency_limit": queue.concurrency_limit,
        "base_concurrency_limit": queue.base_concurrency_limit,
        "override_concurrency_limit": queue.override_concurrency_limit,
        "overridden_at": (None if queue.overridden_at is None else queue.overridden_at.isoformat()),
        "total_concurrency_limit": queue.total_concurrency_limit,
    }


def _limit_text(queue: QueueDetails) -> str:
    text = "none" if queue.concurrency_limit is None else str(queue.concurrency_limit)
    if queue.override_concurrency_limit is not None:
        text += OVERRIDE_MARK
    return text


def _paused_colour(text: str) -> str | None:
    return "yellow" if text == "yes" else None


def queue_list(args: argparse.Namespace) -> int:
    """Handle `taskloom queues list`."""
    found = queues.list()
    if args.json:
        common.out(common.to_json([queue_to_dict(q) for q in found]))
        return common.EXIT_OK
    if not found:
        common.err("No queues yet: a worker declares its task modules' queues when it starts.")
        return common.EXIT_OK
    rows = [
        [
            q.name,
            q.type,
            str(q.running),
            str(q.queued),
            _limit_text(q),
            "yes" if q.paused else "no",
        ]
        for q in found
    ]
    headers = ["NAME", "TYPE", "RUNNING", "QUEUED", "LIMIT", "PAUSED"]
    table = ui.render_table(
        headers, rows, colour=common.colour(), column_styles={5: _paused_colour}
    )
    common.out(table)
    if any(q.override_concurrency_limit is not None for q in found):
        common.err(
            common.dim(
                f"{OVERRIDE_MARK} overridden; `taskloom queues reset NAME` goes back to the "
                "limit in the code",
                sys.stderr,
            )
        )
    return common.EXIT_OK


def _details(queue: QueueDetails) -> list[tuple[str, str]]:
    def number(value: int | None) -> str:
        return "none" if value is None else str(value)

    pairs = [
        ("name", queue.name),
        ("type", queue.type),
        ("running", str(queue.running)),
        ("queued", str(queue.queued)),
        ("paused", "yes" if queue.paused else "no"),
        ("limit", number(queue.concurrency_limit)),
        ("limit in code", number(queue.base_concurrency_limit)),
    ]
    if queue.override_concurrency_limit is not None:
        when = ui.format_timestamp(queue.overridden_at)
        pairs.append(("override", f"{queue.override_concurrency_limit} (since {when})"))
    if queue.total_concurrency_limit is not None:
        pairs.append(("total across keys", str(queue.total_concurrency_limit)))
    return pairs


def _print(queue: QueueDetails, as_json: bool, message: str | None = None) -> int:
    if as_json:
        common.out(common.to_json(queue_to_dict(queue)))
    elif message is not None:
        common.out(message)
    else:
        common.out(ui.render_kv(_details(queue), colour=common.colour()))
    return common.EXIT_OK


def queue_show(args: argparse.Namespace) -> int:
    """Handle `taskloom queues show`."""
    return _print(queues.retrieve(args.name), args.json)


def queue_pause(args: argparse.Namespace) -> int:
    """Handle `taskloom queues pause`."""
    queue = queues.pause(args.name)
    message = (
        f"Paused queue {queue.name}: nothing new starts; {queue.running} running will finish, "
        f"{queue.queued} queued wait"
    )
    return _print(queue, args.json, message)


def queue_resume(args: argparse.Namespace) -> int:
    """Handle `taskloom queues resume`."""
    queue = queues.resume(args.name)
    return _print(queue, args.json, f"Resumed queue {queue.name} ({queue.queued} queued)")


def queue_override(args: argparse.Namespace) -> int:
    """Handle `taskloom queues override`."""
    queue = queues.override_concurrency_limit(args.name, args.limit)
    base = "no limit" if queue.base_concurrency_limit is None else queue.base_concurrency_limit
    message = f"Queue {queue.name}: limit {queue.concurrency_limit} (the code says {base})"
    return _print(queue, args.json, message)


def queue_reset(args: argparse.Namespace) -> int:
    """Handle `taskloom queues reset`."""
    queue = queues.reset_concurrency_limit(args.name)
    limit = "no limit" if queue.concurrency_limit is None else f"limit {queue.concurrency_limit}"
    return _print(queue, args.json, f"Queue {queue.name}: back to {limit} from the code")
