"""Heartbeating while an activity awaits I/O, so Temporal can deliver cancellation."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from temporalio import activity

HEARTBEAT_INTERVAL_SECONDS = 2.0


@contextlib.asynccontextmanager
async def heartbeating(interval: float = HEARTBEAT_INTERVAL_SECONDS) -> AsyncIterator[None]:
    """Heartbeat every `interval` seconds while the block runs (no-op outside a regular activity).

    A cancelled run or a worker shutdown reaches an activity only through its heartbeats;
    with them, an in-flight LLM or tool call is cancelled promptly.
    """
    if not activity.in_activity() or activity.info().is_local:
        # A local activity is cancelled by its worker directly and has no heartbeat.
        yield
        return

    async def beat() -> None:
        # The first beat after one interval: a call that ends sooner costs Temporal no heartbeat.
        while True:
            await asyncio.sleep(interval)
            activity.heartbeat()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
