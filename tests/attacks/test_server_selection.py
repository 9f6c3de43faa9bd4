"""Attack: use an MCP server the operator turned off, or get a run with other tools than asked.

A server marked `"disabled": true` used to be started when a run named it, and `/v1/tools`
connected to it; a run naming a server that does not exist started without tools. And 40
concurrent `/v1/tools` calls at cache expiry started 40 listing workflows (and with no worker
up, each caller would wait out its own listing).
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path
from typing import Any

from api.app import create_app
from api.service import OrchestrationService
from tests.api.conftest import APIFactory, APIHarness, serve_api
from tests.conftest import CallLog, toolbox_stdio
from tests.scripted_llm import Reply, ScriptedLLM
from tests.waiting import result_of
from worker.connection import TemporalConnection
from worker.settings import Settings


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
        assert _service(api).tools.asked == 1
        assert len({answer.text for answer in answers}) == 1


async def test_without_a_worker_runs_naming_servers_still_start_after_one_listing_attempt(temporal_env) -> None:
    target = temporal_env.client.service_client.config.target_host
    settings = Settings(task_queue=f"tq-no-worker-{uuid.uuid4().hex[:8]}")
    app = create_app(settings, TemporalConnection.plain(target))
    async with serve_api(settings, app) as (http, _):
        body = {"input": "x", "mcp_servers": ["toolbox"]}
        answers = await asyncio.gather(*(http.post("/v1/orchestrations", json=body) for _ in range(3)))
        assert [answer.status_code for answer in answers] == [202] * 3, [a.text for a in answers]
        service: OrchestrationService = app.state.service
        assert service.tools.asked == 1, "callers behind a listing no worker answered do not wait again"
        for answer in answers:
            await temporal_env.client.get_workflow_handle(answer.json()["id"]).terminate("test cleanup")
