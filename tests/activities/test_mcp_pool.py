"""The per-worker MCP session pool, against real stdio servers."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator

import mcp_types
import pytest

from activities.mcp_config import MCPConfig, MCPConfigError
from activities.mcp_pool import MCPServerUnknown, MCPSessionPool, MCPToolTimeout, MCPTransportError
from tests.conftest import REPO_ROOT, CallLog, toolbox_stdio
from tests.scripted_llm import free_port
from tests.waiting import WAIT_SECONDS, eventually, wait_for_port


@pytest.fixture
async def pool(call_log: CallLog) -> AsyncIterator[MCPSessionPool]:
    config = MCPConfig.model_validate(
        {
            "mcpServers": {
                "toolbox": toolbox_stdio(call_log),
                "time": {"command": sys.executable, "args": ["-m", "mcp_server_time"]},
                "broken": {"command": sys.executable, "args": ["-c", "import sys; sys.exit(3)"]},
                "needs_secret": {"command": sys.executable, "env": {"TOKEN": "${ORCH_TEST_MISSING_VAR}"}},
            }
        }
    )
    pool = MCPSessionPool(config, connect_timeout=WAIT_SECONDS)
    yield pool
    await pool.aclose()


async def _pid(pool: MCPSessionPool) -> str:
    answer = await pool.call_tool("toolbox", "whoami", {}, timeout=WAIT_SECONDS, meta={})
    return answer.result.content[0].text  # type: ignore[union-attr]


async def test_one_session_serves_many_and_concurrent_calls(pool: MCPSessionPool) -> None:
    first = await _pid(pool)
    pids = await asyncio.gather(*(_pid(pool) for _ in range(10)))
    assert set(pids) == {first}


async def test_a_dead_server_is_dropped_and_reopened(pool: MCPSessionPool) -> None:
    first = await _pid(pool)
    os.kill(int(first), signal.SIGKILL)

    async def failed() -> bool:
        try:
            await _pid(pool)
        except MCPTransportError:
            return True
        return False

    # The call that finds the session broken fails (Temporal retries it) ...
    await eventually(failed, "a call finds the killed server's session broken")
    # ... and the next one gets a fresh session.
    assert await _pid(pool) != first


async def test_real_mcp_server_time_lists_and_calls(pool: MCPSessionPool) -> None:
    names = {tool.name for tool in await pool.list_tools("time")}
    assert {"get_current_time", "convert_time"} <= names
    answer = await pool.call_tool(
        "time", "get_current_time", {"timezone": "Europe/Paris"}, timeout=WAIT_SECONDS, meta={}
    )
    result = answer.result
    assert isinstance(result, mcp_types.CallToolResult)
    assert not result.is_error and "Europe/Paris" in result.content[0].text  # type: ignore[union-attr]


async def test_protocol_errors_come_back_as_error_results(pool: MCPSessionPool) -> None:
    answer = await pool.call_tool("toolbox", "add", {"a": "not a number", "b": 1}, timeout=WAIT_SECONDS, meta={})
    assert isinstance(answer.result, mcp_types.CallToolResult) and answer.result.is_error


async def test_timeout_unknown_server_and_unstartable_server(pool: MCPSessionPool) -> None:
    with pytest.raises(MCPToolTimeout, match="timed out after 0.5s"):
        await pool.call_tool("toolbox", "sleep", {"seconds": 600}, timeout=0.5, meta={})
    assert await _pid(pool), "the session survives a timed-out call"
    with pytest.raises(MCPServerUnknown):
        await pool.call_tool("nope", "x", {}, timeout=1, meta={})
    with pytest.raises(MCPTransportError, match="cannot connect"):
        await pool.call_tool("broken", "x", {}, timeout=1, meta={})
    with pytest.raises(MCPConfigError, match="ORCH_TEST_MISSING_VAR is not set"):
        await pool.call_tool("needs_secret", "x", {}, timeout=1, meta={})


@pytest.mark.parametrize("transport", ["sse", "streamable_http"])
async def test_http_transports_list_and_call(transport: str, call_log: CallLog) -> None:
    port = free_port()
    flag, path = ("--sse", "/sse") if transport == "sse" else ("--http", "/mcp")
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.mcp_servers.toolbox", flag, str(port),
        cwd=REPO_ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}{path}"
    config = MCPConfig.model_validate(
        {"mcpServers": {"remote": {"url": url, "transport": transport, "headers": {"X-Token": "${ORCH_TEST_TOKEN}"}}}}
    )
    pool = MCPSessionPool(config, environ={"ORCH_TEST_TOKEN": "t"})
    try:
        await wait_for_port(port)
        assert "add" in {tool.name for tool in await pool.list_tools("remote")}
        answer = await pool.call_tool("remote", "add", {"a": 2, "b": 3}, timeout=WAIT_SECONDS, meta={})
        assert answer.result.content[0].text == "5"  # type: ignore[union-attr]
    finally:
        await pool.aclose()
        server.kill()
        await server.wait()


async def test_idempotency_key_reaches_the_server_in_meta(pool: MCPSessionPool, call_log: CallLog) -> None:
    await pool.call_tool("toolbox", "echo", {"text": "x"}, timeout=WAIT_SECONDS, meta={"idempotency-key": "wf/call-1"})
    [call] = call_log.calls("echo")
    assert call["meta"]["idempotency-key"] == "wf/call-1"
