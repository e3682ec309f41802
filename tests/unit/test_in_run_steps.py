"""Inside a run, the sdk's durable steps (triggers, batches, waits, tokens, metadata, tags)
go through the engine the executor gave the attempt, never through the sdk's client.

An in-process `Executor` runs the attempt with a recording engine; the process's client
is one that fails on any use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from taskloom import Retry, batch, metadata, tags, task, tasks, wait
from taskloom.clock import SYSTEM_CLOCK, now_ms
from taskloom.config import get_config
from taskloom.engine.records import ClaimedRun, NewWaitpoint, RecordedWait, WaitRef
from taskloom.engine.spec import TaskSpec
from taskloom.engine.triggering import RunLinks
from taskloom.runtime import registry
from taskloom.runtime.hooks import clear_global
from taskloom.runtime.report import AttemptResult
from taskloom.sdk import client as sdk_client
from taskloom.worker.executor import Executor
from taskloom.worker.messages import Message, StartAttempt

RUN_ID = "run_parent"


class RecordingEngine:
    """The engine methods an attempt's steps use, recorded; waits are complete at once."""

    def __init__(self) -> None:
        self.config = get_config()
        self.clock = SYSTEM_CLOCK
        self.calls: list[str] = []
        self.parents: set[str | None] = set()
        self.waits = self  # engine.waits: register, create_token, get

    def resolve_spec(self, task_id: str) -> TaskSpec:
        self.calls.append(f"resolve_spec {task_id}")
        return TaskSpec(task_id, f"task/{task_id}", Retry(), "small-1x")

    def trigger_child(
        self,
        spec: TaskSpec,
        payload: Any,
        options: Mapping[str, Any],
        *,
        links: RunLinks,
        ref: WaitRef,
        wait: bool,
    ) -> tuple[Any, RecordedWait | None]:
        self.calls.append(f"trigger_child {spec.id} wait={wait}")
        self.parents.add(links.parent_run_id)
        child = f"run_child{ref.seq}"
        result = orjson.dumps({"ok": True, "id": child, "task_id": spec.id, "output": payload})
        recorded = RecordedWait(ref.seq, "task", "waitpoint_c", "COMPLETED", result)
        return SimpleNamespace(run_id=child, created=True), recorded if wait else None

    def batch(
        self,
        items: list[tuple[TaskSpec, Any, Mapping[str, Any]]],
        *,
        links: RunLinks,
        ref: WaitRef,
        wait: bool,
    ) -> tuple[str, list[Any], RecordedWait | None]:
        self.calls.append(f"batch {len(items)} wait={wait}")
        self.parents.add(links.parent_run_id)
        results = [SimpleNamespace(run_id=f"run_b{n}", created=True) for n in range(len(items))]
        runs = [
            {"ok": True, "id": f"run_b{n}", "task_id": spec.id, "output": payload}
            for n, (spec, payload, _) in enumerate(items)
        ]
        data = orjson.dumps({"id": "batch_1", "runs": runs})
        recorded = RecordedWait(ref.seq, "batch", "waitpoint_b", "COMPLETED", data)
        return "batch_1", results, recorded if wait else None

    def register(
        self,
        ref: WaitRef,
        kind: str,
        *,
        waitpoint: NewWaitpoint | None = None,
        waitpoint_id: str | None = None,
        result: bytes | None = None,
    ) -> RecordedWait:
        self.calls.append(f"register_wait {kind}")
        done = result or b'{"ok":true,"output":"token data"}'
        return RecordedWait(ref.seq, kind, waitpoint_id, "COMPLETED", done)

    def create_token(self, waitpoint: NewWaitpoint) -> Any:
        self.calls.append("create_token")
        return SimpleNamespace(id=waitpoint.id, created_at=now_ms() + 1)

    def get(self, waitpoint_id: str) -> Any:
        self.calls.append("waitpoint")
        return SimpleNamespace(id=waitpoint_id, kind="TOKEN")

    def retrieve(self, run_id: str, *, with_attempts: bool = True) -> Any:
        self.calls.append(f"retrieve {run_id}")
        return SimpleNamespace(metadata={"stored": True})

    def run_metadata_update(
        self, run_id: str, *, tags: list[str] | None, changes: list[tuple[str, list[Any]]]
    ) -> list[str]:
        self.calls.append(f"run_metadata_update tags={tags} changes={len(changes)}")
        return []


