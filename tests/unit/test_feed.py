"""Tests for taskloom.engine.feed and watching: run events delivered as they happen, from
this process's writes and from another connection's, over a real SQLite file."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskloom.clock import FakeClock
from taskloom.config import Config
from taskloom.engine.engine import Engine
from taskloom.engine.spec import TaskSpec
from taskloom.retry import Retry
from taskloom.store import SqliteStore
from taskloom.store.records import EventRecord
from taskloom.types import RunStatus

T0 = 1_700_000_000_000
SPEC = TaskSpec(id="fed", queue="task/fed", retry=Retry(max_attempts=1), machine="small-1x")


def open_engine(path: Path, clock: FakeClock) -> Engine:
    config = Config(project_root=path.parent, environment="PRODUCTION")
    engine = Engine(SqliteStore(path), config, clock=clock, local_specs={SPEC.id: SPEC}.get)
    engine.feed.poll_seconds = 0.01
    engine.ensure_schema()
    return engine


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    """Two engines (two connections, as two processes have) on one database."""
    clock = FakeClock(T0)
    here, there = (
        open_engine(tmp_path / "db.sqlite", clock),
        open_engine(tmp_path / "db.sqlite", clock),
    )
    yield here, there
    here.close()
    there.close()


async def take(subscription: object, count: int) -> list[EventRecord]:
    found: list[EventRecord] = []
    async for event in subscription:  # type: ignore[attr-defined]
        found.append(event)
        if len(found) == count:
            return found
    return found


def test_a_subscription_gets_this_process_and_other_processes_changes(
    engines: tuple[Engine, Engine],
) -> None:
    here, there = engines
    mine = here.trigger(SPEC, {}, {}).run_id
    theirs = there.trigger(SPEC, {}, {}).run_id

    async def scenario() -> tuple[list[EventRecord], list[EventRecord]]:
        with here.feed.subscribe() as everything, here.feed.subscribe(theirs) as one:
            here.cancel(mine)  # this engine: the feed is kicked
            there.cancel(theirs)  # another connection: found by the poll
            return await asyncio.wait_for(asyncio.gather(take(everything, 2), take(one, 1)), 10)

    everything, one = asyncio.run(scenario())
    assert [(e.run_id, e.kind) for e in everything] == [(mine, "status"), (theirs, "status")]
    assert [e.run_id for e in one] == [theirs]
    assert b'"status":"CANCELED","from":"QUEUED"' in one[0].data


def test_a_subscription_from_an_event_id_replays_what_came_after(
    engines: tuple[Engine, Engine],
) -> None:
    here, _ = engines
    first = here.trigger(SPEC, {}, {}).run_id
    cursor = here.last_event_id()
    here.cancel(first)

    async def scenario() -> list[EventRecord]:
        with here.feed.subscribe(first, after_id=cursor) as subscription:
            return await asyncio.wait_for(take(subscription, 1), 10)

    [event] = asyncio.run(scenario())
    assert (event.run_id, event.kind) == (first, "status")


def test_watching_a_run_yields_it_now_then_at_each_change_until_final(
    engines: tuple[Engine, Engine],
) -> None:
    here, there = engines
    run_id = here.trigger(SPEC, {}, {"delay": "1h"}).run_id

    async def scenario() -> list[RunStatus]:
        seen: list[RunStatus] = []
        async for run in here.watch(run_id):
            seen.append(run.status)
            if len(seen) == 1:
                await asyncio.to_thread(there.cancel, run_id)
        return seen

    assert asyncio.run(asyncio.wait_for(scenario(), 10)) == [
        RunStatus.DELAYED,
        RunStatus.CANCELED,
    ]


def test_the_feed_stops_reading_when_nobody_listens(engines: tuple[Engine, Engine]) -> None:
    here, _ = engines
    with here.feed.subscribe():
        assert here.feed._thread is not None
    thread = here.feed._thread
    if thread is not None:
        thread.join(5)
        assert not thread.is_alive()
