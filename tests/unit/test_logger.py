"""Tests for taskloom.runtime.logger (logger, spans) and the taskloom.runtime.sink seam."""

from __future__ import annotations

import asyncio
import logging
import math
import re
from typing import Any

import orjson
import pytest

from taskloom.clock import now_ms
from taskloom.runtime.logger import Logger, Span, current_span_id, logger
from taskloom.runtime.sink import (
    CollectingSink,
    current_sink,
    emit_event,
    json_safe,
    use_sink,
)

Event = tuple[str, dict[str, Any]]


def without_times(events: list[Event], since_ms: int) -> list[Event]:
    """The events with "ts" (checked to be a plausible int) and "duration_ms" removed."""
    until_ms = now_ms()
    stripped: list[Event] = []
    for kind, data in events:
        rest = dict(data)
        ts = rest.pop("ts")
        assert isinstance(ts, int)
        assert since_ms <= ts <= until_ms
        if kind == "span_end":
            duration = rest.pop("duration_ms")
            assert isinstance(duration, float)
            assert duration >= 0
        stripped.append((kind, rest))
    return stripped


# --- runtime -----------------------------------------------------------------


def test_emit_event_without_a_sink_returns_false() -> None:
    assert current_sink.get() is None
    assert emit_event("log", {"message": "lost"}) is False


def test_emit_event_goes_to_the_bound_sink_and_use_sink_restores() -> None:
    sink = CollectingSink()
    with use_sink(sink) as bound:
        assert bound is sink
        assert current_sink.get() is sink
        assert emit_event("custom", {"n": 1}) is True
    assert current_sink.get() is None
    assert sink.events == [("custom", {"n": 1})]
    assert sink.of_kind("custom") == [{"n": 1}]
    assert sink.of_kind("log") == []


def test_now_ms_is_wall_clock_milliseconds() -> None:
    import time

    before = time.time()
    value = now_ms()
    after = time.time()
    assert isinstance(value, int)
    assert math.floor(before * 1000) - 1 <= value <= math.ceil(after * 1000)


def test_json_safe_keeps_json_and_reprs_the_rest() -> None:
    class Weird:
        def __repr__(self) -> str:
            return "<Weird>"

    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    cyclic: list[Any] = []
    cyclic.append(cyclic)
    value = {
        "s": "text",
        "i": 3,
        "f": 1.5,
        "b": True,
        "n": None,
        "t": (1, "two"),
        "nested": {"k": [Weird()]},
        1: "int key",
        ("a",): "tuple key",
        "set": {7},
        "nan": math.nan,
        "big": 2**70,
        "broken": Broken(),
        "cyclic": cyclic,
    }
    safe = json_safe(value)
    assert safe["s"] == "text"
    assert safe["i"] == 3
    assert safe["f"] == 1.5
    assert safe["b"] is True
    assert safe["n"] is None
    assert safe["t"] == [1, "two"]
    assert safe["nested"] == {"k": ["<Weird>"]}
    assert safe["1"] == "int key"
    assert safe["('a',)"] == "tuple key"
    assert safe["set"] == "{7}"
    assert safe["nan"] == "nan"
    assert safe["big"] == str(2**70)
    assert safe["broken"] == "<unrepresentable Broken>"
    assert isinstance(safe["cyclic"], list)
    orjson.dumps(safe)  # must not raise


# --- logger ------------------------------------------------------------------


