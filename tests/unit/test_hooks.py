"""Defining hooks: argument checks at definition time, global registration, deprecations."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from taskloom import task, tasks
from taskloom.errors import InvalidOptionError
from taskloom.runtime import registry
from taskloom.runtime.definition import HOOK_NAMES
from taskloom.runtime.hook_args import HOOK_PARAMETERS, bind_hook
from taskloom.runtime.hooks import GLOBAL_HOOK_NAMES, clear_global, global_hooks

DEPRECATED = ("init", "cleanup", "on_start")


@pytest.fixture(autouse=True)
def _clean_registry() -> Iterator[None]:
    known = {t.id for t in registry.all_tasks()}
    clear_global()
    yield
    clear_global()
    for defined in registry.all_tasks():
        if defined.id not in known:
            registry.unregister(defined.id)


async def run(payload: Any) -> None:
    return None


def define(task_id: str, **hooks: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return task(id=task_id, run=run, **hooks)


def test_every_task_hook_option_has_its_parameter_list() -> None:
    assert set(HOOK_NAMES) == set(HOOK_PARAMETERS)
    assert set(GLOBAL_HOOK_NAMES) <= set(HOOK_NAMES)
    assert set(HOOK_NAMES) - set(GLOBAL_HOOK_NAMES) == {"init", "cleanup"}


# --- parameters checked at definition time ------------------------------------------


@pytest.mark.parametrize("kind", sorted(HOOK_PARAMETERS))
def test_a_parameter_a_hook_can_never_be_given_fails_at_definition(kind: str) -> None:
    async def hook(ctx: Any, colour: Any) -> None:
        return None

    allowed = ", ".join(HOOK_PARAMETERS[kind])
    expected = (
        f"{kind} hook of task 'bad-hook': parameter 'colour' can never be given; "
        f"{kind} hooks may take {allowed} (or **kwargs)"
    )
    with pytest.raises(InvalidOptionError, match=f"^{re.escape(expected)}$"):
        define("bad-hook", **{kind: hook})
    assert registry.get("bad-hook") is None


@pytest.mark.parametrize("kind", sorted(GLOBAL_HOOK_NAMES))
def test_a_bad_global_hook_names_its_registration(kind: str) -> None:
    async def hook(payload: Any, output_value: Any) -> None:
        return None

    with (
        warnings.catch_warnings(),
        pytest.raises(
            InvalidOptionError,
            match=re.escape(
                f"{kind} hook 'audit' of all tasks (global): parameter 'output_value' can "
                f"never be given; {kind} hooks may take {', '.join(HOOK_PARAMETERS[kind])}"
            ),
        ),
    ):
        warnings.simplefilter("ignore", DeprecationWarning)
        getattr(tasks, kind)("audit", hook)
    assert global_hooks(kind) == []


@pytest.mark.parametrize("kind", sorted(HOOK_PARAMETERS))
def test_hooks_may_declare_any_allowed_names_or_kwargs(kind: str) -> None:
    namespace: dict[str, Any] = {}
    parameters = ", ".join(HOOK_PARAMETERS[kind])
    exec(f"async def every({parameters}): pass", namespace)
    exec("async def loose(**kwargs): pass", namespace)

    every = bind_hook(kind, namespace["every"], owner="task 't'", scope="task")
    loose = bind_hook(kind, namespace["loose"], owner="task 't'", scope="task")

    assert every.names == HOOK_PARAMETERS[kind]
    assert loose.names == HOOK_PARAMETERS[kind]


def test_a_hook_gets_only_the_names_it_declares() -> None:
    bound = bind_hook("on_success", lambda output, ctx: None, owner="task 't'", scope="task")

    offered = {"payload": 1, "output": 2, "ctx": 3, "init": 4, "signal": 5, "task": "t"}
    assert bound.names == ("output", "ctx")
    assert bound.arguments(offered) == {"output": 2, "ctx": 3}


def test_positional_only_parameters_are_rejected() -> None:
    def hook(ctx: Any, /) -> None:
        return None

    with pytest.raises(
        InvalidOptionError,
        match=re.escape(
            "on_failure hook of task 'positional': parameter 'ctx' is positional-only, but "
            "hooks are called with keyword arguments; it may use payload, error, ctx, init, "
            "signal, task"
        ),
    ):
        define("positional", on_failure=hook)


@pytest.mark.parametrize("value", [42, "on_success", None.__class__])
def test_a_hook_that_is_not_callable_fails_at_definition(value: Any) -> None:
    if callable(value):
        value = [value]
    with pytest.raises(
        InvalidOptionError,
        match=re.escape(f"on_success hook of task 'not-callable' must be callable, got {value!r}"),
    ):
        define("not-callable", on_success=value)


def test_a_global_hook_that_is_not_callable_fails_at_registration() -> None:
    with pytest.raises(
        InvalidOptionError,
        match=re.escape("on_complete hook 'metrics' of all tasks (global) must be callable"),
    ):
        tasks.on_complete("metrics", 3)  # type: ignore[call-overload]


def test_middleware_must_be_async() -> None:
    def sync_middleware(next: Any) -> None:
        next()

    with pytest.raises(
        InvalidOptionError,
        match=re.escape(
            "middleware hook of task 'sync-mw' must be an async function (`async def`) that "
            "awaits next(); got test_middleware_must_be_async.<locals>.sync_middleware"
        ),
    ):
        define("sync-mw", middleware=sync_middleware)
    with pytest.raises(InvalidOptionError, match="middleware hook 'db' of all tasks"):
        tasks.middleware("db", sync_middleware)


def test_an_async_callable_object_is_async_middleware() -> None:
    class Middleware:
        async def __call__(self, next: Any) -> None:
            await next()

    bound = bind_hook("middleware", Middleware(), owner="task 't'", scope="task")

    assert bound.is_async
    assert bound.names == ("next",)


def test_an_unknown_hook_option_names_the_valid_ones() -> None:
    with pytest.raises(InvalidOptionError, match="unknown option 'on_sucess' for task 'typo'"):
        define("typo", on_sucess=lambda: None)


# --- deprecated hooks -----------------------------------------------------------------


def test_deprecated_task_hooks_warn_once_each_per_task() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        task(
            id="old-style",
            run=run,
            init=lambda: {"db": 1},
            cleanup=lambda: None,
            on_start=lambda: None,
            on_start_attempt=lambda: None,
            on_success=lambda: None,
        )
        task(id="other-old-style", run=run, init=lambda: None)

    messages = [str(w.message) for w in caught]
    assert all(w.category is DeprecationWarning for w in caught)
    assert messages == [
        "the init hook of task 'old-style' is deprecated: use middleware and locals instead",
        "the cleanup hook of task 'old-style' is deprecated: use middleware (code after "
        "`await next()`) instead",
        "the on_start hook of task 'old-style' is deprecated: use on_start_attempt (check "
        "ctx.attempt.number == 1) instead",
        "the init hook of task 'other-old-style' is deprecated: use middleware and locals instead",
    ]
    assert {w.filename for w in caught} == {__file__}  # points at the task definition


@pytest.mark.parametrize("kind", DEPRECATED)
def test_each_deprecated_hook_warns_with_pytest_warns(kind: str) -> None:
    with pytest.warns(DeprecationWarning, match=f"the {kind} hook of task 'dep' is deprecated"):
        task(id="dep", run=run, **{kind: lambda: None})


def test_deprecated_hooks_warn_in_the_decorator_form_too() -> None:
    with pytest.warns(DeprecationWarning, match="the cleanup hook of task 'decorated'"):

        @task(id="decorated", cleanup=lambda: None)
        async def decorated(payload: Any) -> None:
            return None


def test_global_on_start_is_deprecated() -> None:
    with pytest.warns(DeprecationWarning, match="tasks.on_start is deprecated: use on_start_"):
        tasks.on_start(lambda ctx: None)
    assert len(global_hooks("on_start")) == 1


# --- global registration --------------------------------------------------------------


def test_global_hooks_register_by_call_name_and_decorator_in_order() -> None:
    def first(ctx: Any) -> None:
        return None

    def second(ctx: Any) -> None:
        return None

    tasks.on_failure(first)
    tasks.on_failure("alert", second)

    @tasks.on_failure("page")
    def third(error: Any) -> None:
        return None

    @tasks.on_failure
    def fourth(error: Any) -> None:
        return None

    hooks = global_hooks("on_failure")
    assert [h.fn for h in hooks] == [first, second, third, fourth]
    assert [h.label for h in hooks] == [first.__qualname__, "alert", "page", fourth.__qualname__]
    assert {h.scope for h in hooks} == {"global"}
    assert third.__name__ == "third"  # the decorator returns the function itself


def test_a_name_registered_again_replaces_the_earlier_hook_in_place() -> None:
    def old(ctx: Any) -> None:
        return None

    def new(ctx: Any) -> None:
        return None

    def other(ctx: Any) -> None:
        return None

    tasks.on_success("notify", old)
    tasks.on_success(other)
    tasks.on_success("notify", new)

    assert [h.fn for h in global_hooks("on_success")] == [new, other]


def test_unnamed_registrations_accumulate() -> None:
    def hook(ctx: Any) -> None:
        return None

    tasks.on_complete(hook)
    tasks.on_complete(hook)

    assert len(global_hooks("on_complete")) == 2


def test_global_hooks_are_per_kind() -> None:
    async def middleware(next: Any) -> None:
        await next()

    tasks.middleware("db", middleware)
    tasks.catch_error("db", lambda error: None)

    assert [h.kind for h in global_hooks("middleware")] == ["middleware"]
    assert [h.kind for h in global_hooks("catch_error")] == ["catch_error"]
    assert global_hooks("on_wait") == []


def test_every_global_kind_is_on_the_tasks_namespace() -> None:
    for kind in GLOBAL_HOOK_NAMES:
        assert getattr(tasks, kind).kind == kind


def test_on_cancel_outside_a_run_is_global() -> None:
    def hook(signal: Any) -> None:
        return None

    tasks.on_cancel(hook)

    assert [(h.fn, h.scope) for h in global_hooks("on_cancel")] == [(hook, "global")]
