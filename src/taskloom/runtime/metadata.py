"""A running attempt's metadata and tag changes, and writing them to the store.

Changes made inside a run (`metadata.set(...)`, `tags.add(...)`) are applied at once to
the attempt's own copy and queued as operations; `flush` writes them (the run's own, its
parent's and its root's) through the attempt's engine, which applies them to the stored
metadata so changes children make to a parent are not lost. The sdk's `metadata` and
`tags` come here inside a run (outside one they do nothing).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from ..engine import metadata as metadata_ops
from ..engine.engine import Engine
from ..engine.triggering import MAX_TAG_LENGTH, MAX_TAGS
from ..errors import InvalidOptionError, PayloadError
from .steps import AttemptRuntime


def _size_checked(metadata: dict[str, Any], what: str) -> dict[str, Any]:
    try:
        size = len(orjson.dumps(metadata))
    except TypeError as error:
        raise PayloadError(f"{what}: metadata must be JSON serialisable ({error})") from None
    if size > metadata_ops.METADATA_LIMIT_BYTES:
        raise PayloadError(
            f"{what}: metadata would be {size:,} bytes, over the limit of "
            f"{metadata_ops.METADATA_LIMIT_BYTES:,} bytes"
        )
    return metadata


def operate(runtime: AttemptRuntime, target: str, kind: str, key: str | None, value: Any) -> None:
    """Apply one operation (`[kind, key, value]`) to the metadata of the running run
    (`target` "self": at once, written later), or queue it for its parent's or root's."""
    operation = [kind, key, value]
    try:
        orjson.dumps(value)
    except TypeError as error:
        raise PayloadError(
            f"metadata.{kind}({key!r}, ...): the value is not JSON serialisable ({error})"
        ) from None
    if target == "self":
        updated = metadata_ops.apply(runtime.metadata, operation)
        runtime.metadata = _size_checked(updated, f"metadata.{kind}({key!r})")
        runtime.self_ops.append(operation)
        return
    if target == "parent" and runtime.ctx.run.parent_run_id is None:
        return  # no parent: as outside a run
    metadata_ops.apply({}, operation)  # validate now, apply in the store
    ops = runtime.parent_ops if target == "parent" else runtime.root_ops
    ops.append(operation)


def target_run(runtime: AttemptRuntime, target: str) -> str | None:
    """The id of the run a scope acts on: this one, its parent (if any) or its root."""
    run = runtime.ctx.run
    if target == "self":
        return run.id
    if target == "parent":
        return run.parent_run_id
    return run.root_run_id or run.id


def current(runtime: AttemptRuntime, target: str) -> dict[str, Any] | None:
    """The whole metadata: this run's as it is now, the parent's or root's as stored."""
    if target == "self":
        return dict(runtime.metadata)
    run_id = target_run(runtime, target)
    if run_id is None:
        return None
    return runtime.engine.retrieve(run_id, with_attempts=False).metadata


def add_tags(runtime: AttemptRuntime, tag: str | list[str]) -> None:
    """Add tags to the running run (at most 10 in all, 1-128 characters each); they are
    written with the metadata."""
    new = [tag] if isinstance(tag, str) else list(tag)
    for item in new:
        if not isinstance(item, str) or not 1 <= len(item) <= MAX_TAG_LENGTH:
            raise InvalidOptionError(
                f"tags must be strings of 1 to {MAX_TAG_LENGTH} characters, got {item!r}"
            )
    merged = list(dict.fromkeys([*runtime.tags, *new]))
    if len(merged) > MAX_TAGS:
        raise InvalidOptionError(
            f"run {runtime.run_id} would have {len(merged)} tags; a run may have at most "
            f"{MAX_TAGS} (it has {runtime.tags})"
        )
    if merged != runtime.tags:
        runtime.tags = merged
        runtime.tags_dirty = True


def has_pending(runtime: AttemptRuntime) -> bool:
    """True when the attempt has metadata or tag changes not written yet."""
    return bool(runtime.self_ops or runtime.parent_ops or runtime.root_ops or runtime.tags_dirty)


def flush(runtime: AttemptRuntime, engine: Engine) -> list[str]:
    """Write an attempt's pending operations and tags (blocking); return the runs whose
    change was refused (it would take their metadata over the size limit)."""
    if not has_pending(runtime):
        return []
    tags = list(runtime.tags) if runtime.tags_dirty else None
    runtime.tags_dirty = False
    run = runtime.ctx.run
    changes: list[tuple[str, list[list[object]]]] = []
    for target, ops in (
        (run.id, runtime.self_ops),
        (run.parent_run_id, runtime.parent_ops),
        (run.root_run_id or run.id, runtime.root_ops),
    ):
        if target is not None and ops:
            changes.append((target, list(ops)))
    runtime.self_ops, runtime.parent_ops, runtime.root_ops = [], [], []
    return engine.run_metadata_update(runtime.run_id, tags=tags, changes=changes)


async def flush_now(runtime: AttemptRuntime) -> None:
    """`await metadata.flush()`: write pending changes through the attempt's engine now;
    PayloadError when a change was refused for its size."""
    refused = await asyncio.to_thread(flush, runtime, runtime.engine)
    if refused:
        raise PayloadError(
            f"metadata changes to run(s) {', '.join(refused)} were not applied: they "
            f"would take the metadata over {metadata_ops.METADATA_LIMIT_BYTES:,} bytes"
        )
