"""Attack: use an MCP server the operator turned off, or get a run with other tools than asked.

A server marked `"disabled": true` used to be started when a run named it, and `/v1/tools`
connected to it; a run naming a server that does not exist started without tools. And 40
concurrent `/v1/tools` calls at cache expiry started 40 listing workflows.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from api.service import OrchestrationService
from tests.api.conftest import APIFactory, APIHarness
from tests.conftest import CallLog, toolbox_stdio
from tests.scripted_llm import Reply, ScriptedLLM
from tests.waiting import result_of


def _servers(call_log: CallLog, started: Path) -> dict[str, Any]:
    """The toolbox, and a disabled server that leaves a file behind if it is ever started."""
    marker = f"import pathlib; pathlib.Path({str(started)!r}).touch()"
    disabled = {"command": sys.executable, "args": ["-c", marker], "disabled": True}
    return {"toolbox": toolbox_stdio(call_log, tools_to_auto_execute=["echo"]), "legacy": disabled}


def _service(api: APIHarness) -> OrchestrationService:
    service: OrchestrationService = api.app.state.service
    return service


async def test_a_disabled_or_unknown_server_is_refused_and_never_started(
    api_stack: APIFactory, llm: ScriptedLLM, call_log: CallLog, tmp_path: Path
) -> None:
    started = tmp_path / "legacy-started"
    llm.script("m-disabled", Reply(content="no tools needed"))
    async with api_stack(_servers(call_log, started)) as api:
        for names, code, named in (
            (["legacy"], "mcp_server_disabled", "legacy"),
            (["toolbox", "nope"], "unknown_mcp_server", "nope"),
        ):
            refused = await api.http.post("/v1/orchestrations", json={"input": "x", "mcp_servers": names})
            assert refused.status_code == 422, refused.text
            assert refused.json()["error"]["code"] == code and named in refused.json()["error"]["message"]
        tools = {s["name"]: s for s in (await api.http.get("/v1/tools")).json()["servers"]}
        assert tools["legacy"]["enabled"] is False and tools["legacy"]["tools"] == []
        # Past the API (a raw workflow start, as the Temporal CLI could do): the worker will not use it either.
        handle = await api.worker.start({"input": "x", "model": "m-disabled", "mcp_servers": ["legacy", "toolbox"]})
        final = await result_of(handle)
    assert final.status == "completed"
    offered = {tool["function"]["name"].split("__")[0] for tool in llm.requests_for("m-disabled")[0]["tools"]}
    assert offered == {"toolbox"}
    assert not started.exists(), "the disabled server was started"


async def test_concurrent_tool_listings_ask_a_worker_once(api_stack: APIFactory, call_log: CallLog) -> None:
    async with api_stack({"toolbox": toolbox_stdio(call_log)}) as api:
        answers = await asyncio.gather(*(api.http.get("/v1/tools") for _ in range(40)))
        assert {answer.status_code for answer in answers} == {200}
        assert _service(api).tool_listings == 1
        assert len({answer.text for answer in answers}) == 1
