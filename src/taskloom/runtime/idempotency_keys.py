"""Idempotency keys and their scopes, as trigger options made inside and outside a run use
them.

A key is kept for 30 days by default (`idempotency_key_ttl`), and for as long as its run
is queued, running, completed or cancelled; it is cleared when the run fails or expires,
so a new trigger with it creates a new run. Keys are per task.

Scopes (as in Trigger.dev): `"run"` ties the key to the run that triggers (the default
for keys made inside a run, and for plain strings passed inside a run), `"attempt"` to
that run's current attempt, `"global"` to nothing (plain strings outside a run).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import InvalidOptionError
from .context import get_context

SCOPES = ("run", "attempt", "global")


class IdempotencyKey(str):
    """A key made by `idempotency_keys.create` (a hash of its parts and scope)."""

    scope: str
    parts: tuple[str, ...]

    def __new__(cls, value: str, scope: str, parts: tuple[str, ...]) -> IdempotencyKey:
        made = super().__new__(cls, value)
        made.scope = scope
        made.parts = parts
        return made


def key_parts(key: str | Sequence[str]) -> tuple[str, ...]:
    """A key's parts: one string, or a non-empty list of non-empty strings."""
    parts = (key,) if isinstance(key, str) else tuple(key)
    if not parts or not all(isinstance(p, str) and p for p in parts):
        raise InvalidOptionError(
            f"an idempotency key is a non-empty string or list of strings, got {key!r}"
        )
    return parts


def make_key(
    key: str | Sequence[str],
    scope: str = "run",
    *,
    run_id: str | None = None,
    attempt: int | None = None,
) -> IdempotencyKey:
    """The key for `key` in a scope; `run_id`/`attempt` default to the current run's."""
    if scope not in SCOPES:
        raise InvalidOptionError(f"idempotency key scope must be one of {SCOPES}, got {scope!r}")
    parts = key_parts(key)
    ctx = get_context()
    if run_id is None and ctx is not None:
        run_id = ctx.run.id
        attempt = ctx.attempt.number if attempt is None else attempt
    material = "-".join(parts)
    if scope in ("run", "attempt") and run_id is not None:
        material += f"\x00run:{run_id}"
        if scope == "attempt":
            material += f"\x00attempt:{attempt}"
    return IdempotencyKey(hashlib.sha256(material.encode()).hexdigest(), scope, parts)


def scoped_options(options: Mapping[str, Any]) -> Mapping[str, Any]:
    """Trigger options with a plain-string key scoped to the current run (inside a run)."""
    key = options.get("idempotency_key")
    if key is None or isinstance(key, IdempotencyKey) or get_context() is None:
        return options
    return {**options, "idempotency_key": make_key(key, "run")}
