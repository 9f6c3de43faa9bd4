"""Fault suite: the Temporal server (dev server on its SQLite file) stopped and restarted mid-run."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError

from api.cli.dev_stack import dev_server_flags
from tests.conftest import TEMPORAL_CLI, CallLog, Harness, WorkerProcess, toolbox_stdio
from tests.scripted_llm import Reply, ScriptedLLM, free_port, tool_call
from tests.waiting import WAIT_SECONDS, eventually, result_of, wait_for_port
from workflows.messages import ApprovalDecision
from workflows.orchestration import Orchestration

pytestmark = pytest.mark.fault


async def _start_server(port: int, db: Path) -> asyncio.subprocess.Process:
    server = await asyncio.create_subprocess_exec(
        TEMPORAL_CLI, "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(port),
        "--db-filename", str(db), *dev_server_flags(),
        "--log-level", "error",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    await wait_for_port(port)
    return server


async def _connected(port: int) -> Client | None:
    try:
        return await Client.connect(f"127.0.0.1:{port}", data_converter=pydantic_data_converter)
    except RuntimeError:  # "Frontend is not healthy yet"
        return None


async def test_run_survives_a_temporal_server_restart(llm: ScriptedLLM, call_log: CallLog, tmp_path: Path) -> None:
    llm.script(
        "m-restart",
        Reply(tool_calls=[tool_call("pay", "toolbox__transfer", {"account": "acme", "amount": 3})]),
        Reply(content="paid after the restart"),
    )
    port, db = free_port(), tmp_path / "temporal.db"
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"toolbox": toolbox_stdio(call_log)}}))
    server = await _start_server(port, db)
    worker = WorkerProcess(
        dict(
            os.environ,
            TEMPORAL_ADDRESS=f"127.0.0.1:{port}",
            ORCH_TASK_QUEUE="restart-queue",
            ORCH_MCP_CONFIG=str(config),
            OPENAI_BASE_URL=llm.base_url,
            ORCH_DEFAULT_MODEL="test-model",
        )
    )
    try:
        client = await eventually(
            lambda: _connected(port), "the server's frontend to be healthy (its port opens before)", interval=0.5
        )
        await worker.start()
        h = Harness(client=client, task_queue="restart-queue", llm=llm)
        handle = await h.start({"input": "pay", "model": "m-restart"})
        await h.wait_pending(handle)

        server.send_signal(signal.SIGTERM)
        await asyncio.wait_for(server.wait(), WAIT_SECONDS)
        # Down while the new server starts (seconds); the worker keeps retrying its polls.
        server = await _start_server(port, db)

        async def approved() -> bool:
            try:
                await handle.signal(
                    Orchestration.submit_approval, ApprovalDecision(tool_call_id="pay", decision="approve")
                )
            except RPCError:  # the client reconnects after the restart
                return False
            return True

        await eventually(approved, "the restarted server took the approval", interval=0.5)
        final = await result_of(handle)
    finally:
        if worker.proc is not None and worker.proc.returncode is None:
            await worker.stop(signal.SIGTERM)
        if server.returncode is None:
            server.send_signal(signal.SIGTERM)
            await server.wait()
    assert final.status == "completed" and final.output == "paid after the restart"
    assert len(call_log.calls("transfer")) == 1
