"""The loop's two kinds of step, each with its audit record and events: an LLM call, and the
life of one tool call (decided at once, by a rule, by a person or by the timeout; run when
approved; one tool message either way). Workflow code: the activities are scheduled here."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from opentelemetry import trace
from temporalio import workflow
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from workflows import approvals, contract, options, patches
    from workflows.activity_io import LLMDeltaRequest, LLMReply, LLMRequest, ToolCallInput, ToolCallOutput
    from workflows.context import ConversationBudget
    from workflows.failures import RunFailed, failure_message, reraise_cancellation
    from workflows.limits import PAYLOAD_BUDGET_BYTES, json_bytes
    from workflows.messages import OUTPUT_PREVIEW_CHARS, RunEventType
    from workflows.notifications import Notifications
    from workflows.publishing import Publisher
    from workflows.run_record import RunRecord
    from workflows.state import LLMCallRecord, OrchestrationState, ToolCallRecord
    from workflows.tool_calls import openai_tool


TOOL_ACTIVITY_ID_PREFIX = "tool:"
"""A tool call run as a local activity has the id `tool:<tool call id>`, which its marker in
history keeps (a local activity's input is not recorded)."""

_tracer = trace.get_tracer(__name__)
"""Spans of the run's own steps; with tracing off (or while replaying) they record nothing."""


def _span_attributes(call: ToolCallRecord) -> dict[str, str]:
    """What a tool call's span says: the run, the tool and the decision that let it run."""
    return {
        "orch.run_id": workflow.info().workflow_id,
        "orch.mcp.server": call.server or "",
        "orch.mcp.tool": call.tool or "",
        "orch.decision": call.decision.decision if call.decision else ("rule" if call.rule else "auto"),
        "orch.approver": call.approver or "",
    }


class Steps:
    """Runs the steps of one run, recording each in its `RunRecord`."""

    def __init__(
        self,
        run: RunRecord,
        publish: Publisher,
        notifications: Notifications,
        continue_as_new_due: Callable[[], bool],
    ) -> None:
        self._run = run
        self._publish = publish
        self._notifications = notifications
        self._continue_as_new_due = continue_as_new_due
        self._tools: list[dict[str, Any]] | None = None
        self._tools_bytes = 0
        self._budget = ConversationBudget(run.request.context_budget_bytes)
        self._sent_length = 0
        """Messages this workflow run's previous LLM call had (what the activity's worker keeps)."""

    async def call_llm(self, state: OrchestrationState) -> LLMReply:
        number = state.llm_calls + 1
        record = LLMCallRecord(index=len(state.steps), status="running", step=number, started_at=workflow.now())
        state.steps.append(record)
        elided = self._budget.fit(state.messages)
        request = self.whole_request()
        size = self._budget.bytes + self._tools_bytes
        if size > PAYLOAD_BUDGET_BYTES * 3 // 4:  # near the limit: measured exactly
            size = json_bytes(request)
        if size > PAYLOAD_BUDGET_BYTES:
            self._run.end_step(record, "failed")
            raise RunFailed(
                f"the conversation and tool definitions are {size} bytes, over the {PAYLOAD_BUDGET_BYTES} one LLM "
                "call can carry; start a new run, or lower context_budget_bytes"
            )
        self._publish.details(f"asking the model (step {number})")
        self._run.emit(RunEventType.LLM_STARTED, step_index=record.index, model=state.model, step=number)
        try:
            if self._run.request.llm_call == "local_activity":
                # The reply is recorded as a marker in the same task completion as the
                # commands that act on it (the tool calls), so it is still recorded before use.
                reply = await workflow.execute_local_activity(
                    options.activity_name(contract.CHAT_COMPLETION_ACTIVITY),
                    request,
                    result_type=LLMReply,
                    **options.llm_local_options(),
                )
            elif patches.patched(patches.CONVERSATION_DELTA):
                reply = await workflow.execute_activity(
                    contract.CHAT_COMPLETION_DELTA_ACTIVITY,
                    self._delta(request, elided, number),
                    result_type=LLMReply,
                    **options.llm_options(),
                )
            else:
                reply = await workflow.execute_activity(
                    options.activity_name(contract.CHAT_COMPLETION_ACTIVITY),
                    request,
                    result_type=LLMReply,
                    **options.llm_options(),
                )
        except FailureError as err:  # ActivityError; a local activity's failure may come unwrapped
            reraise_cancellation(err)
            self._run.end_step(record, "failed")
            message = failure_message(err)
            self._run.emit(
                RunEventType.LLM_FINISHED, step_index=record.index, step=number, status="failed", error=message
            )
            raise RunFailed(f"LLM call failed: {message}") from None
        state.llm_calls = number
        state.usage.prompt_tokens += reply.usage.prompt_tokens
        state.usage.completion_tokens += reply.usage.completion_tokens
        record.usage = reply.usage
        self._run.end_step(record, "completed")
        self._run.emit(
            RunEventType.LLM_FINISHED,
            step_index=record.index,
            step=number,
            status="completed",
            usage=reply.usage.model_dump(),
            tool_calls=len(reply.message.tool_calls or []),
        )
        workflow.logger.debug("llm step %d: %d tool call(s)", number, len(reply.message.tool_calls or []))
        return reply

    def whole_request(self) -> LLMRequest:
        """The run's next LLM call as a whole: its conversation and tools (also what the
        conversation query answers while the call is in flight)."""
        state = self._run.state
        assert state is not None
        if self._tools is None:
            self._tools = [openai_tool(tool) for tool in state.catalog.tools]
            self._tools_bytes = json_bytes(self._tools)
        return LLMRequest(model=state.model, messages=state.messages, tools=self._tools)

    def _delta(self, request: LLMRequest, elided: list[int], number: int) -> LLMDeltaRequest:
        """`request` as what changed since this workflow run's previous LLM call: the first call
        of each run (and so of each continue-as-new) sends it whole. Messages the previous call
        had change only by elision (`elided`); a person's edit of a call's arguments changes the
        newest assistant message, which that call did not have."""
        base = self._sent_length
        self._sent_length = len(request.messages)
        return LLMDeltaRequest(
            model=request.model,
            step=number,
            base_length=base,
            edited={index: request.messages[index] for index in elided if index < base},
            appended=request.messages[base:],
            tools=request.tools if base == 0 else None,
        )

    async def settle(self, call: ToolCallRecord) -> None:
        """Give `call` its result: an error for a call that cannot run, a denial, or the tool's
        output once approved (at once, by a rule, by a person); unset when the wait for a
        decision stopped for continue-as-new (the call goes along, still waiting)."""
        if call.problem is not None:
            call.result = f"error: {call.problem}"
            self._run.emit_tool_finished(call)
            return
        if not call.auto_execute and call.decision is None:
            if not await self._await_decision(call):
                return
        if call.decision is not None and call.decision.decision == "deny":
            call.result = call.output_preview = f"denied: {call.decision.reason or 'no reason given'}"
            self._run.end_step(call, "denied")
            return
        await self._execute(call)

    async def _await_decision(self, call: ToolCallRecord) -> bool:
        """Wait for a decision on `call`; False when the wait stopped for continue-as-new."""
        if call.requested_at is None:
            call.requested_at = call.started_at = workflow.now()
            call.status = "waiting_for_approval"
            pending = self._run.pending_approval(call)
            self._run.emit_for(
                call,
                RunEventType.TOOL_PENDING,
                **pending.model_dump(mode="json", exclude={"tool_call_id"}),
            )
            self._publish.details()
            self._publish.approval_requested(call)
            self._notifications.send(
                "orchestration.approval_requested",
                lambda: {"orchestration_id": workflow.info().workflow_id, "tool_call": pending.model_dump(mode="json")},
            )
        self._publish.refresh()
        remaining = (self._run.expires_at(call) - workflow.now()).total_seconds()
        try:
            if remaining <= 0:
                raise TimeoutError
            await workflow.wait_condition(
                lambda: call.decision is not None or self._continue_as_new_due(),
                timeout=timedelta(seconds=remaining),
                timeout_summary=f"approval of {call.server}.{call.tool} ({call.tool_call_id}) times out",
            )
        except TimeoutError:
            approvals.time_out(call, workflow.now())
            self._run.emit_decision(call)
            self._publish.decided(call, "timeout")
        self._publish.refresh()
        return call.decision is not None

    async def _execute(self, call: ToolCallRecord) -> None:
        assert call.server is not None and call.tool is not None
        call.status = "running"
        call.started_at = workflow.now()
        self._run.emit_for(
            call,
            RunEventType.TOOL_STARTED,
            server=call.server,
            tool=call.tool,
            arguments=call.arguments,
        )
        summary = f"tool {call.server}.{call.tool}" + (f": {call.intent}" if call.intent else "")
        self._publish.details(f"running {call.server}.{call.tool}")
        try:
            with _tracer.start_as_current_span("orch.tool_call", attributes=_span_attributes(call)):
                output = await self._call_tool(call, summary[:200])
        except FailureError as err:  # ActivityError; a local activity's failure may come unwrapped
            reraise_cancellation(err)
            call.result = f"error: {failure_message(err)}"
            status = "error"
        else:
            call.result = f"error: {output.text}" if output.is_error else output.text
            status = "error" if output.is_error else "completed"
            if call.original_arguments is not None:
                call.result = f"(Approved with edited arguments: {json.dumps(call.arguments)})\n{call.result}"
            assert self._run.state is not None
            self._run.state.usage.tool_calls += 1
            self._run.state.usage.cost_usd = round(self._run.state.usage.cost_usd + call.price_usd, 10)
            self._publish.cost(call)
        call.output_preview = call.result[:OUTPUT_PREVIEW_CHARS]
        self._run.end_step(call, status)
        self._run.emit_tool_finished(call)
        workflow.logger.debug("tool %s.%s %s", call.server, call.tool, status)

    async def _call_tool(self, call: ToolCallRecord, summary: str) -> ToolCallOutput:
        assert call.server is not None and call.tool is not None
        timeout = self._run.request.tool_timeout_seconds
        input = ToolCallInput(
            server=call.server,
            tool=call.tool,
            arguments=call.arguments,
            timeout_seconds=timeout,
            output_limit_bytes=self._run.request.tool_output_limit_bytes,
            idempotency_key=f"{workflow.info().workflow_id}/{call.tool_call_id}",
            definition_hash=call.definition_hash or None,
            owner=self._run.request.owner,
        )
        if self._run.request.tool_call_mode() == "local_activity" and patches.patched(patches.LOCAL_TOOL_CALLS):
            # The result is recorded as a marker in the same task completion as the next LLM
            # call's command, so it is recorded before the model is shown it.
            return await workflow.execute_local_activity(
                contract.CALL_TOOL_ACTIVITY,
                input,
                result_type=ToolCallOutput,
                activity_id=f"{TOOL_ACTIVITY_ID_PREFIX}{call.tool_call_id}",
                summary=summary,
                **options.tool_local_options(timeout),
            )
        return await workflow.execute_activity(
            options.activity_name(contract.CALL_TOOL_ACTIVITY),
            input,
            result_type=ToolCallOutput,
            summary=summary,
            **options.tool_options(timeout),
        )
