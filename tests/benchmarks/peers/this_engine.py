"""This engine as a peer: `python -m worker` with the toolbox server (`echo` auto-approved),
runs started as `Orchestration` workflows with the default options."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from tests.benchmarks.peers import REPO_ROOT, TOOLBOX_ARGV
from workflows.orchestration import Orchestration
from workflows.run_request import OrchestrationRequest
from workflows.state import OrchestrationInput

TITLE = "this engine, default options"


def worker_argv(temporal_address: str, task_queue: str, llm_base_url: str) -> list[str]:
    return [sys.executable, "-m", "worker"]


def worker_env(temporal_address: str, task_queue: str, llm_base_url: str) -> dict[str, str]:
    config = Path(tempfile.gettempdir()) / f"{task_queue}-mcp.json"
    server = {
        "command": TOOLBOX_ARGV[0],
        "args": TOOLBOX_ARGV[1:],
        "cwd": str(REPO_ROOT),
        "tools_to_auto_execute": ["echo"],
    }
    config.write_text(json.dumps({"mcpServers": {"toolbox": server}}))
    return {
        "TEMPORAL_ADDRESS": temporal_address,
        "ORCH_TASK_QUEUE": task_queue,
        "ORCH_MCP_CONFIG": str(config),
        "OPENAI_BASE_URL": llm_base_url,
        "ORCH_DEFAULT_MODEL": "bench",
    }


async def connect(temporal_address: str) -> Client:
    return await Client.connect(temporal_address, data_converter=pydantic_data_converter)


async def run(client: Client, task_queue: str, model: str, workflow_id: str) -> None:
    request = OrchestrationRequest(input="go", model=model, mcp_servers=["toolbox"], max_steps=100)
    result = await client.execute_workflow(
        Orchestration.run, OrchestrationInput(run_request=request), id=workflow_id, task_queue=task_queue
    )
    if result.status != "completed" or not (result.output or "").startswith("done"):
        raise RuntimeError(f"run {workflow_id} ended {result.status}: {result.error or result.output}")
