"""The small value objects that cross the store seam: rows as records, and the params of
store methods that take more than two values.

Payloads, outputs, errors, tags and metadata travel as serialised JSON bytes so the hot
paths serialise once (in the caller) and never re-encode inside the store. A record's
fields are named after the columns it is read from (`taskloom.store.sql.rows` maps rows to
records by column name), so each table's columns are written out once, here.
"""

from __future__ import annotations

import msgspec


class NewRun(msgspec.Struct, frozen=True):
    """Everything `run_insert` needs to create one run. Times are ms since the epoch."""

    id: str
    task_id: str
    queue: str
    status: str  # QUEUED or DELAYED
    payload: bytes
    max_attempts: int
    retry: bytes
    machine: str
    created_at: int
    queue_ts: int
    sort_key: int
    available_at: int
    concurrency_key: str | None = None
    max_duration: int | None = None
    ttl_ms: int | None = None
    priority_ms: int = 0
    delay_until: int | None = None
    expires_at: int | None = None
    idempotency_key: str | None = None
    idempotency_expires_at: int | None = None
    tags: bytes | None = None
    metadata: bytes | None = None
    parent_run_id: str | None = None
    root_run_id: str | None = None
    depth: int = 0
    batch_id: str | None = None
    is_test: bool = False
    replayed_from: str | None = None


class InsertResult(msgspec.Struct, frozen=True):
    """The run a trigger resolved to: a new one, or the one its idempotency key points at."""

    run_id: str
    created: bool


class RunRecord(msgspec.Struct, frozen=True):
    """One row of the runs table, undecoded."""

    id: str
    task_id: str
    queue: str
    concurrency_key: str | None
    status: str
    payload: bytes | None
    output: bytes | None
    error: bytes | None
    attempt: int
    max_attempts: int
    retry: bytes
    machine: str
    max_duration: int | None
    ttl_ms: int | None
    priority_ms: int
    queue_ts: int
    available_at: int
    delay_until: int | None
    expires_at: int | None
    idempotency_key: str | None
    idempotency_expires_at: int | None
    tags: bytes | None
    metadata: bytes | None
    parent_run_id: str | None
    root_run_id: str | None
    depth: int
    batch_id: str | None
    is_test: bool
    replayed_from: str | None
    worker_id: str | None
    created_at: int
    updated_at: int
    started_at: int | None
    finished_at: int | None
    isolate: bool = False


class AttemptRecord(msgspec.Struct, frozen=True):
    """One row of the attempts table."""

    run_id: str
    number: int
    status: str
    worker_id: str | None
    started_at: int | None
    finished_at: int | None
    error: bytes | None


class EventRecord(msgspec.Struct, frozen=True):
    """One run event: a log line, a span edge, a hook call, an attempt boundary."""

    id: int
    run_id: str
    attempt: int | None
    ts: int
    kind: str
    data: bytes


class NewEvent(msgspec.Struct, frozen=True):
    """An event to append to a run."""

    run_id: str
    attempt: int | None
    ts: int
    kind: str
    data: bytes


class RunFilter(msgspec.Struct, frozen=True):
    """Filters of `run_list`: all optional, combined with AND, newest first."""

    statuses: tuple[str, ...] = ()
    task_ids: tuple[str, ...] = ()
    tag: str | None = None
    since_ms: int | None = None
    before_id: str | None = None
    limit: int = 50


class ClaimedRun(msgspec.Struct, frozen=True, array_like=True):
    """A run a worker just claimed (now DEQUEUED and fenced to that worker and attempt).

    The supervisor hands it to an executor as it is (a compact array on the wire); its
    payload and retry policy are `msgspec.Raw`: they travel as the JSON the store holds,
    never decoded or re-encoded on the way (`bytes(raw)` gives it).
    """

    id: str
    task_id: str
    queue: str
    attempt: int
    payload: msgspec.Raw
    max_attempts: int
    retry: msgspec.Raw
    machine: str
    max_duration: int | None
    tags: bytes | None
    metadata: bytes | None
    idempotency_key: str | None
    parent_run_id: str | None
    root_run_id: str | None
    depth: int
    is_test: bool
    replayed_from: str | None
    created_at: int
    concurrency_key: str | None
    sort_key: int
    isolate: bool = False
    suspended: bool = False
    resume_worker: str | None = None
    waits: tuple[RecordedWait, ...] = ()


class AttemptStart(msgspec.Struct, frozen=True):
    """A claimed run whose attempt began executing (DEQUEUED -> EXECUTING)."""

    run_id: str
    attempt: int
    started_at: int


