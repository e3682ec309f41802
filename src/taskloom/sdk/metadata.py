"""`metadata` and `tags`: state a run publishes while it executes.

Inside a run, `metadata.set("progress", 0.5)` changes the run's metadata at once for the
run itself; the change is written to the store within a second (and when the attempt
ends, or at once with `await metadata.flush()`), so `runs.retrieve(id).metadata` shows it
while the run executes. `metadata.parent` and `metadata.root` change the parent's and the
root run's metadata the same way. Metadata is JSON, at most 256 KB per run. Outside a run
the calls do nothing and `get` returns None (as in Trigger.dev); change a run's metadata
from outside it with `runs.update_metadata`.

The work is the runtime's (`taskloom.runtime.metadata`), through the attempt's engine.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidOptionError
from ..runtime import metadata as run_metadata
from ..runtime.steps import current_attempt


class MetadataScope:
    """Metadata operations on one run: this one, its parent, or its root."""

    def __init__(self, target: str) -> None:
        self._target = target  # "self", "parent" or "root"

    def _operate(self, kind: str, key: str | None, value: Any) -> MetadataScope:
        runtime = current_attempt.get()
        if runtime is not None:  # outside a run: nothing to change
            run_metadata.operate(runtime, self._target, kind, key, value)
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
        return run_metadata.current(runtime, self._target)

    def get(self, key: str) -> Any:
        """One key's value, or None."""
        found = self.current()
        return None if found is None else found.get(key)

    async def flush(self) -> None:
        """Write pending metadata changes (and tags) to the store now."""
        runtime = current_attempt.get()
        if runtime is not None:
            await run_metadata.flush_now(runtime)


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
        if runtime is not None:
            run_metadata.add_tags(runtime, tag)


metadata = Metadata()
tags = Tags()
