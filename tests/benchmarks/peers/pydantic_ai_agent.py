"""Peer: Pydantic AI's durable agent on Temporal, configured as Pydantic AI's docs recommend.

Docs followed: "Durable Execution with Temporal" (https://ai.pydantic.dev/durable_execution/temporal/,
docs/durable_execution/temporal.md) and "MCP client" (https://ai.pydantic.dev/mcp/client/).

- A plain `Agent` with the `TemporalDurability` capability, the docs' path for new code
  (`TemporalAgent` is the deprecated "wrapper-agent path" and "will be removed in v3"), listed in
  the workflow's `__pydantic_ai_agents__`, so that `PydanticAIPlugin` (on the client, hence on the
  worker) registers its activities: one per model request, MCP tool listing and MCP tool call.
- The model is a run-time model-name string, `openai-chat:peer-N` ("Model strings work as
  expected"), built on the worker by `infer_model` against `OPENAI_BASE_URL` (chat completions:
  plain `openai:` means the Responses API, which the scripted model does not serve).
- The toolbox as an `MCPToolset` over stdio with an explicit `id` (Temporal names the activities
  after it). The worker holds it entered for its whole life with `async with agent:` ("to open and
  close connections to all registered MCP toolsets (and in the case of stdio servers, start and
  stop the subprocesses) around the context where they'll be used in agent runs"): one MCP server
  process and session per worker, reused by every activity, and its tool list cached
  (`cache_tools`). Without it each MCP activity would open (and close) a session of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from fastmcp.client.transports import StdioTransport
from pydantic_ai import Agent
from pydantic_ai.durable_exec.temporal import PydanticAIPlugin, PydanticAIWorkflow, TemporalDurability
from pydantic_ai.mcp import MCPToolset
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from tests.benchmarks.peers import REPO_ROOT, TOOLBOX_ARGV

TITLE = "Pydantic AI (TemporalDurability, MCP stdio session per worker)"

toolbox = MCPToolset(StdioTransport(command=TOOLBOX_ARGV[0], args=TOOLBOX_ARGV[1:], cwd=str(REPO_ROOT)), id="toolbox")
# Temporal wants a model at construction; it is never used, as every run names its own `peer-N`.
agent = Agent("openai-chat:peer", name="peer", toolsets=[toolbox], capabilities=[TemporalDurability()])


@workflow.defn
class PydanticAIPeerWorkflow(PydanticAIWorkflow):
    __pydantic_ai_agents__ = [agent]

    @workflow.run
    async def run(self, prompt: str, model: str) -> str:
        result = await agent.run(prompt, model=f"openai-chat:{model}")
        return result.output


def worker_argv(temporal_address: str, task_queue: str, llm_base_url: str) -> list[str]:
    options = ["--temporal", temporal_address, "--task-queue", task_queue, "--llm-base-url", llm_base_url]
    return [sys.executable, "-m", __name__, *options]


def worker_env(temporal_address: str, task_queue: str, llm_base_url: str) -> dict[str, str]:
    return {}


async def connect(temporal_address: str) -> Client:
    return await Client.connect(temporal_address, plugins=[PydanticAIPlugin()])


async def run(client: Client, task_queue: str, model: str, workflow_id: str) -> None:
    output = await client.execute_workflow(
        PydanticAIPeerWorkflow.run, args=["go", model], id=workflow_id, task_queue=task_queue
    )
    if not output:
        raise RuntimeError(f"workflow {workflow_id} did not answer")


async def serve(temporal_address: str, task_queue: str) -> None:
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    client = await connect(temporal_address)
    # The sandbox re-imports this module's package, whose test helpers are no workflow code.
    restrictions = SandboxRestrictions.default.with_passthrough_modules("tests.conftest", "tests.scripted_llm")
    runner = SandboxedWorkflowRunner(restrictions=restrictions)
    async with agent, Worker(client, task_queue=task_queue, workflows=[PydanticAIPeerWorkflow], workflow_runner=runner):
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--temporal", required=True)
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--llm-base-url", required=True)
    options = parser.parse_args()
    os.environ["OPENAI_BASE_URL"] = options.llm_base_url  # read by the OpenAI provider `infer_model` builds
    # The module itself, not `__main__`: the workflow sandbox re-imports the workflow's module by name.
    from tests.benchmarks.peers import pydantic_ai_agent

    asyncio.run(pydantic_ai_agent.serve(options.temporal, options.task_queue))
