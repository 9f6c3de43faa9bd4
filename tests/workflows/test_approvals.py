"""Human approval of gated tool calls: approve, deny, raw signals, ignored decisions."""

from __future__ import annotations

import asyncio
import json

from temporalio.client import WorkflowExecutionStatus

from tests.conftest import TEMPORAL_CLI, CallLog, WorkerFactory, toolbox_stdio
from tests.scripted_llm import Reply, ScriptedLLM, tool_call
from tests.waiting import result_of
from workflows.messages import ApprovalDecision
from workflows.orchestration import Orchestration


def _gated(call_log: CallLog) -> dict[str, object]:
    return {"toolbox": toolbox_stdio(call_log, tools_to_auto_execute=["echo", "add"])}


async def test_approved_call_runs_and_records_the_approver(
    run_worker: WorkerFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script(
        "m-approve",
        Reply(tool_calls=[tool_call("t1", "toolbox__transfer", {"account": "acme", "amount": 5})]),
        Reply(content="done"),
    )
    async with run_worker(_gated(call_log)) as h:
        handle = await h.start({"input": "pay acme 5", "model": "m-approve"})
        waiting = await h.wait_pending(handle)
        assert waiting.status == "waiting_for_approval"
        [pending] = waiting.pending_approvals
        assert (pending.tool_call_id, pending.server, pending.tool) == ("t1", "toolbox", "transfer")
        assert pending.arguments == {"account": "acme", "amount": 5}
        assert call_log.calls("transfer") == []
        await handle.signal(
            Orchestration.submit_approval,
            ApprovalDecision(tool_call_id="t1", decision="approve", approver="alice", reason="ok"),
        )
        final = await result_of(handle)
    assert final.status == "completed" and final.output == "done"
    assert len(call_log.calls("transfer")) == 1
    [step] = [s for s in final.steps if s.kind == "tool"]
    assert (step.decision, step.approver, step.reason, step.status) == ("approve", "alice", "ok", "completed")
    assert llm.requests_for("m-approve")[1]["messages"][-1]["content"] == "transferred 5 to acme"


async def test_denied_call_is_not_run_and_the_reason_reaches_the_model(
    run_worker: WorkerFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script(
        "m-deny",
        Reply(tool_calls=[tool_call("t1", "toolbox__transfer", {"account": "acme", "amount": 5000})]),
        Reply(content="ok, not paying"),
    )
    async with run_worker(_gated(call_log)) as h:
        handle = await h.start({"input": "pay", "model": "m-deny"})
        await h.wait_pending(handle)
        await handle.signal(
            Orchestration.submit_approval,
            ApprovalDecision(tool_call_id="t1", decision="deny", reason="amount too large", approver="bob"),
        )
        final = await result_of(handle)
    assert call_log.calls("transfer") == []
    tool_message = llm.requests_for("m-deny")[1]["messages"][-1]
    assert tool_message == {"role": "tool", "tool_call_id": "t1", "content": "denied: amount too large"}
    [step] = [s for s in final.steps if s.kind == "tool"]
    assert (step.status, step.decision, step.approver) == ("denied", "deny", "bob")
    assert final.usage.tool_calls == 0


async def test_raw_signal_from_the_temporal_cli_approves(
    run_worker: WorkerFactory, llm: ScriptedLLM, call_log: CallLog, temporal_env
) -> None:
    llm.script(
        "m-cli",
        Reply(tool_calls=[tool_call("t1", "toolbox__transfer", {"account": "x", "amount": 1})]),
        Reply(content="paid"),
    )
    async with run_worker(_gated(call_log)) as h:
        handle = await h.start({"input": "pay", "model": "m-cli"})
        await h.wait_pending(handle)
        # Exactly what an operator types (or pastes into the web UI's signal dialog).
        proc = await asyncio.create_subprocess_exec(
            TEMPORAL_CLI,
            "workflow",
            "signal",
            "--address",
            temporal_env.client.service_client.config.target_host,
            "--workflow-id",
            handle.id,
            "--name",
            "submit_approval",
            "--input",
            json.dumps({"tool_call_id": "t1", "decision": "approve", "approver": "ops"}),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await proc.communicate()
        assert proc.returncode == 0, output.decode()
        final = await result_of(handle)
    assert final.output == "paid" and len(call_log.calls("transfer")) == 1
    [step] = [s for s in final.steps if s.kind == "tool"]
    assert step.approver == "ops"


async def test_unknown_duplicate_and_malformed_decisions_are_ignored_and_recorded(
    run_worker: WorkerFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script(
        "m-ignored",
        Reply(tool_calls=[tool_call("t1", "toolbox__transfer", {"account": "x", "amount": 1})]),
        Reply(tool_calls=[tool_call("t2", "toolbox__transfer", {"account": "y", "amount": 2})]),
        Reply(content="finished"),
    )
    async with run_worker(_gated(call_log)) as h:
        handle = await h.start({"input": "pay twice", "model": "m-ignored"})
        await h.wait_pending(handle)
        await handle.signal(Orchestration.submit_approval, ApprovalDecision(tool_call_id="nope", decision="approve"))
        await handle.signal("submit_approval", {"tool_call_id": "t1", "decision": "maybe"})  # malformed
        await handle.signal(Orchestration.submit_approval, ApprovalDecision(tool_call_id="t1", decision="approve"))
        await h.wait_for(handle, lambda s: any(p.tool_call_id == "t2" for p in s.pending_approvals))
        await handle.signal(Orchestration.submit_approval, ApprovalDecision(tool_call_id="t1", decision="deny"))
        await handle.signal(Orchestration.submit_approval, ApprovalDecision(tool_call_id="t2", decision="approve"))
        final = await result_of(handle)
        description = await handle.describe()
    assert description.status == WorkflowExecutionStatus.COMPLETED
    assert final.output == "finished"
    assert len(call_log.calls("transfer")) == 2
    ignored = [(d.tool_call_id, d.decision, d.why) for d in final.ignored_decisions]
    assert ("nope", "approve", "unknown tool call") in ignored
    assert ("t1", "deny", "already decided") in ignored


async def test_parallel_auto_and_gated_calls_answer_in_call_order(
    run_worker: WorkerFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script(
        "m-parallel",
        Reply(
            tool_calls=[
                tool_call("a", "toolbox__transfer", {"account": "a", "amount": 1}),
                tool_call("b", "toolbox__echo", {"text": "auto one"}),
                tool_call("c", "toolbox__transfer", {"account": "c", "amount": 3}),
                tool_call("d", "toolbox__add", {"a": 2, "b": 3}),
            ]
        ),
        Reply(content="all done"),
    )
    async with run_worker(_gated(call_log)) as h:
        handle = await h.start({"input": "go", "model": "m-parallel"})
        waiting = await h.wait_pending(handle, count=2)
        # The auto-approved calls ran while the gated ones wait.
        await h.wait_for(handle, lambda s: len(call_log.calls("echo")) == 1 and len(call_log.calls("add")) == 1)
        assert {p.tool_call_id for p in waiting.pending_approvals} == {"a", "c"}
        await handle.signal(Orchestration.submit_approval, ApprovalDecision(tool_call_id="c", decision="approve"))
        await handle.signal(Orchestration.submit_approval, ApprovalDecision(tool_call_id="a", decision="deny"))
        final = await result_of(handle)
    tool_messages = [m for m in llm.requests_for("m-parallel")[1]["messages"] if m["role"] == "tool"]
    assert [(m["tool_call_id"], m["content"]) for m in tool_messages] == [
        ("a", "denied: no reason given"),
        ("b", "auto one"),
        ("c", "transferred 3 to c"),
        ("d", "5"),
    ]
    assert final.usage.tool_calls == 3


async def test_a_decision_bound_to_other_arguments_is_refused(
    run_worker: WorkerFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script(
        "m-hash",
        Reply(tool_calls=[tool_call("t1", "toolbox__transfer", {"account": "acme", "amount": 5})]),
        Reply(content="done"),
    )
    async with run_worker(_gated(call_log)) as h:
        handle = await h.start({"input": "pay", "model": "m-hash"})
        [pending] = (await h.wait_pending(handle)).pending_approvals
        assert len(pending.approval_hash) == 64
        # A hash computed for other arguments (e.g. what the approver saw before an edit) is refused.
        stale = ApprovalDecision(tool_call_id="t1", decision="approve", approval_hash="0" * 64, approver="eve")
        await handle.signal(Orchestration.submit_approval, stale)
        still = await h.wait_for(handle, lambda s: len(s.ignored_decisions) == 1)
        assert still.pending_approvals == [pending]
        assert "approval_hash does not match" in still.ignored_decisions[0].why
        bound = ApprovalDecision(
            tool_call_id="t1", decision="approve", approval_hash=pending.approval_hash, approver="alice", reason="ok"
        )
        await handle.signal(Orchestration.submit_approval, bound)
        final = await result_of(handle)
    [step] = [s for s in final.steps if s.kind == "tool"]
    assert (step.approver, step.reason, step.approval_hash) == ("alice", "ok", pending.approval_hash)
    assert step.decided_at is not None and step.decided_at >= pending.requested_at
    assert len(call_log.calls("transfer")) == 1


async def test_a_signalled_edit_that_breaks_the_schema_is_ignored_and_a_valid_one_runs(
    run_worker: WorkerFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script(
        "m-signal-edit",
        Reply(tool_calls=[tool_call("t1", "toolbox__transfer", {"account": "acme", "amount": 500})]),
        Reply(content="done"),
    )
    async with run_worker(_gated(call_log)) as h:
        handle = await h.start({"input": "pay", "model": "m-signal-edit"})
        await h.wait_pending(handle)
        bad = ApprovalDecision(tool_call_id="t1", decision="approve", arguments={"amount": "a lot"})
        await handle.signal(Orchestration.submit_approval, bad)
        ignored = await h.wait_for(handle, lambda s: bool(s.ignored_decisions))
        assert "input schema" in ignored.ignored_decisions[0].why and ignored.pending_approvals
        good = ApprovalDecision(tool_call_id="t1", decision="approve", arguments={"account": "acme", "amount": 5})
        await handle.signal(Orchestration.submit_approval, good)
        final = await result_of(handle)
    assert [c["arguments"] for c in call_log.calls("transfer")] == [{"account": "acme", "amount": 5}]
    [step] = [s for s in final.steps if s.kind == "tool"]
    assert step.original_arguments == {"account": "acme", "amount": 500} and step.arguments["amount"] == 5
