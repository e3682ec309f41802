"""Tests for taskloom.sdk.client.LocalClient: the Client over a real engine (SQLite store,
FakeClock), for what the sdk's own tests do not already reach through it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from storeops import StoreOps
from taskloom.clock import FakeClock
from taskloom.config import Config
from taskloom.engine.engine import Engine
from taskloom.engine.records import NewEvent
from taskloom.engine.spec import TaskSpec
from taskloom.errors import (
    InvalidOptionError,
    PayloadError,
    RunNotFoundError,
    UnknownTaskError,
    WaitpointTimeoutError,
)
from taskloom.retry import Retry
from taskloom.sdk.client import BatchItem, LocalClient, RunQuery, TokenOptions, TriggeredRun
from taskloom.store import SqliteStore
from taskloom.types import RunEvent, RunStatus

T0 = 1_700_000_000_000
SPEC = TaskSpec(id="local", queue="task/local", retry=Retry(max_attempts=2), machine="micro")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start_ms=T0)


@pytest.fixture
def client(tmp_path: Path, clock: FakeClock) -> Iterator[LocalClient]:
    config = Config(project_root=tmp_path, environment="PRODUCTION")
    store = SqliteStore(tmp_path / "taskloom.db")
    engine = Engine(store, config, clock=clock, local_specs={SPEC.id: SPEC}.get)
    local = LocalClient(engine)
    yield local
    local.close()


def test_triggers_resolve_the_task_by_id(client: LocalClient) -> None:
    one = client.task_trigger("local", {"n": 1}, {"tags": ["a"]})
    again = client.task_trigger("local", {"n": 2}, {"idempotency_key": "k"})
    cached = client.task_trigger("local", {"n": 3}, {"idempotency_key": "k"})
    batch = client.batch_trigger([BatchItem("local", 4), BatchItem("local", 5, {"tags": ["b"]})])

    assert one == TriggeredRun(one.id, "local", False)
    assert (cached.id, cached.is_cached) == (again.id, True)
    assert [client.run_retrieve(r.id).payload for r in batch.runs] == [4, 5]
    assert client.run_retrieve(batch.runs[1].id).batch_id == batch.id
    with pytest.raises(UnknownTaskError, match="'elsewhere'"):
        client.task_trigger("elsewhere", None, {})
    listed = client.run_list(RunQuery(task_ids=("local",), tag="b"))
    assert [r.id for r in listed] == [batch.runs[1].id]


def test_cancel_says_what_the_run_was_and_is(client: LocalClient) -> None:
    run_id = client.task_trigger("local", None, {}).id

    first = client.run_cancel(run_id)
    second = client.run_cancel(run_id)

    assert (first.previous_status, first.run.status) == (RunStatus.QUEUED, RunStatus.CANCELED)
    assert (second.previous_status, second.run.status) == (
        RunStatus.CANCELED,
        RunStatus.CANCELED,
    )
    with pytest.raises(RunNotFoundError):
        client.run_cancel("run_missing")


def test_replay_and_reschedule(client: LocalClient, clock: FakeClock) -> None:
    delayed = client.task_trigger("local", {"n": 1}, {"delay": "1h", "tags": ["t"]}).id

    moved = client.run_reschedule(delayed, "2h")
    replayed = client.run_replay(delayed)

    assert moved.delay_until is not None
    assert moved.delay_until.timestamp() * 1000 == T0 + 2 * 3_600_000
    assert replayed.task_id == "local" and replayed.id != delayed
    again = client.run_retrieve(replayed.id)
    assert (again.payload, again.tags, again.replayed_from) == ({"n": 1}, ["t"], delayed)


def test_events_are_decoded_and_paged(client: LocalClient) -> None:
    run_id = client.task_trigger("local", None, {}).id
    StoreOps(client.engine.store).events_append(
        [
            NewEvent(run_id, 1, T0 + n, "log", orjson.dumps({"message": f"line {n}"}))
            for n in range(3)
        ]
    )

    events = client.run_events(run_id)
    later = client.run_events(run_id, after_id=events[0].id, limit=1)

    assert [e.data["message"] for e in events] == ["line 0", "line 1", "line 2"]
    assert isinstance(events[0], RunEvent)
    assert (events[0].attempt, events[0].kind, events[0].ts) == (1, "log", T0)
    assert events[0].at.timestamp() * 1000 == T0
    assert [e.data["message"] for e in later] == ["line 1"]


def test_metadata_changes_from_outside_a_run(client: LocalClient) -> None:
    run_id = client.task_trigger("local", None, {"metadata": {"a": 1}}).id

    assert client.run_metadata_update(run_id, [["set", "b", 2], ["increment", "a", 1]]) == {
        "a": 2,
        "b": 2,
    }
    assert client.run_metadata_update(run_id, [["replace", None, {"c": 3}]]) == {"c": 3}
    with pytest.raises(PayloadError, match="over 262,144 bytes"):
        client.run_metadata_update(run_id, [["set", "big", "x" * 300_000]])
    with pytest.raises(InvalidOptionError, match="unknown metadata operation"):
        client.run_metadata_update(run_id, [["shout", "a", 1]])
    with pytest.raises(RunNotFoundError):
        client.run_metadata_update("run_missing", [["set", "a", 1]])
    assert client.run_retrieve(run_id).metadata == {"c": 3}


def test_tokens_are_created_retrieved_completed_and_time_out(
    client: LocalClient, clock: FakeClock
) -> None:
    token = client.token_create(TokenOptions(idempotency_key="approve", tags=("review",)))
    clock.advance(0.001)
    same = client.token_create(TokenOptions(idempotency_key="approve"))
    waiting = client.token_retrieve(token.id)

    assert not token.is_cached and (same.id, same.is_cached) == (token.id, True)
    assert (waiting.status, waiting.is_completed, waiting.tags) == ("WAITING", False, ["review"])
    assert waiting.idempotency_key == "approve"
    assert client.token_complete(token.id, {"ok": 1}) is True
    assert client.token_complete(token.id, {"ok": 2}) is False
    done = client.token_retrieve(token.id)
    assert (done.status, done.output, done.error) == ("COMPLETED", {"ok": 1}, None)
    with pytest.raises(InvalidOptionError, match="not JSON serialisable"):
        client.token_complete(token.id, object())

    timed = client.token_create(TokenOptions(timeout_at=T0 + 1_000))
    clock.advance(2)
    client.engine.maintenance.complete_due_waitpoints(10)
    expired = client.token_retrieve(timed.id)
    assert (expired.status, expired.output) == ("TIMED_OUT", None)
    assert isinstance(expired.error, WaitpointTimeoutError)
    assert expired.timeout_at is not None and expired.timeout_at.timestamp() * 1000 == T0 + 1_000
    with pytest.raises(RunNotFoundError, match="no waitpoint token"):
        client.token_retrieve("waitpoint_missing")


def test_queues_and_idempotency_keys(client: LocalClient) -> None:
    from taskloom.engine.records import QueueDeclaration

    client.engine.ensure_schema()
    client.engine.workers.announce([], [QueueDeclaration("emails", "custom", 5, None)])
    first = client.task_trigger("local", None, {"idempotency_key": "k"}).id

    assert [q.name for q in client.queue_list()] == ["emails"]
    assert client.queue_pause("emails").paused
    assert not client.queue_resume("emails").paused
    assert client.queue_override_limit("emails", 1).concurrency_limit == 1
    assert client.queue_reset_limit("emails").concurrency_limit == 5
    assert client.queue_retrieve("emails").override_concurrency_limit is None
    assert client.idempotency_key_reset("local", "k") is True
    assert client.task_trigger("local", None, {"idempotency_key": "k"}).id != first