class AttemptOutcome(msgspec.Struct, frozen=True):
    """How an attempt ended, as the engine decided it.

    `status` is the run's next status: a final one, or QUEUED when a retry follows at
    `retry_at` (or when the attempt is released without counting, see `released`).
    """

    run_id: str
    attempt: int
    worker_id: str
    status: str
    attempt_status: str
    finished_at: int
    started_at: int | None = None
    output: bytes | None = None
    error: bytes | None = None
    retry_at: int | None = None
    released: bool = False
    clear_idempotency_key: bool = False
    machine: str | None = None  # the machine of the next attempt, when it changes


class WorkerTick(msgspec.Struct, frozen=True):
    """One round trip of a worker's supervisor: record starts and outcomes, claim more."""

    worker_id: str
    now: int
    starts: list[AttemptStart] = msgspec.field(default_factory=list)
    outcomes: list[AttemptOutcome] = msgspec.field(default_factory=list)
    events: list[NewEvent] = msgspec.field(default_factory=list)
    claim_limit: int = 0
    read_signals: bool = False
    environment_limit: int | None = None
    suspends: list[Suspension] = msgspec.field(default_factory=list)


class RunSignal(msgspec.Struct, frozen=True):
    """A request to a worker about a run it holds (for now: cancel)."""

    id: int
    run_id: str
    kind: str
    reason: str


class TickResult(msgspec.Struct, frozen=True):
    """What a tick claimed, which outcomes it applied, and signals waiting for the worker.

    `ready` holds, for a run that asked to suspend but whose waits had completed already,
    those results (now delivered): the run goes on instead of waiting.
    """

    claimed: list[ClaimedRun]
    applied: list[str]
    rejected: list[str]
    signals: list[RunSignal]
    worker_alive: bool
    ready: dict[str, list[RecordedWait]] = msgspec.field(default_factory=dict)
    suspended: list[str] = msgspec.field(default_factory=list)


class LapsedAttempt(msgspec.Struct, frozen=True):
    """An attempt whose worker stopped heartbeating: the rescuer decides its fate."""

    run_id: str
    attempt: int
    worker_id: str
    task_id: str
    max_attempts: int
    retry: bytes
    started_at: int | None


class WorkerInfo(msgspec.Struct, frozen=True):
    """A worker process as it registers itself."""

    id: str
    hostname: str
    pid: int
    concurrency: int
    started_at: int
    tasks: tuple[str, ...] = ()


class TaskDefinitionRecord(msgspec.Struct, frozen=True):
    """A task as a worker announced it: what `tasks.trigger(id)` needs without the code."""

    id: str
    definition: bytes
    file_path: str | None
    updated_at: int


class QueueDeclaration(msgspec.Struct, frozen=True):
    """A queue as code declares it (a task's own queue, or `queue(...)`)."""

    name: str
    kind: str  # "task" or "custom"
    concurrency_limit: int | None = None
    key_total_limit: int | None = None


class QueueRecord(msgspec.Struct, frozen=True):
    """A queue with its settings and live counts."""

    name: str
    kind: str
    concurrency_limit: int | None
    key_total_limit: int | None
    limit_override: int | None
    overridden_at: int | None
    paused: bool
    updated_at: int
    running: int = 0
    queued: int = 0

    @property
    def effective_limit(self) -> int | None:
        """The limit in force: the override when set, else the code's value."""
        return self.limit_override if self.limit_override is not None else self.concurrency_limit


class WaitRef(msgspec.Struct, frozen=True):
    """One wait of a run's attempt, by sequence number."""

    run_id: str
    attempt: int
    seq: int


class NewWaitpoint(msgspec.Struct, frozen=True):
    """A waitpoint to create: DURATION (resume_at), TOKEN (optional timeout), RUN, BATCH."""

    id: str
    kind: str
    resume_at: int | None = None
    target_id: str | None = None
    idempotency_key: str | None = None
    idempotency_expires_at: int | None = None
    tags: bytes | None = None


class RecordedWait(msgspec.Struct, frozen=True, array_like=True):
    """A wait a run made, with its result once it completed (JSON bytes).

    A msgspec Struct: it travels to executors inside start and resume messages.
    """

    seq: int
    kind: str
    waitpoint_id: str | None
    status: str  # PENDING or COMPLETED
    result: bytes | None


class RunWaitRecord(msgspec.Struct, frozen=True):
    """A wait with the run that made it (rows of several runs read at once)."""

    run_id: str
    seq: int
    kind: str
    waitpoint_id: str | None
    status: str
    result: bytes | None

    def recorded(self) -> RecordedWait:
        """The wait as its run sees it."""
        return RecordedWait(self.seq, self.kind, self.waitpoint_id, self.status, self.result)


