"""Gated tool calls with fake activities: the waiting call in the status query, decisions by
signal and by update, refusals, edits, rules, the approval timeout and cancellation."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError, CancelledError

from tests.unit.conftest import Harness
from tests.unit.fakes import TRANSFER_SCHEMA, answer, asks, call
from tests.waiting import eventually
from workflows.contract import (
    DECISION_ALREADY_MADE,
    DECISION_INVALID,
    DECISION_MISMATCH,
    DECISION_UNKNOWN_CALL,
    ORCHESTRATION_STATUS_ATTRIBUTE,
)
from workflows.messages import ApprovalDecision, DecisionBatch, EventsQuery, OrchestrationStatus, PendingApproval
from workflows.orchestration import Orchestration

PAY_50 = {"account": "acme", "amount": 50}
PAY_60 = {"account": "globex", "amount": 60}


async def _waiting_on_pay1(
    harness: Harness, *then: Any, **request: Any
) -> tuple[WorkflowHandle[Any, Any], OrchestrationStatus]:
    """A run whose model asks for one gated transfer (`pay1`), waiting for its decision."""
    harness.fakes.script(asks(call("pay1", "bank__transfer", PAY_50), text="paying"), *then)
    handle = await harness.start(**request)
    return handle, await harness.wait_pending(handle)


async def test_status_query_shows_the_pending_approval_and_the_steps(harness: Harness) -> None:
    handle, status = await _waiting_on_pay1(harness, approval_timeout_seconds=600)
    assert (status.status, status.step, status.output) == ("waiting_for_approval", 1, None)
    [pending] = status.pending_approvals
    assert pending.model_dump(include={"tool_call_id", "server", "tool", "arguments", "input_schema"}) == {
        "tool_call_id": "pay1",
        "server": "bank",
        "tool": "transfer",
        "arguments": PAY_50,
        "input_schema": TRANSFER_SCHEMA,
    }
    assert re.fullmatch("[0-9a-f]{64}", pending.approval_hash)
    assert pending.expires_at - pending.requested_at == timedelta(seconds=600)
    assert [(s.kind, s.status, s.step) for s in status.steps] == [
        ("llm", "completed", 1),
        ("tool", "waiting_for_approval", 1),
    ]
    tool_step = status.steps[1]
    assert (tool_step.tool_call_id, tool_step.arguments, tool_step.decision) == ("pay1", PAY_50, None)
    assert harness.fakes.tool_calls == []
    [requested] = await eventually(lambda: harness.fakes.webhooks, "the approval_requested webhook")
    assert requested.event_type == "orchestration.approval_requested"
    assert PendingApproval.model_validate(requested.data["tool_call"]) == pending
    events = (await handle.query(Orchestration.events, EventsQuery())).events
    assert [e.type for e in events] == ["status", "llm_started", "llm_finished", "tool_pending", "status"]
    assert events[-1].data == {"status": "waiting_for_approval"}
    description = await handle.describe()
    assert description.typed_search_attributes.get(ORCHESTRATION_STATUS_ATTRIBUTE) == "waiting_for_approval"


async def test_approval_by_signal_runs_the_call(harness: Harness) -> None:
    fakes = harness.fakes
    handle, waiting = await _waiting_on_pay1(harness, answer("paid"))
    decision = ApprovalDecision(tool_call_id="pay1", decision="approve", approver="alice", reason="expected")
    await handle.signal(Orchestration.submit_approval, decision)
    final = await harness.result(handle)
    assert (final.status, final.output) == ("completed", "paid")
    [ran] = fakes.tool_calls
    assert (ran.server, ran.tool, ran.arguments, ran.definition_hash) == ("bank", "transfer", PAY_50, "def-transfer")
    assert fakes.tool_messages() == {"pay1": "transferred 50 to acme"}
    step = final.steps[1]
    assert (step.status, step.decision, step.approver, step.reason) == ("completed", "approve", "alice", "expected")
    assert step.approval_hash == waiting.pending_approvals[0].approval_hash and step.decided_at is not None
    assert fakes.webhook_types() == ["orchestration.approval_requested", "orchestration.completed"]


async def test_approval_by_update_answers_with_the_decision_applied(harness: Harness) -> None:
    fakes = harness.fakes
    handle, waiting = await _waiting_on_pay1(harness, answer("paid"))
    [pending] = waiting.pending_approvals
    decision = ApprovalDecision(
        tool_call_id="pay1", decision="approve", approver="bob", approval_hash=pending.approval_hash
    )
    answered = await handle.execute_update(Orchestration.decide, decision)
    assert (answered.status, answered.pending_approvals) == ("running", [])
    assert (answered.steps[1].decision, answered.steps[1].approver, answered.steps[1].status) == (
        "approve",
        "bob",
        "running",
    )
    final = await harness.result(handle)
    assert final.output == "paid" and final.steps[1].status == "completed"
    assert [c.arguments for c in fakes.tool_calls] == [PAY_50]


async def test_decide_many_approves_and_denies_together(harness: Harness) -> None:
    fakes = harness.fakes
    fakes.script(asks(call("pay1", "bank__transfer", PAY_50), call("pay2", "bank__transfer", PAY_60)), answer("half"))
    handle = await harness.start()
    await harness.wait_pending(handle, count=2)
    batch = DecisionBatch(
        decisions=[
            ApprovalDecision(tool_call_id="pay1", decision="approve", approver="carol"),
            ApprovalDecision(tool_call_id="pay2", decision="deny", approver="carol", reason="twice"),
        ]
    )
    answered = await handle.execute_update(Orchestration.decide_many, batch)
    assert answered.pending_approvals == [] and [s.decision for s in answered.steps[1:]] == ["approve", "deny"]
    final = await harness.result(handle)
    assert [c.arguments for c in fakes.tool_calls] == [PAY_50]
    assert fakes.tool_messages() == {"pay1": "transferred 50 to acme", "pay2": "denied: twice"}
    assert [s.status for s in final.steps] == ["completed", "completed", "denied", "completed"]


@pytest.mark.parametrize(
    "by, reason, shown",
    [("signal", "too much", "denied: too much"), ("update", None, "denied: no reason given")],
)
async def test_denied_call_does_not_run_and_the_model_sees_why(
    harness: Harness, by: str, reason: str | None, shown: str
) -> None:
    fakes = harness.fakes
    handle, _ = await _waiting_on_pay1(harness, answer("not paying"))
    decision = ApprovalDecision(tool_call_id="pay1", decision="deny", approver="dave", reason=reason)
    if by == "signal":
        await handle.signal(Orchestration.submit_approval, decision)
    else:
        await handle.execute_update(Orchestration.decide, decision)
    final = await harness.result(handle)
    assert fakes.tool_calls == []
    assert fakes.tool_messages() == {"pay1": shown}
    step = final.steps[1]
    assert (step.status, step.decision, step.approver, step.reason) == ("denied", "deny", "dave", reason)
    assert (final.output, final.usage.tool_calls) == ("not paying", 0)


Update = Callable[[WorkflowHandle[Any, Any], str], Awaitable[object]]


def _decide(**decision: Any) -> Update:
    async def send(handle: WorkflowHandle[Any, Any], approval_hash: str) -> object:
        fields = {"tool_call_id": "pay1", "decision": "approve", **decision}
        if fields.get("approval_hash") == "<hash>":
            fields["approval_hash"] = approval_hash
        return await handle.execute_update(Orchestration.decide, ApprovalDecision(**fields))

    return send


def _decide_many(*decisions: dict[str, Any]) -> Update:
    async def send(handle: WorkflowHandle[Any, Any], approval_hash: str) -> object:
        batch = DecisionBatch(decisions=[ApprovalDecision(**d) for d in decisions])
        return await handle.execute_update(Orchestration.decide_many, batch)

    return send


@pytest.mark.parametrize(
    "update, error_type",
    [
        (_decide(tool_call_id="nope"), DECISION_UNKNOWN_CALL),
        (_decide(approval_hash="0" * 64), DECISION_MISMATCH),
        (_decide(decision="deny", arguments=PAY_60), DECISION_INVALID),
        (_decide(approval_hash="<hash>", arguments={"account": "acme"}), DECISION_INVALID),
        (
            _decide_many({"tool_call_id": "pay1", "decision": "approve"}, {"tool_call_id": "nope", "decision": "deny"}),
            DECISION_UNKNOWN_CALL,
        ),
        (
            _decide_many({"tool_call_id": "pay1", "decision": "approve"}, {"tool_call_id": "pay1", "decision": "deny"}),
            DECISION_INVALID,
        ),
    ],
    ids=[
        "unknown-call",
        "hash-mismatch",
        "deny-with-arguments",
        "arguments-off-schema",
        "batch-unknown",
        "batch-twice",
    ],
)
async def test_update_that_cannot_apply_is_refused_with_its_type(
    harness: Harness, update: Update, error_type: str
) -> None:
    handle, waiting = await _waiting_on_pay1(harness)
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await update(handle, waiting.pending_approvals[0].approval_hash)
    assert isinstance(caught.value.cause, ApplicationError) and caught.value.cause.type == error_type
    after = await harness.status(handle)
    assert after.pending_approvals == waiting.pending_approvals, "nothing applied, the call still waits"
    assert after.ignored_decisions == [], "refused, not recorded"
    assert harness.fakes.tool_calls == []


async def test_a_decided_call_is_refused_by_update_and_ignored_by_signal(harness: Harness) -> None:
    fakes = harness.fakes
    handle, _ = await _waiting_on_pay1(harness, asks(call("pay2", "bank__transfer", PAY_60)))
    await handle.execute_update(Orchestration.decide, ApprovalDecision(tool_call_id="pay1", decision="approve"))
    await harness.wait_for(handle, lambda s: [p.tool_call_id for p in s.pending_approvals] == ["pay2"])
    again = ApprovalDecision(tool_call_id="pay1", decision="deny", approver="eve")
    with pytest.raises(WorkflowUpdateFailedError) as caught:
        await handle.execute_update(Orchestration.decide, again)
    assert isinstance(caught.value.cause, ApplicationError) and caught.value.cause.type == DECISION_ALREADY_MADE
    await handle.signal(Orchestration.submit_approval, again)
    await handle.signal(Orchestration.submit_approval, ApprovalDecision(tool_call_id="ghost", decision="approve"))
    status = await harness.wait_for(handle, lambda s: len(s.ignored_decisions) == 2)
    assert [(d.tool_call_id, d.approver, d.why) for d in status.ignored_decisions] == [
        ("pay1", "eve", "already decided"),
        ("ghost", None, "unknown tool call"),
    ]
    assert status.steps[1].decision == "approve" and [c.arguments for c in fakes.tool_calls] == [PAY_50]


async def test_unanswered_approval_times_out_as_denied_by_system(harness: Harness) -> None:
    fakes = harness.fakes
    fakes.script(asks(call("pay1", "bank__transfer", PAY_50)), answer("nobody answered"))
    # Awaiting the result lets the test server skip the hour.
    final = await harness.result(await harness.start(approval_timeout_seconds=3600))
    assert (final.status, final.output) == ("completed", "nobody answered")
    step = final.steps[1]
    assert (step.status, step.decision, step.approver, step.reason) == (
        "denied",
        "deny",
        "system",
        "approval timed out",
    )
    assert step.finished_at is not None and step.started_at is not None
    assert step.finished_at - step.started_at >= timedelta(seconds=3600)
    assert fakes.tool_messages() == {"pay1": "denied: approval timed out"}
    assert fakes.tool_calls == []


async def test_approval_with_edited_arguments_runs_and_shows_the_edit(harness: Harness) -> None:
    fakes = harness.fakes
    edited = {"account": "acme", "amount": 5}
    handle, waiting = await _waiting_on_pay1(harness, answer("paid 5"))
    decision = ApprovalDecision(
        tool_call_id="pay1",
        decision="approve",
        approver="frank",
        arguments=edited,
        approval_hash=waiting.pending_approvals[0].approval_hash,
    )
    answered = await handle.execute_update(Orchestration.decide, decision)
    assert (answered.steps[1].arguments, answered.steps[1].original_arguments) == (edited, PAY_50)
    final = await harness.result(handle)
    assert [c.arguments for c in fakes.tool_calls] == [edited]
    # The model sees the arguments that were used, in its own call and in the tool message.
    assistant = fakes.llm_requests[1].messages[1]
    assert assistant.tool_calls is not None and json.loads(assistant.tool_calls[0].function.arguments) == edited
    assert fakes.tool_messages() == {
        "pay1": f"(Approved with edited arguments: {json.dumps(edited)})\ntransferred 5 to acme"
    }
    assert (final.steps[1].arguments, final.steps[1].original_arguments) == (edited, PAY_50)
    assert final.steps[1].status == "completed"


async def test_rule_approves_matching_arguments_and_gates_the_others(harness: Harness) -> None:
    fakes = harness.fakes
    small = {"account": "acme", "amount": 5}
    fakes.script(
        asks(call("small", "bank__transfer", small), call("big", "bank__transfer", PAY_50)), answer("one done")
    )
    handle = await harness.start()
    waiting = await harness.wait_pending(handle)
    assert [p.tool_call_id for p in waiting.pending_approvals] == ["big"]
    await eventually(lambda: fakes.tool_calls, "the rule-approved call runs while the other waits")
    await handle.signal(Orchestration.submit_approval, ApprovalDecision(tool_call_id="big", decision="deny"))
    final = await harness.result(handle)
    assert [c.arguments for c in fakes.tool_calls] == [small]
    by_rule = final.steps[1]
    assert (by_rule.status, by_rule.decision, by_rule.approver) == ("completed", "approve", "rule:small-amounts")
    assert by_rule.approved_by_rule == "small-amounts"
    assert fakes.tool_messages() == {"small": "transferred 5 to acme", "big": "denied: no reason given"}


async def test_cancel_while_waiting_cancels_the_run(harness: Harness) -> None:
    fakes = harness.fakes
    handle, _ = await _waiting_on_pay1(harness)
    await eventually(lambda: fakes.webhooks, "the approval_requested webhook")
    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as caught:
        await harness.result(handle)
    assert isinstance(caught.value.cause, CancelledError)
    description = await handle.describe()
    assert description.status == WorkflowExecutionStatus.CANCELED
    assert description.typed_search_attributes.get(ORCHESTRATION_STATUS_ATTRIBUTE) == "cancelled"
    assert (await description.memo())["orchestration"]["status"] == "cancelled", "readable without a worker"
    status = await harness.status(handle)
    assert (status.status, status.stop_reason, status.pending_approvals) == ("cancelled", "cancelled", [])
    assert [(s.kind, s.status) for s in status.steps] == [("llm", "completed"), ("tool", "cancelled")]
    assert fakes.tool_calls == []
    assert fakes.webhook_types() == ["orchestration.approval_requested"]
