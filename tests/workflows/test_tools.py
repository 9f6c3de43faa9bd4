"""Tool policy and tool failures as the model sees them."""

from __future__ import annotations

import asyncio
import sys

import pytest

from tests.conftest import REPO_ROOT, CallLog, WorkerFactory, toolbox_stdio
from tests.scripted_llm import Reply, ScriptedLLM, free_port, tool_call
from tests.waiting import TOOL_TIMEOUT_SECONDS, result_of, wait_for_port


def _offered(request: dict) -> list[str]:
    return [tool["function"]["name"] for tool in request.get("tools", [])]


async def test_deny_listed_and_excluded_tools_are_never_offered(
    run_worker: WorkerFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script(
        "m-deny-list",
        Reply(tool_calls=[tool_call("x", "toolbox__delete_everything", {})]),
        Reply(content="could not"),
    )
    policy = {"tools_to_execute": ["echo", "add", "delete_everything", "transfer"], "tool_deny_list": ["delete_*"]}
    async with run_worker({"toolbox": toolbox_stdio(call_log, **policy)}) as h:
        final = await result_of(await h.start({"input": "wipe", "model": "m-deny-list"}))
    first, second = llm.requests_for("m-deny-list")
    assert sorted(_offered(first)) == ["toolbox__add", "toolbox__echo", "toolbox__transfer"]
    assert second["messages"][-1]["content"].startswith("error: unknown tool 'toolbox__delete_everything'")
    assert call_log.calls("delete_everything") == []
    assert final.status == "completed"


async def test_a_tool_redefined_mid_run_is_refused_and_the_model_told_why(
    run_worker: WorkerFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script(
        "m-rug",
        Reply(tool_calls=[tool_call("r", "toolbox__rug_pull", {})]),
        Reply(tool_calls=[tool_call("t", "toolbox__transfer", {"account": "attacker", "amount": 1})]),
        Reply(content="refused"),
    )
    async with run_worker({"toolbox": toolbox_stdio(call_log, tools_to_auto_execute=["*"])}) as h:
        final = await result_of(await h.start({"input": "x", "model": "m-rug"}))
    tool_message = llm.requests_for("m-rug")[2]["messages"][-1]
    assert tool_message["tool_call_id"] == "t"
    assert tool_message["content"] == (
        "error: tool toolbox.transfer changed its description or input schema since this run started; "
        "refusing to call it"
    )
    assert call_log.calls("transfer") == [] and len(call_log.calls("rug_pull")) == 1
    assert final.status == "completed"


async def test_model_intent_is_wrapped_for_the_model_and_unwrapped_for_the_server(
    run_worker: WorkerFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script(
        "m-intent",
        Reply(
            tool_calls=[
                tool_call("w", "toolbox__echo", {"model_intent": "greet", "properties": {"text": "wrapped"}}),
                tool_call("f", "toolbox__echo", {"model_intent": "flat one", "text": "flat"}),
                tool_call("m", "toolbox__echo", {"model_intent": "stringly", "properties": '{"text": "malformed"}'}),
            ]
        ),
        Reply(content="echoed"),
    )
    server = toolbox_stdio(call_log, tools_to_auto_execute=["*"], model_intent=True)
    async with run_worker({"toolbox": server}) as h:
        handle = await h.start({"input": "echo", "model": "m-intent"})
        final = await result_of(handle)
        history = await handle.fetch_history()
    [echo_tool] = [t for t in llm.requests_for("m-intent")[0]["tools"] if t["function"]["name"] == "toolbox__echo"]
    parameters = echo_tool["function"]["parameters"]
    assert parameters["required"] == ["model_intent", "properties"]
    assert parameters["properties"]["properties"]["properties"]["text"]["type"] == "string"
    assert sorted(call["arguments"]["text"] for call in call_log.calls("echo")) == ["flat", "malformed", "wrapped"]
    steps = {s.tool_call_id: s for s in final.steps if s.kind == "tool"}
    assert (steps["w"].intent, steps["w"].arguments) == ("greet", {"text": "wrapped"})
    assert (steps["f"].intent, steps["f"].arguments) == ("flat one", {"text": "flat"})
    assert (steps["m"].intent, steps["m"].arguments) == ("stringly", {"text": "malformed"})
    summaries = [e.user_metadata.summary.data.decode() for e in history.events if e.HasField("user_metadata")]
    assert '"tool toolbox.echo: greet"' in summaries


async def test_error_result_timeout_and_bad_arguments_go_back_to_the_model(
    run_worker: WorkerFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script(
        "m-errors",
        Reply(
            tool_calls=[
                tool_call("e", "toolbox__fail", {"message": "disk full"}),
                tool_call("t", "toolbox__sleep", {"seconds": 600}),
                tool_call("j", "toolbox__echo", "{not json"),
                tool_call("u", "nowhere__tool", {}),
            ]
        ),
        Reply(content="recovered"),
    )
    async with run_worker({"toolbox": toolbox_stdio(call_log, tools_to_auto_execute=["*"])}) as h:
        handle = await h.start({"input": "x", "model": "m-errors", "tool_timeout_seconds": TOOL_TIMEOUT_SECONDS})
        final = await result_of(handle)
    messages = {
        m["tool_call_id"]: m["content"] for m in llm.requests_for("m-errors")[1]["messages"] if m["role"] == "tool"
    }
    assert messages["e"] == "error: Error executing tool fail: disk full"
    assert messages["t"] == f"error: tool toolbox.sleep timed out after {TOOL_TIMEOUT_SECONDS:g}s"
    assert messages["j"].startswith("error: arguments are not valid JSON")
    assert messages["u"].startswith("error: unknown tool 'nowhere__tool'")
    assert final.status == "completed" and final.output == "recovered"
    assert call_log.calls("echo") == []
    assert len(call_log.calls("sleep")) == 1, "a timed-out call is not retried"


async def test_tool_output_over_the_cap_is_truncated_with_a_marker(
    run_worker: WorkerFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script("m-big", Reply(tool_calls=[tool_call("b", "toolbox__big_output", {"size": 5000})]), Reply(content="ok"))
    async with run_worker({"toolbox": toolbox_stdio(call_log, tools_to_auto_execute=["*"])}) as h:
        await result_of(await h.start({"input": "big", "model": "m-big", "tool_output_limit_bytes": 1024}))
    content = llm.requests_for("m-big")[1]["messages"][-1]["content"]
    assert len(content.encode()) <= 1024
    assert content.startswith("xxxx") and "[truncated: output was 5000 bytes" in content


@pytest.fixture
async def toolbox_http(call_log: CallLog):
    """The toolbox served over streamable HTTP in a subprocess."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.mcp_servers.toolbox",
        "--http",
        str(port),
        cwd=REPO_ROOT,
        env={"TOOLBOX_CALL_LOG": str(call_log.path), "PATH": "/usr/bin:/bin"},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await wait_for_port(port)
    yield proc, f"http://127.0.0.1:{port}/mcp"
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


async def test_streamable_http_server_then_unreachable_goes_back_to_the_model(
    run_worker: WorkerFactory, llm: ScriptedLLM, call_log: CallLog, toolbox_http
) -> None:
    proc, url = toolbox_http

    def kill_server_then_call_again(_: dict) -> Reply:
        proc.kill()
        return Reply(tool_calls=[tool_call("h2", "remote__add", {"a": 1, "b": 1})])

    llm.script(
        "m-http",
        Reply(tool_calls=[tool_call("h1", "remote__add", {"a": 40, "b": 2})]),
        kill_server_then_call_again,
        Reply(content="server went away"),
    )
    server = {"url": url, "transport": "streamable_http", "tools_to_auto_execute": ["add"]}
    async with run_worker({"remote": server}) as h:
        handle = await h.start({"input": "add", "model": "m-http", "tool_timeout_seconds": TOOL_TIMEOUT_SECONDS})
        final = await result_of(handle)
    messages = {
        m["tool_call_id"]: m["content"] for m in llm.requests_for("m-http")[2]["messages"] if m["role"] == "tool"
    }
    assert messages["h1"] == "42"
    assert messages["h2"].startswith("error: MCP server 'remote'")
    assert final.status == "completed" and final.output == "server went away"
