"""Tests for taskloom.engine.triggering: trigger options become the row a trigger inserts."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskloom.clock import FakeClock
from taskloom.config import Config
from taskloom.engine.spec import TaskSpec
from taskloom.engine.triggering import (
    DEFAULT_IDEMPOTENCY_TTL_SECONDS,
    MAX_TAG_LENGTH,
    MAX_TAGS,
    METADATA_LIMIT_BYTES,
    TRIGGER_OPTIONS,
    RunLinks,
    build_new_run,
    serialise_payload,
)
from taskloom.errors import InvalidOptionError, PayloadError
from taskloom.retry import Retry
from taskloom.store.records import NewRun

CLOCK = FakeClock(start_ms=1_700_000_000_000)
NOW = CLOCK.now_ms()
PAYLOAD = b'{"to":"a@example.com"}'
TASK = "send-email"


def spec(**changes: Any) -> TaskSpec:
    fields: dict[str, Any] = {
        "id": TASK,
        "queue": f"task/{TASK}",
        "retry": Retry(max_attempts=4, randomize=False),
        "machine": "small-1x",
    }
    fields.update(changes)
    return TaskSpec(**fields)


def config(**changes: Any) -> Config:
    return Config(project_root=Path("/nonexistent-project"), **changes)


PRODUCTION = config(environment="PRODUCTION")


def build(
    options: Mapping[str, Any] | None = None,
    *,
    task: TaskSpec | None = None,
    cfg: Config = PRODUCTION,
    now: int = NOW,
    links: RunLinks | None = None,
) -> NewRun:
    return build_new_run(
        task or spec(),
        PAYLOAD,
        options or {},
        now=now,
        config=cfg,
        **({"links": links} if links is not None else {}),
    )


def rejects(options: Mapping[str, Any], *fragments: str, task: TaskSpec | None = None) -> str:
    """Assert `options` are refused with a message naming the task and each fragment."""
    with pytest.raises(InvalidOptionError) as raised:
        build(options, task=task)
    message = str(raised.value)
    assert repr(TASK) in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


# -- the plain trigger --------------------------------------------------------------------


def test_without_options_the_run_is_queued_now_with_the_task_settings() -> None:
    run = build()

    assert re.fullmatch(r"run_[0-9A-Z]{26}", run.id)
    assert (run.task_id, run.queue, run.status, run.payload) == (
        TASK,
        f"task/{TASK}",
        "QUEUED",
        PAYLOAD,
    )
    assert (run.created_at, run.queue_ts, run.sort_key, run.available_at) == (NOW,) * 4
    assert (run.delay_until, run.ttl_ms, run.expires_at, run.priority_ms) == (None, None, None, 0)
    assert (run.max_attempts, run.machine, run.max_duration) == (4, "small-1x", None)
    assert orjson.loads(run.retry) == Retry(max_attempts=4, randomize=False).to_json()
    assert (run.idempotency_key, run.idempotency_expires_at) == (None, None)
    assert (run.tags, run.metadata, run.concurrency_key) == (None, None, None)
    assert (run.parent_run_id, run.root_run_id, run.depth, run.batch_id) == (None, None, 0, None)
    assert (run.is_test, run.replayed_from) == (False, None)


def test_each_trigger_gets_a_new_increasing_id() -> None:
    ids = [build().id for _ in range(5)]
    assert ids == sorted(set(ids))


def test_links_are_copied_onto_the_run() -> None:
    links = RunLinks(
        parent_run_id="run_P",
        root_run_id="run_R",
        depth=3,
        batch_id="batch_B",
        replayed_from="run_O",
        is_test=True,
    )
    run = build(links=links)
    assert (run.parent_run_id, run.root_run_id, run.depth) == ("run_P", "run_R", 3)
    assert (run.batch_id, run.replayed_from, run.is_test) == ("batch_B", "run_O", True)


def test_unknown_options_are_rejected_by_name() -> None:
    message = rejects({"delay_ms": 5, "tag": "x"}, "delay_ms", "tag")
    assert "unknown trigger option" in message
    assert "valid options are" in message


VALID_OPTIONS: dict[str, Any] = {
    "idempotency_key": "k",
    "idempotency_key_ttl": "1h",
    "delay": "1m",
    "ttl": "10m",
    "tags": ["a"],
    "metadata": {"m": 1},
    "concurrency_key": "c",
    "queue": "q",
    "machine": "micro",
    "max_attempts": 2,
    "max_duration": 60,
    "priority": 1,
}


def test_every_documented_option_is_accepted_at_once() -> None:
    assert set(VALID_OPTIONS) == TRIGGER_OPTIONS  # API.md's list of trigger options
    run = build(VALID_OPTIONS)
    assert (run.idempotency_key, run.status, run.ttl_ms, run.tags) == (
        "k",
        "DELAYED",
        600_000,
        b'["a"]',
    )
    assert (run.metadata, run.concurrency_key, run.queue, run.machine) == (
        b'{"m":1}',
        "c",
        "q",
        "micro",
    )
    assert (run.max_attempts, run.max_duration, run.priority_ms) == (2, 60, 1_000)


# -- delay ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delay", "expected_ms"),
    [
        ("1h30m", 5_400_000),
        ("10s", 10_000),
        ("500ms", 500),
        (90, 90_000),
        (2.5, 2_500),
        (timedelta(minutes=2), 120_000),
        (datetime.fromtimestamp((NOW + 3_600_000) / 1000, tz=UTC), 3_600_000),
        (datetime.fromtimestamp((NOW + 60_000) / 1000, tz=UTC).isoformat(), 60_000),
    ],
    ids=["1h30m", "10s", "500ms", "int", "float", "timedelta", "datetime", "iso"],
)
def test_delay_forms_make_a_delayed_run_queued_at_its_delay(delay: Any, expected_ms: int) -> None:
    run = build({"delay": delay})

    assert run.status == "DELAYED"
    assert run.delay_until == NOW + expected_ms
    assert run.queue_ts == run.available_at == run.sort_key == NOW + expected_ms
    assert run.created_at == NOW


@pytest.mark.parametrize(
    "delay",
    [0, "0s", timedelta(0), datetime.fromtimestamp((NOW - 60_000) / 1000, tz=UTC)],
    ids=["zero", "zero-string", "zero-timedelta", "past-datetime"],
)
def test_a_delay_that_is_already_due_queues_the_run_now(delay: Any) -> None:
    run = build({"delay": delay})
    assert (run.status, run.delay_until, run.queue_ts) == ("QUEUED", None, NOW)


@pytest.mark.parametrize("delay", ["soon", -5, "1x", [1]])
def test_malformed_delays_are_rejected(delay: Any) -> None:
    rejects({"delay": delay}, "delay")


def test_a_delayed_run_starts_its_ttl_when_it_enters_its_queue() -> None:
    run = build({"delay": "1m", "ttl": "10s"})
    assert (run.ttl_ms, run.expires_at) == (10_000, None)


# -- ttl ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task_ttl", "trigger_ttl", "expected_ms"),
    [
        (None, None, None),
        (60, None, 60_000),  # the task's (or config's, already in the spec) TTL
        (60, "10s", 10_000),  # the trigger's wins
        (None, "1m30s", 90_000),
        (None, 2.5, 2_500),
        (60, 0, None),  # 0 disables the task's TTL
        (0, None, None),  # a task TTL of 0 means none
        (0, "5s", 5_000),
    ],
)
def test_ttl_precedence(task_ttl: float | None, trigger_ttl: Any, expected_ms: int | None) -> None:
    options = {} if trigger_ttl is None else {"ttl": trigger_ttl}
    run = build(options, task=spec(ttl_seconds=task_ttl))
    assert run.ttl_ms == expected_ms
    assert run.expires_at == (None if expected_ms is None else NOW + expected_ms)


def test_malformed_ttl_is_rejected() -> None:
    rejects({"ttl": "forever"}, "ttl")


# -- priority -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("priority", "expected_ms"),
    [(0, 0), (5, 5_000), (1.5, 1_500), (0.0004, 0), (timedelta(seconds=3), 3_000)],
)
def test_priority_is_seconds_subtracted_from_the_sort_key(priority: Any, expected_ms: int) -> None:
    run = build({"priority": priority})
    assert run.priority_ms == expected_ms
    assert run.sort_key == NOW - expected_ms
    assert run.queue_ts == NOW  # the queue timestamp itself is unchanged


def test_priority_applies_to_delayed_runs_too() -> None:
    run = build({"priority": 10, "delay": "1m"})
    assert run.sort_key == NOW + 60_000 - 10_000


@pytest.mark.parametrize("priority", [-1, True, "5", float("inf"), float("nan")])
def test_bad_priorities_are_rejected(priority: Any) -> None:
    rejects({"priority": priority}, "priority", repr(priority))


@given(
    offset_ms=st.integers(0, 10**9),
    priority=st.integers(0, 10**6),
    delay_s=st.one_of(st.none(), st.integers(1, 10**6)),
)
def test_sort_key_is_queue_timestamp_minus_priority(
    offset_ms: int, priority: int, delay_s: int | None
) -> None:
    now = NOW + offset_ms
    options: dict[str, Any] = {"priority": priority}
    if delay_s is not None:
        options["delay"] = delay_s
    run = build(options, now=now)
    expected_queue_ts = now if delay_s is None else now + delay_s * 1000
    assert run.queue_ts == expected_queue_ts
    assert run.sort_key == expected_queue_ts - priority * 1000


# -- tags and metadata --------------------------------------------------------------------


def test_tags_are_stored_as_a_json_list_without_duplicates() -> None:
    assert build({"tags": "user:1"}).tags == b'["user:1"]'
    assert build({"tags": ["a", "b", "a"]}).tags == b'["a","b"]'
    assert build({"tags": ("x",)}).tags == b'["x"]'
    assert build({"tags": []}).tags is None


def test_ten_tags_of_128_characters_are_the_limit() -> None:
    tags = [f"{i}" + "x" * (MAX_TAG_LENGTH - 1) for i in range(MAX_TAGS)]
    run = build({"tags": tags})
    assert run.tags is not None and orjson.loads(run.tags) == tags
    assert (MAX_TAGS, MAX_TAG_LENGTH) == (10, 128)


def test_eleven_tags_are_rejected_naming_the_limit() -> None:
    rejects({"tags": [f"t{i}" for i in range(11)]}, "at most 10 tags", "got 11")


def test_a_tag_over_128_characters_is_rejected_naming_it() -> None:
    long_tag = "y" * 129
    rejects({"tags": ["ok", long_tag]}, "'" + "y" * 40, "129 characters", "1 to 128")


@pytest.mark.parametrize("tags", [[""], [1], "", {"a": 1}, [None]])
def test_malformed_tags_are_rejected(tags: Any) -> None:
    rejects({"tags": tags}, "tag")


def test_metadata_is_stored_as_json() -> None:
    run = build({"metadata": {"progress": 0.5, "items": [1, 2]}})
    assert run.metadata is not None
    assert orjson.loads(run.metadata) == {"progress": 0.5, "items": [1, 2]}


def test_metadata_over_256_kib_is_rejected_naming_the_limit() -> None:
    assert METADATA_LIMIT_BYTES == 256 * 1024
    big = {"blob": "z" * METADATA_LIMIT_BYTES}
    with pytest.raises(PayloadError) as raised:
        build({"metadata": big})
    message = str(raised.value)
    assert repr(TASK) in message
    assert f"{METADATA_LIMIT_BYTES:,} bytes" in message
    # Just under the limit is fine.
    fits = {"b": "z" * (METADATA_LIMIT_BYTES - len(b'{"b":""}'))}
    assert build({"metadata": fits}).metadata is not None


@pytest.mark.parametrize("metadata", [[1, 2], "text", 5])
def test_metadata_must_be_a_dict(metadata: Any) -> None:
    rejects({"metadata": metadata}, "metadata", "must be a dict")


def test_metadata_must_be_json() -> None:
    with pytest.raises(PayloadError, match=r"metadata of a run of task 'send-email'.*JSON"):
        build({"metadata": {"when": object()}})


# -- attempts, duration, machine, queue, concurrency key --------------------------------------


@pytest.mark.parametrize("value", [1, 2, 250])
def test_max_attempts_overrides_the_task_retry(value: int) -> None:
    run = build({"max_attempts": value})
    assert run.max_attempts == value
    assert orjson.loads(run.retry)["max_attempts"] == value


@pytest.mark.parametrize("value", [0, 251, -1, True, 2.0, "3"])
def test_max_attempts_outside_1_to_250_is_rejected(value: Any) -> None:
    rejects({"max_attempts": value}, "max_attempts", "1 to 250", repr(value))


def test_retries_disabled_in_dev_force_one_attempt() -> None:
    dev_without_retries = config(environment="DEVELOPMENT", retries_enabled_in_dev=False)
    for options in ({}, {"max_attempts": 5}):
        run = build(options, cfg=dev_without_retries)
        assert run.max_attempts == 1
        assert orjson.loads(run.retry)["max_attempts"] == 1
    # Other environments, or dev with retries on, keep the task's attempts.
    assert build(cfg=config(environment="DEVELOPMENT")).max_attempts == 4
    prod = config(environment="PRODUCTION", retries_enabled_in_dev=False)
    assert build(cfg=prod).max_attempts == 4


@pytest.mark.parametrize(("value", "seconds"), [(5, 5), ("1m", 60), (5.2, 6), ("10s", 10)])
def test_max_duration_is_whole_seconds_of_at_least_five(value: Any, seconds: int) -> None:
    assert build({"max_duration": value}).max_duration == seconds


def test_max_duration_defaults_to_the_task_spec() -> None:
    assert build(task=spec(max_duration=120)).max_duration == 120
    assert build({"max_duration": 30}, task=spec(max_duration=120)).max_duration == 30


@pytest.mark.parametrize("value", [4, 4.99, "4s", 0])
def test_max_duration_under_five_seconds_is_rejected(value: Any) -> None:
    rejects({"max_duration": value}, "max_duration", "at least 5 seconds", repr(value))


def test_machine_overrides_the_task_machine() -> None:
    assert build({"machine": "large-2x"}).machine == "large-2x"
    assert build(task=spec(machine="micro")).machine == "micro"


def test_unknown_machine_is_rejected_with_a_suggestion() -> None:
    rejects({"machine": "large-3x"}, "'large-3x'", "valid presets are")


def test_queue_and_concurrency_key() -> None:
    run = build({"queue": "emails", "concurrency_key": 42})
    assert (run.queue, run.concurrency_key) == ("emails", "42")
    assert build({"concurrency_key": "tenant-1"}).concurrency_key == "tenant-1"


@pytest.mark.parametrize(
    ("option", "value"), [("queue", ""), ("queue", 5), ("concurrency_key", True)]
)
def test_bad_queue_or_concurrency_key_is_rejected(option: str, value: Any) -> None:
    rejects({option: value}, option)


# -- idempotency ----------------------------------------------------------------------------


def test_idempotency_key_lasts_30_days_by_default() -> None:
    run = build({"idempotency_key": "order-1"})
    assert DEFAULT_IDEMPOTENCY_TTL_SECONDS == 30 * 24 * 3600
    assert run.idempotency_key == "order-1"
    assert run.idempotency_expires_at == NOW + 30 * 86_400_000


@pytest.mark.parametrize(
    ("ttl", "ms"), [("1h", 3_600_000), (60, 60_000), (timedelta(days=2), 172_800_000)]
)
def test_idempotency_key_ttl_can_be_set(ttl: Any, ms: int) -> None:
    run = build({"idempotency_key": "k", "idempotency_key_ttl": ttl})
    assert run.idempotency_expires_at == NOW + ms


def test_a_list_key_is_joined() -> None:
    assert build({"idempotency_key": ["user", "42"]}).idempotency_key == "user-42"


@pytest.mark.parametrize("key", ["", 5, [], [1, 2], "k" * 2049])
def test_bad_idempotency_keys_are_rejected(key: Any) -> None:
    rejects({"idempotency_key": key}, "idempotency_key")


def test_a_key_of_2048_characters_is_accepted() -> None:
    assert build({"idempotency_key": "k" * 2048}).idempotency_key == "k" * 2048


def test_a_key_ttl_without_a_key_is_rejected() -> None:
    rejects({"idempotency_key_ttl": "1h"}, "needs an idempotency_key")


def test_a_bad_key_ttl_is_rejected() -> None:
    rejects({"idempotency_key": "k", "idempotency_key_ttl": "one day"}, "idempotency_key_ttl")


# -- payload -------------------------------------------------------------------------------


def test_serialise_payload_returns_json_bytes() -> None:
    assert serialise_payload(TASK, {"a": [1, "é"]}, 100) == '{"a":[1,"é"]}'.encode()
    assert serialise_payload(TASK, None, 100) == b"null"


@pytest.mark.parametrize("payload", [{"s": {1, 2}}, object(), {"b": b"\xff"}])
def test_a_payload_that_is_not_json_is_rejected_naming_the_task(payload: Any) -> None:
    with pytest.raises(PayloadError, match=r"payload of task 'send-email' is not JSON"):
        serialise_payload(TASK, payload, 10_000)


def test_a_payload_over_the_limit_is_rejected_naming_size_and_limit() -> None:
    payload = {"s": "x" * 100}
    size = len(orjson.dumps(payload))
    assert serialise_payload(TASK, payload, size) == orjson.dumps(payload)
    with pytest.raises(PayloadError) as raised:
        serialise_payload(TASK, payload, size - 1)
    message = str(raised.value)
    assert repr(TASK) in message
    assert f"{size:,} bytes" in message
    assert f"limit of {size - 1:,} bytes" in message


def test_a_rejected_option_is_an_invalid_option_error() -> None:
    # Callers catch InvalidOptionError (PayloadError is one) to turn rejections into 4xx.
    assert issubclass(PayloadError, InvalidOptionError)
