"""Temporal's OpenAI Agents SDK integration (temporalio-openai-agents 1.1) as a peer, configured as
the "MCP Support" section of its README recommends: the worker registers the toolbox, an agents
SDK `MCPServerStdio`, with `OpenAIAgentsPlugin(mcp_servers={"toolbox": factory})` and the
workflow's `Agent` reaches it through `workflow.temporal_mcp_server("toolbox")`. Every model call
and every MCP operation is an activity; the workflow caches the tool list (one list-tools activity
per run) and the worker keeps the factory's connection, one toolbox process, across activities and
runs ("reused for up to five idle minutes when it negotiates the modern, sessionless protocol").
The same README deprecates `StatefulMCPServerProvider` / `StatelessMCPServerProvider`: "New
integrations should use `mcp_servers` and `temporal_mcp_server()`, which require the `mcp` extra"
(the temporalio-mcp package).

The model is the agents SDK's chat-completions one (`OpenAIProvider(use_responses=False)`) on the
scripted server, its client's own retries off as in the integration's default provider, the model
activity's timeout set by `ModelActivityParameters` as the README's worker does; tracing is off.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from datetime import timedelta

from agents import Agent, Runner, set_tracing_disabled
from temporalio import workflow
from temporalio.client import Client
from temporalio.openai_agents import ModelActivityParameters, OpenAIAgentsPlugin
from temporalio.openai_agents.workflow import temporal_mcp_server

with workflow.unsafe.imports_passed_through():
    from tests.benchmarks.peers import REPO_ROOT, TOOLBOX_ARGV

TITLE = "OpenAI Agents SDK on Temporal, plugin with mcp_servers"


@workflow.defn
class EchoAgent:
    @workflow.run
    async def run(self, model: str) -> str:
        agent = Agent(
            name="echo", instructions="Use the tools.", model=model, mcp_servers=[temporal_mcp_server("toolbox")]
        )
        result = await Runner.run(agent, "go", max_turns=100)
        return str(result.final_output)


def worker_argv(temporal_address: str, task_queue: str, llm_base_url: str) -> list[str]:
    flags = ["--temporal", temporal_address, "--task-queue", task_queue, "--llm-base-url", llm_base_url]
    return [sys.executable, "-m", "tests.benchmarks.peers.openai_agents_sdk", *flags]


def worker_env(temporal_address: str, task_queue: str, llm_base_url: str) -> dict[str, str]:
    return {"OPENAI_AGENTS_DISABLE_TRACING": "1"}


async def connect(temporal_address: str) -> Client:
    return await Client.connect(temporal_address, plugins=[OpenAIAgentsPlugin()])


async def run(client: Client, task_queue: str, model: str, workflow_id: str) -> None:
    answer = await client.execute_workflow(EchoAgent.run, model, id=workflow_id, task_queue=task_queue)
    if not answer.startswith("done"):
        raise RuntimeError(f"run {workflow_id} answered {answer!r}")


async def _serve(temporal_address: str, task_queue: str, llm_base_url: str) -> None:
    from agents.mcp import MCPServerStdio, MCPServerStdioParams
    from agents.models.openai_provider import OpenAIProvider
    from openai import AsyncOpenAI
    from temporalio.worker import Worker

    set_tracing_disabled(True)
    toolbox = MCPServerStdioParams(command=TOOLBOX_ARGV[0], args=TOOLBOX_ARGV[1:], cwd=str(REPO_ROOT))
    plugin = OpenAIAgentsPlugin(
        model_params=ModelActivityParameters(start_to_close_timeout=timedelta(seconds=60)),
        model_provider=OpenAIProvider(
            openai_client=AsyncOpenAI(base_url=llm_base_url, api_key="bench", max_retries=0), use_responses=False
        ),
        mcp_servers={"toolbox": lambda: MCPServerStdio(name="toolbox", params=toolbox)},
    )
    client = await Client.connect(temporal_address, plugins=[plugin])
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    async with Worker(client, task_queue=task_queue, workflows=[EchoAgent]):
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    for flag in ("--temporal", "--task-queue", "--llm-base-url"):
        parser.add_argument(flag, required=True)
    args = parser.parse_args()
    asyncio.run(_serve(args.temporal, args.task_queue, args.llm_base_url))
