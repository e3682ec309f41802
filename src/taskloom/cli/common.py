"""What every command shares: the client (and, for admin commands, the engine), colour
decisions, JSON output and run rendering."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

from ..config import Config, get_config
from ..engine.engine import Engine
from ..engine.factory import open_engine
from ..sdk.client import Client, current_client
from ..types import Attempt, Run, RunError
from . import ui

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def client() -> Client:
    """The client public operations go through (runs, queues, triggers), as in the sdk."""
    return current_client()


@contextlib.contextmanager
def admin_engine() -> Iterator[Engine]:
    """An engine on the configured database, for what only the database's owner does
    (migrations, running a worker); closed afterwards."""
    engine = open_engine(get_config())
    try:
        yield engine
    finally:
        engine.close()


def colour(stream: TextIO | None = None) -> bool:
    """Whether to colour what goes to `stream` (default stdout); see `ui.use_colour`."""
    return ui.use_colour(stream if stream is not None else sys.stdout)


def out(text: str = "") -> None:
    """Write a line to stdout."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def err(text: str = "") -> None:
    """Write a line to stderr (progress, hints and notes that scripts should not parse)."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def dim(text: str, stream: TextIO | None = None) -> str:
    """`text` dimmed when colour is on for `stream` (default stdout)."""
    return ui.style(text, dim=True, enabled=colour(stream))


def status_text(status: str, stream: TextIO | None = None) -> str:
    """A run status in its colour (when colour is on for `stream`, default stdout)."""
    return ui.style(status, fg=ui.status_colour(status), enabled=colour(stream))


def to_json(value: Any) -> str:
    """`value` as indented JSON text; values JSON cannot hold are shown with `str`."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def parse_payload(text: str | None) -> Any:
    """Decode PAYLOAD_JSON; `ValueError` says what is wrong and where."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"PAYLOAD_JSON is not valid JSON: {error.msg} at line {error.lineno} column "
            f"{error.colno}, in {_clip(text)!r}; pass one JSON document such as "
            """'{"message": "hi"}' (quoted for your shell)"""
        ) from None


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_database(config: Config) -> str:
    """The database for people: a SQLite path (relative to the cwd when inside it), or a URL
    without its password."""
    path = config.database_path
    if path is not None:
        try:
            return str(path.resolve().relative_to(Path.cwd().resolve()))
        except ValueError:
            return str(path)
    parts = urlsplit(config.database_url)
    if parts.password is None:
        return config.database_url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def error_to_dict(error: RunError | None) -> dict[str, str] | None:
    """A run or attempt error as JSON data."""
    return None if error is None else error.to_json()


def attempt_to_dict(attempt: Attempt) -> dict[str, Any]:
    """An attempt as JSON data."""
    return {
        "number": attempt.number,
        "status": attempt.status,
        "worker_id": attempt.worker_id,
        "started_at": _iso(attempt.started_at),
        "finished_at": _iso(attempt.finished_at),
        "duration_ms": attempt.duration_ms,
        "error": error_to_dict(attempt.error),
    }


def run_to_dict(run: Run, *, with_attempts: bool = False) -> dict[str, Any]:
    """A run as JSON data (the shape `--json` prints); attempts only when asked for."""
    data: dict[str, Any] = {
        "id": run.id,
        "task_id": run.task_id,
        "status": run.status.value,
        "payload": run.payload,
        "output": run.output,
        "error": error_to_dict(run.error),
        "attempt_count": run.attempt_count,
        "max_attempts": run.max_attempts,
        "queue": run.queue,
        "concurrency_key": run.concurrency_key,
        "machine": run.machine,
        "tags": run.tags,
        "metadata": run.metadata,
        "idempotency_key": run.idempotency_key,
        "created_at": _iso(run.created_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "updated_at": _iso(run.updated_at),
        "duration_ms": run.duration_ms,
        "delay_until": _iso(run.delay_until),
        "ttl": run.ttl,
        "priority": run.priority,
        "max_duration": run.max_duration,
        "parent_run_id": run.parent_run_id,
        "root_run_id": run.root_run_id,
        "depth": run.depth,
        "batch_id": run.batch_id,
        "is_test": run.is_test,
        "replayed_from": run.replayed_from,
    }
    if with_attempts:
        data["attempts"] = [attempt_to_dict(a) for a in run.attempts]
    return data


def error_text(error: RunError, *, with_stack: bool = True) -> str:
    """``Type: message`` and, when asked and present, the stack below it."""
    text = str(error)
    if error.code:
        text += f" [{error.code}]"
    stack = error.stack.rstrip()
    if with_stack and stack:
        text += "\n" + stack
    return text
