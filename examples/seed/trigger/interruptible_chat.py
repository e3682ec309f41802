"""A schema task that streams an answer and saves the partial answer when cancelled.

`tasks.on_cancel(...)` called inside run registers a hook for this run only, so it can
reach the chunks in the run's closure. The signal is passed to the streaming call,
which stops when the run is cancelled.
"""

import asyncio
import contextlib

import pydantic

from taskloom import logger, schema_task, tasks

CHUNK_SECONDS = 0.05


class ChatInput(pydantic.BaseModel):
    prompt: str = pydantic.Field(description="The prompt to chat with the AI")


class StreamAbortedError(Exception):
    """What the streaming call raises once its abort signal fires."""


async def stream_text(prompt, abort_signal, on_chunk):
    """Stands in for an AI SDK's streaming call: yields the answer word by word."""
    for word in f"You said: {prompt}".split():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(abort_signal.wait(), timeout=CHUNK_SECONDS)
        if abort_signal.aborted:
            raise StreamAbortedError(abort_signal.reason)
        on_chunk(word)
        logger.debug("chunk", text=word)
        yield word


async def save_chunks_to_database(chunks):
    logger.info("Saved partial answer", chunks=chunks)


async def run(data: ChatInput, ctx):
    chunks = []

    # 👇 This is a global on_cancel hook, but it's inside of the run function
    async def save_chunks():
        # We have access to the chunks here, and can save them to the database
        await save_chunks_to_database(list(chunks))

    tasks.on_cancel(save_chunks)

    try:
        text_parts = []
        # 👇 Pass the signal to the streaming call, which aborts when the run is cancelled
        async for part in stream_text(data.prompt, abort_signal=ctx.signal, on_chunk=chunks.append):
            text_parts.append(part)
        return " ".join(text_parts)
    except StreamAbortedError:
        # The stream raises once the signal is aborted, so we can handle it here
        return None


interruptible_chat = schema_task(
    id="interruptible-chat",
    description="Chat with the AI",
    schema=ChatInput,
    run=run,
)
