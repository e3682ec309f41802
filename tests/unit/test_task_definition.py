"""Tests for task() and schema_task(): definition, signatures, options and schemas."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pydantic
import pytest

from taskloom.config import Config
from taskloom.errors import InvalidOptionError, TaskloomError
from taskloom.retry import Retry
from taskloom.runtime import registry
from taskloom.runtime.queues import queue
from taskloom.sdk.task import Task, schema_task, task


@pytest.fixture(autouse=True)
def forget_new_tasks() -> Iterator[None]:
    """Unregister every task a test defines, leaving other modules' tasks alone."""
    before = {t.id for t in registry.all_tasks()}
    yield
    for defined in registry.all_tasks():
        if defined.id not in before:
            registry.unregister(defined.id)


def config(**changes: Any) -> Config:
    return Config(project_root=Path("/nonexistent-project"), **changes)


# -- the two forms ---------------------------------------------------------------------------


def test_the_decorator_form_registers_an_async_task() -> None:
    @task(id="tdef-hello")
    async def hello(payload: dict[str, str], ctx: Any) -> dict[str, str]:
        return {"echo": payload["message"]}

    assert isinstance(hello, Task)
    assert hello.id == "tdef-hello"
    assert (hello.is_async, hello.takes_context) == (True, True)
    assert registry.get("tdef-hello") is hello
    # `run` is the original function, callable directly in a unit test.
    assert asyncio.run(hello.run({"message": "hi"}, None)) == {"echo": "hi"}
    assert hello.defined_at.startswith(__file__)
    assert hello.file_path == __file__
    assert "tdef-hello" in repr(hello)


def test_the_call_form_takes_a_plain_function() -> None:
    def double(payload: int) -> int:
        return payload * 2

    defined = task(id="tdef-double", run=double, description="doubles")

    assert defined.run is double
    assert (defined.is_async, defined.takes_context) == (False, False)
    assert defined.run(21) == 42
    assert defined.description == "doubles"
    assert registry.get("tdef-double") is defined


@pytest.mark.parametrize(
    ("run", "takes_context"),
    [
        (lambda payload: payload, False),
        (lambda payload, ctx: payload, True),
        (lambda payload, ctx=None: payload, True),
        (lambda payload, *, flag=False: payload, False),
        (lambda *args: args, True),
        (lambda payload=None: payload, False),
    ],
    ids=["payload", "payload-ctx", "ctx-default", "keyword-only", "varargs", "payload-default"],
)
def test_run_may_take_payload_or_payload_and_ctx(run: Any, takes_context: bool) -> None:
    assert task(id="tdef-arity", run=run).takes_context is takes_context


def test_a_callable_object_works_as_run() -> None:
    class Runner:
        def __call__(self, payload: Any, ctx: Any) -> Any:
            return payload

    assert task(id="tdef-object", run=Runner()).takes_context


@pytest.mark.parametrize(
    "run",
    [lambda: None, lambda *, payload: payload],
    ids=["no-arguments", "keyword-only-payload"],
)
def test_a_run_that_cannot_take_a_payload_is_rejected(run: Any) -> None:
    with pytest.raises(InvalidOptionError) as raised:
        task(id="tdef-bad-signature", run=run)
    message = str(raised.value)
    assert "'tdef-bad-signature'" in message
    assert "(payload) or (payload, ctx)" in message
    assert registry.get("tdef-bad-signature") is None


def test_a_run_that_needs_more_than_payload_and_ctx_is_rejected() -> None:
    def needs_three(payload: Any, ctx: Any, extra: Any) -> None: ...

    with pytest.raises(InvalidOptionError, match="'tdef-three'"):
        task(id="tdef-three", run=needs_three)


def test_run_must_be_callable() -> None:
    with pytest.raises(InvalidOptionError, match=r"run of task 'tdef-x' must be callable"):
        task(id="tdef-x", run=5)  # type: ignore[call-overload]


@pytest.mark.parametrize("bad_id", ["", "   ", "has space", "x" * 129, 5, None])
def test_task_ids_must_be_short_strings_without_whitespace(bad_id: Any) -> None:
    with pytest.raises(InvalidOptionError, match="id"):
        task(id=bad_id, run=lambda payload: payload)


