"""Temporal's floor as a peer: a workflow whose every step is what this engine's default step
schedules, with no work in it: one no-op activity (the LLM call's place) and one no-op local
activity (the tool call's). No model, no MCP server: what Temporal itself costs per step here.
The same workflow as case a's floor (tests/benchmarks/floor_workflows.py, the SDK's sandbox)."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from temporalio.client import Client
from temporalio.worker import Worker

from tests.benchmarks.floor_workflows import Steps, noop

TITLE = "Temporal floor: no-op activity + no-op local activity per step"


def worker_argv(temporal_address: str, task_queue: str, llm_base_url: str) -> list[str]:
    return [sys.executable, "-m", __name__, "--temporal", temporal_address, "--task-queue", task_queue]


def worker_env(temporal_address: str, task_queue: str, llm_base_url: str) -> dict[str, str]:
    return {}


async def connect(temporal_address: str) -> Client:
    return await Client.connect(temporal_address)


async def run(client: Client, task_queue: str, model: str, workflow_id: str) -> None:
    steps = int(model.rsplit("-", 1)[1])
    await client.execute_workflow(Steps.run, args=[steps, "both"], id=workflow_id, task_queue=task_queue)


async def _serve(temporal_address: str, task_queue: str) -> None:
    client = await connect(temporal_address)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    async with Worker(client, task_queue=task_queue, workflows=[Steps], activities=[noop]):
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--temporal", required=True)
    parser.add_argument("--task-queue", required=True)
    options = parser.parse_args()
    asyncio.run(_serve(options.temporal, options.task_queue))
