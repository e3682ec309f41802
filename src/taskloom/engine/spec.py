"""A task's run-shaping settings, resolved and validated: what the engine locks onto a run.

The SDK's `Task` holds one, and workers publish them to the store's task catalog so that
`tasks.trigger("id", ...)` works in a process that never imported the task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from ..retry import Retry


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """Resolved options of one task (defaults from config already applied)."""

    id: str
    queue: str
    retry: Retry
    machine: str
    max_duration: int | None = None
    ttl_seconds: float | None = None
    description: str | None = None
    file_path: str | None = None
    concurrency_limit: int | None = None
    total_concurrency_limit: int | None = None
    retry_json: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Serialised once: every trigger stores the locked policy.
        object.__setattr__(self, "retry_json", orjson.dumps(self.retry.to_json()))

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "id": self.id,
                "queue": self.queue,
                "retry": self.retry.to_json(),
                "machine": self.machine,
                "max_duration": self.max_duration,
                "ttl_seconds": self.ttl_seconds,
                "description": self.description,
                "file_path": self.file_path,
                "concurrency_limit": self.concurrency_limit,
                "total_concurrency_limit": self.total_concurrency_limit,
            }
        )

    @classmethod
    def from_json(cls, data: bytes) -> TaskSpec:
        raw: dict[str, Any] = orjson.loads(data)
        return cls(
            id=raw["id"],
            queue=raw["queue"],
            retry=Retry.from_json(raw["retry"]),
            machine=raw["machine"],
            max_duration=raw.get("max_duration"),
            ttl_seconds=raw.get("ttl_seconds"),
            description=raw.get("description"),
            file_path=raw.get("file_path"),
            concurrency_limit=raw.get("concurrency_limit"),
            total_concurrency_limit=raw.get("total_concurrency_limit"),
        )
