"""Global lifecycle hooks, registered for every task through the `tasks` namespace.

Each registration may carry a name; registering the same name again replaces the earlier
hook (so a module imported twice does not register twice).

Called inside a running attempt (from `run`, middleware or a hook), `tasks.on_cancel(fn)`
and the other hooks that can still fire (`RUN_SCOPED`) apply to that run only: the
seed's streaming example saves partial work captured in a closure this way. Registering
them globally there would add one more hook to the warm executor on every run.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Protocol, overload

from ..errors import TaskloomError
from .hook_args import DEPRECATED_HOOKS, BoundHook, bind_hook

GLOBAL_HOOK_NAMES = (
    "on_start_attempt",
    "on_start",
    "on_success",
    "on_failure",
    "on_complete",
    "on_wait",
    "on_resume",
    "on_cancel",
    "catch_error",
    "middleware",
)

RUN_SCOPED = frozenset(
    {"on_success", "on_failure", "on_complete", "on_wait", "on_resume", "on_cancel", "catch_error"}
)
"""Hooks that `tasks.<kind>(fn)` registers for the current run when called inside one."""

Hook = Callable[..., Any]


class RunHookTarget(Protocol):
    """What a running attempt offers SDK code: hooks registered from inside `run`, and the
    `on_wait` / `on_resume` call sites for waits (`wait` has `.type`: "duration", "task",
    "batch" or "token")."""

    @property
    def task_id(self) -> str: ...

    def add_run_hook(self, hook: BoundHook) -> None: ...

    async def fire_wait(self, wait: Any) -> None: ...

    async def fire_resume(self, wait: Any) -> None: ...


current_run_hooks: ContextVar[RunHookTarget | None] = ContextVar("taskloom_run_hooks", default=None)
"""The attempt running in this context (None outside a run). A wait does
``await current_run_hooks.get().fire_wait(info)`` before it suspends and
``fire_resume(info)`` when it continues."""

_lock = threading.Lock()
_global: dict[str, list[tuple[str | None, BoundHook]]] = {name: [] for name in GLOBAL_HOOK_NAMES}


def add_global(kind: str, name: str | None, hook: Hook) -> Hook:
    """Register `hook` for every task; a repeated `name` replaces the earlier one.

    Inside a running attempt, the `RUN_SCOPED` kinds register for that run only; the
    others (middleware, on_start, on_start_attempt) could not run any more, and raise.
    """
    target = current_run_hooks.get()
    if target is not None:
        if kind not in RUN_SCOPED:
            raise TaskloomError(
                f"tasks.{kind}(...) was called inside a run of task {target.task_id!r}, where "
                f"it could never run: this attempt is past its {kind} hooks. Register global "
                "hooks at module level, in init.py of your task directory"
            )
        owner = f"this run of task {target.task_id!r}"
        target.add_run_hook(bind_hook(kind, hook, owner=owner, scope="run", name=name))
        return hook
    bound = bind_hook(kind, hook, owner="all tasks (global)", scope="global", name=name)
    if kind in DEPRECATED_HOOKS:
        warnings.warn(
            f"tasks.{kind} is deprecated: {DEPRECATED_HOOKS[kind]}",
            DeprecationWarning,
            stacklevel=3,
        )
    global _snapshot  # noqa: PLW0603 - the registry's cache
    with _lock:
        _snapshot = None
        entries = _global[kind]
        if name is not None:
            for index, (existing, _) in enumerate(entries):
                if existing == name:
                    entries[index] = (name, bound)
                    return hook
        entries.append((name, bound))
    return hook


def global_hooks(kind: str) -> list[BoundHook]:
    """The global hooks of one kind, in registration order."""
    with _lock:
        return [hook for _, hook in _global[kind]]


_snapshot: dict[str, tuple[BoundHook, ...]] | None = None


def global_snapshot() -> dict[str, tuple[BoundHook, ...]]:
    """Every kind's global hooks (kinds without hooks left out). Cached until the next
    registration: every attempt takes one, so it must cost nothing."""
    global _snapshot  # noqa: PLW0603 - the registry's cache
    found = _snapshot
    if found is None:
        with _lock:
            found = {
                kind: tuple(hook for _, hook in entries)
                for kind, entries in _global.items()
                if entries
            }
            _snapshot = found
    return found


def clear_global() -> None:
    """Forget every global hook (for tests)."""
    global _snapshot  # noqa: PLW0603 - the registry's cache
    with _lock:
        _snapshot = None
        for entries in _global.values():
            entries.clear()


class Registrar:
    """`tasks.on_success(fn)`, `tasks.on_success("name", fn)` or `@tasks.on_success("name")`."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    @overload
    def __call__(self, name_or_hook: Hook, hook: None = None) -> Hook: ...

    @overload
    def __call__(self, name_or_hook: str, hook: Hook) -> Hook: ...

    @overload
    def __call__(self, name_or_hook: str, hook: None = None) -> Callable[[Hook], Hook]: ...

    def __call__(
        self, name_or_hook: str | Hook, hook: Hook | None = None
    ) -> Hook | Callable[[Hook], Hook]:
        if isinstance(name_or_hook, str):
            name = name_or_hook
            if hook is not None:
                return add_global(self.kind, name, hook)
            return lambda fn: add_global(self.kind, name, fn)
        return add_global(self.kind, None, name_or_hook)
