"""Frames between a supervisor and its executors: a 4-byte length, then a JSON list of messages.

Messages are batched: a `FrameWriter` collects everything produced in one event-loop
iteration and sends it as one frame, so a burst of completions costs one write.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import orjson

HEADER = struct.Struct(">I")
MAX_FRAME = 256 * 1024 * 1024


def encode_frame(messages: list[Any]) -> bytes:
    """One frame holding `messages`."""
    body = orjson.dumps(messages)
    return HEADER.pack(len(body)) + body


async def read_frame(reader: asyncio.StreamReader) -> list[Any] | None:
    """The next frame's messages, or None at end of stream."""
    try:
        header = await reader.readexactly(HEADER.size)
    except (asyncio.IncompleteReadError, ConnectionResetError):
        return None
    (size,) = HEADER.unpack(header)
    if size > MAX_FRAME:
        raise ValueError(f"IPC frame of {size} bytes is over the {MAX_FRAME} byte limit")
    try:
        body = await reader.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionResetError):
        return None
    messages: list[Any] = orjson.loads(body)
    return messages


class FrameWriter:
    """Queues messages and writes them as one frame per event-loop iteration."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._pending: list[Any] = []
        self._scheduled = False
        self.closed = False

    def send(self, message: Any) -> None:
        """Queue a message for the next flush."""
        if self.closed:
            return
        self._pending.append(message)
        if not self._scheduled:
            self._scheduled = True
            # Two hops: tasks created in this iteration take their first step before the
            # flush, so a quick attempt's "started" and "done" travel in one frame.
            loop = asyncio.get_running_loop()
            loop.call_soon(loop.call_soon, self.flush)

    def flush(self) -> None:
        """Write queued messages now."""
        self._scheduled = False
        if not self._pending or self.closed:
            return
        messages, self._pending = self._pending, []
        try:
            self._writer.write(encode_frame(messages))
        except (ConnectionError, RuntimeError):
            self.closed = True

    async def drain(self) -> None:
        """Flush and wait until the OS has taken the bytes."""
        self.flush()
        if not self.closed:
            try:
                await self._writer.drain()
            except ConnectionError:
                self.closed = True

    def close(self) -> None:
        self.flush()
        self.closed = True
        self._writer.close()
