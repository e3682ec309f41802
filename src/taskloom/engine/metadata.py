"""Run metadata operations, pure: applied to a dict in the run and again in the store.

An operation is `[kind, key, value]`: set, delete, append, remove, increment, replace.
Keys are top-level names; `__proto__`-style keys are refused as in Trigger.dev.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from ..errors import InvalidOptionError

METADATA_LIMIT_BYTES = 256 * 1024
KINDS = frozenset({"set", "delete", "append", "remove", "increment", "replace"})
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
