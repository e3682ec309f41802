"""The service host and the leader election, with real components: a SQLite file, the
engine over it, the real services, and a FakeClock that the tests move.

Hosts with started loops run on real asyncio time; the tests wait on conditions with a
timeout far below the host's poll interval, so work that happens in time proves a wake-up
or a next-due time, not a poll. Leadership lapses are played with the fake clock.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from taskloom.clock import FakeClock
from taskloom.config import Config
from taskloom.engine.engine import Engine
from taskloom.engine.spec import TaskSpec
from taskloom.errors import InvalidOptionError, StoreBusyError
from taskloom.retry import Retry
from taskloom.services import (
    MAINTENANCE_LEADER,
    DelayedPromoter,
    LeaderElector,
    Service,
    ServiceHost,
    maintenance_host,
)
from taskloom.services.host import PAST_DUE_SLEEP_SECONDS, sleep_seconds
from taskloom.store import SqliteStore
from taskloom.types import RunStatus

T0 = 1_700_000_000_000
LEASE_SECONDS = 30
LEASE_MS = LEASE_SECONDS * 1000
SLOW_POLL = 60.0  # longer than any wait in these tests: nothing may wait for a poll
TIMEOUT = 5.0
LEADER = f"leader:{MAINTENANCE_LEADER}"
SPEC = TaskSpec(id="hosted", queue="task/hosted", retry=Retry(), machine="small-1x")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "taskloom.db"


@pytest.fixture
def open_engine(
    tmp_path: Path, database: Path, clock: FakeClock
) -> Iterator[Callable[..., Engine]]:
    """Opens engines on one database file, each with its own connection (as processes
    have); `config` are Config fields."""
    opened: list[Engine] = []

    def open_one(**config: Any) -> Engine:
        config.setdefault("lease_seconds", LEASE_SECONDS)
        config.setdefault("poll_interval_seconds", SLOW_POLL)
        store = SqliteStore(database)
        store.migrate()
        engine = Engine(
            store, Config(project_root=tmp_path, environment="PRODUCTION", **config), clock=clock
        )
        opened.append(engine)
        return engine

    yield open_one
    for engine in opened:
        engine.close()


@pytest.fixture
def engine(open_engine: Callable[..., Engine]) -> Engine:
    return open_engine()


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 30))


async def eventually(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    """Wait until `condition()` holds, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.002)


def delayed(engine: Engine, delay: str) -> str:
    return engine.trigger(SPEC, None, {"delay": delay}).run_id


def status(engine: Engine, run_id: str) -> RunStatus:
    return engine.retrieve(run_id, with_attempts=False).status


def leader_of(engine: Engine, database: Path) -> str | None:
    """Who holds the maintenance leadership now, read from the database file."""
    with sqlite3.connect(database) as conn:
        row = conn.execute(
            "SELECT holder, expires_at FROM leaders WHERE name = ?", (MAINTENANCE_LEADER,)
        ).fetchone()
    if row is None or row[1] < engine.clock.now_ms():
        return None
    return str(row[0])


class Recorder(Service):
    """A service that records its calls in a shared journal; optionally fails."""

    def __init__(
        self,
        name: str,
        journal: list[str],
        *,
        leader_only: bool = True,
        error: Exception | None = None,
    ) -> None:
        self.name = name
        self.leader_only = leader_only
        self.journal = journal
        self.error = error
        self.calls = 0

    def start(self) -> None:
        self.journal.append(f"start {self.name}")

    def run_once(self) -> int:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.calls

    def stop(self) -> None:
        self.journal.append(f"stop {self.name}")


# -- leader election between hosts ------------------------------------------------------------


def test_of_two_hosts_on_one_database_only_the_leader_runs_the_services(
    open_engine: Callable[..., Engine], clock: FakeClock, database: Path
) -> None:
    first, second = open_engine(), open_engine()
    run_id = delayed(first, "10s")
    clock.advance(10)

    async def scenario() -> None:
        a, b = maintenance_host(first, "worker-a"), maintenance_host(second, "worker-b")
        assert await a.run_once() == {
            LEADER: True,
            "promoter": 1,
            "expirer": [],
            "rescuer": [],
            "waitpoint-timer": [],
        }
        assert await b.run_once() == {LEADER: False}  # its services did not run
        assert (a.leads, b.leads) == (True, False)
        assert status(first, run_id) is RunStatus.QUEUED
        assert leader_of(first, database) == "worker-a"
        await a.stop()
        await b.stop()

    run(scenario())


