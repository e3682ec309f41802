"""`metadata` and `tags`: state a run publishes while it executes.

Inside a run, `metadata.set("progress", 0.5)` changes the run's metadata at once for the
run itself; the change is written to the store within a second (and when the attempt
ends, or at once with `await metadata.flush()`), so `runs.retrieve(id).metadata` shows it
while the run executes. `metadata.parent` and `metadata.root` change the parent's and the
root run's metadata the same way. Metadata is JSON, at most 256 KB per run. Outside a run
the calls do nothing and `get` returns None (as in Trigger.dev).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from ..engine import metadata as metadata_ops
from ..errors import InvalidOptionError, PayloadError
from ..runtime.attempt import AttemptRuntime, current_attempt
from ..runtime.metadata import flush
from .client import current_engine

MAX_TAGS = 10
MAX_TAG_LENGTH = 128


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


class MetadataScope:
    """Metadata operations on one run: this one, its parent, or its root."""

    def __init__(self, target: str) -> None:
        self._target = target  # "self", "parent" or "root"

    def _operate(self, kind: str, key: str | None, value: Any) -> MetadataScope:
        runtime = current_attempt.get()
        if runtime is None:
            return self  # outside a run: nothing to change
        operation = [kind, key, value]
        try:
            orjson.dumps(value)
        except TypeError as error:
            raise PayloadError(
                f"metadata.{kind}({key!r}, ...): the value is not JSON serialisable ({error})"
            ) from None
        if self._target == "self":
            updated = metadata_ops.apply(runtime.metadata, operation)
            runtime.metadata = _size_checked(updated, f"metadata.{kind}({key!r})")
            runtime.self_ops.append(operation)
        else:
            if self._target == "parent" and runtime.ctx.run.parent_run_id is None:
                return self  # no parent: as outside a run
            metadata_ops.apply({}, operation)  # validate now, apply in the store
            ops = runtime.parent_ops if self._target == "parent" else runtime.root_ops
            ops.append(operation)
        return self

    def set(self, key: str, value: Any) -> MetadataScope:
        """Set a key (chainable)."""
        return self._operate("set", key, value)

    def delete(self, key: str) -> MetadataScope:
        """Remove a key."""
        return self._operate("delete", key, None)

    def append(self, key: str, value: Any) -> MetadataScope:
        """Append to the list at a key (creating it)."""
        return self._operate("append", key, value)

    def remove(self, key: str, value: Any) -> MetadataScope:
        """Remove every equal item from the list at a key."""
        return self._operate("remove", key, value)

    def increment(self, key: str, amount: float = 1) -> MetadataScope:
        """Add to the number at a key (0 if absent)."""
        return self._operate("increment", key, amount)

    def decrement(self, key: str, amount: float = 1) -> MetadataScope:
        """Subtract from the number at a key."""
        return self._operate("increment", key, -amount)

    def replace(self, metadata: dict[str, Any]) -> MetadataScope:
        """Replace all of the metadata."""
        if not isinstance(metadata, dict):
            raise InvalidOptionError(f"metadata.replace needs a dict, got {metadata!r}")
        return self._operate("replace", None, metadata)

    def current(self) -> dict[str, Any] | None:
        """The whole metadata (this run's as it is now; the parent's/root's as stored)."""
        runtime = current_attempt.get()
        if runtime is None:
            return None
        if self._target == "self":
            return dict(runtime.metadata)
        run_id = _target_run(runtime, self._target)
        if run_id is None:
            return None
        return current_engine().retrieve(run_id, with_attempts=False).metadata

    def get(self, key: str) -> Any:
        """One key's value, or None."""
        found = self.current()
        return None if found is None else found.get(key)

    async def flush(self) -> None:
        """Write pending metadata changes (and tags) to the store now."""
        runtime = current_attempt.get()
        if runtime is not None:
            refused = await asyncio.to_thread(flush, runtime, current_engine())
            if refused:
                raise PayloadError(
                    f"metadata changes to run(s) {', '.join(refused)} were not applied: they "
                    f"would take the metadata over {metadata_ops.METADATA_LIMIT_BYTES:,} bytes"
                )


def _target_run(runtime: AttemptRuntime, target: str) -> str | None:
    run = runtime.ctx.run
    if target == "parent":
        return run.parent_run_id
    return run.root_run_id or run.id


class Metadata(MetadataScope):
    """The `metadata` namespace; `metadata.parent` and `metadata.root` act on those runs."""

    def __init__(self) -> None:
        super().__init__("self")
        self.parent = MetadataScope("parent")
        self.root = MetadataScope("root")


class Tags:
    """The `tags` namespace: `tags.add("user:123")` inside a run."""

    def add(self, tag: str | list[str]) -> None:
        """Add tags to the running run (at most 10 tags in all, 1-128 characters each)."""
        runtime = current_attempt.get()
        if runtime is None:
            return
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


metadata = Metadata()
tags = Tags()
