"""`locals`: values shared by middleware, hooks and `run` within one attempt.

>>> DbLocal = locals.create("db")
>>> # inside a run:  locals.set(DbLocal, conn); locals.get_or_throw(DbLocal)
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from ..errors import TaskloomError

T = TypeVar("T")

attempt_locals: ContextVar[dict[LocalKey[Any], Any] | None] = ContextVar(
    "taskloom_locals", default=None
)


@dataclass(frozen=True, eq=False, slots=True)
class LocalKey(Generic[T]):
    """A typed key created by `locals.create(name)`; each call makes a distinct key."""

    name: str

    def __repr__(self) -> str:
        return f"LocalKey({self.name!r})"


def _store(action: str, key: LocalKey[Any]) -> dict[LocalKey[Any], Any]:
    values = attempt_locals.get()
    if values is None:
        raise TaskloomError(
            f"locals.{action}({key.name!r}) was called outside a run: locals live for one "
            "attempt and are shared by its middleware, hooks and run function"
        )
    return values


class Locals:
    """The `locals` namespace."""

    def create(self, name: str) -> LocalKey[Any]:
        """A new key for a value scoped to the current attempt."""
        if not isinstance(name, str) or not name:
            raise TaskloomError(f"locals.create needs a non-empty name, got {name!r}")
        return LocalKey(name)

    def set(self, key: LocalKey[T], value: T) -> T:
        """Store `value` for this attempt; returns it."""
        _store("set", key)[key] = value
        return value

    def get(self, key: LocalKey[T]) -> T | None:
        """The value stored for this attempt, or None."""
        values = attempt_locals.get()
        return None if values is None else cast("T | None", values.get(key))

    def get_or_throw(self, key: LocalKey[T]) -> T:
        """The value stored for this attempt, or TaskloomError naming the local."""
        values = _store("get_or_throw", key)
        if key not in values:
            raise TaskloomError(
                f"local {key.name!r} has not been set in this attempt; set it with "
                f"locals.set(...) in a middleware or hook that runs before this code"
            )
        return cast("T", values[key])


locals = Locals()
