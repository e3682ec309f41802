"""The engine facade: every change to a run's state goes through here.

Callers (the SDK, the CLI, workers, services) never write to the store directly; the
engine validates, checks the transition table, writes through the store's guarded
methods and wakes workers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from ..clock import SYSTEM_CLOCK, Clock
from ..config import Config
from ..errors import InvalidOptionError, RunNotFoundError, UnknownTaskError
from ..ids import new_id
from ..store.base import Store
from ..store.records import (
    EventRecord,
    InsertResult,
    NewWaitpoint,
    RecordedWait,
    RunFilter,
    WaitpointRecord,
    WaitRef,
)
from ..types import Attempt, QueueDetails, Run, RunStatus
from . import metadata
from .decode import decode_attempt, decode_queue, decode_run
from .maintenance import Maintenance
from .spec import TaskSpec
from .states import check_transition
from .triggering import NO_LINKS, RunLinks, build_new_run, delay_target, serialise_payload
from .wake import DELAYED, RUNS_READY, SIGNAL, WakeNotifier, wake_directory
from .workers import Workers

SpecLookup = Callable[[str], TaskSpec | None]
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
        self._local_queues = local_queues
        self._known_queues: set[str] = set()
        self.notifier = WakeNotifier(wake_directory(store.url))
        self._migrated = False
        self.workers = Workers(self)
        self.maintenance = Maintenance(self)

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
        record = self.store.task_catalog_get(task_id)
        if record is None:
            known = [t.id for t in self.store.task_catalog_list()]
            hint = f"; known tasks: {', '.join(known)}" if known else ""
            raise UnknownTaskError(
                f"unknown task id {task_id!r}: it is not defined in this process and no "
                f"worker has registered it{hint}"
            )
        return TaskSpec.from_json(record.definition)

    # -- triggering -----------------------------------------------------------------
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
        if payload_json is None:
            payload_json = serialise_payload(spec.id, payload, self.config.payload_limit_bytes)
        queue = options.get("queue")
        if queue is not None and queue != spec.queue:
            self.check_queue(spec.id, queue)
        now = self.clock.now_ms()
        new_run = build_new_run(
            spec, payload_json, options, now=now, config=self.config, links=links
        )
        self.ensure_schema()
        result = self.store.run_insert(new_run, now)
        if result.created:
            self.notifier.notify(RUNS_READY if new_run.delay_until is None else DELAYED)
        return result

    def check_queue(self, task_id: str, name: object) -> None:
        """Raise unless `name` is a queue declared in code (here or by a worker)."""
        if not isinstance(name, str) or not name:
            raise InvalidOptionError(
                f"queue of a run of task {task_id!r} must be a queue name, got {name!r}"
            )
        if name in self._known_queues or (self._local_queues and self._local_queues(name)):
            return
        self.ensure_schema()
        if self.store.queue_get(name) is not None:
            self._known_queues.add(name)
            return
        known = ", ".join(q.name for q in self.store.queue_list()) or "none yet"
        raise InvalidOptionError(
            f"unknown queue {name!r} for a run of task {task_id!r}: declare it with "
            f"queue(name={name!r}, ...) in a task module (known queues: {known})"
        )

    def reset_idempotency_key(self, task_id: str, key: str) -> bool:
        """Forget an idempotency key of a task; True when a run held it."""
        self.ensure_schema()
        return self.store.idempotency_key_reset(task_id, key)

    # -- child runs, batches and waits -------------------------------------------------
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
        payload_json = serialise_payload(spec.id, payload, self.config.payload_limit_bytes)
        queue = options.get("queue")
        if queue is not None and queue != spec.queue:
            self.check_queue(spec.id, queue)
        now = self.clock.now_ms()
        child = build_new_run(spec, payload_json, options, now=now, config=self.config, links=links)
        result, recorded = self.store.run_trigger_child(child, ref, wait=wait, now=now)
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
        runs = []
        for index, (spec, payload, options) in enumerate(items):
            try:
                payload_json = serialise_payload(spec.id, payload, self.config.payload_limit_bytes)
                queue = options.get("queue")
                if queue is not None and queue != spec.queue:
                    self.check_queue(spec.id, queue)
                item_links = dataclasses.replace(links, batch_id=batch_id)
                runs.append(
                    build_new_run(
                        spec, payload_json, options, now=now, config=self.config, links=item_links
                    )
                )
            except InvalidOptionError as error:
                raise type(error)(f"batch item {index}: {error}") from None
        self.ensure_schema()
        results, recorded = self.store.batch_insert(
            batch_id, links.parent_run_id, runs, ref, wait=wait, now=now
        )
        self.notifier.notify(RUNS_READY)
        if any(r.delay_until is not None for r in runs):
            self.notifier.notify(DELAYED)
        return batch_id, results, recorded

    def register_wait(
        self,
        ref: WaitRef,
        kind: str,
        *,
        waitpoint: NewWaitpoint | None = None,
        waitpoint_id: str | None = None,
        result: bytes | None = None,
    ) -> RecordedWait:
        """Record a wait of a run (creating its waitpoint), or with `result` a step that is
        done at once; wake the services for timers."""
        recorded = self.store.wait_register(
            ref, kind, waitpoint, waitpoint_id, self.clock.now_ms(), result=result
        )
        if waitpoint is not None and waitpoint.resume_at is not None:
            self.notifier.notify(DELAYED)
        return recorded

    def create_token(self, waitpoint: NewWaitpoint) -> WaitpointRecord:
        """A token waitpoint (or the one holding its idempotency key)."""
        self.ensure_schema()
        record = self.store.waitpoint_create(waitpoint, self.clock.now_ms())
        if waitpoint.resume_at is not None:
            self.notifier.notify(DELAYED)
        return record

    def waitpoint(self, waitpoint_id: str) -> WaitpointRecord:
        """A waitpoint by id, or a clear error."""
        self.ensure_schema()
        found = self.store.waitpoint_get(waitpoint_id)
        if found is None:
            raise RunNotFoundError(f"no waitpoint token with id {waitpoint_id!r}")
        return found

    def complete_token(self, waitpoint_id: str, output: bytes) -> bool:
        """Complete a token (the first completion wins); wake the runs waiting for it."""
        found = self.waitpoint(waitpoint_id)
        if found.kind != "TOKEN":
            raise InvalidOptionError(
                f"waitpoint {waitpoint_id} is a {found.kind} waitpoint, not a token"
            )
        done, requeued = self.store.token_complete(waitpoint_id, output, self.clock.now_ms())
        if requeued:
            self.notifier.notify(RUNS_READY)
        return done

    # -- queues ---------------------------------------------------------------------
    def queue(self, name: str) -> QueueDetails:
        """A queue with its counts, or InvalidOptionError naming the known ones."""
        self.ensure_schema()
        record = self.store.queue_get(name)
        if record is None:
            known = ", ".join(q.name for q in self.store.queue_list()) or "none yet"
            raise InvalidOptionError(f"unknown queue {name!r} (known queues: {known})")
        return decode_queue(record)

    def queues(self) -> list[QueueDetails]:
        """Every queue workers have declared, with counts."""
        self.ensure_schema()
        return [decode_queue(q) for q in self.store.queue_list()]

    def pause_queue(self, name: str, paused: bool) -> QueueDetails:
        """Pause (executing runs finish; nothing new starts) or resume a queue."""
        self.queue(name)
        self.store.queue_set_paused(name, paused, self.clock.now_ms())
        if not paused:
            self.notifier.notify(RUNS_READY)
        return self.queue(name)

    def override_queue_limit(self, name: str, limit: int | None) -> QueueDetails:
        """Override a queue's concurrency limit (None: back to the code's value)."""
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 0
        ):
            raise InvalidOptionError(
                f"concurrency limit of queue {name!r} must be an integer >= 0, got {limit!r}"
            )
        self.queue(name)
        self.store.queue_override_limit(name, limit, self.clock.now_ms())
        self.notifier.notify(RUNS_READY)
        return self.queue(name)

    # -- reading --------------------------------------------------------------------
    def retrieve(self, run_id: str, *, with_attempts: bool = True) -> Run:
        """A run by id, or RunNotFoundError."""
        self.ensure_schema()
        record = self.store.run_get(run_id)
        if record is None:
            raise RunNotFoundError(f"no run with id {run_id!r}")
        attempts = self.store.attempt_list(run_id) if with_attempts else None
        return decode_run(record, attempts)

    def list_runs(self, filters: RunFilter) -> list[Run]:
        """Runs matching filters, newest first."""
        self.ensure_schema()
        return [decode_run(r) for r in self.store.run_list(filters)]

    def run_events(self, run_id: str, after_id: int = 0, limit: int = 1000) -> list[EventRecord]:
        """A run's events (logs, spans, hook calls, ...) in order, after an event id."""
        self.ensure_schema()
        return self.store.event_list(run_id, after_id, limit)

    def run_metadata_update(
        self, run_id: str, *, tags: list[str] | None, changes: list[tuple[str, list[list[Any]]]]
    ) -> list[str]:
        """Set a run's tags (when given) and apply metadata operations to runs (the run,
        its parent, its root). Returns the runs whose change was refused: it would take
        their metadata over the size limit."""
        tags_json = None if tags is None else orjson.dumps(tags)
        return self.store.run_metadata_apply(
            run_id, tags=tags_json, changes=changes, merge=metadata.merged
        )

    def attempts(self, run_id: str) -> list[Attempt]:
        """The attempts of a run."""
        return [decode_attempt(a) for a in self.store.attempt_list(run_id)]

    # -- changing runs --------------------------------------------------------------
    def cancel(self, run_id: str, reason: str = "Canceled by user") -> RunStatus:
        """Cancel a run unless it is final; return the status it had."""
        self.ensure_schema()
        previous = self.store.run_cancel(run_id, self.clock.now_ms(), reason)
        if previous is None:
            raise RunNotFoundError(f"no run with id {run_id!r}")
        status = RunStatus(previous)
        if status in (RunStatus.DEQUEUED, RunStatus.EXECUTING, RunStatus.WAITING):
            self.notifier.notify(SIGNAL)  # its worker stops the attempt (or parked coroutine)
        return status

    def replay(self, run_id: str) -> InsertResult:
        """A new run of the same task with the same payload, marked as a replay."""
        original = self.retrieve(run_id, with_attempts=False)
        spec = self.resolve_spec(original.task_id)
        record = self.store.run_get(run_id)
        assert record is not None and record.payload is not None
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
        if run.status is not RunStatus.DELAYED or not self.store.run_reschedule(
            run_id, target, now
        ):
            current = self.retrieve(run_id, with_attempts=False).status
            raise InvalidOptionError(
                f"run {run_id} is {current.value}; only DELAYED runs can be rescheduled"
            )
        self.notifier.notify(DELAYED)
        return self.retrieve(run_id)

    def check(self, run_id: str, current: RunStatus, target: RunStatus) -> None:
        """Raise unless the transition table allows `current` -> `target`."""
        check_transition(run_id, current, target)
