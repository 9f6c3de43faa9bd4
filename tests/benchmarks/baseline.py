"""Baselines measured in the same run as the engine: the non-durable floor (a plain asyncio
agent loop: httpx to the same scripted model, one reused stdio session to the same MCP
server) and Temporal's own costs (sequential no-op activities, local activities, an empty
workflow with and without eager start)."""

from __future__ import annotations

import sys
import time
import uuid
from datetime import timedelta
from typing import Any

import httpx
from mcp import Client, StdioServerParameters
from temporalio import activity, workflow
from temporalio.client import Client as TemporalClient
from temporalio.worker import Worker

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


@activity.defn(name="bench_noop")
async def noop() -> None:
    return None


@workflow.defn(name="BenchSteps", sandboxed=False)
class Steps:
    """`count` sequential no-op activities (regular or local)."""

    @workflow.run
    async def run(self, count: int, local: bool) -> None:
        for _ in range(count):
            if local:
                await workflow.execute_local_activity(noop, start_to_close_timeout=timedelta(seconds=10))
            else:
                await workflow.execute_activity(noop, start_to_close_timeout=timedelta(seconds=10))


async def temporal_baselines(client: TemporalClient, repeats: int) -> dict[str, list[float]]:
    """Per-step seconds of no-op activities and local activities; start->result of an empty
    workflow, plain and with eager start."""
    task_queue = f"bench-baseline-{uuid.uuid4().hex[:8]}"
    figures: dict[str, list[float]] = {"activity": [], "local_activity": [], "empty": [], "empty_eager": []}
    async with Worker(client, task_queue=task_queue, workflows=[Steps], activities=[noop]):
        for local in (False, True):
            for _ in range(repeats):
                began = time.perf_counter()
                await client.execute_workflow(
                    Steps.run, args=[50, local], id=f"steps-{uuid.uuid4().hex}", task_queue=task_queue
                )
                figures["local_activity" if local else "activity"].append((time.perf_counter() - began) / 50)
        for eager in (False, True):
            for _ in range(repeats * 10):
                began = time.perf_counter()
                handle = await client.start_workflow(
                    Steps.run,
                    args=[0, False],
                    id=f"empty-{uuid.uuid4().hex}",
                    task_queue=task_queue,
                    request_eager_start=eager,
                )
                await handle.result()
                figures["empty_eager" if eager else "empty"].append(time.perf_counter() - began)
    return figures