def test_each_level_emits_one_log_event() -> None:
    sink = CollectingSink()
    since = now_ms()
    with use_sink(sink):
        logger.debug("d", a=1)
        logger.log("l")
        logger.info("i", user="u_1", tags=["x", "y"])
        logger.warn("w", ratio=0.5)
        logger.error("e", ok=False, nothing=None)
    assert without_times(sink.events, since) == [
        ("log", {"level": "debug", "message": "d", "attributes": {"a": 1}, "span_id": None}),
        ("log", {"level": "log", "message": "l", "attributes": {}, "span_id": None}),
        (
            "log",
            {
                "level": "info",
                "message": "i",
                "attributes": {"user": "u_1", "tags": ["x", "y"]},
                "span_id": None,
            },
        ),
        ("log", {"level": "warn", "message": "w", "attributes": {"ratio": 0.5}, "span_id": None}),
        (
            "log",
            {
                "level": "error",
                "message": "e",
                "attributes": {"ok": False, "nothing": None},
                "span_id": None,
            },
        ),
    ]


def test_attributes_are_made_json_safe_and_may_be_called_message() -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "Opaque()"

    sink = CollectingSink()
    with use_sink(sink):
        logger.info("odd values", obj=Opaque(), pair=(1, 2), message="an attribute")
    [(kind, data)] = sink.events
    assert kind == "log"
    assert data["message"] == "odd values"
    assert data["attributes"] == {"obj": "Opaque()", "pair": [1, 2], "message": "an attribute"}
    orjson.dumps(data)


def test_outside_a_run_logs_go_to_the_stdlib_logger(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="taskloom.task")
    logger.debug("d", a=1)
    logger.log("l")
    logger.info("i")
    logger.warn("w", b=2)
    logger.error("e")
    records = [r for r in caplog.records if r.name == "taskloom.task"]
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.DEBUG, "d"),
        (logging.INFO, "l"),
        (logging.INFO, "i"),
        (logging.WARNING, "w"),
        (logging.ERROR, "e"),
    ]
    assert records[0].__dict__["attributes"] == {"a": 1}
    assert records[3].__dict__["attributes"] == {"b": 2}
    # The record points at the caller, not at the logger's internals.
    assert {r.funcName for r in records} == {"test_outside_a_run_logs_go_to_the_stdlib_logger"}


def test_message_with_percent_signs_is_not_formatted_outside_a_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="taskloom.task")
    logger.info("100% done %s")
    assert [r.getMessage() for r in caplog.records] == ["100% done %s"]


def test_logger_is_a_logger_instance() -> None:
    assert isinstance(logger, Logger)


# --- spans -------------------------------------------------------------------


def test_nested_spans_record_parents_and_logs_point_at_the_current_span() -> None:
    sink = CollectingSink()
    since = now_ms()
    with use_sink(sink):
        with logger.trace("outer", step=1) as outer:
            assert current_span_id() == outer.id
            with logger.trace("inner") as inner:
                assert current_span_id() == inner.id
                logger.info("in inner")
                inner.set_attribute("rows", 3)
            assert current_span_id() == outer.id
            logger.info("in outer")
        assert current_span_id() is None
        logger.info("no span")
    assert re.fullmatch(r"[0-9a-f]{16}", outer.id)
    assert re.fullmatch(r"[0-9a-f]{16}", inner.id)
    assert outer.id != inner.id
    assert (outer.parent_id, inner.parent_id) == (None, outer.id)
    assert without_times(sink.events, since) == [
        (
            "span_start",
            {
                "span_id": outer.id,
                "parent_span_id": None,
                "name": "outer",
                "attributes": {"step": 1},
            },
        ),
        (
            "span_start",
            {"span_id": inner.id, "parent_span_id": outer.id, "name": "inner", "attributes": {}},
        ),
        ("log", {"level": "info", "message": "in inner", "attributes": {}, "span_id": inner.id}),
        (
            "span_end",
            {"span_id": inner.id, "name": "inner", "attributes": {"rows": 3}, "error": None},
        ),
        ("log", {"level": "info", "message": "in outer", "attributes": {}, "span_id": outer.id}),
        (
            "span_end",
            {"span_id": outer.id, "name": "outer", "attributes": {"step": 1}, "error": None},
        ),
        ("log", {"level": "info", "message": "no span", "attributes": {}, "span_id": None}),
    ]


