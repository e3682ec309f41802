"""The records that cross the engine's surface to its callers (worker, services, sdk, cli).

They are the store's value objects; callers take them from here, never from
`taskloom.store` (only the engine imports the store).
"""

from __future__ import annotations

from ..store.records import (
    AttemptOutcome,
    AttemptStart,
    ClaimedRun,
    EventRecord,
    NewEvent,
    NewWaitpoint,
    QueueDeclaration,
    RecordedWait,
    RunFilter,
    RunSignal,
    Suspension,
    TaskDefinitionRecord,
    TickResult,
    WaitRef,
    WorkerInfo,
    WorkerTick,
)

__all__ = [
    "AttemptOutcome",
    "AttemptStart",
    "ClaimedRun",
    "EventRecord",
    "NewEvent",
    "NewWaitpoint",
    "QueueDeclaration",
    "RecordedWait",
    "RunFilter",
    "RunSignal",
    "Suspension",
    "TaskDefinitionRecord",
    "TickResult",
    "WaitRef",
    "WorkerInfo",
    "WorkerTick",
]
