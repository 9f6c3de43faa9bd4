"""Waiting in tests: on a condition, never for a fixed time.

A test that needs the system to reach some state (a run waiting for approval, a tool call
arriving at the MCP server, a port accepting connections) polls for that state. Every wait
has the same generous overall limit, so a slow or busy machine makes a passing test slower
but never makes it fail; a wait that runs out fails with what it was waiting for.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from temporalio.client import WorkflowHandle

from workflows.messages import OrchestrationStatus

T = TypeVar("T")

WAIT_SECONDS = float(os.environ.get("TEST_WAIT_SECONDS", "120"))
"""The overall limit of every wait: far beyond what any state takes to reach on a 2-core
machine with both cores busy, so reaching it means the state never comes."""
POLL_SECONDS = 0.05
TOOL_TIMEOUT_SECONDS = 5.0
"""The tool timeout of a run that shows a call timing out: the hanging call runs into it, and
every other call of that run must answer within it, which even a busy machine does in well
under a second."""


async def eventually(
    condition: Callable[[], T | Awaitable[T]],
    what: str | Callable[[], str],
    *,
    timeout: float = WAIT_SECONDS,
    interval: float = POLL_SECONDS,
) -> T:
    """Call `condition` (plain or async) until it returns something truthy, and return that.
    `what` names the awaited state in the failure (a callable is asked at failure time, e.g.
    for the last status seen)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if loop.time() > deadline:
            raise AssertionError(f"not reached within {timeout:g}s: {what() if callable(what) else what}")
        await asyncio.sleep(interval)


async def wait_for_port(port: int, timeout: float = WAIT_SECONDS) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:`port`."""

    async def accepts() -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        writer.close()
        return True

    await eventually(accepts, f"127.0.0.1:{port} accepts connections", timeout=timeout)


async def result_of(handle: WorkflowHandle[Any, Any], timeout: float = WAIT_SECONDS) -> OrchestrationStatus:
    """The run's final status (the workflow result)."""
    result: Awaitable[Any] = handle.result()
    return OrchestrationStatus.model_validate(await asyncio.wait_for(result, timeout))
