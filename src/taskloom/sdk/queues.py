"""The `queues` namespace: list, inspect, pause, resume and override queue limits, through
the client."""

from __future__ import annotations

import asyncio
import builtins

from ..types import QueueDetails
from .client import current_client


class Queues:
    """The `queues` namespace: inspect and manage queues. Each call has an async twin."""

    def list(self) -> list[QueueDetails]:
        """Every queue workers have declared, with running and queued counts."""
        return current_client().queue_list()

    def retrieve(self, name: str) -> QueueDetails:
        """One queue: counts, limit in force, override, paused."""
        return current_client().queue_retrieve(name)

    def pause(self, name: str) -> QueueDetails:
        """Start nothing new from this queue; executing runs finish."""
        return current_client().queue_pause(name)

    def resume(self, name: str) -> QueueDetails:
        """Start runs from this queue again."""
        return current_client().queue_resume(name)

    def override_concurrency_limit(self, name: str, limit: int) -> QueueDetails:
        """Replace the queue's limit from code until `reset_concurrency_limit`."""
        return current_client().queue_override_limit(name, limit)

    def reset_concurrency_limit(self, name: str) -> QueueDetails:
        """Go back to the limit declared in code."""
        return current_client().queue_reset_limit(name)

    async def alist(self) -> builtins.list[QueueDetails]:
        """Async twin of `list`."""
        return await asyncio.to_thread(self.list)

    async def aretrieve(self, name: str) -> QueueDetails:
        """Async twin of `retrieve`."""
        return await asyncio.to_thread(self.retrieve, name)

    async def apause(self, name: str) -> QueueDetails:
        """Async twin of `pause`."""
        return await asyncio.to_thread(self.pause, name)

    async def aresume(self, name: str) -> QueueDetails:
        """Async twin of `resume`."""
        return await asyncio.to_thread(self.resume, name)

    async def aoverride_concurrency_limit(self, name: str, limit: int) -> QueueDetails:
        """Async twin of `override_concurrency_limit`."""
        return await asyncio.to_thread(self.override_concurrency_limit, name, limit)

    async def areset_concurrency_limit(self, name: str) -> QueueDetails:
        """Async twin of `reset_concurrency_limit`."""
        return await asyncio.to_thread(self.reset_concurrency_limit, name)


queues = Queues()
