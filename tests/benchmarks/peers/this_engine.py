"""This engine as a peer: `python -m worker` with the toolbox server (`echo` auto-approved),
runs started as `Orchestration` workflows with the default options.

With `BENCH_BEFORE_ROOT=<a checkout of another commit>` (e.g. `git worktree add /tmp/before
<commit>`), case p also measures that checkout's worker, for a before/after table; the runs'
input names only options every version knows."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from tests.benchmarks.peers import REPO_ROOT, TOOLBOX_ARGV


class ThisEngine:
    """The engine of the checkout at `root`."""

    def __init__(self, root: Path = REPO_ROOT) -> None:
        self.root = root
        self.TITLE = "this engine, default options" + ("" if root == REPO_ROOT else f" (at commit {_commit(root)})")

    def worker_argv(self, temporal_address: str, task_queue: str, llm_base_url: str) -> list[str]:
        return ["sh", "-c", f"cd {shlex.quote(str(self.root))} && exec {shlex.quote(sys.executable)} -m worker"]

    def worker_env(self, temporal_address: str, task_queue: str, llm_base_url: str) -> dict[str, str]:
        config = Path(tempfile.gettempdir()) / f"{task_queue}-mcp.json"
        server = {"command": TOOLBOX_ARGV[0], "args": TOOLBOX_ARGV[1:], "cwd": str(REPO_ROOT)}
        config.write_text(json.dumps({"mcpServers": {"toolbox": server | {"tools_to_auto_execute": ["echo"]}}}))
        return {
            "TEMPORAL_ADDRESS": temporal_address,
            "ORCH_TASK_QUEUE": task_queue,
            "ORCH_MCP_CONFIG": str(config),
            "OPENAI_BASE_URL": llm_base_url,
            "ORCH_DEFAULT_MODEL": "bench",
        }

    async def connect(self, temporal_address: str) -> Client:
        return await Client.connect(temporal_address, data_converter=pydantic_data_converter)

    async def run(self, client: Client, task_queue: str, model: str, workflow_id: str) -> None:
        request = {"input": "go", "model": model, "mcp_servers": ["toolbox"], "max_steps": 100}
        result: dict[str, Any] = await client.execute_workflow(
            "Orchestration", {"run_request": request}, id=workflow_id, task_queue=task_queue, result_type=dict
        )
        if result["status"] != "completed" or not (result.get("output") or "").startswith("done"):
            raise RuntimeError(
                f"run {workflow_id} ended {result['status']}: {result.get('error') or result.get('output')}"
            )


def _commit(root: Path) -> str:
    found = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return found.stdout.strip() or str(root)


PEER = ThisEngine()
