"""POST /v1/responses, driven by the official `openai` client against the running stack (a worker,
the API, Temporal, the scripted model and the toolbox MCP server)."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.api.conftest import APIFactory, APIHarness, collect
from tests.api.test_auth import KEYS, keys_json
from tests.conftest import CallLog, toolbox_stdio
from tests.scripted_llm import Reply, ScriptedLLM, tool_call
from tests.waiting import eventually


def _servers(call_log: CallLog) -> dict[str, Any]:
    """The toolbox: `echo` runs without approval by its server's policy, `transfer` waits for one."""
    return {"toolbox": toolbox_stdio(call_log, tools_to_auto_execute=["echo", "sleep"])}


def _client(api: APIHarness, key: str = "unused-on-loopback") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{api.base_url}/v1", api_key=key, max_retries=0)


def _mcp(**fields: Any) -> dict[str, Any]:
    return {"type": "mcp", "server_label": "toolbox", **fields}


def _types(response: Any) -> list[str]:
    return [item.type for item in response.output]


async def test_an_auto_approved_tool_runs_and_the_response_shows_each_item(
    api_stack: APIFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script(
        "m-resp",
        Reply(tool_calls=[tool_call("e1", "toolbox__echo", {"text": "ping"})], prompt_tokens=10, completion_tokens=3),
        Reply(
            tool_calls=[
                tool_call("e2", "toolbox__echo", {"text": "b"}),
                tool_call("e3", "toolbox__echo", {"text": "c"}),
            ]
        ),
        Reply(content="The echo said ping.", prompt_tokens=20, completion_tokens=5),
    )
    tool = _mcp(require_approval="never", allowed_tools=["echo"])
    async with api_stack(_servers(call_log)) as api, _client(api) as client:
        response = await client.responses.create(
            model="m-resp", input="echo ping", instructions="Be brief.", tools=[tool], max_tool_calls=2
        )
        again = await client.responses.retrieve(response.id)
    assert response.object == "response" and response.status == "completed" and response.id.startswith("resp_")
    assert _types(response) == ["mcp_list_tools", "mcp_call", "mcp_call", "mcp_call", "message"]
    listed = response.output[0]
    assert listed.server_label == "toolbox" and [t.name for t in listed.tools] == ["echo"]
    assert listed.tools[0].input_schema["required"] == ["text"]
    first, second, refused = response.output[1:4]
    assert (first.name, first.server_label, json.loads(first.arguments)) == ("echo", "toolbox", {"text": "ping"})
    assert first.status == "completed" and "ping" in first.output and first.error is None
    assert second.status == "completed", "max_tool_calls counts the run's calls: the second is the last"
    assert refused.status == "failed" and "max_tool_calls" in refused.error.content[0]["text"]
    assert response.output_text == "The echo said ping."
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (40, 13, 53)
    assert response.instructions == "Be brief." and response.max_tool_calls == 2 and response.tools[0].type == "mcp"
    assert again.model_dump() == response.model_dump()
    assert response.model_extra["orchestration"]["status"] == "completed"
    [offered] = {tuple(t["function"]["name"] for t in r["tools"]) for r in llm.requests_for("m-resp")}
    assert offered == ("toolbox__echo",), "allowed_tools: the model is offered nothing else"
    assert [c["arguments"] for c in call_log.calls("echo")] == [{"text": "ping"}, {"text": "b"}]


async def test_require_approval_always_then_an_approval_by_previous_response_id(
    api_stack: APIFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script(
        "m-resp-approve",
        Reply(tool_calls=[tool_call("e1", "toolbox__echo", {"text": "hi"})]),
        Reply(content="Echoed hi."),
    )
    llm.respond(
        "m-resp-scoped", lambda request: Reply(content=",".join(t["function"]["name"] for t in request["tools"]))
    )
    async with (
        api_stack(_servers(call_log), api_keys=keys_json()) as api,
        _client(api, KEYS["alice"][0]) as alice,
        _client(api, KEYS["carol"][0]) as carol,
    ):
        waiting = await alice.responses.create(model="m-resp-approve", input="echo hi", tools=[_mcp()])
        assert waiting.status == "completed" and _types(waiting) == ["mcp_list_tools", "mcp_approval_request"]
        request = waiting.output[1]
        assert (request.server_label, request.name, json.loads(request.arguments)) == (
            "toolbox",
            "echo",
            {"text": "hi"},
        )
        assert call_log.calls("echo") == [], "the server would auto-execute echo; the request asked for a person"
        approval = {"type": "mcp_approval_response", "approval_request_id": request.id, "approve": True}
        with pytest.raises(openai.PermissionDeniedError):
            await alice.responses.create(previous_response_id=waiting.id, input=[approval])
        done = await carol.responses.create(
            model="m-resp-approve", previous_response_id=waiting.id, input=[approval], tools=[_mcp()]
        )
        async with _client(api, KEYS["bob"][0]) as bob:
            with pytest.raises(openai.NotFoundError):
                await bob.responses.retrieve(waiting.id)  # another key's run
            with pytest.raises(openai.NotFoundError):
                await bob.responses.cancel(waiting.id)
        async with _client(api, KEYS["echoer"][0]) as echoer:
            scoped = await echoer.responses.create(model="m-resp-scoped", input="hi", tools=[_mcp()])
        assert scoped.output_text == "toolbox__echo", "the key's MCP scope applies: echo only"
        assert [t.name for t in scoped.output[0].tools] == ["echo"]
        run_path = f"/v1/orchestrations/{done.model_extra['orchestration']['id']}"
        run = (await api.http.get(run_path, headers={"Authorization": f"Bearer {KEYS['carol'][0]}"})).json()
        retrieved = await alice.responses.retrieve(waiting.id)
    assert done.id != waiting.id and done.previous_response_id == waiting.id and done.status == "completed"
    assert _types(done) == ["mcp_call", "message"] and done.output_text == "Echoed hi."
    assert done.output[0].approval_request_id == request.id and "hi" in done.output[0].output
    [step] = [s for s in run["steps"] if s["kind"] == "tool"]
    assert (step["decision"], step["approver"], step["approval_hash"]) == ("approve", "carol", request.id[5:69])
    assert len(call_log.calls("echo")) == 1
    assert _types(retrieved) == ["mcp_list_tools", "mcp_approval_request"], "a response is the stretch it was"


async def test_a_denial_with_its_reason_reaches_the_model_and_never_loosens_the_server(
    api_stack: APIFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script(
        "m-resp-deny",
        Reply(tool_calls=[tool_call("t1", "toolbox__transfer", {"account": "acme", "amount": 5})]),
        Reply(content="I did not pay."),
    )
    async with api_stack(_servers(call_log)) as api, _client(api) as client:
        waiting = await client.responses.create(
            model="m-resp-deny", input="pay acme 5", tools=[_mcp(require_approval="never")]
        )
        assert _types(waiting) == ["mcp_list_tools", "mcp_approval_request"], "the server's policy still applies"
        denial = {
            "type": "mcp_approval_response",
            "approval_request_id": waiting.output[1].id,
            "approve": False,
            "reason": "not today",
        }
        done = await client.responses.create(previous_response_id=waiting.id, input=[denial])
    assert _types(done) == ["message"] and done.output_text == "I did not pay."
    told = llm.requests_for("m-resp-deny")[1]["messages"][-1]
    assert told == {"role": "tool", "tool_call_id": "t1", "content": "denied: not today"}
    assert call_log.calls("transfer") == []


async def test_background_responses_are_polled_and_cancelled(
    api_stack: APIFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script("m-resp-bg", Reply(content="Done in the background."))
    llm.script("m-resp-cancel", Reply(tool_calls=[tool_call("s1", "toolbox__sleep", {"seconds": 600})]))
    tool = _mcp(require_approval="never")
    async with api_stack(_servers(call_log)) as api, _client(api) as client:
        started = await client.responses.create(model="m-resp-bg", input="hi", tools=[tool], background=True)
        assert started.status in ("queued", "in_progress") and started.background is True

        async def finished() -> Any:
            polled = await client.responses.retrieve(started.id)
            return polled if polled.status == "completed" else None

        polled = await eventually(finished, "the background response completes")
        long = await client.responses.create(model="m-resp-cancel", input="sleep", tools=[tool], background=True)

        async def sleeping() -> Any:
            polled = await client.responses.retrieve(long.id)
            return polled if [i.type for i in polled.output] == ["mcp_list_tools", "mcp_call"] else None

        await eventually(sleeping, "the sleep call runs")
        cancelled = await client.responses.cancel(long.id)
        again = await client.responses.cancel(long.id)
    assert polled.output_text == "Done in the background." and polled.id == started.id
    assert cancelled.status == "cancelled" and again.status == "cancelled"
    assert cancelled.model_extra["orchestration"]["status"] == "cancelled"


async def test_streaming_tells_the_response_as_it_goes_and_resumes(
    api_stack: APIFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    answer = "A long enough answer to be split into several deltas of the output text, word by word."
    llm.script(
        "m-resp-stream",
        Reply(tool_calls=[tool_call("e1", "toolbox__echo", {"text": "x"})]),
        Reply(content=answer),
        Reply(tool_calls=[tool_call("e2", "toolbox__echo", {"text": "y"})]),
        Reply(content=answer),
    )
    tool = _mcp(require_approval="never")
    async with api_stack(_servers(call_log)) as api, _client(api) as client:
        stream = await client.responses.create(model="m-resp-stream", input="go", tools=[tool], stream=True)
        events = [event async for event in stream]
        response_id = events[0].response.id
        resumed = await client.responses.retrieve(response_id, stream=True, starting_after=5)
        tail = [event async for event in resumed]
        reconnected = await collect(api.http, f"/v1/responses/{response_id}?stream=true", last_event_id=5)
        async with client.responses.stream(model="m-resp-stream", input="go", tools=[tool]) as helper:
            final = await helper.get_final_response()
    kinds = [event.type for event in events]
    assert kinds[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    for expected in (
        "response.mcp_list_tools.completed",
        "response.mcp_call.in_progress",
        "response.mcp_call_arguments.done",
        "response.mcp_call.completed",
        "response.output_text.delta",
        "response.output_text.done",
    ):
        assert expected in kinds
    assert kinds[-1] == "response.completed" and events[-1].response.output_text == answer
    assert [event.sequence_number for event in events] == list(range(len(events)))
    text = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert text == answer and kinds.count("response.output_text.delta") > 1
    assert [event.model_dump() for event in tail] == [event.model_dump() for event in events[6:]]
    assert [(e["id"], e["event"]) for e in reconnected] == [(str(e.sequence_number), e.type) for e in events[6:]]
    assert final.output_text == answer and [i.type for i in final.output] == ["mcp_list_tools", "mcp_call", "message"]


async def test_a_follow_up_continues_the_conversation_of_the_earlier_run(
    api_stack: APIFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script(
        "m-resp-turns",
        Reply(tool_calls=[tool_call("e1", "toolbox__echo", {"text": "one"})]),
        Reply(content="It said one."),
        Reply(content="You asked me to echo one."),
    )
    tool = _mcp(require_approval="never")
    async with api_stack(_servers(call_log)) as api, _client(api) as client:
        first = await client.responses.create(
            model="m-resp-turns", input="echo one", instructions="Be brief.", tools=[tool]
        )
        second = await client.responses.create(
            model="m-resp-turns", input="what did I ask?", previous_response_id=first.id, tools=[tool]
        )
    assert second.previous_response_id == first.id and second.output_text == "You asked me to echo one."
    assert second.model_extra["orchestration"]["id"] != first.model_extra["orchestration"]["id"]
    assert _types(second) == ["mcp_list_tools", "message"], "the new run lists the tools it pinned"
    messages = llm.requests_for("m-resp-turns")[2]["messages"]
    assert [(m["role"], m.get("content")) for m in messages] == [
        ("user", "echo one"),
        ("assistant", None),
        ("tool", "one"),
        ("assistant", "It said one."),
        ("user", "what did I ask?"),
    ], "the history comes from the earlier run; its instructions are not carried over"


async def test_what_cannot_be_honoured_is_refused_naming_the_field(
    api_stack: APIFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script(
        "m-resp-refusals", Reply(tool_calls=[tool_call("t1", "toolbox__transfer", {"account": "a", "amount": 1})])
    )
    refusals: list[tuple[dict[str, Any], int, str]] = [
        ({"temperature": 0.2}, 400, "temperature"),
        ({"store": False}, 400, "store"),
        ({"tools": [{"type": "function", "name": "f"}]}, 400, "tools[0].type"),
        ({"tools": [{"type": "web_search"}]}, 400, "tools[0].type"),
        ({"tools": [_mcp(server_label="nope")]}, 400, "tools[0].server_label"),
        ({"tools": [_mcp(server_url="https://evil.example/mcp")]}, 400, "tools[0].server_url"),
        ({"tools": [_mcp(headers={"Authorization": "Bearer x"})]}, 400, "tools[0].headers"),
        ({"tools": [_mcp(), _mcp()]}, 400, "tools"),
        ({"tools": [_mcp(server_label="new", command="python")]}, 400, "tools[0].command"),
        ({"tools": [_mcp(require_approval={"never": {"read_only": True}})]}, 400, "tools[0].require_approval"),
        ({"tools": [_mcp(allowed_tools={"read_only": True})]}, 400, "tools[0].allowed_tools"),
        ({"input": [{"type": "function_call_output", "call_id": "c", "output": "x"}]}, 400, "input[0].type"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
            400,
            "input[0].content[0]",
        ),
        ({"input": [{"type": "mcp_approval_response", "approval_request_id": "x", "approve": True}]}, 400, "input"),
        ({"previous_response_id": "resp_" + "0" * 32}, 400, "previous_response_id"),
        ({"previous_response_id": "nonsense"}, 400, "previous_response_id"),
        ({"tool_choice": "required"}, 422, "tool_choice"),
        ({"max_tool_calls": 0}, 422, "max_tool_calls"),
    ]
    async with api_stack(_servers(call_log)) as api, _client(api) as client:
        for extra, status, param in refusals:
            with pytest.raises(openai.APIStatusError) as raised:
                await client.responses.create(model="m-resp-refusals", input="hi", extra_body=extra)
            refused = raised.value
            assert refused.status_code == status, (extra, refused.message)
            assert refused.param == param or param in refused.message, (extra, refused.body)
        with pytest.raises(openai.BadRequestError) as top_p:
            await client.responses.create(model="m-resp-refusals", input="hi", top_p=0.5)
        assert top_p.value.param == "top_p" and "worker" in top_p.value.message
        waiting = await client.responses.create(model="m-resp-refusals", input="pay", tools=[_mcp()])
        follow_up = {"model": "m-resp-refusals", "input": "and?", "previous_response_id": waiting.id}
        answer = await api.http.post("/v1/responses", json=follow_up)
        assert (answer.status_code, answer.json()["error"]["code"]) == (409, "approval_pending")
        stranger = {"type": "mcp_approval_response", "approval_request_id": "mcpr_" + "0" * 64 + "_t1", "approve": True}
        answer = await api.http.post("/v1/responses", json={"previous_response_id": waiting.id, "input": [stranger]})
        assert (answer.status_code, answer.json()["error"]["param"]) == (400, "input[0].approval_request_id")
        approval = stranger | {"approval_request_id": waiting.output[1].id}
        changed = {"previous_response_id": waiting.id, "input": [approval], "tools": [_mcp(require_approval="never")]}
        answer = await api.http.post("/v1/responses", json=changed)
        assert (answer.status_code, answer.json()["error"]["param"]) == (400, "tools")
        relabelled = {"previous_response_id": waiting.id, "input": [approval], "metadata": {"a": "b"}}
        answer = await api.http.post("/v1/responses", json=relabelled)
        assert (answer.status_code, answer.json()["error"]["param"]) == (400, "metadata")
        assert (await api.http.get("/v1/responses/resp_nope")).status_code == 404
        assert (await api.http.get(f"{waiting.id}_999".join(["/v1/responses/", ""]))).status_code == 404
    assert call_log.calls("transfer") == []
