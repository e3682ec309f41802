"""Validate trigger options and build the row a trigger inserts.

This is the trigger hot path: validate, serialise the payload once, build one `NewRun`.
Every rejection names the task, the value and the limit, and happens before any write.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from ..config import Config
from ..durations import parse_duration, parse_instant
from ..errors import InvalidOptionError, PayloadError
from ..ids import new_id
from ..machines import resolve_machine
from ..retry import MAX_ATTEMPTS_CEILING
from ..store.records import NewRun
from ..types import RunStatus
from .metadata import METADATA_LIMIT_BYTES
from .spec import TaskSpec

MAX_TAGS = 10
MAX_TAG_LENGTH = 128
MAX_IDEMPOTENCY_KEY_LENGTH = 2048
DEFAULT_IDEMPOTENCY_TTL_SECONDS = 30 * 24 * 3600
MIN_MAX_DURATION = 5

TRIGGER_OPTIONS = frozenset(
    {
        "idempotency_key",
        "idempotency_key_ttl",
        "delay",
        "ttl",
        "tags",
        "metadata",
        "concurrency_key",
        "queue",
        "machine",
        "max_attempts",
        "max_duration",
        "priority",
    }
)


@dataclass(frozen=True, slots=True)
class RunLinks:
    """How a new run relates to others (set when triggering from inside a run, or replaying)."""

    parent_run_id: str | None = None
    root_run_id: str | None = None
    depth: int = 0
    batch_id: str | None = None
    replayed_from: str | None = None
    is_test: bool = False
    queue_ts: int | None = None  # a child inherits its parent's place in the queues


NO_LINKS = RunLinks()


def serialise_payload(task_id: str, payload: Any, limit: int) -> bytes:
    """The payload as JSON bytes, or PayloadError naming the task, the type and the limit."""
    try:
        data = orjson.dumps(payload)
    except TypeError as error:
        raise PayloadError(
            f"payload of task {task_id!r} is not JSON serialisable: {error}"
        ) from None
    if len(data) > limit:
        raise PayloadError(
            f"payload of task {task_id!r} is {len(data):,} bytes, over the limit of {limit:,} bytes"
        )
    return data


def build_new_run(
    spec: TaskSpec,
    payload: bytes,
    options: Mapping[str, Any],
    *,
    now: int,
    config: Config,
    links: RunLinks = NO_LINKS,
) -> NewRun:
    """Check every trigger option against `spec` and return the run to insert."""
    task_id = spec.id
    unknown = options.keys() - TRIGGER_OPTIONS
    if unknown:
        raise InvalidOptionError(
            f"unknown trigger option(s) for task {task_id!r}: {', '.join(sorted(unknown))}; "
            f"valid options are {', '.join(sorted(TRIGGER_OPTIONS))}"
        )
    get = options.get

    max_attempts = spec.retry.max_attempts
    if (value := get("max_attempts")) is not None:
        max_attempts = _max_attempts(task_id, value)
    if config.environment == "DEVELOPMENT" and not config.retries_enabled_in_dev:
        max_attempts = 1

    machine = spec.machine
    if (value := get("machine")) is not None:
        machine = resolve_machine(value, what=f"machine of a run of task {task_id!r}").name

    max_duration = spec.max_duration
    if (value := get("max_duration")) is not None:
        max_duration = _max_duration(task_id, value)

    ttl_seconds = spec.ttl_seconds
    if (value := get("ttl")) is not None:
        ttl_seconds = parse_duration(value, what=f"ttl of a run of task {task_id!r}")
    ttl_ms = round(ttl_seconds * 1000) if ttl_seconds else None

    priority_ms = 0
    if (value := get("priority")) is not None:
        priority_ms = _priority_ms(task_id, value)

    tags_json = _tags(task_id, get("tags"))
    metadata_json = _metadata(task_id, get("metadata"))

    queue = spec.queue
    if (value := get("queue")) is not None:
        if not isinstance(value, str) or not value:
            raise InvalidOptionError(
                f"queue of a run of task {task_id!r} must be a queue name, got {value!r}"
            )
        queue = value

    concurrency_key = get("concurrency_key")
    if concurrency_key is not None:
        if isinstance(concurrency_key, bool) or not isinstance(concurrency_key, str | int):
            raise InvalidOptionError(
                f"concurrency_key of a run of task {task_id!r} must be a string, "
                f"got {concurrency_key!r}"
            )
        concurrency_key = str(concurrency_key)
        if not concurrency_key or len(concurrency_key) > 512 or not concurrency_key.isprintable():
            raise InvalidOptionError(
                f"concurrency_key of a run of task {task_id!r} must be 1 to 512 printable "
                f"characters, got {concurrency_key!r}"
            )

    idempotency_key, idempotency_expires_at = _idempotency(task_id, options, now)

    delay_until: int | None = None
    if (value := get("delay")) is not None:
        delay_until = parse_instant(value, now_ms=now, what=f"delay of a run of task {task_id!r}")
        if delay_until <= now:
            delay_until = None

    if delay_until is None:
        status = RunStatus.QUEUED.value
        queue_ts = now if links.queue_ts is None else min(now, links.queue_ts)
        expires_at = now + ttl_ms if ttl_ms else None
    else:
        status = RunStatus.DELAYED.value
        queue_ts = delay_until
        expires_at = None  # counted from when the run enters its queue

    retry_json = spec.retry_json
    if spec.retry.max_attempts != max_attempts:
        retry_json = orjson.dumps(spec.retry.with_max_attempts(max_attempts).to_json())
    return NewRun(
        id=new_id("run"),
        task_id=task_id,
        queue=queue,
        status=status,
        payload=payload,
        max_attempts=max_attempts,
        retry=retry_json,
        machine=machine,
        created_at=now,
        queue_ts=queue_ts,
        sort_key=queue_ts - priority_ms,
        available_at=queue_ts,
        concurrency_key=concurrency_key,
        max_duration=max_duration,
        ttl_ms=ttl_ms,
        priority_ms=priority_ms,
        delay_until=delay_until,
        expires_at=expires_at,
        idempotency_key=idempotency_key,
        idempotency_expires_at=idempotency_expires_at,
        tags=tags_json,
        metadata=metadata_json,
        parent_run_id=links.parent_run_id,
        root_run_id=links.root_run_id,
        depth=links.depth,
        batch_id=links.batch_id,
        is_test=links.is_test,
        replayed_from=links.replayed_from,
    )


def _max_attempts(task_id: str, value: Any) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not (1 <= value <= MAX_ATTEMPTS_CEILING)
    ):
        raise InvalidOptionError(
            f"max_attempts of a run of task {task_id!r} must be an integer from 1 to "
            f"{MAX_ATTEMPTS_CEILING}, got {value!r}"
        )
    return value


def _max_duration(task_id: str, value: Any) -> int:
    seconds = parse_duration(value, what=f"max_duration of a run of task {task_id!r}")
    if seconds < MIN_MAX_DURATION:
        raise InvalidOptionError(
            f"max_duration of a run of task {task_id!r} must be at least "
            f"{MIN_MAX_DURATION} seconds, got {value!r}"
        )
    return math.ceil(seconds)


def _priority_ms(task_id: str, value: Any) -> int:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidOptionError(
            f"priority of a run of task {task_id!r} must be a number of seconds, got {value!r}"
        )
    if value < 0:
        raise InvalidOptionError(
            f"priority of a run of task {task_id!r} must be 0 or more seconds, got {value!r}"
        )
    return round(value * 1000)


def _tags(task_id: str, value: Any) -> bytes | None:
    if value is None:
        return None
    tags = [value] if isinstance(value, str) else value
    if not isinstance(tags, list | tuple) or not all(isinstance(t, str) for t in tags):
        raise InvalidOptionError(
            f"tags of a run of task {task_id!r} must be a string or a list of strings, "
            f"got {value!r}"
        )
    if len(tags) > MAX_TAGS:
        raise InvalidOptionError(
            f"a run of task {task_id!r} may have at most {MAX_TAGS} tags, got {len(tags)}"
        )
    for tag in tags:
        if not 1 <= len(tag) <= MAX_TAG_LENGTH:
            raise InvalidOptionError(
                f"tag {tag[:40]!r}{'...' if len(tag) > 40 else ''} of a run of task {task_id!r} "
                f"is {len(tag)} characters; tags must be 1 to {MAX_TAG_LENGTH} characters"
            )
    return orjson.dumps(list(dict.fromkeys(tags))) if tags else None


def _metadata(task_id: str, value: Any) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidOptionError(
            f"metadata of a run of task {task_id!r} must be a dict, got {type(value).__name__}"
        )
    try:
        data = orjson.dumps(value)
    except TypeError as error:
        raise PayloadError(
            f"metadata of a run of task {task_id!r} is not JSON serialisable: {error}"
        ) from None
    if len(data) > METADATA_LIMIT_BYTES:
        raise PayloadError(
            f"metadata of a run of task {task_id!r} is {len(data):,} bytes, over the limit of "
            f"{METADATA_LIMIT_BYTES:,} bytes"
        )
    return data


def _idempotency(
    task_id: str, options: Mapping[str, Any], now: int
) -> tuple[str | None, int | None]:
    key = options.get("idempotency_key")
    if key is None:
        if options.get("idempotency_key_ttl") is not None:
            raise InvalidOptionError(
                f"idempotency_key_ttl of a run of task {task_id!r} needs an idempotency_key"
            )
        return None, None
    if isinstance(key, list | tuple) and key and all(isinstance(k, str) for k in key):
        key = "-".join(key)
    if not isinstance(key, str) or not key:
        raise InvalidOptionError(
            f"idempotency_key of a run of task {task_id!r} must be a non-empty string, got {key!r}"
        )
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidOptionError(
            f"idempotency_key of a run of task {task_id!r} is {len(key)} characters, over the "
            f"limit of {MAX_IDEMPOTENCY_KEY_LENGTH}"
        )
    ttl = options.get("idempotency_key_ttl")
    seconds = (
        DEFAULT_IDEMPOTENCY_TTL_SECONDS
        if ttl is None
        else parse_duration(ttl, what=f"idempotency_key_ttl of a run of task {task_id!r}")
    )
    return key, now + round(seconds * 1000)


def delay_target(value: str | float | timedelta | datetime, *, now: int, what: str) -> int:
    """An absolute time for a `delay=` value (used by reschedule)."""
    return parse_instant(value, now_ms=now, what=what)
