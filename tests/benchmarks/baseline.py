"""Baselines measured in the same run as the engine: the non-durable floor (a plain asyncio
agent loop: httpx to the same scripted model, one reused stdio session to the same MCP
server) and Temporal's own costs (sequential no-op activities, local activities, an empty
workflow with and without eager start)."""

from __future__ import annotations

import sys
import time
import uuid
from typing import Any

import httpx
from mcp import Client, StdioServerParameters
from temporalio.client import Client as TemporalClient
from temporalio.worker import Worker

from tests.benchmarks.floor_workflows import Steps, noop
from tests.conftest import REPO_ROOT


async def in_process_loop(base_url: str, model: str, session: Client, steps: int) -> list[float]:
    """One agent run done by hand, as a plain asyncio loop; returns each step's seconds."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "go"}]
    durations: list[float] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        for _ in range(steps):
            began = time.perf_counter()
            reply = (await http.post("/chat/completions", json={"model": model, "messages": messages})).json()
            message = reply["choices"][0]["message"]
            messages.append(message)
            for call in message.get("tool_calls") or []:
                tool = call["function"]["name"].split("__", 1)[1]
                result = await session.call_tool(tool, {"text": "x"})
                text = "".join(getattr(block, "text", "") for block in result.content)
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": text})
            durations.append(time.perf_counter() - began)
            if not message.get("tool_calls"):
                break
    return durations


def stdio_params() -> StdioServerParameters:
    """The toolbox MCP server over stdio, for a session of the benchmark's own."""
    return StdioServerParameters(command=sys.executable, args=["-m", "tests.mcp_servers.toolbox"], cwd=str(REPO_ROOT))


STEP_KINDS = ("activity", "local_activity", "both")


async def floor_steps(client: TemporalClient, task_queue: str, kind: str, repeats: int, count: int = 50) -> list[float]:
    """Seconds per step of `repeats` runs of `count` no-op steps of `kind` (a worker for `Steps`
    polls `task_queue`)."""
    seconds = []
    for _ in range(repeats):
        began = time.perf_counter()
        await client.execute_workflow(
            Steps.run, args=[count, kind], id=f"steps-{uuid.uuid4().hex}", task_queue=task_queue
        )
        seconds.append((time.perf_counter() - began) / count)
    return seconds


async def temporal_baselines(client: TemporalClient, repeats: int) -> dict[str, list[float]]:
    """Per-step seconds of no-op activities, local activities and both; start->result of an
    empty workflow, plain and with eager start."""
    task_queue = f"bench-baseline-{uuid.uuid4().hex[:8]}"
    figures: dict[str, list[float]] = {kind: [] for kind in (*STEP_KINDS, "empty", "empty_eager")}
    async with Worker(client, task_queue=task_queue, workflows=[Steps], activities=[noop]):
        for kind in STEP_KINDS:
            figures[kind] = await floor_steps(client, task_queue, kind, repeats)
        for eager in (False, True):
            for _ in range(repeats * 10):
                began = time.perf_counter()
                handle = await client.start_workflow(
                    Steps.run,
                    args=[0, "activity"],
                    id=f"empty-{uuid.uuid4().hex}",
                    task_queue=task_queue,
                    request_eager_start=eager,
                )
                await handle.result()
                figures["empty_eager" if eager else "empty"].append(time.perf_counter() - began)
    return figures
