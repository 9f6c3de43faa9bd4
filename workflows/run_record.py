"""What a run knows and shows: its request and state, its status, its audit steps and events,
and the view of it that the status query, the update answers, the memo and the Temporal UI
give. Deterministic and free of Temporal calls (the clock is passed in), so the workflow's
bookkeeping is tested without a server; the workflow module decides and does the I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from temporalio.exceptions import ApplicationError

from workflows import approvals
from workflows.activity_io import CatalogTool
from workflows.chat_messages import LLMToolCall
from workflows.events import EventLog
from workflows.limits import EVENT_OUTPUT_PREVIEW_CHARS, preview
from workflows.messages import (
    FINAL_EVENT,
    TERMINAL_STATUSES,
    ApprovalDecision,
    OrchestrationRequest,
    OrchestrationStatus,
    PendingApproval,
    RunEventType,
    RunStatus,
    StepRecord,
    StopReason,
    Usage,
)
from workflows.state import OpenToolCall, OrchestrationState
from workflows.tool_calls import model_arguments_text, open_tool_call

OPEN_STEP_STATUSES = ("pending", "running", "waiting_for_approval")


class RunRecord:
    """One run's bookkeeping; the workflow holds one and passes `workflow.now` as `now`."""

    def __init__(
        self,
        workflow_id: str,
        request: OrchestrationRequest,
        state: OrchestrationState | None,
        now: Callable[[], datetime],
    ) -> None:
        self.workflow_id = workflow_id
        self.request = request
        self.state = state
        self._now = now
        self.created_at = state.created_at if state else now()
        self.updated_at = now()
        self.status = RunStatus.RUNNING
        self.stop_reason: StopReason | None = None
        self.output: str | None = None
        self.error: str | None = None
        self.events = EventLog(state.events, state.next_event_id) if state else EventLog()

    # --- The view -------------------------------------------------------------------------

    def full_status(self) -> OrchestrationStatus:
        """The run as the API shows it, unshortened."""
        state = self.state
        return OrchestrationStatus(
            id=self.workflow_id,
            status=self.status,
            stop_reason=self.stop_reason,
            model=state.model if state else self.request.model,
            step=state.llm_calls if state else 0,
            max_steps=self.request.max_steps,
            pending_approvals=self.pending_approvals(),
            steps=list(state.steps) if state else [],
            output=self.output,
            error=self.error,
            usage=state.usage if state else Usage(),
            created_at=self.created_at,
            updated_at=self.updated_at,
            metadata=self.request.metadata,
            ignored_decisions=list(state.ignored_decisions) if state else [],
            unavailable_servers=dict(state.catalog.unavailable_servers) if state else {},
            owner=self.request.owner,
        )

    def open_status(self) -> RunStatus:
        """What a run that has not finished is doing: waiting while a call waits, else running."""
        return RunStatus.WAITING_FOR_APPROVAL if self.pending_approvals() else RunStatus.RUNNING

    def pending_approvals(self) -> list[PendingApproval]:
        if self.state is None or self.status in TERMINAL_STATUSES:
            return []
        return [self.pending_approval(call) for call in self.state.open_calls if approvals.waits(call)]

    def pending_approval(self, call: OpenToolCall) -> PendingApproval:
        assert call.requested_at is not None and call.server is not None and call.tool is not None
        return PendingApproval(
            tool_call_id=call.tool_call_id,
            server=call.server,
            tool=call.tool,
            arguments=call.arguments,
            intent=call.intent,
            requested_at=call.requested_at,
            expires_at=self.expires_at(call),
            approval_hash=call.approval_hash,
            input_schema=self.catalog_tool(call).input_schema,
        )

    # --- Tool calls -----------------------------------------------------------------------

    def find_open_call(self, tool_call_id: str) -> OpenToolCall | None:
        if self.state is None:
            return None
        return next((call for call in self.state.open_calls if call.tool_call_id == tool_call_id), None)

    def rejection(self, decision: ApprovalDecision) -> ApplicationError | None:
        """Why `decision` cannot apply now (typed for the API to map to 404/409), or None."""
        call = self.find_open_call(decision.tool_call_id)
        steps = self.state.steps if self.state else []
        return approvals.rejection(
            decision,
            call,
            decided_before=any(step.tool_call_id == decision.tool_call_id for step in steps),
            input_schema=self.catalog_tool(call).input_schema if call is not None and call.problem is None else None,
        )

    def open_tool_calls(self, calls: Sequence[LLMToolCall], *, validate_arguments: bool, bound_arguments: bool) -> None:
        """The model's tool calls become open calls, each with its audit step; a call an
        approval rule admits is approved (and announced) at once."""
        assert self.state is not None
        state = self.state
        for call in calls:
            opened = open_tool_call(
                call,
                state.catalog,
                step_index=len(state.steps),
                validate_arguments=validate_arguments,
                bound_arguments=bound_arguments,
            )
            state.open_calls.append(opened)
            step = StepRecord(
                index=opened.step_index,
                kind="tool",
                status="error" if opened.problem else "pending",
                step=state.llm_calls,
                tool_call_id=opened.tool_call_id,
                server=opened.server,
                tool=opened.tool or opened.function_name,
                arguments=opened.arguments,
                intent=opened.intent,
                output_preview=f"error: {opened.problem}" if opened.problem else None,
            )
            state.steps.append(step)
            if opened.rule is not None:
                self.approve_by_rule(opened, step)

    def catalog_tool(self, call: OpenToolCall) -> CatalogTool:
        assert self.state is not None
        tool = self.state.catalog.by_function_name(call.function_name)
        assert tool is not None  # a call without a catalog tool has a `problem` and never waits
        return tool

    def expires_at(self, call: OpenToolCall) -> datetime:
        return approvals.expires_at(call, self.request.approval_timeout_seconds)

    def tool_step(self, call: OpenToolCall) -> StepRecord:
        assert self.state is not None
        return self.state.steps[call.step_index]

    def record_decision(self, call: OpenToolCall) -> None:
        """Write a person's decision (or the timeout's) into the call's step."""
        assert call.decision is not None
        step = self.tool_step(call)
        step.decision, step.approver, step.reason = call.decision.decision, call.decision.approver, call.decision.reason
        step.decided_at = call.decided_at
        step.approval_hash = call.approval_hash or None
        step.arguments, step.original_arguments = call.arguments, call.original_arguments
        step.status = "running" if call.decision.decision == "approve" else "denied"

    def approve_by_rule(self, call: OpenToolCall, step: StepRecord) -> None:
        step.decision, step.approver, step.approved_by_rule = "approve", f"rule:{call.rule}", call.rule
        step.decided_at = self._now()
        self.emit_for(call, RunEventType.TOOL_APPROVED, approver=step.approver, rule=call.rule)

    def show_model_edited_arguments(self, call: OpenToolCall) -> None:
        """The call runs with the approver's arguments: the model sees those, not its own."""
        assert self.state is not None
        tool = self.catalog_tool(call)
        for message in reversed(self.state.messages):
            for requested in message.tool_calls or []:
                if requested.id == call.tool_call_id:
                    requested.function.arguments = model_arguments_text(call.arguments, call.intent, tool.model_intent)
                    return

    def end_step(self, step: StepRecord, status: str) -> None:
        step.status = status
        step.finished_at = self._now()
        if step.started_at is not None:
            step.duration_ms = int((step.finished_at - step.started_at).total_seconds() * 1000)
        self.updated_at = step.finished_at

    def finish(self, status: RunStatus, reason: StopReason) -> None:
        """End the run's record: open steps cancelled, the status set, the final event."""
        self.stop_reason = reason
        for step in self.state.steps if self.state else []:
            if step.status in OPEN_STEP_STATUSES:
                self.end_step(step, "cancelled")
        self.status = status
        self.updated_at = self._now()
        self.emit(
            FINAL_EVENT[status],
            status=status.value,
            stop_reason=reason.value,
            output=preview(self.output, EVENT_OUTPUT_PREVIEW_CHARS) if self.output else self.output,
            error=self.error,
            usage=self.state.usage.model_dump() if self.state else None,
        )

    # --- Events ---------------------------------------------------------------------------

    def emit(
        self, type: RunEventType, *, step_index: int | None = None, tool_call_id: str | None = None, **data: Any
    ) -> None:
        self.events.emit(type, self._now(), step_index=step_index, tool_call_id=tool_call_id, **data)

    def emit_for(self, call: OpenToolCall, type: RunEventType, **data: Any) -> None:
        """An event about one tool call."""
        step = self.tool_step(call).step
        self.emit(type, step_index=call.step_index, tool_call_id=call.tool_call_id, step=step, **data)

    def emit_decision(self, call: OpenToolCall) -> None:
        assert call.decision is not None
        self.emit_for(
            call,
            RunEventType.TOOL_APPROVED if call.decision.decision == "approve" else RunEventType.TOOL_DENIED,
            approver=call.decision.approver,
            reason=call.decision.reason,
            edited_arguments=call.arguments if call.original_arguments is not None else None,
        )

    def emit_tool_finished(self, call: OpenToolCall, step: StepRecord) -> None:
        self.emit_for(
            call,
            RunEventType.TOOL_FINISHED,
            server=step.server,
            tool=step.tool,
            status=step.status,
            output_preview=step.output_preview,
        )