# -- unique ids ----------------------------------------------------------------------------


def test_a_second_definition_of_an_id_names_both_places() -> None:
    def first(payload: Any) -> None: ...

    def second(payload: Any) -> None: ...

    original = task(id="tdef-dupe", run=first)
    with pytest.raises(TaskloomError) as raised:
        task(id="tdef-dupe", run=second)

    message = str(raised.value)
    assert "'tdef-dupe'" in message
    assert f"{__file__}:{first.__code__.co_firstlineno}" in message
    assert f"{__file__}:{second.__code__.co_firstlineno}" in message
    assert registry.get("tdef-dupe") is original


def test_redefining_the_same_function_replaces_it() -> None:
    # What a reload does: the same code at the same place registers again.
    def run(payload: Any) -> None: ...

    task(id="tdef-reload", run=run)
    again = task(id="tdef-reload", run=run)
    assert registry.get("tdef-reload") is again


# -- options, validated at definition time ------------------------------------------------------


def noop(payload: Any) -> None:
    return None


@pytest.mark.parametrize(
    ("options", "fragments"),
    [
        ({"retry": {"max_attempts": 3, "tries": 1}}, ["retry of task 'tdef-opt'", "'tries'"]),
        ({"retry": {"max_attempts": 0}}, ["retry of task 'tdef-opt'", "max_attempts"]),
        ({"retry": {"factor": 0.5}}, ["retry of task 'tdef-opt'", "factor"]),
        ({"retry": 3}, ["retry of task 'tdef-opt'"]),
        ({"machine": "huge"}, ["machine of task 'tdef-opt'", "'huge'", "valid presets"]),
        ({"machine": "large1x"}, ["did you mean 'large-1x'"]),
        ({"max_duration": 4}, ["max_duration of task 'tdef-opt'", "at least 5 seconds"]),
        ({"max_duration": "2s"}, ["max_duration of task 'tdef-opt'", "'2s'"]),
        ({"max_duration": "soon"}, ["max_duration of task 'tdef-opt'"]),
        ({"ttl": "a while"}, ["ttl of task 'tdef-opt'", "'a while'"]),
        ({"ttl": -1}, ["ttl of task 'tdef-opt'"]),
        ({"queue": {"name": "tdef-q", "limit": 1}}, ["queue of task 'tdef-opt'", "limit"]),
        ({"queue": "emails"}, ["queue of task 'tdef-opt'"]),
        ({"queue": {"concurrency_limit": -1}}, ["concurrency_limit", "-1"]),
        ({"on_success": "notify"}, ["on_success", "task 'tdef-opt'", "callable", "'notify'"]),
        ({"catch_error": 42}, ["catch_error", "task 'tdef-opt'", "callable"]),
        (
            {"on_success": lambda ctx, result: None},
            ["on_success", "task 'tdef-opt'", "'result' can never be given"],
        ),
        ({"middleware": lambda payload, next: None}, ["middleware", "async"]),
        ({"retries": {"max_attempts": 2}}, ["unknown option 'retries'", "'tdef-opt'"]),
        ({"onSuccess": noop}, ["unknown option 'onSuccess'"]),
        ({"description": 5}, ["description of task 'tdef-opt'"]),
    ],
)
def test_bad_options_are_rejected_naming_the_task(
    options: dict[str, Any], fragments: list[str]
) -> None:
    with pytest.raises(InvalidOptionError) as raised:
        task(id="tdef-opt", run=noop, **options)
    message = str(raised.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert registry.get("tdef-opt") is None


def test_deprecated_hooks_warn_naming_the_task() -> None:
    with pytest.warns(DeprecationWarning, match=r"init hook of task 'tdef-old'"):
        task(id="tdef-old", run=noop, init=lambda payload: None)


def test_the_decorator_form_validates_before_the_function_exists() -> None:
    with pytest.raises(InvalidOptionError, match="max_duration of task 'tdef-early'"):
        task(id="tdef-early", max_duration=1)


def test_good_options_shape_the_spec() -> None:
    defined = task(
        id="tdef-full",
        run=noop,
        retry={"max_attempts": 5, "randomize": False},
        queue={"name": "tdef-emails", "concurrency_limit": 3},
        machine="medium-2x",
        max_duration="2m",
        ttl="10m",
        on_success=lambda ctx: None,
        on_failure=None,  # a None hook is simply absent
    )
    spec = defined.spec_for(config())

    assert spec.id == "tdef-full"
    assert spec.retry == Retry(max_attempts=5, randomize=False)
    assert (spec.queue, spec.concurrency_limit) == ("tdef-emails", 3)
    assert (spec.machine, spec.max_duration, spec.ttl_seconds) == ("medium-2x", 120, 600.0)
    assert set(defined.hooks) == {"on_success"}


def test_max_duration_is_rounded_up_to_whole_seconds() -> None:
    defined = task(id="tdef-ceil", run=noop, max_duration=5.2)
    assert defined.spec_for(config()).max_duration == 6


def test_a_queue_object_is_accepted() -> None:
    shared = queue(name="tdef-shared", concurrency_limit=2)
    spec = task(id="tdef-queue-obj", run=noop, queue=shared).spec_for(config())
    assert (spec.queue, spec.concurrency_limit) == ("tdef-shared", 2)


def test_config_supplies_what_the_task_leaves_out() -> None:
    defined = task(id="tdef-defaults", run=noop)
    cfg = config(
        machine="large-1x",
        max_duration=600,
        ttl=30,
        retries_default=Retry(max_attempts=7),
    )
    spec = defined.spec_for(cfg)
    assert spec.queue == "task/tdef-defaults"
    assert spec.concurrency_limit is None
    assert (spec.machine, spec.max_duration, spec.ttl_seconds) == ("large-1x", 600, 30.0)
    assert spec.retry == Retry(max_attempts=7)


def test_a_task_ttl_of_zero_disables_the_config_ttl() -> None:
    defined = task(id="tdef-ttl0", run=noop, ttl=0)
    assert defined.spec_for(config(ttl="1h")).ttl_seconds == 0


# -- schema tasks --------------------------------------------------------------------------


class Order(pydantic.BaseModel):
    id: int
    placed_at: datetime | None = None


def test_schema_task_validates_and_normalises_the_payload() -> None:
    @schema_task(id="tdef-order", schema=Order)
    async def process(order: Order, ctx: Any) -> int:
        return order.id

    assert process.validate_payload({"id": "7"}) == {"id": 7, "placed_at": None}
    with pytest.raises(pydantic.ValidationError):
        process.validate_payload({"id": "seven"})
    with pytest.raises(pydantic.ValidationError):
        process.validate_payload({})


def test_a_model_instance_is_dumped_to_json() -> None:
    defined = schema_task(id="tdef-instance", schema=Order, run=lambda order: order.id)
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    stored = defined.validate_payload(Order(id=3, placed_at=when))
    assert stored == {"id": 3, "placed_at": "2026-01-02T03:04:05Z"}


def test_a_callable_schema_validates_and_the_original_payload_is_stored() -> None:
    def positive(data: Any) -> int:
        if not isinstance(data, int) or data <= 0:
            raise ValueError(f"expected a positive integer, got {data!r}")
        return data * 100  # the parsed value is what `run` gets, not what is stored

    defined = schema_task(id="tdef-callable", schema=positive, run=lambda n: n)
    assert defined.validate_payload(5) == 5
    with pytest.raises(ValueError, match="positive integer"):
        defined.validate_payload(-1)


def test_a_task_without_schema_stores_the_payload_as_given() -> None:
    defined = task(id="tdef-plain", run=noop)
    payload = {"a": 1}
    assert defined.validate_payload(payload) is payload


def test_a_schema_must_be_a_model_or_callable() -> None:
    with pytest.raises(TaskloomError, match=r"schema of task 'tdef-bad-schema'"):
        schema_task(id="tdef-bad-schema", schema=42, run=noop)  # type: ignore[arg-type]
    assert registry.get("tdef-bad-schema") is None


def test_schema_task_options_are_validated_like_task() -> None:
    with pytest.raises(InvalidOptionError, match=r"machine of task 'tdef-schema-opt'"):
        schema_task(id="tdef-schema-opt", schema=Order, run=noop, machine="huge")
