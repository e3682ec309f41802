"""Run metadata operations: pure functions applied to a dict in the run, and again to the
stored metadata when the run flushes them (`apply_changes`, in the engine's transaction).

An operation is `[kind, key, value]`: set, delete, append, remove, increment, replace.
Keys are top-level names; `__proto__`-style keys are refused as in Trigger.dev.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from ..errors import InvalidOptionError
from ..store.sql.session import Session
from .events import METADATA, Journal

METADATA_LIMIT_BYTES = 256 * 1024
FORBIDDEN_KEYS = frozenset({"__proto__", "constructor", "prototype"})

Operation = list[Any]


def check_key(key: object) -> str:
    """A metadata key: a non-empty string that is not a prototype name."""
    if not isinstance(key, str) or not key:
        raise InvalidOptionError(f"a metadata key must be a non-empty string, got {key!r}")
    if key in FORBIDDEN_KEYS:
        raise InvalidOptionError(f"metadata key {key!r} is not allowed")
    return key


def apply(metadata: dict[str, Any], operation: Operation) -> dict[str, Any]:
    """`metadata` after one operation (a new dict; the input is not changed)."""
    kind, key, value = operation
    result = copy.copy(metadata)
    if kind == "replace":
        if not isinstance(value, dict):
            raise InvalidOptionError(f"metadata.replace needs a dict, got {type(value).__name__}")
        return dict(value)
    check_key(key)
    if kind == "set":
        result[key] = value
    elif kind == "delete":
        result.pop(key, None)
    elif kind == "append":
        existing = result.get(key)
        if existing is None:
            result[key] = [value]
        elif isinstance(existing, list):
            result[key] = [*existing, value]
        else:
            result[key] = [existing, value]
    elif kind == "remove":
        existing = result.get(key)
        if isinstance(existing, list):
            result[key] = [item for item in existing if item != value]
    elif kind == "increment":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidOptionError(f"metadata.increment needs a number, got {value!r}")
        current = result.get(key, 0)
        if isinstance(current, bool) or not isinstance(current, int | float):
            raise InvalidOptionError(
                f"metadata key {key!r} holds {type(current).__name__}, which cannot be incremented"
            )
        result[key] = current + value
    else:
        raise InvalidOptionError(f"unknown metadata operation {kind!r}")
    return result


def apply_all(metadata: dict[str, Any], operations: list[Operation]) -> dict[str, Any]:
    """`metadata` after every operation in order."""
    for operation in operations:
        metadata = apply(metadata, operation)
    return metadata


def merged(current: bytes | None, operations: list[Operation]) -> bytes | None:
    """Stored metadata (JSON bytes) after `operations`, or None when the result would be
    over `METADATA_LIMIT_BYTES` (the change is refused)."""
    updated = orjson.dumps(apply_all(orjson.loads(current) if current else {}, operations))
    return None if len(updated) > METADATA_LIMIT_BYTES else updated


def apply_changes(
    session: Session,
    run_id: str,
    tags: list[str] | None,
    changes: list[tuple[str, list[Operation]]],
    journal: Journal,
) -> list[str]:
    """Set a run's tags (when given) and apply operations to the stored metadata of runs
    (the run, its parent, its root); journal what changed. A change that would take a
    run's metadata over the limit is not applied; the ids of such runs are returned."""
    if tags is not None:
        session.run_tags_set(run_id, orjson.dumps(tags))
        journal.add(run_id, None, METADATA, {"tags": tags})
    refused = []
    for target, operations in changes:
        found = session.run_metadata_get(target)
        if found is None:
            continue
        updated = merged(found[0], operations)
        if updated is None:
            refused.append(target)
            continue
        session.run_metadata_set(target, updated)
        journal.add(target, None, METADATA, {"operations": operations})
    return refused
