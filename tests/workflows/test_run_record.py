"""A run's bookkeeping (workflows/run_record.py) without a server: the clock is a list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from workflows import approvals
from workflows.activity_io import CatalogTool, ToolCatalog
from workflows.chat_messages import ChatMessage
from workflows.contract import DECISION_ALREADY_MADE, DECISION_UNKNOWN_CALL
from workflows.messages import ApprovalDecision, RunEventType, RunStatus, StopReason
from workflows.run_record import RunRecord
from workflows.run_request import OrchestrationRequest
from workflows.state import OrchestrationState, ToolCallRecord

START = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.at = START

    def __call__(self) -> datetime:
        return self.at


def _record(clock: Clock) -> RunRecord:
    catalog = ToolCatalog(
        tools=[CatalogTool(server="bank", tool="pay", function_name="bank__pay", input_schema={"type": "object"})],
    )
    state = OrchestrationState(
        created_at=START, model="m", catalog=catalog, messages=[ChatMessage(role="user", content="pay")]
    )
    call = ToolCallRecord(
        index=0,
        step=1,
        tool_call_id="call_1",
        function_name="bank__pay",
        server="bank",
        tool="pay",
        approval_hash="h",
        status="waiting_for_approval",
        started_at=START,
    )
    state.steps.append(call)
    request = OrchestrationRequest(input="pay", approval_timeout_seconds=600)
    return RunRecord("orch-1", request, state, clock)


def test_a_waiting_call_is_pending_with_its_expiry_and_the_run_waits() -> None:
    run = _record(Clock())
    assert run.pending_approvals() == []  # not asked about yet
    call = run.find_open_call("call_1")
    assert call is not None
    call.requested_at = START
    [pending] = run.pending_approvals()
    assert (pending.tool_call_id, pending.expires_at) == ("call_1", START + timedelta(minutes=10))
    assert run.open_status() == RunStatus.WAITING_FOR_APPROVAL
    status = run.full_status()
    assert status.id == "orch-1" and status.pending_approvals == [pending] and status.model == "m"


def test_a_decision_shows_in_the_calls_step_and_is_announced() -> None:
    clock = Clock()
    run = _record(clock)
    call = run.find_open_call("call_1")
    assert call is not None
    call.requested_at = START
    clock.at = START + timedelta(seconds=30)
    assert run.rejection(ApprovalDecision(tool_call_id="call_9", decision="approve")).type == DECISION_UNKNOWN_CALL
    approvals.decide(call, ApprovalDecision(tool_call_id="call_1", decision="deny", approver="ann"), clock())
    run.emit_decision(call)
    [step] = run.full_status().steps
    assert (step.decision, step.approver, step.status, step.decided_at) == ("deny", "ann", "denied", clock.at)
    [event] = run.events.carried()
    assert (event.type, event.tool_call_id, event.data["step"]) == (RunEventType.TOOL_DENIED, "call_1", 1)
    assert run.rejection(ApprovalDecision(tool_call_id="call_1", decision="approve")).type == DECISION_ALREADY_MADE
    assert run.open_status() == RunStatus.RUNNING


def test_finishing_cancels_open_steps_and_ends_with_the_final_event() -> None:
    clock = Clock()
    run = _record(clock)
    clock.at = START + timedelta(seconds=2)
    run.finish(RunStatus.CANCELLED, StopReason.CANCELLED)
    [step] = run.full_status().steps
    assert (step.status, step.duration_ms) == ("cancelled", 2000)
    assert run.status == RunStatus.CANCELLED and run.updated_at == clock.at
    assert [event.type for event in run.events.carried()] == [RunEventType.CANCELLED]
    assert run.pending_approvals() == []
