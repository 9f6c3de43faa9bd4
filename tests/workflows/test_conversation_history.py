"""History per step independent of the conversation's length: each LLM call records only what
changed since the run's previous one, and a worker that never saw the run still gives the model
the whole conversation (it asks the run)."""

from __future__ import annotations

import json
from typing import Any

from temporalio.client import WorkflowHandle

from tests.benchmarks.stack import looping_model
from tests.conftest import CallLog, WorkerFactory, toolbox_stdio
from tests.scripted_llm import Reply, ScriptedLLM, tool_call
from tests.waiting import result_of
from workflows.contract import CHAT_COMPLETION_DELTA_ACTIVITY
from workflows.messages import ApprovalDecision
from workflows.orchestration import Orchestration

OUTPUT_BYTES = 8192


async def _llm_inputs(handle: WorkflowHandle[Any, Any]) -> list[dict[str, Any]]:
    """The recorded input of each delta LLM call, in order."""
    history = await handle.fetch_history()
    return [
        json.loads(event.activity_task_scheduled_event_attributes.input.payloads[0].data)
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
        and event.activity_task_scheduled_event_attributes.activity_type.name == CHAT_COMPLETION_DELTA_ACTIVITY
    ]


async def _history_bytes(handle: WorkflowHandle[Any, Any]) -> int:
    return sum(event.ByteSize() for event in (await handle.fetch_history()).events)


async def test_a_step_adds_the_same_history_at_step_40_as_at_step_10(
    run_worker: WorkerFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    """Before, every LLM call's input held the whole conversation: between steps 10 and 40 a step
    added ~200 KB here; now about twice its own output (recorded as the tool's result and as the
    next call's new message), the model's reply, and its share of the final memo and result."""
    sizes = {}
    async with run_worker({"toolbox": toolbox_stdio(call_log, tools_to_auto_execute=["big_output"])}) as h:
        for steps in (10, 40):
            model = f"loop-{steps}-big_output-{OUTPUT_BYTES}"
            llm.respond(model, looping_model)
            handle = await h.start({"input": "go", "model": model, "max_steps": steps})
            final = await result_of(handle)
            assert final.status == "completed" and final.step == steps, final
            sizes[steps] = await _history_bytes(handle)
            print("history bytes", steps, sizes[steps])
            inputs = await _llm_inputs(handle)
    per_step = (sizes[40] - sizes[10]) / 30
    assert per_step <= 3 * OUTPUT_BYTES, f"{per_step:.0f} B of history per step"
    assert [len(call["appended"]) for call in inputs] == [1] + [2] * 39, "each call sends its reply and tool message"
    assert inputs[0]["tools"] and all(call["tools"] is None for call in inputs[1:])
    assert len(llm.requests_for(model)[-1]["messages"]) == 1 + 2 * 39, "the model still sees everything"


async def test_a_worker_that_never_saw_the_run_gives_the_model_the_whole_conversation(
    run_worker: WorkerFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script(
        "m-new-worker",
        Reply(tool_calls=[tool_call("t1", "toolbox__transfer", {"account": "acme", "amount": 5})]),
        Reply(content="done"),
    )
    servers = {"toolbox": toolbox_stdio(call_log, tools_to_auto_execute=["echo"])}
    async with run_worker(servers) as first:
        handle = await first.start({"input": "pay acme 5", "instructions": "be careful", "model": "m-new-worker"})
        await first.wait_pending(handle)
    async with run_worker(servers, task_queue=first.task_queue) as second:
        await handle.signal(Orchestration.submit_approval, ApprovalDecision(tool_call_id="t1", decision="approve"))
        final = await result_of(handle)
        assert second.task_queue == first.task_queue
    assert final.output == "done"
    before, after = llm.requests_for("m-new-worker")
    assert [m["role"] for m in after["messages"]] == ["system", "user", "assistant", "tool"]
    assert after["messages"][:2] == before["messages"] and after["tools"] == before["tools"]
    assert after["messages"][3]["content"] == "transferred 5 to acme"
    first_call, second_call = await _llm_inputs(handle)
    assert (second_call["base_length"], len(second_call["appended"]), second_call["tools"]) == (2, 2, None)


async def test_a_run_continues_as_new_for_its_event_count_not_when_the_server_suggests_it_for_size(
    run_worker: WorkerFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    """64 KiB tool outputs pass the server's 4 MB suggestion within 40 steps; the run carries on
    (its state would otherwise be carried into a new run every ~60 steps)."""
    model = "loop-70-big_output-65536"
    llm.respond(model, looping_model)
    async with run_worker({"toolbox": toolbox_stdio(call_log, tools_to_auto_execute=["big_output"])}) as h:
        handle = await h.start({"input": "go", "model": model, "max_steps": 70})
        final = await result_of(handle)
        history = await handle.fetch_history()
    assert final.status == "completed" and final.step == 70, final
    suggested = [
        event
        for event in history.events
        if event.HasField("workflow_task_started_event_attributes")
        and event.workflow_task_started_event_attributes.suggest_continue_as_new
    ]
    assert suggested, "the server suggested continuing as new"
    assert history.events[-1].HasField("workflow_execution_completed_event_attributes"), "the same run finished"