def test_the_other_host_takes_over_at_once_when_the_leader_stops(
    open_engine: Callable[..., Engine], clock: FakeClock, database: Path
) -> None:
    first, second = open_engine(), open_engine()

    async def scenario() -> None:
        a, b = maintenance_host(first, "worker-a"), maintenance_host(second, "worker-b")
        await a.run_once()
        await b.run_once()
        assert not b.leads
        await a.stop()  # resigns: no need to wait for the lease to lapse
        assert not a.leads
        run_id = delayed(first, "1s")
        clock.advance(1)
        assert (await b.run_once())["promoter"] == 1
        assert b.leads
        assert status(first, run_id) is RunStatus.QUEUED
        assert leader_of(first, database) == "worker-b"
        await b.stop()
        assert leader_of(first, database) is None

    run(scenario())


def test_the_other_host_takes_over_when_the_leaders_lease_lapses(
    open_engine: Callable[..., Engine], clock: FakeClock, database: Path
) -> None:
    first, second = open_engine(), open_engine()
    run_id = delayed(first, "1s")

    async def scenario() -> None:
        a, b = maintenance_host(first, "worker-a"), maintenance_host(second, "worker-b")
        assert (await a.run_once())[LEADER] is True
        # a goes quiet (a paused process): it renews nothing from here on.
        clock.advance(LEASE_SECONDS - 1)
        assert a.leads
        assert await b.run_once() == {LEADER: False}
        clock.advance(1)  # the last instant of a's term
        assert not a.leads  # a stops counting on it first, without asking the database
        assert await b.run_once() == {LEADER: False}  # the database keeps it for a till then
        clock.advance(ms=1)
        results = await b.run_once()
        assert (results[LEADER], results["promoter"]) == (True, 1)
        assert status(first, run_id) is RunStatus.QUEUED
        assert await a.run_once() == {LEADER: False}  # a is back, and follows
        assert leader_of(first, database) == "worker-b"
        await a.stop()
        assert leader_of(first, database) == "worker-b"  # a's stop resigns only its own
        await b.stop()
        assert leader_of(first, database) is None

    run(scenario())


def test_two_started_hosts_elect_one_leader_and_the_other_takes_over_when_it_stops(
    open_engine: Callable[..., Engine], database: Path
) -> None:
    # Short renewals, so the follower's next try comes soon after the leader resigns.
    first, second = (open_engine(poll_interval_seconds=0.05) for _ in range(2))

    async def scenario() -> None:
        a, b = maintenance_host(first, "worker-a"), maintenance_host(second, "worker-b")
        await a.start()
        await b.start()
        await eventually(
            lambda: a.rounds[LEADER] >= 2 and b.rounds[LEADER] >= 2, "two elections each"
        )
        assert [a.leads, b.leads].count(True) == 1
        leader, follower = (a, b) if a.leads else (b, a)
        rounds = follower.rounds["promoter"]
        await leader.stop()
        await eventually(lambda: follower.leads, "the follower leads")
        await eventually(lambda: follower.rounds["promoter"] > rounds, "its services run")
        await follower.stop()
        assert leader_of(first, database) is None

    run(scenario())


# -- the loops --------------------------------------------------------------------------------


def test_a_started_host_runs_its_services_and_stop_resigns_and_ends_every_loop(
    engine: Engine, clock: FakeClock, database: Path
) -> None:
    run_id = delayed(engine, "1s")
    clock.advance(1)

    async def scenario() -> None:
        host = maintenance_host(engine, "worker-a")
        await host.start()
        assert host.running
        await eventually(lambda: status(engine, run_id) is RunStatus.QUEUED, "promoted")
        assert host.leads
        assert leader_of(engine, database) == "worker-a"
        loops = {t for t in asyncio.all_tasks() if t.get_name().startswith("service ")}
        assert {task.get_name() for task in loops} == {
            f"service {name}"
            for name in (LEADER, "promoter", "expirer", "rescuer", "waitpoint-timer")
        }
        await host.stop()
        assert not host.running and not host.leads
        assert all(task.done() for task in loops)
        assert leader_of(engine, database) is None
        await host.stop()  # a second stop changes nothing

    run(scenario())


def test_wake_runs_due_work_at_once(engine: Engine, clock: FakeClock) -> None:
    async def scenario() -> None:
        host = maintenance_host(engine, "worker-a")
        await host.start()
        await eventually(lambda: host.rounds["promoter"] >= 1, "a first round")
        # Nothing was due then: the promoter sleeps for the poll interval (60 s).
        run_id = delayed(engine, "1s")
        clock.advance(1)
        host.wake()
        await eventually(lambda: status(engine, run_id) is RunStatus.QUEUED, "promoted")
        await host.stop()

    run(scenario())


