"""The agent loop: final answers, auto-approved tools, tool errors, max_steps."""

from __future__ import annotations

import asyncio
import sys
import uuid

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from tests.conftest import CallLog, WorkerFactory, toolbox_stdio
from tests.history_text import local_activity
from tests.scripted_llm import Reply, ScriptedLLM, tool_call
from tests.waiting import WAIT_SECONDS, result_of
from workflows.contract import INVALID_PAYLOAD, INVALID_REQUEST, ORCHESTRATION_WORKFLOW


async def test_answer_without_tools_completes_with_final_answer(run_worker: WorkerFactory, llm: ScriptedLLM) -> None:
    llm.script("m-plain", Reply(content="Hello!", prompt_tokens=7, completion_tokens=3))
    async with run_worker() as h:
        handle = await h.start({"input": "hi", "model": "m-plain", "instructions": "Be brief."})
        final = await result_of(handle)
    assert final.status == "completed" and final.stop_reason == "final_answer"
    assert final.output == "Hello!"
    assert final.usage.prompt_tokens == 7 and final.usage.completion_tokens == 3
    sent = llm.requests_for("m-plain")[0]["messages"]
    assert sent == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]


async def test_auto_approved_tool_runs_and_run_completes(run_worker: WorkerFactory, llm: ScriptedLLM) -> None:
    llm.script(
        "m-time",
        Reply(tool_calls=[tool_call("c1", "time__get_current_time", {"timezone": "Asia/Tokyo"})]),
        Reply(content="It is evening in Tokyo."),
    )
    servers = {
        "time": {
            "command": sys.executable,
            "args": ["-m", "mcp_server_time"],
            "tools_to_auto_execute": ["get_current_time"],
            "tool_pricing": {"get_current_time": 0.25},
        }
    }
    async with run_worker(servers) as h:
        handle = await h.start({"input": "time in Tokyo?", "model": "m-time"})
        final = await result_of(handle)
    assert final.status == "completed" and final.stop_reason == "final_answer"
    assert final.output == "It is evening in Tokyo."
    tool_steps = [s for s in final.steps if s.kind == "tool"]
    assert [(s.server, s.tool, s.status) for s in tool_steps] == [("time", "get_current_time", "completed")]
    assert "Asia/Tokyo" in (tool_steps[0].output_preview or "")
    assert final.usage.tool_calls == 1 and final.usage.cost_usd == 0.25
    second = llm.requests_for("m-time")[1]["messages"]
    assert second[-1]["role"] == "tool" and second[-1]["tool_call_id"] == "c1"
    assert '"timezone": "Asia/Tokyo"' in second[-1]["content"]


async def test_max_steps_stops_the_run(run_worker: WorkerFactory, llm: ScriptedLLM, call_log: CallLog) -> None:
    looping = [
        Reply(content=f"try {i}", tool_calls=[tool_call(f"c{i}", "toolbox__echo", {"text": str(i)})]) for i in range(3)
    ]
    llm.script("m-loop", *looping)
    async with run_worker({"toolbox": toolbox_stdio(call_log, tools_to_auto_execute=["*"])}) as h:
        handle = await h.start({"input": "loop", "model": "m-loop", "max_steps": 2})
        final = await result_of(handle)
    assert final.status == "completed" and final.stop_reason == "max_steps"
    assert final.step == 2 and len(llm.requests_for("m-loop")) == 2
    assert len(call_log.calls("echo")) == 2
    assert final.output == "try 1"


async def test_a_run_without_a_user_message_fails_instead_of_retrying(run_worker: WorkerFactory) -> None:
    async with run_worker() as h:
        handle = await h.start({"instructions": "You are helpful."})
        with pytest.raises(WorkflowFailureError) as failure:
            await asyncio.wait_for(handle.result(), WAIT_SECONDS)
    assert "at least one user message" in str(failure.value.cause)
    assert failure.value.cause.type == INVALID_REQUEST


async def test_a_run_whose_input_does_not_fit_the_model_fails_instead_of_retrying(run_worker: WorkerFactory) -> None:
    """Started by hand (the Temporal UI or CLI), past the API's checks: the data converter
    refuses the input and the run fails at once, naming the field."""
    async with run_worker() as h:
        handle = await h.client.start_workflow(
            ORCHESTRATION_WORKFLOW,
            {"run_request": {"input": "hi", "max_steps": "lots"}},
            id=f"orch-bad-{uuid.uuid4().hex}",
            task_queue=h.task_queue,
        )
        with pytest.raises(WorkflowFailureError) as failure:
            await asyncio.wait_for(handle.result(), WAIT_SECONDS)
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == INVALID_PAYLOAD and cause.non_retryable
    assert "OrchestrationInput" in cause.message and "run_request.max_steps" in cause.message


async def test_llm_calls_as_local_activities_record_each_reply_with_the_commands_that_use_it(
    run_worker: WorkerFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script(
        "m-local",
        Reply(tool_calls=[tool_call("e1", "toolbox__echo", {"text": "one"})], prompt_tokens=5, completion_tokens=2),
        Reply(content="done", prompt_tokens=9, completion_tokens=1),
    )
    async with run_worker({"toolbox": toolbox_stdio(call_log, tools_to_auto_execute=["*"])}) as h:
        handle = await h.start({"input": "go", "model": "m-local", "llm_call": "local_activity"})
        final = await result_of(handle)
    assert final.status == "completed" and final.output == "done"
    assert [s.kind for s in final.steps] == ["llm", "tool", "llm"] and final.usage.prompt_tokens == 14
    assert len(call_log.calls("echo")) == 1
    events = (await handle.fetch_history()).events
    scheduled = [e for e in events if e.HasField("activity_task_scheduled_event_attributes")]
    names = [e.activity_task_scheduled_event_attributes.activity_type.name for e in scheduled]
    assert names == ["orch.prepare_run", "orch.call_tool"], "no chat_completion activity"
    markers = [e.marker_recorded_event_attributes for e in events if local_activity(e) is not None]
    assert len(markers) == 2
    # The first reply is recorded by the same workflow task completion that schedules its tool call.
    tool_call_scheduled = scheduled[1].activity_task_scheduled_event_attributes
    assert markers[0].workflow_task_completed_event_id == tool_call_scheduled.workflow_task_completed_event_id
