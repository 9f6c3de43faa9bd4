"""What an approver sees in the Temporal web UI: the run's Current Details say what waits and
give the exact signal input; the list shows a summary; handlers and timers explain themselves."""

from __future__ import annotations

import json
import re
import sys

from temporalio.api.enums.v1 import EventType
from temporalio.api.sdk.v1 import WorkflowMetadata

from tests.api.conftest import APIFactory
from tests.conftest import REPO_ROOT, CallLog, toolbox_stdio
from tests.scripted_llm import Reply, ScriptedLLM, tool_call
from tests.waiting import eventually


async def test_current_details_show_each_waiting_call_and_the_signal_that_decides_it(
    api_stack: APIFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script(
        "m-ui",
        Reply(tool_calls=[tool_call("t1", "toolbox__transfer", {"account": "acme", "amount": 5})]),
        Reply(content="paid"),
    )
    async with api_stack({"toolbox": toolbox_stdio(call_log)}) as api:
        body = {"input": "Pay acme five euros\nthen report", "model": "m-ui"}
        run_id = (await api.http.post("/v1/orchestrations", json=body)).json()["id"]
        [pending] = (await api.wait_for(run_id, lambda s: bool(s["pending_approvals"])))["pending_approvals"]
        handle = api.worker.client.get_workflow_handle(run_id)

        async def metadata() -> WorkflowMetadata | None:
            answer = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
            return answer if "Waiting for approval" in answer.current_details else None

        shown = await eventually(metadata, "current details that show the waiting call")
        details = shown.current_details
        assert "`toolbox.transfer` (call `t1`)" in details and '"amount": 5' in details
        assert pending["expires_at"][:19] in details
        signals = re.findall(r"```json\n(\{.*?\n\})\n```", details, re.DOTALL)
        approve = next(json.loads(text) for text in signals if '"approve"' in text)
        assert approve == {"tool_call_id": "t1", "approver": "<your name>", "decision": "approve",
                           "approval_hash": pending["approval_hash"]}  # fmt: skip
        described = {h.name: h.description for h in [*shown.definition.signal_definitions,
                     *shown.definition.query_definitions, *shown.definition.update_definitions]}  # fmt: skip
        assert all(described[name] for name in ("submit_approval", "decide", "decide_many", "status", "events"))
        assert await (await handle.describe()).static_summary() == "Pay acme five euros · model m-ui"

        # What the details say, pasted as the signal's Data (with a name), decides the call.
        await handle.signal("submit_approval", approve | {"approver": "dana"})
        final = await api.wait_for(run_id, lambda s: s["status"] == "completed")
        history = await handle.fetch_history()
    [step] = [s for s in final["steps"] if s["kind"] == "tool"]
    assert (step["decision"], step["approver"]) == ("approve", "dana")
    timers = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED]
    assert [e.user_metadata.summary.data for e in timers] == [b'"approval of toolbox.transfer (t1) times out"']


async def test_current_details_show_each_question_and_the_signal_that_answers_it(
    api_stack: APIFactory, llm: ScriptedLLM
) -> None:
    llm.script("m-ui-ask", Reply(tool_calls=[tool_call("n1", "people__ask_name", {})]), Reply(content="greeted"))
    server = {
        "command": sys.executable,
        "args": ["-m", "tests.mcp_servers.interactive"],
        "cwd": str(REPO_ROOT),
        "tools_to_auto_execute": ["*"],
    }
    async with api_stack({"people": server}) as api:
        run_id = (await api.http.post("/v1/orchestrations", json={"input": "greet", "model": "m-ui-ask"})).json()["id"]
        [asked] = (await api.wait_for(run_id, lambda s: bool(s["pending_inputs"])))["pending_inputs"]
        handle = api.worker.client.get_workflow_handle(run_id)

        async def metadata() -> WorkflowMetadata | None:
            answer = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
            return answer if "Waiting for input" in answer.current_details else None

        shown = await eventually(metadata, "current details that show the question")
        details = shown.current_details
        assert "`people.ask_name` asks (call `n1`)" in details and "Question: What is your name?" in details
        assert asked["expires_at"][:19] in details
        signals = re.findall(r"```json\n(\{.*?\n\})\n```", details, re.DOTALL)
        accept = next(json.loads(text) for text in signals if '"accept"' in text)
        assert accept == {
            "input_id": asked["input_id"],
            "answerer": "<your name>",
            "action": "accept",
            "content": {"name": "<string>"},
        }
        described = {h.name: h.description for h in [*shown.definition.signal_definitions,
                     *shown.definition.update_definitions]}  # fmt: skip
        assert described["submit_input"] and described["answer_input"]

        # What the details say, filled in and pasted as the signal's Data, answers the question.
        await handle.signal("submit_input", accept | {"answerer": "dana", "content": {"name": "Dana"}})
        await api.wait_for(run_id, lambda s: s["status"] == "completed")
    messages = llm.requests_for("m-ui-ask")[-1]["messages"]
    assert next(m["content"] for m in messages if m.get("tool_call_id") == "n1") == "hello Dana"
