"""The sdk's `Client` seam: every public call made outside a run goes through the process's
client, and nothing else touches the database.

A recording client stands in for the local one (`use_client`); the project's database
file must never appear, which proves no call went around the client to an engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pydantic
import pytest

from taskloom import (
    RunStatus,
    batch,
    idempotency_keys,
    queues,
    runs,
    schema_task,
    task,
    tasks,
    wait,
)
from taskloom.errors import WaitpointTimeoutError
from taskloom.runtime import registry
from taskloom.sdk import client as sdk_client
from taskloom.sdk.client import (
    BatchItem,
    Cancellation,
    Client,
    LocalClient,
    MetadataOperation,
    RunQuery,
    TokenDetails,
    TokenOptions,
    TriggeredBatch,
    TriggeredRun,
    current_client,
    use_client,
)
from taskloom.sdk.results import Token
from taskloom.types import QueueDetails, Run, RunEvent

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def a_run(run_id: str, task_id: str = "client-echo", **changes: Any) -> Run:
    fields: dict[str, Any] = {
        "id": run_id,
        "task_id": task_id,
        "status": RunStatus.COMPLETED,
        "payload": None,
        "output": {"done": run_id},
        "error": None,
        "attempt_count": 1,
        "tags": [],
        "metadata": {},
        "created_at": NOW,
        "started_at": NOW,
        "finished_at": NOW,
        "parent_run_id": None,
        "root_run_id": None,
        **changes,
    }
    return Run(**fields)


def a_queue(name: str, *, paused: bool = False, limit: int | None = None) -> QueueDetails:
    return QueueDetails(name, "custom", 0, 0, paused, limit, None, limit, None, None)


class RecordingClient:
    """A `Client` that records each call (method name and arguments) and answers with
    canned values."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.closed = False

    def _call(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def task_trigger(self, task_id: str, payload: Any, options: Mapping[str, Any]) -> TriggeredRun:
        self._call("task_trigger", task_id, payload, dict(options))
        return TriggeredRun(f"run_{len(self.calls)}", task_id)

    def batch_trigger(self, items: Sequence[BatchItem]) -> TriggeredBatch:
        self._call("batch_trigger", list(items))
        runs = [TriggeredRun(f"run_b{i}", item.task_id) for i, item in enumerate(items)]
        return TriggeredBatch("batch_1", runs)

    def run_retrieve(self, run_id: str) -> Run:
        self._call("run_retrieve", run_id)
        return a_run(run_id)

    def run_list(self, query: RunQuery) -> list[Run]:
        self._call("run_list", query)
        return [a_run("run_listed")]

    def run_cancel(self, run_id: str) -> Cancellation:
        self._call("run_cancel", run_id)
        return Cancellation(RunStatus.QUEUED, a_run(run_id, status=RunStatus.CANCELED))

    def run_replay(self, run_id: str) -> TriggeredRun:
        self._call("run_replay", run_id)
        return TriggeredRun("run_replayed", "client-echo")

    def run_reschedule(self, run_id: str, delay: Any) -> Run:
        self._call("run_reschedule", run_id, delay)
        return a_run(run_id, status=RunStatus.DELAYED)

    def run_events(self, run_id: str, *, after_id: int = 0, limit: int = 1000) -> list[RunEvent]:
        self._call("run_events", run_id, after_id, limit)
        return [RunEvent(1, run_id, 1, 1_700_000_000_000, "log", {"message": "hi"})]

    async def run_watch(self, run_id: str) -> AsyncIterator[Run]:
        self._call("run_watch", run_id)
        yield a_run(run_id, status=RunStatus.COMPLETED)

    def run_metadata_update(
        self, run_id: str, operations: Sequence[MetadataOperation]
    ) -> dict[str, Any]:
        self._call("run_metadata_update", run_id, list(operations))
        return {"step": 2}

    def queue_list(self) -> list[QueueDetails]:
        self._call("queue_list")
        return [a_queue("emails")]

    def queue_retrieve(self, name: str) -> QueueDetails:
        self._call("queue_retrieve", name)
        return a_queue(name)

    def queue_pause(self, name: str) -> QueueDetails:
        self._call("queue_pause", name)
        return a_queue(name, paused=True)

    def queue_resume(self, name: str) -> QueueDetails:
        self._call("queue_resume", name)
        return a_queue(name)

    def queue_override_limit(self, name: str, limit: int) -> QueueDetails:
        self._call("queue_override_limit", name, limit)
        return a_queue(name, limit=limit)

    def queue_reset_limit(self, name: str) -> QueueDetails:
        self._call("queue_reset_limit", name)
        return a_queue(name)

    def token_create(self, options: TokenOptions) -> Token:
        self._call("token_create", options)
        return Token("waitpoint_1")

    def token_retrieve(self, token_id: str) -> TokenDetails:
        self._call("token_retrieve", token_id)
        return TokenDetails(token_id, "COMPLETED", output={"approved": True})

    def token_complete(self, token_id: str, data: Any) -> bool:
        self._call("token_complete", token_id, data)
        return True

    def idempotency_key_reset(self, task_id: str, key: str) -> bool:
        self._call("idempotency_key_reset", task_id, key)
        return True

    def close(self) -> None:
        self.closed = True


def _typed(client: RecordingClient) -> Client:
    return client  # mypy-style check that the recording client is a Client


class Order(pydantic.BaseModel):
    id: int


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Path]:
    """This process configured on a database file in tmp_path (which nothing may create)."""
    path = tmp_path / "never.db"
    sdk_client.reset()
    sdk_client.configure(project_root=tmp_path, database_url=f"sqlite:///{path}")
    known = {t.id for t in registry.all_tasks()}
    try:
        yield path
    finally:
        sdk_client.reset()
        for defined in registry.all_tasks():
            if defined.id not in known:
                registry.unregister(defined.id)


