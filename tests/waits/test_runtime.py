"""The attempt side of waits, without a worker: how results reach the calls waiting."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from taskloom.runtime.steps import AttemptRuntime, WaitInfo
from taskloom.store.records import RecordedWait

pytestmark = pytest.mark.slow  # with the rest of tests/waits


def runtime(sent: list[int], events: list[str]) -> AttemptRuntime:
    """A runtime whose requests to suspend the run (the seq it waits for) land in `sent`."""
    ctx: Any = SimpleNamespace(
        run=SimpleNamespace(id="run_X", tags=()), attempt=SimpleNamespace(number=1)
    )

    async def on_wait(info: WaitInfo) -> None:
        events.append(f"wait {info.seq}")

    async def on_resume(info: WaitInfo) -> None:
        events.append(f"resume {info.seq}")

    engine: Any = None  # these waits never reach an engine
    return AttemptRuntime(
        ctx,
        engine=engine,
        recorded={},
        suspend=sent.append,
        on_wait=on_wait,
        on_resume=on_resume,
        is_async=True,
    )


def pending(seq: int) -> RecordedWait:
    return RecordedWait(seq, "task", f"waitpoint_{seq}", "PENDING", None)


def completed(seq: int, result: bytes | None) -> RecordedWait:
    return RecordedWait(seq, "task", f"waitpoint_{seq}", "COMPLETED", result)


def test_a_result_delivered_before_its_call_waits_is_kept() -> None:
    """Parallel waits: a call records its wait in a thread; the wait can complete and its
    result arrive (and count as delivered in the store) before the call comes back to the
    event loop to wait. The call must get it, not wait forever."""
    sent: list[int] = []
    events: list[str] = []
    rt = runtime(sent, events)

    async def scenario() -> list[bytes]:
        first = asyncio.ensure_future(rt.wait_for(pending(1), WaitInfo("task", 1)))
        await asyncio.sleep(0)  # call 1 waits; call 2 is still recording its wait
        rt.deliver([completed(2, b'"two"')])
        second = await rt.wait_for(pending(2), WaitInfo("task", 2))
        rt.deliver([completed(1, b'"one"')])
        return [await first, second]

    assert asyncio.run(asyncio.wait_for(scenario(), 5)) == [b'"one"', b'"two"']
    assert events == ["wait 1", "resume 1"]  # call 2 never waited
    assert 1 in sent  # it asked to be suspended while it waits for wait 1


def test_a_delivery_with_waits_left_asks_to_wait_again() -> None:
    sent: list[int] = []
    rt = runtime(sent, [])

    async def scenario() -> bytes:
        one = asyncio.ensure_future(rt.wait_for(pending(1), WaitInfo("task", 1)))
        two = asyncio.ensure_future(rt.wait_for(pending(2), WaitInfo("task", 2)))
        await asyncio.sleep(0)
        sent.clear()
        rt.deliver([completed(1, b"1")])
        assert sent == [0]  # still waiting for 2: asks to be suspended again
        assert rt.waiting
        rt.deliver([completed(2, None)])
        await one
        return await two

    assert asyncio.run(asyncio.wait_for(scenario(), 5)) == b"null"
    assert not rt.waiting
