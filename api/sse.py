"""Server-Sent Events for routes that answer JSON or a stream depending on the request's body
(the chat and Responses routes), so that cannot be FastAPI's SSE path operations: a producer
task beside a keep-alive timer, as FastAPI's own SSE streams a generator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
from fastapi.sse import KEEPALIVE_COMMENT, EventSourceResponse

KEEPALIVE_SECONDS = 15.0
"""Idle seconds before a `: ping` comment, as FastAPI's SSE path operations (`fastapi.sse._PING_INTERVAL`)."""


Send = Callable[[bytes], None]
"""Queues SSE bytes for the client."""


def event_stream(produce: Callable[[Send], Awaitable[None]], name: str) -> EventSourceResponse:
    """The SSE bytes `produce` sends, as a response with the headers FastAPI sets on its own SSE
    responses and `: ping` whenever nothing was sent for KEEPALIVE_SECONDS. `produce` runs in a
    task named `name`; a client that hangs up cancels it, so whatever it follows is closed in the
    task that iterates it."""
    return EventSourceResponse(
        _kept_alive(produce, name), headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


async def _kept_alive(produce: Callable[[Send], Awaitable[None]], name: str) -> AsyncIterator[bytes]:
    sent: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def producing() -> None:
        try:
            await produce(sent.put_nowait)
        finally:
            sent.put_nowait(None)

    producer = asyncio.create_task(producing(), name=name)
    try:
        while (data := await _next_or_ping(sent)) is not None:
            yield data
    finally:
        producer.cancel()
        with anyio.CancelScope(shield=True):  # else the response's cancelled scope interrupts the wait
            await asyncio.wait([producer])
    producer.result()  # an unexpected error of the producer fails the response


async def _next_or_ping(sent: asyncio.Queue[bytes | None]) -> bytes | None:
    try:
        async with asyncio.timeout(KEEPALIVE_SECONDS):
            return await sent.get()
    except TimeoutError:
        return KEEPALIVE_COMMENT
