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

from workflows import approvals, server_inputs
from workflows.activity_io import CatalogTool, ToolCatalog
from workflows.chat_messages import LLMToolCall
from workflows.events import EventLog
from workflows.limits import (
    EVENT_OUTPUT_PREVIEW_CHARS,
    IGNORED_DECISIONS_KEPT,
    TOOLS_LISTED_BUDGET_BYTES,
    json_bytes,
    preview,
)
from workflows.messages import (
    FINAL_EVENT,
    TERMINAL_STATUSES,
    ApprovalDecision,
    IgnoredDecision,
    InputAnswer,
    OrchestrationStatus,
    PendingApproval,
    PendingInput,
    RunEventType,
    RunHistory,
    RunStatus,
    StopReason,
    TokenUsage,
    Usage,
)
from workflows.run_request import OrchestrationRequest
from workflows.state import OPEN_STEP_STATUSES, InputRecord, LLMCallRecord, OrchestrationState, ToolCallRecord
from workflows.tool_calls import model_arguments_text, open_tool_call


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

    def full_status(self, audit: bool = True) -> OrchestrationStatus:
        """The run as the API shows it, unshortened; without its audit steps when not `audit`
        (what the Current Details need, at every step)."""
        state = self.state
        return OrchestrationStatus(
            id=self.workflow_id,
            status=self.status,
            stop_reason=self.stop_reason,
            model=state.model if state else self.request.model,
            step=state.llm_calls if state else 0,
            max_steps=self.request.max_steps,
            pending_approvals=self.pending_approvals(),
            pending_inputs=self.pending_inputs(),
            steps=[step.audit() for step in state.steps] if state and audit else [],
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
        """What a run that has not finished is doing: waiting while a call waits for a decision or
        a server's question waits for an answer, else running."""
        if self.pending_approvals():
            return RunStatus.WAITING_FOR_APPROVAL
        return RunStatus.WAITING_FOR_INPUT if self.pending_inputs() else RunStatus.RUNNING

    def pending_approvals(self) -> list[PendingApproval]:
        if self.state is None or self.status in TERMINAL_STATUSES:
            return []
        return [self.pending_approval(call) for call in self.state.open_calls() if approvals.waits(call)]

    def pending_approval(self, call: ToolCallRecord) -> PendingApproval:
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

    def pending_inputs(self) -> list[PendingInput]:
        if self.state is None or self.status in TERMINAL_STATUSES:
            return []
        return [
            self.pending_input(call, record)
            for call in self.state.open_calls()
            if call.exchange is not None
            for record in call.exchange.waiting()
        ]

    def pending_input(self, call: ToolCallRecord, record: InputRecord) -> PendingInput:
        return server_inputs.pending(call, record, self.input_expires_at(record))

    def input_expires_at(self, record: InputRecord) -> datetime:
        return server_inputs.expires_at(record, self.request.approval_timeout_seconds)

    # --- Tool calls -----------------------------------------------------------------------

    def find_open_call(self, tool_call_id: str) -> ToolCallRecord | None:
        if self.state is None:
            return None
        return next((call for call in self.state.open_calls() if call.tool_call_id == tool_call_id), None)

    def rejection(self, decision: ApprovalDecision) -> ApplicationError | None:
        """Why `decision` cannot apply now (typed for the API to map to 404/409), or None."""
        call = self.find_open_call(decision.tool_call_id)
        calls = self.state.tool_calls() if self.state else []
        return approvals.rejection(
            decision,
            call,
            decided_before=any(known.tool_call_id == decision.tool_call_id for known in calls),
            input_schema=self.catalog_tool(call).input_schema if call is not None and call.problem is None else None,
        )

    def ignore(self, decision: IgnoredDecision) -> None:
        """Keep a signalled decision or answer that did not apply, for the audit (the newest few)."""
        if self.state is not None:
            self.state.ignored_decisions.append(decision)
            del self.state.ignored_decisions[:-IGNORED_DECISIONS_KEPT]

    def find_input(self, input_id: str) -> tuple[ToolCallRecord, InputRecord] | None:
        """The open call whose server asked `input_id` in its current round, and the request."""
        if self.state is None:
            return None
        for call in self.state.open_calls():
            for record in call.exchange.inputs if call.exchange is not None else []:
                if record.input_id == input_id:
                    return call, record
        return None

    def input_rejection(self, answer: InputAnswer) -> ApplicationError | None:
        """Why `answer` cannot apply now (typed like a decision's refusal), or None."""
        found = self.find_input(answer.input_id)
        return server_inputs.rejection(
            answer, found[1] if found else None, answered_before=self._asked_before(answer.input_id)
        )

    def _asked_before(self, input_id: str) -> bool:
        """Whether `input_id` (`<tool_call_id>/<round>/<key>`) names a request of an earlier round
        of its call, all of which were answered."""
        tool_call_id, _, rest = input_id.partition("/")
        round_text = rest.partition("/")[0]
        calls = self.state.tool_calls() if self.state else []
        call = next((known for known in calls if known.tool_call_id == tool_call_id), None)
        if call is None or call.exchange is None or not round_text.isdigit():
            return False
        # Every round of a call that ended was answered; an open call's current round is asked now.
        ended = call.answered or call.result is not None
        return int(round_text) < call.exchange.round + (1 if ended else 0)

    def open_tool_calls(
        self, calls: Sequence[LLMToolCall], *, validate_arguments: bool, bound_arguments: bool
    ) -> list[ToolCallRecord]:
        """The model's tool calls become the run's records of them (returned); a call an
        approval rule admits is approved (and announced) at once."""
        assert self.state is not None
        state = self.state
        opened_calls = []
        limit = self.request.max_tool_calls
        made = sum(1 for known in state.tool_calls() if known.problem is None) if limit is not None else 0
        for call in calls:
            opened = open_tool_call(
                call,
                state.catalog,
                index=len(state.steps),
                step=state.llm_calls,
                validate_arguments=validate_arguments,
                bound_arguments=bound_arguments,
            )
            if limit is not None and opened.problem is None:
                if made >= limit:
                    opened.refuse(f"not run: this run makes at most {limit} tool calls (max_tool_calls)")
                made += 1
            state.steps.append(opened)
            opened_calls.append(opened)
            if opened.rule is not None:
                opened.decided_at = self._now()
                self.emit_for(opened, RunEventType.TOOL_APPROVED, approver=opened.approver, rule=opened.rule)
        return opened_calls

    def history(self) -> RunHistory:
        """The conversation without the system message of the request's `instructions`."""
        messages = list(self.state.messages) if self.state else []
        if self.request.instructions and messages and messages[0].role == "system":
            messages = messages[1:]
        return RunHistory(messages=messages)

    def catalog_tool(self, call: ToolCallRecord) -> CatalogTool:
        assert self.state is not None
        tool = self.state.catalog.by_function_name(call.function_name)
        assert tool is not None  # a call without a catalog tool has a `problem` and never waits
        return tool

    def expires_at(self, call: ToolCallRecord) -> datetime:
        return approvals.expires_at(call, self.request.approval_timeout_seconds)

    def show_model_edited_arguments(self, call: ToolCallRecord) -> None:
        """The call runs with the approver's arguments: the model sees those, not its own."""
        assert self.state is not None
        tool = self.catalog_tool(call)
        for message in reversed(self.state.messages):
            for requested in message.tool_calls or []:
                if requested.id == call.tool_call_id:
                    requested.function.arguments = model_arguments_text(call.arguments, call.intent, tool.model_intent)
                    return

    def end_step(self, step: LLMCallRecord | ToolCallRecord, status: str) -> None:
        step.status = status
        step.finished_at = self._now()
        if step.started_at is not None:
            step.duration_ms = int((step.finished_at - step.started_at).total_seconds() * 1000)
        self.updated_at = step.finished_at

    def end_llm_call(self, step: LLMCallRecord, usage: TokenUsage) -> None:
        """An LLM call of the run answered: its usage, counted in the run's."""
        assert self.state is not None
        self.state.usage.prompt_tokens += usage.prompt_tokens
        self.state.usage.completion_tokens += usage.completion_tokens
        step.usage = usage
        self.end_step(step, "completed")

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

    def emit_for(self, call: ToolCallRecord, type: RunEventType, **data: Any) -> None:
        """An event about one tool call."""
        self.emit(type, step_index=call.index, tool_call_id=call.tool_call_id, step=call.step, **data)

    def emit_tools_listed(self, catalog: ToolCatalog) -> None:
        """The servers whose tools the run pinned, each with its tools, and those it could not use.
        Over TOOLS_LISTED_BUDGET_BYTES, the input schemas are left out (`schemas_omitted`)."""
        listed: list[dict[str, Any]] = [
            {
                "server": server,
                "tools": [
                    {"name": tool.tool, "description": tool.description, "input_schema": tool.input_schema}
                    for tool in catalog.tools
                    if tool.server == server
                ],
            }
            for server in catalog.servers or []
        ]
        omitted = json_bytes(listed) > TOOLS_LISTED_BUDGET_BYTES
        if omitted:
            for server in listed:
                for tool in server["tools"]:
                    del tool["input_schema"]
        self.emit(
            RunEventType.TOOLS_LISTED,
            servers=listed,
            unavailable=dict(catalog.unavailable_servers),
            schemas_omitted=omitted,
        )

    def emit_decision(self, call: ToolCallRecord) -> None:
        assert call.decision is not None
        self.emit_for(
            call,
            RunEventType.TOOL_APPROVED if call.decision.decision == "approve" else RunEventType.TOOL_DENIED,
            approver=call.decision.approver,
            reason=call.decision.reason,
            edited_arguments=call.arguments if call.original_arguments is not None else None,
        )

    def emit_input(self, call: ToolCallRecord, type: RunEventType, record: InputRecord) -> None:
        """An event about one request of a server's: asked, or answered."""
        if type == RunEventType.INPUT_REQUESTED:
            pending = self.pending_input(call, record)
            self.emit_for(call, type, **pending.model_dump(mode="json", exclude={"tool_call_id"}))
            return
        assert record.answer is not None
        self.emit_for(
            call,
            type,
            input_id=record.input_id,
            kind=record.kind,
            action=record.answer.action,
            answerer=record.answer.answerer,
            reason=record.answer.reason,
        )

    def emit_tool_finished(self, call: ToolCallRecord) -> None:
        self.emit_for(
            call,
            RunEventType.TOOL_FINISHED,
            server=call.server,
            tool=call.tool or call.function_name,
            status=call.status,
            output_preview=call.output_preview,
        )
