"""What a run prints and logs becomes its events, in order."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from taskloom import tasks
from taskloom.testing import TaskloomProject
from workerfixtures import local_engine

from .conftest import StartWorker

pytestmark = pytest.mark.slow

LOGGING_TASKS = """
import logging
import sys

from taskloom import logger, task

log = logging.getLogger("shop.orders")


@task(id="chatty")
def chatty(payload, ctx):
    print("printed", payload)
    log.info("logging module %s", "info")
    logger.info("taskloom logger", order=payload)
    with logger.trace("charge card", amount=42) as span:
        logger.warn("inside the span")
        span.set_attribute("receipt", "r-1")
    print("to stderr", file=sys.stderr)
    log.warning("last line")
    return "done"


@task(id="chatty-async")
async def chatty_async(payload, ctx):
    print("async printed", ctx.run.id)
    logger.info("async logger")
    async with logger.trace("async span"):
        log.error("async logging error")
    return "done"
"""


def _events(run_id: str) -> list[tuple[str, dict[str, Any]]]:
    records = local_engine().run_events(run_id)
    # What the attempt reported (the engine also journals the run's status changes).
    return [(r.kind, orjson.loads(r.data)) for r in records if r.kind != "status"]


def _summary(events: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, str, str]]:
    """(kind, level or "", message or span name) of the log and span events."""
    return [
        (kind, data.get("level", ""), data.get("message") or data.get("name", ""))
        for kind, data in events
        if kind in ("log", "span_start", "span_end")
    ]


@pytest.fixture
def chatty_worker(project: TaskloomProject, start_worker: StartWorker) -> None:
    project.write_task_module("chatty", LOGGING_TASKS)
    start_worker(concurrency=4)


@pytest.mark.usefixtures("chatty_worker")
def test_print_logging_and_logger_become_the_run_s_events_in_order() -> None:
    handle = tasks.trigger("chatty", 7)
    assert handle.result(timeout=10) == "done"

    events = _events(handle.id)
    assert _summary(events) == [
        ("log", "log", "printed 7"),
        ("log", "info", "logging module info"),
        ("log", "info", "taskloom logger"),
        ("span_start", "", "charge card"),
        ("log", "warn", "inside the span"),
        ("span_end", "", "charge card"),
        ("log", "error", "to stderr"),
        ("log", "warn", "last line"),
    ]
    by_message = {data.get("message"): data for kind, data in events if kind == "log"}
    assert by_message["taskloom logger"]["attributes"] == {"order": 7}
    span_start = next(data for kind, data in events if kind == "span_start")
    span_end = next(data for kind, data in events if kind == "span_end")
    assert by_message["inside the span"]["span_id"] == span_start["span_id"]
    assert span_end["attributes"] == {"amount": 42, "receipt": "r-1"}
    assert all(r.attempt == 1 for r in local_engine().run_events(handle.id))
    timestamps = [data["ts"] for kind, data in events if "ts" in data]
    assert timestamps == sorted(timestamps)


@pytest.mark.usefixtures("chatty_worker")
def test_concurrent_runs_keep_their_own_events() -> None:
    handles = [tasks.trigger("chatty-async", n) for n in range(10)]
    assert [h.result(timeout=10) for h in handles] == ["done"] * 10

    for handle in handles:
        assert _summary(_events(handle.id)) == [
            ("log", "log", f"async printed {handle.id}"),
            ("log", "info", "async logger"),
            ("span_start", "", "async span"),
            ("log", "error", "async logging error"),
            ("span_end", "", "async span"),
        ]