def test_a_loop_sleeps_until_its_next_due_time(engine: Engine, clock: FakeClock) -> None:
    run_id = delayed(engine, "0.2s")

    async def scenario() -> None:
        host = maintenance_host(engine, "worker-a")
        await host.start()
        await eventually(lambda: host.rounds["promoter"] >= 1, "a first round")
        assert status(engine, run_id) is RunStatus.DELAYED
        clock.advance(0.2)  # no wake(): the promoter looks again when the run is due
        await eventually(lambda: status(engine, run_id) is RunStatus.QUEUED, "promoted")
        await host.stop()

    run(scenario())


@pytest.mark.parametrize(
    ("error", "level"),
    [
        (RuntimeError("boom"), logging.ERROR),
        (StoreBusyError("database is locked"), logging.WARNING),
    ],
)
def test_a_failing_service_is_logged_and_neither_its_loop_nor_the_others_stop(
    engine: Engine, clock: FakeClock, caplog: pytest.LogCaptureFixture, error: Exception, level: int
) -> None:
    caplog.set_level(logging.INFO, logger="taskloom.internal.services")
    journal: list[str] = []
    failing = Recorder("failing", journal, error=error)

    async def scenario() -> None:
        leader = LeaderElector(engine, name="test", holder="worker-a", ttl_ms=LEASE_MS)
        host = ServiceHost(
            [failing, DelayedPromoter(engine)], leader=leader, poll_interval_seconds=SLOW_POLL
        )
        await host.start()
        await eventually(lambda: failing.calls >= 1, "a first failure")
        run_id = delayed(engine, "1s")
        clock.advance(1)
        host.wake()
        await eventually(lambda: status(engine, run_id) is RunStatus.QUEUED, "promoted")
        await eventually(lambda: failing.calls >= 2, "the failing service ran again")
        await host.stop()

    run(scenario())
    failures = [r for r in caplog.records if "service failing" in r.getMessage()]
    assert len(failures) >= 2
    assert {r.levelno for r in failures} == {level}
    assert journal == ["start failing", "stop failing"]


def test_stop_waits_for_the_round_under_way_then_stops_the_leader_last(engine: Engine) -> None:
    journal: list[str] = []
    entered, release = threading.Event(), threading.Event()

    class Slow(Recorder):
        def run_once(self) -> int:
            entered.set()
            release.wait(TIMEOUT)
            journal.append("slow round ends")
            return super().run_once()

    class JournaledLeader(LeaderElector):
        def stop(self) -> None:
            journal.append("leader resigns")
            super().stop()

    # Several threads: nothing but the host itself orders the stop hooks after the round.
    threads = ThreadPoolExecutor(max_workers=4)

    async def scenario() -> None:
        leader = JournaledLeader(engine, name="test", holder="worker-a", ttl_ms=LEASE_MS)
        host = ServiceHost(
            [Recorder("first", journal), Slow("slow", journal)],
            leader=leader,
            poll_interval_seconds=SLOW_POLL,
            executor=threads,
        )
        await host.start()
        await eventually(entered.is_set, "the slow round began")
        stopping = asyncio.create_task(host.stop())
        await asyncio.sleep(0.05)  # proving a negative: a stop that did not wait is done
        assert not stopping.done()
        release.set()
        await stopping

    run(scenario())
    threads.shutdown()
    assert journal == [
        "start first",
        "start slow",
        "slow round ends",
        "stop slow",
        "stop first",
        "leader resigns",
    ]


def test_a_host_that_does_not_lead_runs_only_its_services_for_every_process(
    engine: Engine,
) -> None:
    journal: list[str] = []
    everywhere = Recorder("everywhere", journal, leader_only=False)
    once = Recorder("once", journal)

    async def scenario() -> None:
        leader = LeaderElector(engine, name="test", holder="worker-a", ttl_ms=LEASE_MS)
        assert engine.workers.leader_elect("test", "someone-else", LEASE_MS)
        host = ServiceHost([everywhere, once], leader=leader, poll_interval_seconds=SLOW_POLL)
        assert await host.run_once() == {"leader:test": False, "everywhere": 1}
        assert host.rounds == {"leader:test": 1, "everywhere": 1, "once": 0}
        await host.stop()

    run(scenario())
    assert once.calls == 0


def test_a_host_starts_once() -> None:
    async def scenario() -> None:
        host = ServiceHost([Recorder("r", [], leader_only=False)], poll_interval_seconds=1)
        await host.start()
        with pytest.raises(RuntimeError, match="starts once"):
            await host.start()
        await host.stop()

    run(scenario())


def test_a_host_shares_the_executor_it_is_handed() -> None:
    threads: set[str] = set()

    class WhereAmI(Recorder):
        def run_once(self) -> int:
            threads.add(threading.current_thread().name)
            return super().run_once()

    database_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="the-db")

    async def scenario() -> None:
        host = ServiceHost(
            [WhereAmI("where", [], leader_only=False)],
            poll_interval_seconds=1,
            executor=database_thread,
        )
        await host.run_once()
        await host.stop()

    run(scenario())
    assert database_thread.submit(lambda: 1).result() == 1  # not shut down by the host
    database_thread.shutdown()
    assert len(threads) == 1
    assert next(iter(threads)).startswith("the-db")