def test_span_records_the_error_and_lets_it_propagate() -> None:
    sink = CollectingSink()
    with use_sink(sink), pytest.raises(ValueError, match="boom"), logger.trace("fails") as span:
        raise ValueError("boom")
    assert current_span_id() is None
    end = sink.of_kind("span_end")
    assert end == [
        {
            "span_id": span.id,
            "name": "fails",
            "attributes": {},
            "ts": end[0]["ts"],
            "duration_ms": end[0]["duration_ms"],
            "error": {"type": "ValueError", "message": "boom"},
        }
    ]


def test_span_attributes_are_json_safe_at_start_and_end() -> None:
    sink = CollectingSink()
    with use_sink(sink), logger.trace("x", when={1, 2}) as span:
        span.set_attribute("obj", (1, object))
    start, end = sink.of_kind("span_start")[0], sink.of_kind("span_end")[0]
    assert start["attributes"] == {"when": "{1, 2}"}
    assert end["attributes"] == {"when": "{1, 2}", "obj": [1, "<class 'object'>"]}
    orjson.dumps(sink.events)


def test_a_span_cannot_be_entered_twice() -> None:
    span = logger.trace("once")
    with span:
        pass
    with pytest.raises(RuntimeError, match="already entered"), span:
        pass


def test_span_ids_are_unique() -> None:
    ids = {logger.trace("x").id for _ in range(200)}
    assert len(ids) == 200


def test_spans_outside_a_run_emit_nothing_and_log_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="taskloom.task")
    with pytest.raises(KeyError), logger.trace("offline") as span:
        assert isinstance(span, Span)
        assert current_span_id() == span.id
        raise KeyError("k")
    assert current_span_id() is None
    messages = [r.getMessage() for r in caplog.records if r.name == "taskloom.task"]
    assert len(messages) == 2
    assert messages[0] == f"span offline started ({span.id})"
    assert messages[1].startswith("span offline ended after ")
    assert messages[1].endswith(" with KeyError")
    assert all(r.levelno == logging.DEBUG for r in caplog.records)


def test_async_spans_in_concurrent_attempts_do_not_cross_talk() -> None:
    sinks = {"a": CollectingSink(), "b": CollectingSink()}
    spans: dict[str, tuple[Span, Span]] = {}

    async def attempt(name: str, my_turn: asyncio.Event, their_turn: asyncio.Event) -> None:
        with use_sink(sinks[name]):
            async with logger.trace(f"outer-{name}") as outer:
                # Hand over to the other attempt while this span is open, twice.
                their_turn.set()
                await my_turn.wait()
                my_turn.clear()
                async with logger.trace(f"inner-{name}") as inner:
                    their_turn.set()
                    await my_turn.wait()
                    logger.info(f"log-{name}")
                    assert current_span_id() == inner.id
                their_turn.set()
                assert current_span_id() == outer.id
            spans[name] = (outer, inner)

    async def main() -> None:
        turn_a, turn_b = asyncio.Event(), asyncio.Event()
        await asyncio.gather(attempt("a", turn_a, turn_b), attempt("b", turn_b, turn_a))
        assert current_sink.get() is None

    asyncio.run(main())
    for name, sink in sinks.items():
        outer, inner = spans[name]
        summary = [
            (kind, data.get("name") or data.get("message"), data.get("span_id"))
            for kind, data in sink.events
        ]
        assert summary == [
            ("span_start", f"outer-{name}", outer.id),
            ("span_start", f"inner-{name}", inner.id),
            ("log", f"log-{name}", inner.id),
            ("span_end", f"inner-{name}", inner.id),
            ("span_end", f"outer-{name}", outer.id),
        ]
        assert sink.of_kind("span_start")[1]["parent_span_id"] == outer.id
        assert sink.of_kind("span_start")[0]["parent_span_id"] is None
    assert spans["a"][0].id != spans["b"][0].id
