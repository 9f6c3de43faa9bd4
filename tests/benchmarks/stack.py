"""The stack a benchmark run starts for itself on 127.0.0.1: a Temporal dev server, the
scripted model (instant answers), `python -m worker` processes with the toolbox MCP
server, and `python -m api`. Everything is stopped on exit."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from api.cli.dev_stack import dev_server_flags
from tests.conftest import REPO_ROOT, TEMPORAL_CLI, CallLog, WorkerProcess, toolbox_stdio
from tests.scripted_llm import Reply, ScriptedLLM, Turn, free_port, tool_call
from tests.waiting import eventually, wait_for_port
from workflows.contract import SEARCH_ATTRIBUTES

DEV_SERVER_FLAGS = dev_server_flags()
"""The flags `orch dev` starts the dev server with."""
DEFAULT_SERVER_FLAGS = [f"--search-attribute={key.name}=Keyword" for key in SEARCH_ATTRIBUTES]
"""Temporal's own defaults (`--server-defaults`): to measure what the dynamic config changes."""


def looping_model(request: dict[str, Any]) -> Turn:
    """Model `loop-N-TOOL-ARG`: calls TOOL until N-1 tool results came back, then answers."""
    _, steps, tool, argument = str(request["model"]).split("-", 3)
    done = sum(1 for message in request["messages"] if message.get("role") == "tool")
    if done + 1 >= int(steps):
        return Reply(content=f"done after {done} tool calls")
    arguments = {"size": int(argument)} if tool == "big_output" else {"text": argument}
    return Reply(tool_calls=[tool_call(f"c{done}", f"toolbox__{tool}", arguments)])


def peer_model(request: dict[str, Any]) -> Turn:
    """Model `peer-N`: calls the offered echo tool until N-1 tool results came back, then answers."""
    steps = int(str(request["model"]).rsplit("-", 1)[1])
    done = sum(1 for message in request["messages"] if message.get("role") == "tool")
    if done + 1 >= steps:
        return Reply(content=f"done after {done} tool calls")
    names = [tool["function"]["name"] for tool in request.get("tools") or [] if tool.get("type") == "function"]
    echo = next(name for name in names if name == "echo" or name.endswith("__echo") or name.endswith("_echo"))
    return Reply(tool_calls=[tool_call(f"c{done}", echo, {"text": "x"})])


def gated_model(request: dict[str, Any]) -> Turn:
    """Asks for one gated `transfer` (call id `pay`), then answers "paid"."""
    if any(message.get("role") == "tool" for message in request["messages"]):
        return Reply(content="paid")
    return Reply(tool_calls=[tool_call("pay", "toolbox__transfer", {"account": "a", "amount": 1})])


@dataclass
class Stack:
    client: Client
    llm: ScriptedLLM
    temporal_address: str
    task_queue: str
    workdir: Path
    call_log: CallLog
    server_pid: int
    workers: list[WorkerProcess] = field(default_factory=list)
    api_url: str | None = None
    _api: asyncio.subprocess.Process | None = None

    def model(self, steps: int, tool: str = "echo", argument: str = "x") -> str:
        """A model name the scripted model answers with `steps` LLM calls (`steps - 1` tool calls)."""
        name = f"loop-{steps}-{tool}-{argument}"
        self.llm.respond(name, looping_model)
        return name

    def peer_model(self, steps: int) -> str:
        """A model name every peer's agent answers with `steps` LLM calls (tests/benchmarks/peers)."""
        name = f"peer-{steps}"
        self.llm.respond(name, peer_model)
        return name

    def env(self, **extra: str) -> dict[str, str]:
        config = self.workdir / "mcp.json"
        config.write_text(
            json.dumps(
                {"mcpServers": {"toolbox": toolbox_stdio(self.call_log, tools_to_auto_execute=["echo", "big_output"])}}
            )
        )
        return dict(
            os.environ,
            TEMPORAL_ADDRESS=self.temporal_address,
            ORCH_TASK_QUEUE=self.task_queue,
            ORCH_MCP_CONFIG=str(config),
            OPENAI_BASE_URL=self.llm.base_url,
            ORCH_DEFAULT_MODEL="bench",
            **extra,
        )

    async def start_worker(self) -> WorkerProcess:
        worker = WorkerProcess(self.env())
        await worker.start()
        self.workers.append(worker)
        return worker

    async def start_api(self) -> str:
        port = free_port()
        self._api = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "api", cwd=REPO_ROOT, env=self.env(ORCH_API_PORT=str(port)),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        await wait_for_port(port)
        self.api_url = f"http://127.0.0.1:{port}"
        return self.api_url

    async def aclose(self) -> None:
        for worker in self.workers:
            with contextlib.suppress(Exception):
                await worker.stop(signal.SIGTERM)
        if self._api is not None and self._api.returncode is None:
            self._api.terminate()
            await self._api.wait()


async def _connected(address: str) -> Client | None:
    try:
        return await Client.connect(address, data_converter=pydantic_data_converter)
    except RuntimeError:  # "Frontend is not healthy yet" just after the port opens
        return None


@contextlib.asynccontextmanager
async def stack(server_flags: list[str] | None = None) -> AsyncIterator[Stack]:
    """A fresh dev server (in memory), the scripted model and a work directory; workers and
    the API are started by the cases that need them."""
    port = free_port()
    flags = DEV_SERVER_FLAGS if server_flags is None else server_flags
    server = await asyncio.create_subprocess_exec(
        TEMPORAL_CLI, "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(port),
        "--log-level", "error", *flags,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    llm = ScriptedLLM()
    llm.record_requests = False
    await llm.start()
    with tempfile.TemporaryDirectory(prefix="orch-bench-") as workdir:
        bench: Stack | None = None
        try:
            await wait_for_port(port, timeout=60)
            address = f"127.0.0.1:{port}"
            client = await eventually(
                lambda: _connected(address), "the dev server's frontend answers", timeout=60, interval=0.2
            )
            bench = Stack(
                client=client,
                llm=llm,
                temporal_address=address,
                task_queue=f"bench-{uuid.uuid4().hex[:8]}",
                workdir=Path(workdir),
                call_log=CallLog(Path(workdir) / "calls.jsonl"),
                server_pid=server.pid,
            )
            yield bench
        finally:
            if bench is not None:
                await bench.aclose()
            await llm.stop()
            server.terminate()
            await server.wait()