@pytest.mark.parametrize(
    ("due_ms", "now_ms", "longest", "expected"),
    [
        (None, T0, 1.0, 1.0),  # nothing due: the poll
        (T0 + 250, T0, 1.0, 0.25),  # due before the poll: then
        (T0 + 5_000, T0, 1.0, 1.0),  # due after the poll: the poll
        (T0, T0, 1.0, PAST_DUE_SLEEP_SECONDS),  # due now, yet not done: not a busy loop
        (T0 - 9_000, T0, 1.0, PAST_DUE_SLEEP_SECONDS),
        (T0 - 9_000, T0, 0.01, 0.01),
    ],
)
def test_a_loop_sleeps_until_the_next_due_time_at_most_the_poll(
    due_ms: int | None, now_ms: int, longest: float, expected: float
) -> None:
    assert sleep_seconds(due_ms, now_ms, longest) == pytest.approx(expected)


# -- settings, checked up front ---------------------------------------------------------------


@pytest.mark.parametrize("poll", [0, -1, float("inf"), float("nan"), "1", True, None])
def test_a_bad_poll_interval_is_refused(poll: Any) -> None:
    with pytest.raises(InvalidOptionError) as raised:
        ServiceHost([Recorder("r", [], leader_only=False)], poll_interval_seconds=poll)
    assert str(raised.value) == (
        f"ServiceHost poll_interval_seconds must be a number of seconds > 0, got {poll!r}"
    )


def test_bad_services_are_refused_naming_what_is_wrong(engine: Engine) -> None:
    leader = LeaderElector(engine, name="test", holder="worker-a", ttl_ms=LEASE_MS)
    anywhere = Recorder("r", [], leader_only=False)
    with pytest.raises(InvalidOptionError, match=r"at least one service, got \[\]"):
        ServiceHost([])
    with pytest.raises(InvalidOptionError, match=r"must be Service objects .*got 'promoter'"):
        ServiceHost(["promoter"])  # type: ignore[list-item]
    with pytest.raises(InvalidOptionError, match=r"must be a list of Service objects"):
        ServiceHost(anywhere)  # type: ignore[arg-type]
    with pytest.raises(InvalidOptionError, match=r"'r' appears twice"):
        ServiceHost([anywhere, Recorder("r", [], leader_only=False)])
    with pytest.raises(InvalidOptionError, match=r"'leader:test' appears twice"):
        ServiceHost([leader], leader=leader)
    with pytest.raises(
        InvalidOptionError,
        match=r"service 'promoter' runs on the leader only, and this ServiceHost has no leader",
    ):
        ServiceHost([DelayedPromoter(engine)])


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"ttl_ms": 0}, "LeaderElector ttl_ms must be an integer from 1 to 86,400,000, got 0"),
        ({"ttl_ms": 1.5}, "LeaderElector ttl_ms must be an integer from 1 to 86,400,000, got 1.5"),
        (
            {"renew_every_seconds": 11},
            "LeaderElector renew_every_seconds must be a number of seconds > 0 and <= 10 (a "
            "third of ttl_ms=30,000, so a missed renewal keeps the leadership), got 11",
        ),
        (
            {"renew_every_seconds": 0},
            "LeaderElector renew_every_seconds must be a number of seconds > 0 and <= 10 (a "
            "third of ttl_ms=30,000, so a missed renewal keeps the leadership), got 0",
        ),
        ({"name": ""}, "LeaderElector name must be a non-empty string, got ''"),
        ({"holder": None}, "LeaderElector holder must be a non-empty string, got None"),
    ],
)
def test_bad_leader_settings_are_refused(
    engine: Engine, settings: dict[str, Any], message: str
) -> None:
    options: dict[str, Any] = {"name": "test", "holder": "worker-a", "ttl_ms": LEASE_MS}
    with pytest.raises(InvalidOptionError) as raised:
        LeaderElector(engine, **(options | settings))
    assert str(raised.value) == message


def test_a_leader_renews_every_third_of_its_ttl_by_default(engine: Engine) -> None:
    leader = LeaderElector(engine, name="test", holder="worker-a", ttl_ms=LEASE_MS)
    assert leader.renew_every_seconds == LEASE_SECONDS / 3
    worker_host = maintenance_host(engine, "worker-a")
    assert worker_host.leader is not None
    assert worker_host.leader.renew_every_seconds == LEASE_SECONDS / 3  # poll 60 s > 10 s
