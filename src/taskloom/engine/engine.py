"""The engine facade: every change to a run's state goes through here.

Callers (the sdk, the cli, workers, services) never touch the store; the engine
validates, composes each change as one store transaction (`inserting`, `cancelling`,
`waitpoints`, `ticking`), journals every status change against the transition table
(`events.Journal`, `states`), and wakes workers. Worker- and service-facing calls are
grouped on `engine.workers` and `engine.maintenance`; waits and tokens on `engine.waits`;
queues on `engine.queues`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, TypeVar

from ..clock import SYSTEM_CLOCK, Clock
from ..config import Config
from ..errors import InvalidOptionError, RunNotFoundError, UnknownTaskError
from ..ids import new_id
from ..store.base import Store
from ..store.records import (
    EventPage,
    EventRecord,
    InsertResult,
    NewRun,
    RecordedWait,
    RunFilter,
    RunReschedule,
    WaitRef,
)
from ..store.sql.session import Session
from ..types import Attempt, Run, RunStatus
from . import cancelling, inserting, metadata
from .decode import decode_attempt, decode_run
from .events import journaled
from .feed import EventFeed
from .maintenance import Maintenance
from .queues import Queues
from .spec import TaskSpec
from .triggering import NO_LINKS, RunLinks, build_new_run, delay_target, serialise_payload
from .waitpoints import Waits
from .wake import DELAYED, RUNS_READY, SIGNAL, WakeNotifier, wake_directory
from .watching import watch_run
from .workers import Workers

SpecLookup = Callable[[str], TaskSpec | None]
T = TypeVar("T")
MAX_BATCH_ITEMS = 1000


class Engine:
    """Run lifecycle operations over one store."""

    def __init__(
        self,
        store: Store,
        config: Config,
        *,
        clock: Clock = SYSTEM_CLOCK,
        local_specs: SpecLookup | None = None,
        local_queues: Callable[[str], bool] | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self._local_specs = local_specs
        self.notifier = WakeNotifier(wake_directory(store.url))
        self._migrated = False
        self.feed = EventFeed(self.events_after, self.last_event_id)
        self.workers = Workers(self)
        self.maintenance = Maintenance(self)
        self.waits = Waits(self)
        self.queues = Queues(self, local_queues)

    def write(self, body: Callable[[Session], T], what: str) -> T:
        """Run one write transaction on the store; this process's event feed reads the
        events it journaled at once."""
        result = self.store.write(body, what)
        self.feed.kick()
        return result

    def close(self) -> None:
        """Close the store connection and the wake-up socket."""
        self.store.close()
        self.notifier.close()

    def migrate(self) -> list[str]:
        """Apply pending migrations now; return the names applied."""
        applied = self.store.migrate()
        self._migrated = True
        return applied

    def schema_version(self) -> int:
        """The highest migration applied to the database (0 when empty)."""
        return self.store.schema_version()

    def ensure_schema(self) -> None:
        """Apply migrations once per process (cheap when already applied)."""
        if not self._migrated:
            self.store.migrate()
            self._migrated = True

    # -- task specs -----------------------------------------------------------------
    def resolve_spec(self, task_id: str) -> TaskSpec:
        """A task's spec: defined in this process, or announced by a worker."""
        if self._local_specs is not None:
            spec = self._local_specs(task_id)
            if spec is not None:
                return spec
        self.ensure_schema()
        record = self.store.read(lambda s: s.task_catalog_get(task_id))
        if record is None:
            known = [t.id for t in self.store.read(lambda s: s.task_catalog_list())]
            hint = f"; known tasks: {', '.join(known)}" if known else ""
            raise UnknownTaskError(
                f"unknown task id {task_id!r}: it is not defined in this process and no "
                f"worker has registered it{hint}"
            )
        return TaskSpec.from_json(record.definition)

    # -- triggering -----------------------------------------------------------------
    def build_run(
        self,
        spec: TaskSpec,
        payload: Any,
        options: Mapping[str, Any],
        *,
        links: RunLinks = NO_LINKS,
        payload_json: bytes | None = None,
        now: int | None = None,
    ) -> NewRun:
        """Validate a trigger (payload, options, queue) into the run to insert."""
        if payload_json is None:
            payload_json = serialise_payload(spec.id, payload, self.config.payload_limit_bytes)
        queue = options.get("queue")
        if queue is not None and queue != spec.queue:
            self.queues.check(spec.id, queue)
        when = self.clock.now_ms() if now is None else now
        return build_new_run(spec, payload_json, options, now=when, config=self.config, links=links)

    def trigger(
        self,
        spec: TaskSpec,
        payload: Any,
        options: Mapping[str, Any],
        *,
        links: RunLinks = NO_LINKS,
        payload_json: bytes | None = None,
    ) -> InsertResult:
        """Validate and insert one run (or find its idempotent twin); wake workers."""
        run = self.build_run(spec, payload, options, links=links, payload_json=payload_json)
        self.ensure_schema()
        now = run.created_at
        if run.idempotency_key is None:
            self.store.execute(lambda s: s.run_insert(run, now), "trigger")
            result = InsertResult(run.id, True)
        else:
            result = self.store.write(lambda s: inserting.insert_run(s, run, now), "trigger")
        if result.created:
            self.notifier.notify(RUNS_READY if run.delay_until is None else DELAYED)
        return result

    def trigger_child(
        self,
        spec: TaskSpec,
        payload: Any,
        options: Mapping[str, Any],
        *,
        links: RunLinks,
        ref: WaitRef | None,
        wait: bool,
    ) -> tuple[InsertResult, RecordedWait | None]:
        """Trigger a run from inside a run; recorded at `ref` so a replay finds it again."""
        child = self.build_run(spec, payload, options, links=links)
        now = child.created_at
        result, recorded = self.store.write(
            lambda s: inserting.trigger_child(s, child, ref, wait=wait, now=now), "trigger child"
        )
        if result.created:
            self.notifier.notify(RUNS_READY if child.delay_until is None else DELAYED)
        return result, recorded

    def batch(
        self,
        items: list[tuple[TaskSpec, Any, Mapping[str, Any]]],
        *,
        links: RunLinks,
        ref: WaitRef | None,
        wait: bool,
    ) -> tuple[str, list[InsertResult], RecordedWait | None]:
        """Trigger up to 1,000 runs in one transaction (all of them or none)."""
        if not items:
            raise InvalidOptionError("a batch needs at least one item")
        if len(items) > MAX_BATCH_ITEMS:
            raise InvalidOptionError(
                f"a batch may have at most {MAX_BATCH_ITEMS:,} items, got {len(items):,}"
            )
        batch_id = new_id("batch")
        now = self.clock.now_ms()
        item_links = dataclasses.replace(links, batch_id=batch_id)
        runs = []
        for index, (spec, payload, options) in enumerate(items):
            try:
                runs.append(self.build_run(spec, payload, options, links=item_links, now=now))
            except InvalidOptionError as error:
                raise type(error)(f"batch item {index}: {error}") from None
        self.ensure_schema()
        parent = links.parent_run_id
        results, recorded = self.store.write(
            lambda s: inserting.insert_batch(s, batch_id, parent, runs, ref, wait=wait, now=now),
            "batch",
        )
        self.notifier.notify(RUNS_READY)
        if any(r.delay_until is not None for r in runs):
            self.notifier.notify(DELAYED)
        return batch_id, results, recorded

    def reset_idempotency_key(self, task_id: str, key: str) -> bool:
        """Forget an idempotency key of a task; True when a run held it."""
        self.ensure_schema()
        return self.store.execute(
            lambda s: s.idempotency_key_reset(task_id, key), "reset idempotency key"
        )

    # -- reading --------------------------------------------------------------------
    def retrieve(self, run_id: str, *, with_attempts: bool = True) -> Run:
        """A run by id, or RunNotFoundError."""
        self.ensure_schema()
        record, attempts = self.store.read(
            lambda s: (s.run_get(run_id), s.attempt_list(run_id) if with_attempts else None)
        )
        if record is None:
            raise RunNotFoundError(f"no run with id {run_id!r}")
        return decode_run(record, attempts)

    def retrieve_with_cursor(self, run_id: str) -> tuple[int, Run]:
        """A run and the id of the newest event, read together: every event after that id
        is a change after this snapshot (see `watching`)."""
        self.ensure_schema()
        cursor, record, attempts = self.store.read(
            lambda s: (s.event_last_id(), s.run_get(run_id), s.attempt_list(run_id))
        )
        if record is None:
            raise RunNotFoundError(f"no run with id {run_id!r}")
        return cursor, decode_run(record, attempts)

    def watch(self, run_id: str) -> AsyncIterator[Run]:
        """The run now and after every change (each status it passes through), until it
        is final."""
        return watch_run(self, run_id)

    def list_runs(self, filters: RunFilter) -> list[Run]:
        """Runs matching filters, newest first."""
        self.ensure_schema()
        return [decode_run(r) for r in self.store.read(lambda s: s.run_list(filters))]

    def attempts(self, run_id: str) -> list[Attempt]:
        """The attempts of a run."""
        return [decode_attempt(a) for a in self.store.read(lambda s: s.attempt_list(run_id))]

    def run_events(self, run_id: str, after_id: int = 0, limit: int = 1000) -> list[EventRecord]:
        """A run's events (status changes, logs, spans, hook calls, ...) in order, after an
        event id."""
        self.ensure_schema()
        page = EventPage(run_id, after_id, limit)
        return self.store.read(lambda s: s.event_list(page))

    def events_after(self, after_id: int, limit: int = 1000) -> list[EventRecord]:
        """Events of every run after an event id, in order (what realtime readers tail)."""
        self.ensure_schema()
        return self.store.read(lambda s: s.events_after(after_id, limit))

    def last_event_id(self) -> int:
        """The id of the newest event of any run (0 when there is none)."""
        self.ensure_schema()
        return self.store.read(lambda s: s.event_last_id())

    # -- changing runs --------------------------------------------------------------
    def cancel(self, run_id: str, reason: str = "Canceled by user") -> RunStatus:
        """Cancel a run (and its live descendants) unless it is final; return the status
        it had."""
        self.ensure_schema()
        body = journaled(
            self.clock.now_ms(), lambda s, j: cancelling.cancel_run(s, run_id, reason, j)
        )
        previous = self.write(body, "cancel")
        if previous is None:
            raise RunNotFoundError(f"no run with id {run_id!r}")
        status = RunStatus(previous)
        if status in (RunStatus.DEQUEUED, RunStatus.EXECUTING, RunStatus.WAITING):
            self.notifier.notify(SIGNAL)  # its worker stops the attempt (or parked coroutine)
        return status

    def replay(self, run_id: str) -> InsertResult:
        """A new run of the same task with the same payload, marked as a replay."""
        self.ensure_schema()
        record = self.store.read(lambda s: s.run_get(run_id))
        if record is None:
            raise RunNotFoundError(f"no run with id {run_id!r}")
        original = decode_run(record)
        spec = self.resolve_spec(original.task_id)
        options: dict[str, Any] = {}
        if original.tags:
            options["tags"] = original.tags
        links = RunLinks(replayed_from=run_id, is_test=original.is_test)
        return self.trigger(spec, None, options, links=links, payload_json=record.payload)

    def reschedule(self, run_id: str, delay: Any) -> Run:
        """Move a DELAYED run's start time."""
        run = self.retrieve(run_id, with_attempts=False)
        now = self.clock.now_ms()
        target = delay_target(delay, now=now, what=f"delay of run {run_id}")
        change = RunReschedule(run_id, target, now)
        if run.status is not RunStatus.DELAYED or not self.store.execute(
            lambda s: s.run_reschedule(change), "reschedule"
        ):
            current = self.retrieve(run_id, with_attempts=False).status
            raise InvalidOptionError(
                f"run {run_id} is {current.value}; only DELAYED runs can be rescheduled"
            )
        self.notifier.notify(DELAYED)
        return self.retrieve(run_id)

    def run_metadata_update(
        self, run_id: str, *, tags: list[str] | None, changes: list[tuple[str, list[list[Any]]]]
    ) -> list[str]:
        """Set a run's tags (when given) and apply metadata operations to runs (the run,
        its parent, its root), in one transaction. Returns the runs whose change was
        refused: it would take their metadata over the size limit."""

        body = journaled(
            self.clock.now_ms(),
            lambda s, j: metadata.apply_changes(s, run_id, tags, changes, j),
        )
        return self.write(body, "metadata")
