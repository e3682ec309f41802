"""Statements on queues: declarations from code (limits), management changes (pause,
limit overrides), and their running and queued counts."""

from __future__ import annotations

import msgspec

from ..records import QueueChange, QueueDeclaration, QueueRecord
from .base import SessionBase
from .rows import RowReader, columns

QUEUE_COLUMNS = columns(QueueRecord, exclude=("running", "queued"))
DECLARE_QUEUE = """
INSERT INTO queues (name, kind, concurrency_limit, key_total_limit, updated_at)
VALUES (:name, :kind, :concurrency_limit, :key_total_limit, :now)
ON CONFLICT (name) DO UPDATE SET
    kind = excluded.kind, concurrency_limit = excluded.concurrency_limit,
    key_total_limit = excluded.key_total_limit, updated_at = excluded.updated_at
"""
SELECT_QUEUES = f"SELECT {QUEUE_COLUMNS} FROM queues ORDER BY name"
SELECT_QUEUE = f"SELECT {QUEUE_COLUMNS} FROM queues WHERE name = :name"
COUNT_RUNNING = """
SELECT queue, COUNT(*) FROM runs WHERE status IN ('DEQUEUED', 'EXECUTING') GROUP BY queue
"""
COUNT_QUEUED = "SELECT queue, COUNT(*) FROM runs WHERE status = 'QUEUED' GROUP BY queue"
COUNT_RUNNING_ONE = """
SELECT COUNT(*) FROM runs WHERE status IN ('DEQUEUED', 'EXECUTING') AND queue = :name
"""
COUNT_QUEUED_ONE = "SELECT COUNT(*) FROM runs WHERE status = 'QUEUED' AND queue = :name"
PAUSE_QUEUE = "UPDATE queues SET paused = :paused, updated_at = :now WHERE name = :name"
OVERRIDE_QUEUE_LIMIT = """
UPDATE queues SET limit_override = :limit, overridden_at = :overridden_at, updated_at = :now
WHERE name = :name
"""

QUEUES = RowReader(QueueRecord)


class QueueStatements(SessionBase):
    """The queues table."""

    def queues_declare(self, queues: list[QueueDeclaration], now: int) -> None:
        """Record queues as code declares them (limits from code; overrides and pauses are
        kept)."""
        self.run_many(
            DECLARE_QUEUE,
            [
                {
                    "name": q.name,
                    "kind": q.kind,
                    "concurrency_limit": q.concurrency_limit,
                    "key_total_limit": q.key_total_limit,
                    "now": now,
                }
                for q in queues
            ],
        )

    def queue_list(self) -> list[QueueRecord]:
        """Every known queue with its running and queued counts."""
        running = dict(self.run(COUNT_RUNNING).fetchall())
        queued = dict(self.run(COUNT_QUEUED).fetchall())
        return [
            msgspec.structs.replace(
                queue, running=running.get(queue.name, 0), queued=queued.get(queue.name, 0)
            )
            for queue in QUEUES.all(self.run(SELECT_QUEUES))
        ]

    def queue_get(self, name: str) -> QueueRecord | None:
        """One queue with its counts."""
        queue = QUEUES.one(self.run(SELECT_QUEUE, {"name": name}))
        if queue is None:
            return None
        return msgspec.structs.replace(
            queue,
            running=int(self.scalar(COUNT_RUNNING_ONE, {"name": name})),
            queued=int(self.scalar(COUNT_QUEUED_ONE, {"name": name})),
        )

    def queue_change(self, change: QueueChange) -> bool:
        """Pause or resume a queue, or override its limit (`reset_limit`: back to the
        code's value); False when the queue is unknown."""
        found = False
        if change.paused is not None:
            pause = {"name": change.name, "paused": 1 if change.paused else 0, "now": change.now}
            found = self.run(PAUSE_QUEUE, pause).rowcount == 1
        if change.limit_override is not None or change.reset_limit:
            limit = None if change.reset_limit else change.limit_override
            override = {
                "name": change.name,
                "limit": limit,
                "overridden_at": None if limit is None else change.now,
                "now": change.now,
            }
            found = self.run(OVERRIDE_QUEUE_LIMIT, override).rowcount == 1
        return found
