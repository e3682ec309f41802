"""The messages between a supervisor and its executors: one typed class per kind.

Every message is a frozen msgspec Struct, tagged with its kind and encoded as a JSON array
whose first element is that tag (`["started", "run_…", 1, 1700000000000]`), so frames stay
compact and each side decodes a whole frame with one typed decoder (see `ipc`).

Supervisor → executor: `StartAttempt`, `ResumeAttempt`, `CancelAttempt`,
`AbandonAttempt`, `Exit`. Executor → supervisor: `Ready` or `Fatal` (once, first), then
`AttemptStarted`, `AttemptEvents`, `Waiting`, `KillRequest` and `AttemptDone`.

A start message carries the claimed run itself (`ClaimedRun` is a Struct too); the
supervisor never decodes its JSON fields: the payload and retry policy travel as raw JSON
(`msgspec.Raw`), the smaller ones (tags, metadata, recorded results) as bytes.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..engine.records import ClaimedRun, RecordedWait
from ..runtime.report import AttemptResult, Event

__all__ = [
    "AbandonAttempt",
    "AttemptDone",
    "AttemptEvents",
    "AttemptStarted",
    "CancelAttempt",
    "ExecutorMessage",
    "Exit",
    "Fatal",
    "KillRequest",
    "Ready",
    "ResumeAttempt",
    "StartAttempt",
    "SupervisorMessage",
    "Waiting",
]


class Message(msgspec.Struct, frozen=True, array_like=True):
    """Base of every message (a compact array led by its kind's tag)."""


# -- supervisor → executor ------------------------------------------------------------


class StartAttempt(Message, frozen=True, tag="start"):
    """Run an attempt of a claimed run (a replay when it carries recorded waits)."""

    run: ClaimedRun
    environment: str


class ResumeAttempt(Message, frozen=True, tag="resume"):
    """Completed waits of an attempt whose coroutine waits in this executor."""

    run_id: str
    attempt: int
    waits: tuple[RecordedWait, ...]


class CancelAttempt(Message, frozen=True, tag="cancel"):
    """Cancel an attempt: its on_cancel hooks run, then it stops."""

    run_id: str
    reason: str


class AbandonAttempt(Message, frozen=True, tag="abandon"):
    """Drop an attempt without hooks: its run continues elsewhere."""

    run_id: str
    reason: str


class Exit(Message, frozen=True, tag="exit"):
    """Stop serving and exit."""


SupervisorMessage = StartAttempt | ResumeAttempt | CancelAttempt | AbandonAttempt | Exit
"""Any message a supervisor sends to an executor."""


# -- executor → supervisor ------------------------------------------------------------


class Ready(Message, frozen=True, tag="ready"):
    """The executor imported the task modules: the task specs (JSON text) and the queues
    they declare (`{"name", "limit", "total"}`)."""

    pid: int
    modules: list[str]
    specs: list[str]
    queues: list[dict[str, Any]]


class Fatal(Message, frozen=True, tag="fatal"):
    """A task module failed to import; the executor exits."""

    module: str | None
    path: str | None
    details: str


class AttemptStarted(Message, frozen=True, tag="started"):
    """An attempt began executing, at `started_at` (ms)."""

    run_id: str
    attempt: int
    started_at: int


class AttemptEvents(Message, frozen=True, tag="events"):
    """A batch of an attempt's events (the rest travel with its result)."""

    run_id: str
    attempt: int
    events: list[Event]


class Waiting(Message, frozen=True, tag="wait"):
    """An attempt waits for its wait `seq` (0: for any of its pending waits): the run is
    suspended unless those waits completed already."""

    run_id: str
    attempt: int
    seq: int


class KillRequest(Message, frozen=True, tag="kill"):
    """A cancelled or timed-out sync attempt cannot be interrupted in its thread: stop
    this executor and record the attempt with `status`."""

    run_id: str
    attempt: int
    reason: str
    status: str = "CANCELED"


class AttemptDone(Message, frozen=True, tag="done"):
    """An attempt ended with `result`."""

    run_id: str
    attempt: int
    result: AttemptResult


ExecutorMessage = (
    Ready | Fatal | AttemptStarted | AttemptEvents | Waiting | KillRequest | AttemptDone
)
"""Any message an executor sends to its supervisor."""