class WaitpointRecord(msgspec.Struct, frozen=True):
    """One waitpoint."""

    id: str
    kind: str
    status: str
    resume_at: int | None
    target_id: str | None
    idempotency_key: str | None
    tags: bytes | None
    output: bytes | None
    is_error: bool
    created_at: int
    completed_at: int | None


class Suspension(msgspec.Struct, frozen=True):
    """A run whose attempt waits: it becomes WAITING unless its waits are already done."""

    run_id: str
    attempt: int
    worker_id: str


class RunGuard(msgspec.Struct, frozen=True):
    """What a guarded change of one run checks: who holds it, at which attempt, in which
    status, and whether a RUN waitpoint waits for it to end."""

    id: str
    attempt: int
    worker_id: str | None
    status: str
    waited: bool
    resume_worker: str | None


class FinishedRun(msgspec.Struct, frozen=True):
    """A run's result as the waits on it receive it."""

    id: str
    task_id: str
    status: str
    output: bytes | None
    error: bytes | None
    waited: bool


class RunFinish(msgspec.Struct, frozen=True):
    """The guarded update that ends an attempt (see `AttemptOutcome`)."""

    run_id: str
    attempt: int
    worker_id: str
    status: str
    output: bytes | None
    error: bytes | None
    retry_at: int | None
    finished_at: int | None
    started_at: int | None
    released: bool
    clear_idempotency_key: bool
    machine: str | None
    now: int


class RunCancel(msgspec.Struct, frozen=True):
    """Cancel one run, guarded by the status it was read in."""

    run_id: str
    status: str
    error: bytes
    now: int


class RunRelease(msgspec.Struct, frozen=True):
    """Put runs a worker holds back in their queues without using an attempt."""

    worker_id: str
    run_ids: list[str]
    isolate: bool
    now: int


class ClaimRequest(msgspec.Struct, frozen=True):
    """What a worker asks of a claim: up to `limit` runs within every limit."""

    worker_id: str
    now: int
    limit: int
    environment_limit: int | None = None


class NewRunWait(msgspec.Struct, frozen=True):
    """A wait a run makes at a sequence number (see `RecordedWait`)."""

    ref: WaitRef
    kind: str
    waitpoint_id: str | None
    status: str
    result: bytes | None
    now: int


class WaitpointCompletion(msgspec.Struct, frozen=True):
    """Complete a waiting waitpoint with a result."""

    id: str
    status: str  # COMPLETED or TIMED_OUT
    result: bytes
    is_error: bool


class WaitpointsDone(msgspec.Struct, frozen=True):
    """Complete WAITING waitpoints that end the same way (status, result, is_error)."""

    ids: list[str]
    status: str  # COMPLETED or TIMED_OUT
    result: bytes
    is_error: bool
    now: int


class NewBatch(msgspec.Struct, frozen=True):
    """A batch of runs (its items in order; a run may appear in several batches)."""

    id: str
    parent_run_id: str | None
    run_ids: list[str]
    completed_count: int
    now: int


class LeaderTerm(msgspec.Struct, frozen=True):
    """Take or keep a named leadership until `now + ttl_ms`."""

    name: str
    holder: str
    now: int
    ttl_ms: int


class NewSignal(msgspec.Struct, frozen=True):
    """A request left for the worker holding a run (for now: cancel)."""

    worker_id: str
    run_id: str
    kind: str
    reason: str
    now: int


class EventPage(msgspec.Struct, frozen=True):
    """A page of one run's events: those after event `after_id`, at most `limit`."""

    run_id: str
    after_id: int = 0
    limit: int = 1000


class IdempotentRun(msgspec.Struct, frozen=True):
    """The run holding a task's idempotency key, and when the key expires."""

    id: str
    idempotency_expires_at: int | None


class RunReschedule(msgspec.Struct, frozen=True):
    """Move a DELAYED run's start to `delay_until`."""

    run_id: str
    delay_until: int
    now: int


class AttemptStarts(msgspec.Struct, frozen=True):
    """Attempts a worker began executing (DEQUEUED -> EXECUTING), fenced to it."""

    worker_id: str
    starts: list[AttemptStart]
    now: int


class QueueChange(msgspec.Struct, frozen=True):
    """A management change to one queue: pause/resume, or override its limit."""

    name: str
    now: int
    paused: bool | None = None
    limit_override: int | None = None
    reset_limit: bool = False


class DueWaitpoint(msgspec.Struct, frozen=True):
    """A waiting waitpoint whose time came (a duration's end, or a token's timeout)."""

    id: str
    kind: str


class BatchCount(msgspec.Struct, frozen=True):
    """How many of a batch's distinct runs are final, of how many."""

    completed_count: int
    run_count: int
