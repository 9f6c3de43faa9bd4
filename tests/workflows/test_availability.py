"""Which servers a run is offered: `force_on` always, `default_on` unless the run names
others, `default_off` only when named; an API key's scope still applies to all three."""

from __future__ import annotations

from typing import Any

from tests.conftest import CallLog, WorkerFactory, toolbox_stdio
from tests.scripted_llm import Reply, ScriptedLLM


def _servers(call_log: CallLog) -> dict[str, Any]:
    return {
        "always": toolbox_stdio(call_log, availability="force_on", tools_to_execute=["echo"]),
        "usual": toolbox_stdio(call_log, tools_to_execute=["echo"]),
        "rare": toolbox_stdio(call_log, availability="default_off", tools_to_execute=["echo"]),
        "off": toolbox_stdio(call_log, availability="force_on", enabled=False, tools_to_execute=["echo"]),
    }


async def _offered(harness: Any, llm: ScriptedLLM, model: str, **request: Any) -> set[str]:
    llm.script(model, Reply(content="ok"))
    handle = await harness.start({"input": "hi", "model": model, **request})
    await handle.result()
    return {tool["function"]["name"].split("__")[0] for tool in llm.requests_for(model)[0].get("tools", [])}


async def test_availability_decides_which_servers_a_run_is_offered(
    run_worker: WorkerFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    async with run_worker(_servers(call_log)) as harness:
        assert await _offered(harness, llm, "m-none") == {"always", "usual"}
        assert await _offered(harness, llm, "m-rare", mcp_servers=["rare"]) == {"always", "rare"}
        assert await _offered(harness, llm, "m-usual", mcp_servers=["usual"]) == {"always", "usual"}
        assert await _offered(harness, llm, "m-empty", mcp_servers=[]) == {"always"}
        scoped = await _offered(harness, llm, "m-scoped", mcp_servers=["rare"], tool_scope=["rare"])
        assert scoped == {"rare"}, "a key's scope applies to force_on servers too"