@pytest.fixture
def recording(database: Path) -> Iterator[RecordingClient]:
    client = RecordingClient()
    use_client(_typed(client))
    yield client
    assert not database.exists(), "a call went around the client to the database"


def noop(payload: Any) -> Any:
    return payload


def test_triggers_go_through_the_client_by_task_id(recording: RecordingClient) -> None:
    echo = task(id="client-echo", run=noop)
    order = schema_task(id="client-order", schema=Order, run=noop)

    handle = echo.trigger({"n": 1}, tags=["a"], delay="1h")
    assert (handle.id, handle.task_id, handle.is_cached) == ("run_1", "client-echo", False)
    assert order.trigger({"id": "7"}).task_id == "client-order"  # validated, then sent
    with pytest.raises(pydantic.ValidationError):
        order.trigger({"id": "not a number"})  # refused before the client
    tasks.trigger("defined-elsewhere", [1, 2], queue="emails")

    assert recording.calls == [
        ("task_trigger", ("client-echo", {"n": 1}, {"tags": ["a"], "delay": "1h"})),
        ("task_trigger", ("client-order", {"id": 7}, {})),
        ("task_trigger", ("defined-elsewhere", [1, 2], {"queue": "emails"})),
    ]


def test_batches_go_through_the_client_with_checked_items(recording: RecordingClient) -> None:
    echo = task(id="client-echo", run=noop)
    schema_task(id="client-order", schema=Order, run=noop)

    one = echo.batch_trigger([{"payload": 1}, {"payload": 2, "options": {"tags": ["x"]}}])
    mixed = batch.trigger(
        [{"id": "client-order", "payload": {"id": "3"}}, {"id": "defined-elsewhere"}]
    )

    assert [h.id for h in one.runs] == ["run_b0", "run_b1"]
    assert (mixed.batch_id, [h.task_id for h in mixed.runs]) == (
        "batch_1",
        ["client-order", "defined-elsewhere"],
    )
    assert recording.calls == [
        (
            "batch_trigger",
            (
                [
                    BatchItem("client-echo", 1, {}),
                    BatchItem("client-echo", 2, {"tags": ["x"]}),
                ],
            ),
        ),
        (
            "batch_trigger",
            ([BatchItem("client-order", {"id": 3}, {}), BatchItem("defined-elsewhere", None, {})],),
        ),
    ]


def test_runs_go_through_the_client(recording: RecordingClient) -> None:
    handle = tasks.trigger("client-echo", None)
    assert handle.retrieve().id == handle.id
    assert handle.result(timeout=1) == {"done": handle.id}
    assert runs.retrieve("run_9").id == "run_9"
    assert [r.id for r in runs.list(status="completed", task="t", tag="x", limit=5)] == [
        "run_listed"
    ]
    assert runs.cancel("run_9").status is RunStatus.CANCELED
    assert runs.replay(handle).id == "run_replayed"
    assert runs.reschedule("run_9", delay="5m").status is RunStatus.DELAYED
    assert runs.poll("run_9").is_success
    assert [e.data["message"] for e in runs.events("run_9", after_id=3)] == ["hi"]
    assert runs.update_metadata("run_9", {"step": 2}) == {"step": 2}

    assert recording.names() == [
        "task_trigger",
        "run_retrieve",
        "run_retrieve",
        "run_retrieve",
        "run_list",
        "run_cancel",
        "run_replay",
        "run_reschedule",
        "run_retrieve",
        "run_events",
        "run_metadata_update",
    ]
    assert recording.calls[4][1] == (
        RunQuery(statuses=("COMPLETED",), task_ids=("t",), tag="x", since_ms=None, limit=5),
    )
    assert recording.calls[-2][1] == ("run_9", 3, 1000)
    assert recording.calls[-1][1] == ("run_9", [["replace", None, {"step": 2}]])


