"""Controls of a running attempt: its compute-time budget, the promise `on_cancel` hooks
await, and the clearing of a handled cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator
from typing import Any


class ComputeBudget:
    """An attempt's max_duration: compute time counts while it runs, not while it waits."""

    def __init__(self, seconds: float | None, on_exceeded: Callable[[], None]) -> None:
        self.seconds = seconds
        self.on_exceeded = on_exceeded
        self.used = 0.0
        self._since: float | None = None
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Begin counting (at attempt start)."""
        self.resume()

    def resume(self) -> None:
        """Count again (a wait ended)."""
        if self.seconds is None or self._since is not None:
            return
        loop = asyncio.get_running_loop()
        self._since = loop.time()
        self._timer = loop.call_later(max(0.0, self.seconds - self.used), self.on_exceeded)

    def pause(self) -> None:
        """Stop counting (a wait began)."""
        if self._since is None:
            return
        self.used += asyncio.get_running_loop().time() - self._since
        self._since = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def stop(self) -> None:
        """The attempt ended."""
        self.pause()


class RunPromise:
    """What `on_cancel` hooks get as `run_promise`: awaiting it returns the run's output
    or raises its error. Awaiting is optional, and it may be awaited more than once."""

    __slots__ = ("_future",)

    def __init__(self, future: asyncio.Future[Any]) -> None:
        self._future = future

    def done(self) -> bool:
        """True once `run` has returned or raised."""
        return self._future.done()

    def __await__(self) -> Generator[Any, None, Any]:
        return asyncio.shield(self._future).__await__()

    def __repr__(self) -> str:
        return f"RunPromise(done={self._future.done()})"


def swallow_cancellation() -> None:
    """The attempt handles its own cancellation: clear the request on the current task so
    code that still runs (cleanup, on_cancel) is not treated as cancelled."""
    current = asyncio.current_task()
    if current is not None and current.cancelling():
        current.uncancel()