class ForbiddenClient:
    """A client no call made inside a run may reach."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"a call inside a run reached the client: {name}")


@pytest.fixture(autouse=True)
def _isolated() -> Iterator[None]:
    known = {t.id for t in registry.all_tasks()}
    clear_global()
    sdk_client.use_client(ForbiddenClient())  # type: ignore[arg-type]
    yield
    sdk_client.reset()
    clear_global()
    for defined in registry.all_tasks():
        if defined.id not in known:
            registry.unregister(defined.id)


class Outbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    def send(self, message: Message) -> None:
        self.messages.append(message)


def run_attempt(task_id: str, engine: RecordingEngine) -> tuple[AttemptResult, Executor]:
    created_at = now_ms()
    run = ClaimedRun(
        id=RUN_ID,
        task_id=task_id,
        queue=f"task/{task_id}",
        attempt=1,
        payload=b"null",
        max_attempts=1,
        retry=orjson.dumps(Retry(max_attempts=1).to_json()),
        machine="small-1x",
        max_duration=None,
        tags=None,
        metadata=None,
        idempotency_key=None,
        parent_run_id=None,
        root_run_id=None,
        depth=0,
        is_test=False,
        replayed_from=None,
        created_at=created_at,
        concurrency_key=None,
        sort_key=created_at,
    )
    start = StartAttempt(run, "DEVELOPMENT")

    async def go() -> tuple[AttemptResult, Executor]:
        executor = Executor(None, Outbox(), engine=engine)  # type: ignore[arg-type]
        try:
            executor._start(start)
            state = executor.running[RUN_ID]
            assert state.asyncio_task is not None
            result = await asyncio.wait_for(state.asyncio_task, 20)
            assert state.runner is not None and state.runner.engine is engine
            runtime = state.runner.runtime
            assert runtime is not None and runtime.engine is engine
            return result, executor
        finally:
            executor.threads.shutdown(wait=False, cancel_futures=True)

    return asyncio.run(go())


def test_every_step_of_a_run_goes_through_the_attempts_engine() -> None:
    child = task(id="step-child", run=lambda payload: payload)

    @task(id="step-parent")
    async def parent(payload: Any) -> Any:
        seen: dict[str, Any] = {}
        seen["trigger"] = child.trigger(1).id
        seen["by_id"] = tasks.trigger("defined-elsewhere", 2).task_id
        seen["batch"] = len(child.batch_trigger([{"payload": 3}, {"payload": 4}]).runs)
        seen["mixed"] = batch.trigger([{"id": "defined-elsewhere", "payload": 5}]).batch_id
        seen["and_wait"] = (await child.trigger_and_wait(6)).unwrap()
        seen["by_id_and_wait"] = (await tasks.trigger_and_wait("defined-elsewhere", 7)).output
        seen["batch_and_wait"] = [r.output for r in await child.batch_trigger_and_wait([{}])]
        seen["mixed_and_wait"] = len(await batch.trigger_and_wait([{"id": "step-child"}]))
        await wait.for_(seconds=60)
        token = wait.create_token(timeout="1h")
        seen["token"] = (await wait.for_token(token)).output
        metadata.set("progress", 1).root.increment("children")
        tags.add("stepped")
        seen["root"] = metadata.root.current()
        await metadata.flush()
        return seen

    engine = RecordingEngine()
    result, executor = run_attempt(parent.id, engine)

    assert result.ok, result
    assert executor.engine is engine
    assert orjson.loads(bytes(result.output)) == {
        "trigger": "run_child1",
        "by_id": "defined-elsewhere",
        "batch": 2,
        "mixed": "batch_1",
        "and_wait": 6,
        "by_id_and_wait": 7,
        "batch_and_wait": [None],
        "mixed_and_wait": 1,
        "token": "token data",
        "root": {"stored": True},
    }
    assert engine.calls == [
        "trigger_child step-child wait=False",
        "resolve_spec defined-elsewhere",
        "trigger_child defined-elsewhere wait=False",
        "batch 2 wait=False",
        "resolve_spec defined-elsewhere",
        "batch 1 wait=False",
        "trigger_child step-child wait=True",
        "resolve_spec defined-elsewhere",
        "trigger_child defined-elsewhere wait=True",
        "batch 1 wait=True",
        "batch 1 wait=True",
        "register_wait duration",
        "create_token",
        "register_wait token-create",
        "waitpoint",
        "register_wait token",
        f"retrieve {RUN_ID}",
        "run_metadata_update tags=['stepped'] changes=2",
    ]
    assert engine.parents == {RUN_ID}


def test_an_executor_opens_one_engine_that_sees_its_tasks() -> None:
    defined = task(id="seen-here", run=lambda payload: payload)

    executor = Executor(None, Outbox())  # type: ignore[arg-type]
    try:
        spec = executor.engine.resolve_spec("seen-here")  # from the registry: no database
        assert spec == defined.spec_for(executor.config)
    finally:
        executor.threads.shutdown(wait=False, cancel_futures=True)
        executor.engine.close()
