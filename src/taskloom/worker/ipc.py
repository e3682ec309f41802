"""Frames between a supervisor and its executors: a 4-byte length, then a JSON list of messages.

Messages are the typed structs of `messages`, encoded and decoded with msgspec: one
decoder per direction reads a whole frame into typed messages. Messages are batched: a
`FrameWriter` collects everything produced in one event-loop iteration and sends it as
one frame, so a burst of completions costs one write.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Sequence
from typing import Generic, TypeVar

import msgspec

from .messages import ExecutorMessage, Message, SupervisorMessage

HEADER = struct.Struct(">I")
MAX_FRAME = 256 * 1024 * 1024

M = TypeVar("M", bound=Message)

_encoder = msgspec.json.Encoder()
FROM_SUPERVISOR = msgspec.json.Decoder(list[SupervisorMessage])
"""Decodes a frame an executor reads."""
FROM_EXECUTOR = msgspec.json.Decoder(list[ExecutorMessage])
"""Decodes a frame a supervisor reads."""


def encode_frame(messages: Sequence[Message]) -> bytearray:
    """One frame holding `messages`."""
    frame = bytearray(HEADER.size)
    _encoder.encode_into(messages, frame, HEADER.size)
    HEADER.pack_into(frame, 0, len(frame) - HEADER.size)
    return frame


async def read_frame(
    reader: asyncio.StreamReader, decoder: msgspec.json.Decoder[list[M]]
) -> list[M] | None:
    """The next frame's messages, or None at end of stream.

    `decoder` is `FROM_SUPERVISOR` in an executor and `FROM_EXECUTOR` in a supervisor.
    """
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
    return decoder.decode(body)


class FrameWriter(Generic[M]):
    """Queues messages and writes them as one frame per event-loop iteration."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._pending: list[M] = []
        self._scheduled = False
        self.closed = False

    def send(self, message: M) -> None:
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
        """Flush what is queued and close the channel."""
        self.flush()
        self.closed = True
        self._writer.close()


SupervisorWriter = FrameWriter[SupervisorMessage]
"""How a supervisor writes to an executor."""
ExecutorWriter = FrameWriter[ExecutorMessage]
"""How an executor writes to its supervisor."""
