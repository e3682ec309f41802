"""Which keyword arguments each lifecycle hook may take, checked when the hook is defined.

A hook declares the names it wants (or `**kwargs` for all of them) and is called with
only those. A parameter it can never be given is an error at definition time that names
the hook, the parameter and the names it may use.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidOptionError

HOOK_PARAMETERS: dict[str, tuple[str, ...]] = {
    "middleware": ("payload", "ctx", "next", "signal", "task"),
    "on_start_attempt": ("payload", "ctx", "signal", "task", "init"),
    "on_start": ("payload", "ctx", "signal", "task", "init"),
    "init": ("payload", "ctx", "signal", "task"),
    "on_success": ("payload", "output", "ctx", "init", "signal", "task"),
    "on_failure": ("payload", "error", "ctx", "init", "signal", "task"),
    "on_complete": ("payload", "result", "ctx", "init", "task"),
    "on_wait": ("payload", "wait", "ctx", "task"),
    "on_resume": ("payload", "wait", "ctx", "task"),
    "on_cancel": ("payload", "ctx", "signal", "run_promise", "init", "task"),
    "catch_error": ("payload", "error", "ctx", "retry_at", "retry_delay_ms", "task"),
    "cleanup": ("payload", "ctx", "init", "task"),
}

DEPRECATED_HOOKS = {
    "init": "use middleware and locals instead",
    "cleanup": "use middleware (code after `await next()`) instead",
    "on_start": "use on_start_attempt (check ctx.attempt.number == 1) instead",
}


@dataclass(frozen=True, slots=True)
class BoundHook:
    """A validated hook: the function, the argument names to pass, how to call it."""

    kind: str
    fn: Callable[..., Any]
    names: tuple[str, ...]
    is_async: bool
    label: str  # the registration name, else the function's qualified name
    scope: str  # "task", "global" or "run"
    name: str | None = None  # the registration name, if one was given

    def arguments(self, available: Mapping[str, Any]) -> dict[str, Any]:
        """The keyword arguments this hook takes, picked from what the call site offers."""
        return {name: available[name] for name in self.names if name in available}

    async def call(self, available: Mapping[str, Any]) -> Any:
        """Call the hook (awaiting it when async) with the arguments it declares."""
        result = self.fn(**self.arguments(available))
        if self.is_async or inspect.isawaitable(result):
            return await result
        return result


def _label(fn: Callable[..., Any], name: str | None) -> str:
    if name:
        return name
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", repr(fn)))


def bind_hook(kind: str, fn: Any, *, owner: str, scope: str, name: str | None = None) -> BoundHook:
    """Validate a hook for `kind`; `owner` names where it was given (for error messages)."""
    allowed = HOOK_PARAMETERS[kind]
    where = f"{kind} hook{f' {name!r}' if name else ''} of {owner}"
    if not callable(fn):
        raise InvalidOptionError(f"{where} must be callable, got {fn!r}")
    is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - async callable objects
    )
    if kind == "middleware" and not is_async:
        raise InvalidOptionError(
            f"{where} must be an async function (`async def`) that awaits next(); "
            f"got {_label(fn, None)}"
        )
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return BoundHook(kind, fn, allowed, is_async, _label(fn, name), scope, name)
    names: list[str] = []
    takes_all = False
    for parameter in signature.parameters.values():
        if parameter.kind is parameter.VAR_KEYWORD:
            takes_all = True
        elif parameter.kind is parameter.VAR_POSITIONAL:
            continue
        elif parameter.kind is parameter.POSITIONAL_ONLY:
            raise InvalidOptionError(
                f"{where}: parameter {parameter.name!r} is positional-only, but hooks are "
                f"called with keyword arguments; it may use {', '.join(allowed)}"
            )
        elif parameter.name not in allowed:
            raise InvalidOptionError(
                f"{where}: parameter {parameter.name!r} can never be given; "
                f"{kind} hooks may take {', '.join(allowed)} (or **kwargs)"
            )
        else:
            names.append(parameter.name)
    return BoundHook(
        kind, fn, allowed if takes_all else tuple(names), is_async, _label(fn, name), scope, name
    )