def test_queues_tokens_and_keys_go_through_the_client(recording: RecordingClient) -> None:
    assert [q.name for q in queues.list()] == ["emails"]
    assert queues.retrieve("emails").name == "emails"
    assert queues.pause("emails").paused
    assert not queues.resume("emails").paused
    assert queues.override_concurrency_limit("emails", 2).concurrency_limit == 2
    queues.reset_concurrency_limit("emails")
    token = wait.create_token(timeout="10m", idempotency_key="approve:1", tags="review")
    assert wait.complete_token(token, {"approved": True}) is True
    assert wait.retrieve_token(token.id).output == {"approved": True}
    assert idempotency_keys.reset("client-echo", ["order", "42"]) is True

    assert recording.names() == [
        "queue_list",
        "queue_retrieve",
        "queue_pause",
        "queue_resume",
        "queue_override_limit",
        "queue_reset_limit",
        "token_create",
        "token_complete",
        "token_retrieve",
        "idempotency_key_reset",
    ]
    options = recording.calls[6][1][0]
    assert isinstance(options, TokenOptions)
    assert (options.idempotency_key, options.tags) == ("approve:1", ("review",))
    assert options.timeout_at is not None and options.idempotency_key_expires_at is not None
    assert recording.calls[7][1] == ("waitpoint_1", {"approved": True})
    assert recording.calls[-1][1] == ("client-echo", "order-42")


def test_async_twins_go_through_the_client(recording: RecordingClient) -> None:
    echo = task(id="client-echo", run=noop)

    async def calls() -> list[str]:
        await echo.atrigger(1)
        await tasks.atrigger("client-echo", 2)
        await batch.atrigger([{"id": "client-echo", "payload": 3}])
        await runs.aretrieve("run_1")
        await runs.alist()
        await runs.acancel("run_1")
        await runs.areplay("run_1")
        await runs.apoll("run_1")
        await runs.aevents("run_1")
        seen = [run.id async for run in runs.subscribe("run_2")]
        await queues.apause("emails")
        await wait.acreate_token()
        await wait.acomplete_token("waitpoint_1", 1)
        await wait.aretrieve_token("waitpoint_1")
        return seen

    assert asyncio.run(calls()) == ["run_2"]
    assert recording.names() == [
        "task_trigger",
        "task_trigger",
        "batch_trigger",
        "run_retrieve",
        "run_list",
        "run_cancel",
        "run_replay",
        "run_retrieve",
        "run_events",
        "run_watch",
        "queue_pause",
        "token_create",
        "token_complete",
        "token_retrieve",
    ]


def test_metadata_and_waits_outside_a_run_never_reach_the_client(
    recording: RecordingClient,
) -> None:
    from taskloom import metadata, tags

    metadata.set("k", 1).increment("n")
    metadata.parent.set("k", 1)
    tags.add("x")
    assert metadata.current() is None
    assert metadata.get("k") is None
    asyncio.run(metadata.flush())
    with pytest.raises(Exception, match="only be called inside a run"):
        asyncio.run(wait.for_(seconds=1))
    assert recording.calls == []


def test_the_process_client_is_local_rebuilt_on_configure_and_closed_on_reset(
    database: Path, tmp_path: Path
) -> None:
    first = current_client()
    assert isinstance(first, LocalClient)
    assert current_client() is first
    closed: list[str] = []
    first.close = lambda: closed.append("first")  # type: ignore[method-assign]

    sdk_client.configure(project_root=tmp_path, database_url=f"sqlite:///{tmp_path / 'b.db'}")
    second = current_client()
    assert isinstance(second, LocalClient) and second is not first
    assert closed == ["first"]
    assert second.engine.config.database_url.endswith("b.db")

    installed = RecordingClient()
    use_client(installed)
    sdk_client.configure(project_root=tmp_path)  # an installed client stays
    assert current_client() is installed
    sdk_client.reset()
    assert not installed.closed  # the caller owns it
    assert isinstance(current_client(), LocalClient)


def test_local_client_implements_every_method_of_the_protocol() -> None:
    methods = {
        name for name in vars(Client) if not name.startswith("_") and callable(vars(Client)[name])
    }
    assert methods <= set(dir(LocalClient))
    assert methods <= set(dir(RecordingClient))
    assert {
        "task_trigger",
        "batch_trigger",
        "run_retrieve",
        "run_list",
        "run_cancel",
        "run_replay",
        "run_reschedule",
        "run_events",
        "run_metadata_update",
        "queue_list",
        "queue_pause",
        "token_create",
        "token_retrieve",
        "token_complete",
        "idempotency_key_reset",
        "close",
    } <= methods


def test_token_details_of_a_timeout_carry_the_error() -> None:
    details = TokenDetails(
        "waitpoint_1", "TIMED_OUT", error=WaitpointTimeoutError("waitpoint_1 timed out")
    )
    assert details.is_completed and details.output is None
    assert not TokenDetails("waitpoint_2", "WAITING").is_completed
