"""POST /v1/chat/completions, driven by the official `openai` client."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator

import openai
import pytest

from api import sse
from api.events import RunEventsHub
from tests.api.conftest import APIFactory, APIHarness
from tests.conftest import CallLog, toolbox_stdio
from tests.scripted_llm import HTTPError, Reply, ScriptedLLM, tool_call
from tests.waiting import eventually
from workflows.messages import RunEvent


def _servers(call_log: CallLog) -> dict:
    return {"toolbox": toolbox_stdio(call_log, tools_to_auto_execute=["echo"])}


def client_of(api: APIHarness) -> openai.AsyncOpenAI:
    """The official client pointed at the API; use it as `async with`, which closes it."""
    return openai.AsyncOpenAI(base_url=f"{api.base_url}/v1", api_key="unused-on-loopback", max_retries=0)


async def test_a_chat_completion_runs_the_tools_and_answers(
    api_stack: APIFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script(
        "m-chat",
        Reply(tool_calls=[tool_call("e1", "toolbox__echo", {"text": "ping"})], prompt_tokens=10, completion_tokens=3),
        Reply(content="The echo said ping.", prompt_tokens=20, completion_tokens=5),
    )
    async with api_stack(_servers(call_log)) as api, client_of(api) as chat:
        done = await chat.chat.completions.create(
            model="m-chat",
            messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "echo ping"}],
            temperature=0.2,
            extra_body={"mcp_servers": ["toolbox"]},
        )
        run_id = done.model_extra["orchestration_id"]
        run = (await api.http.get(f"/v1/orchestrations/{run_id}")).json()
    assert done.object == "chat.completion" and done.model == "m-chat"
    assert done.choices[0].message.role == "assistant" and done.choices[0].message.content == "The echo said ping."
    assert done.choices[0].finish_reason == "stop"
    assert (done.usage.prompt_tokens, done.usage.completion_tokens, done.usage.total_tokens) == (30, 8, 38)
    assert run["status"] == "completed" and [s["kind"] for s in run["steps"]] == ["llm", "tool", "llm"]
    assert done.model_extra["orchestration"]["status"] == "completed"
    assert [c["arguments"] for c in call_log.calls("echo")] == [{"text": "ping"}]
    assert llm.requests_for("m-chat")[0]["messages"][0] == {"role": "system", "content": "Be brief."}


async def test_a_call_waiting_too_long_for_approval_answers_with_the_pending_calls(
    api_stack: APIFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script(
        "m-chat-gated",
        Reply(tool_calls=[tool_call("t1", "toolbox__transfer", {"account": "acme", "amount": 5})]),
        Reply(content="paid"),
    )
    async with api_stack(_servers(call_log)) as api, client_of(api) as chat:
        done = await chat.chat.completions.create(
            model="m-chat-gated",
            messages=[{"role": "user", "content": "pay acme 5"}],
            extra_body={"approval_wait_seconds": 1},
        )
        ref = done.model_extra["orchestration"]
        run_id = done.model_extra["orchestration_id"]
        assert ref["status"] == "waiting_for_approval" and ref["pending_approvals"][0]["tool_call_id"] == "t1"
        text = done.choices[0].message.content
        assert "waiting for approval" in text and "toolbox.transfer" in text and run_id in text
        decision = {"tool_call_id": "t1", "decision": "approve"}
        assert (await api.http.post(ref["links"]["approvals"], json=decision)).status_code == 200
        final = await api.wait_for(run_id, lambda s: s["status"] == "completed")
    assert final["output"] == "paid" and len(call_log.calls("transfer")) == 1


async def test_stream_true_streams_the_answer_as_chunks(
    api_stack: APIFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    answer = "A long enough answer to be split into several chunks by the facade, word by word and more."
    llm.script(
        "m-chat-stream",
        Reply(tool_calls=[tool_call("e1", "toolbox__echo", {"text": "x"})], prompt_tokens=1, completion_tokens=1),
        Reply(content=answer, prompt_tokens=7, completion_tokens=9),
    )
    async with api_stack(_servers(call_log)) as api, client_of(api) as chat:
        stream = await chat.chat.completions.create(
            model="m-chat-stream",
            messages=[{"role": "user", "content": "go"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        received = [chunk async for chunk in stream]
    content = [c.choices[0].delta.content or "" for c in received if c.choices]
    assert "".join(content) == answer and len(content) > 2
    assert received[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in received if c.choices][-1] == "stop"
    assert received[-1].choices == [] and received[-1].usage.total_tokens == 18
    assert all(c.model_extra["orchestration_id"].startswith("orch-") for c in received)


async def test_a_client_leaving_a_chat_stream_closes_it_cleanly(
    api_stack: APIFactory,
    llm: ScriptedLLM,
    call_log: CallLog,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    llm.script("m-chat-leave", Reply(tool_calls=[tool_call("t1", "toolbox__transfer", {"account": "a", "amount": 1})]))
    monkeypatch.setattr(sse, "KEEPALIVE_SECONDS", 0.2)
    async with api_stack(_servers(call_log)) as api:
        hub: RunEventsHub = api.app.state.events
        followed: list[str] = []
        follow = hub.follow

        def recorded_follow(run_id: str, after: int) -> AsyncGenerator[RunEvent, None]:
            followed.append(run_id)
            return follow(run_id, after)

        monkeypatch.setattr(hub, "follow", recorded_follow)
        body = {
            "model": "m-chat-leave",
            "messages": [{"role": "user", "content": "pay"}],
            "stream": True,
            "approval_wait_seconds": 600,
        }
        lines: list[str] = []
        async with api.http.stream("POST", "/v1/chat/completions", json=body) as stream:
            async for line in stream.aiter_lines():
                lines.append(line)
                if line == ": ping" and any("tool_pending" in seen for seen in lines):
                    break  # and hang up while the run waits for approval
        (run_id,) = followed
        await eventually(lambda: hub.watchers(run_id) == 0, "the left stream to stop following the run")
        await api.http.post(f"/v1/orchestrations/{run_id}/cancel")
    assert any(re.fullmatch(r": orchestration event \d+: tool_pending transfer", line) for line in lines)
    assert "already running" not in caplog.text
    assert "Traceback" not in caplog.text and "Exception" not in caplog.text


async def test_bad_requests_and_a_failed_run_are_errors_the_client_understands(
    api_stack: APIFactory, llm: ScriptedLLM
) -> None:
    llm.script("m-chat-400", HTTPError(400, "The model `m-chat-400` does not exist"))
    llm.script("m-chat-plain", Reply(content="no tools here"))
    async with api_stack() as api, client_of(api) as chat:
        with pytest.raises(openai.UnprocessableEntityError) as refused:
            await chat.chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": "x"}],
                tools=[{"type": "function", "function": {"name": "f"}}],
            )
        assert "MCP servers" in refused.value.message
        with pytest.raises(openai.UnprocessableEntityError):
            await chat.chat.completions.create(model="m", messages=[{"role": "system", "content": "only system"}])
        with pytest.raises(openai.APIStatusError) as failed:
            await chat.chat.completions.create(model="m-chat-400", messages=[{"role": "user", "content": "x"}])
        assert failed.value.status_code == 502 and "does not exist" in failed.value.message
        plain = await chat.chat.completions.create(
            model="m-chat-plain", messages=[{"role": "user", "content": "x"}], extra_body={"execute_tools": False}
        )
    assert plain.choices[0].message.content == "no tools here"
    assert "tools" not in llm.requests_for("m-chat-plain")[0] or not llm.requests_for("m-chat-plain")[0]["tools"]
