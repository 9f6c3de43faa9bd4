"""Argument-level auto-approval rules (MCP config `auto_approve_rules`)."""

from __future__ import annotations

from tests.conftest import CallLog, WorkerFactory, toolbox_stdio
from tests.scripted_llm import Reply, ScriptedLLM, tool_call
from tests.waiting import result_of
from workflows.messages import ApprovalDecision
from workflows.orchestration import Orchestration

RULES = {
    "transfer": [
        {"name": "small amounts", "arguments": {"properties": {"amount": {"maximum": 100}}, "required": ["amount"]}},
        {"arguments": {"properties": {"account": {"pattern": "^internal-"}}, "required": ["account"]}},
    ]
}


async def test_a_call_matching_a_rule_runs_at_once_and_the_trace_names_the_rule(
    run_worker: WorkerFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script(
        "m-rules",
        Reply(
            tool_calls=[
                tool_call("small", "toolbox__transfer", {"account": "acme", "amount": 50}),
                tool_call("big", "toolbox__transfer", {"account": "acme", "amount": 5000}),
                tool_call("inside", "toolbox__transfer", {"account": "internal-ops", "amount": 9000}),
            ]
        ),
        Reply(content="done"),
    )
    servers = {"toolbox": toolbox_stdio(call_log, auto_approve_rules=RULES)}
    async with run_worker(servers) as h:
        handle = await h.start({"input": "pay", "model": "m-rules"})
        waiting = await h.wait_pending(handle)
        assert [p.tool_call_id for p in waiting.pending_approvals] == ["big"]
        events = (await handle.query(Orchestration.events, {"after": 0})).events
        await handle.signal(Orchestration.submit_approval, ApprovalDecision(tool_call_id="big", decision="deny"))
        final = await result_of(handle)
    assert sorted(c["arguments"]["amount"] for c in call_log.calls("transfer")) == [50, 9000]
    steps = {s.tool_call_id: s for s in final.steps if s.kind == "tool"}
    assert steps["small"].approved_by_rule == "small amounts" and steps["small"].approver == "rule:small amounts"
    assert steps["inside"].approved_by_rule == "transfer#2" and steps["inside"].status == "completed"
    assert steps["big"].approved_by_rule is None and steps["big"].decision == "deny"
    approvals = [e for e in events if e.type == "tool_approved"]
    assert [(e.tool_call_id, e.data.get("rule")) for e in approvals] == [
        ("small", "small amounts"),
        ("inside", "transfer#2"),
    ]
