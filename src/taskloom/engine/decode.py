"""Turn store records into the public `Run` and `Attempt` objects."""

from __future__ import annotations

from typing import Any

import orjson

from ..store.records import AttemptRecord, QueueRecord, RunRecord
from ..types import Attempt, QueueDetails, Run, RunError, RunStatus, ms_to_datetime


def _json(data: bytes | None, default: Any = None) -> Any:
    return default if data is None else orjson.loads(data)


def decode_error(data: bytes | None) -> RunError | None:
    """A stored error (JSON bytes) as a RunError."""
    return RunError.from_json(_json(data))


def decode_attempt(record: AttemptRecord) -> Attempt:
    """An attempts row as an Attempt."""
    return Attempt(
        run_id=record.run_id,
        number=record.number,
        status=record.status,
        worker_id=record.worker_id,
        started_at=ms_to_datetime(record.started_at),
        finished_at=ms_to_datetime(record.finished_at),
        error=decode_error(record.error),
    )


def decode_run(record: RunRecord, attempts: list[AttemptRecord] | None = None) -> Run:
    """A runs row (and optionally its attempts) as a Run."""
    created_at = ms_to_datetime(record.created_at)
    assert created_at is not None
    return Run(
        id=record.id,
        task_id=record.task_id,
        status=RunStatus(record.status),
        payload=_json(record.payload),
        output=_json(record.output),
        error=decode_error(record.error),
        attempt_count=record.attempt,
        tags=_json(record.tags, []),
        metadata=_json(record.metadata, {}),
        created_at=created_at,
        started_at=ms_to_datetime(record.started_at),
        finished_at=ms_to_datetime(record.finished_at),
        parent_run_id=record.parent_run_id,
        root_run_id=record.root_run_id,
        queue=record.queue,
        concurrency_key=record.concurrency_key,
        idempotency_key=record.idempotency_key,
        max_attempts=record.max_attempts,
        machine=record.machine,
        max_duration=record.max_duration,
        ttl=None if record.ttl_ms is None else record.ttl_ms // 1000,
        delay_until=ms_to_datetime(record.delay_until),
        priority=record.priority_ms / 1000,
        depth=record.depth,
        batch_id=record.batch_id,
        is_test=record.is_test,
        replayed_from=record.replayed_from,
        updated_at=ms_to_datetime(record.updated_at),
        attempts=[decode_attempt(a) for a in attempts or []],
    )


def decode_queue(record: QueueRecord) -> QueueDetails:
    """A queues row with its counts as QueueDetails."""
    return QueueDetails(
        name=record.name,
        type=record.kind,
        running=record.running,
        queued=record.queued,
        paused=record.paused,
        concurrency_limit=record.effective_limit,
        base_concurrency_limit=record.concurrency_limit,
        override_concurrency_limit=record.limit_override,
        overridden_at=ms_to_datetime(record.overridden_at),
        total_concurrency_limit=record.key_total_limit,
    )
