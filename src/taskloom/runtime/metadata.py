"""A running attempt's metadata and tag changes, and writing them to the store.

Changes made inside a run (`metadata.set(...)`, `tags.add(...)`) are applied at once to
the attempt's own copy and queued as operations; `flush` writes them (the run's own, its
parent's and its root's) through the engine, which applies them to the stored metadata so
changes children make to a parent are not lost.
"""

from __future__ import annotations

from ..engine.engine import Engine
from .attempt import AttemptRuntime


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
