"""The loop's two kinds of step, each with its audit record and events: an LLM call, and the
life of one tool call (decided at once, by a rule, by a person or by the timeout; run when
approved; one tool message either way). Workflow code: the activities are scheduled here."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from opentelemetry import trace
from temporalio import workflow
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from workflows import approvals, contract, options, patches, server_inputs
    from workflows.activity_io import (
        LLMDeltaRequest,
        LLMReply,
        LLMRequest,
        ServerTask,
        TaskRequest,
        ToolCallInput,
        ToolCallOutput,
    )
    from workflows.context import ConversationBudget
    from workflows.failures import RunFailed, failure_message, reraise_cancellation
    from workflows.limits import PAYLOAD_BUDGET_BYTES, json_bytes
    from workflows.messages import OUTPUT_PREVIEW_CHARS, InputAnswer, PendingInput, RunEventType
    from workflows.notifications import Notifications
    from workflows.publishing import Publisher
    from workflows.run_record import RunRecord
    from workflows.state import InputRecord, LLMCallRecord, OrchestrationState, ToolCallRecord, ToolExchange
    from workflows.tool_calls import openai_tool


TOOL_ACTIVITY_ID_PREFIX = "tool:"
"""A tool call run as a local activity has the id `tool:<tool call id>`, which its marker in
history keeps (a local activity's input is not recorded)."""

POLICY_ANSWERER_PREFIX = "policy:"
"""The answerer recorded when a server's policy, not a person, answered (`policy:sampling=auto`)."""
TASK_POLL_MIN_SECONDS = 0.5
TASK_POLL_MAX_SECONDS = 300.0
"""A task is polled at its server's `pollIntervalMs` (5 s when it names none), within these bounds."""
_TASK_SHOWN = {"task_id", "status", "status_message"}

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


def _input_requested(pending: PendingInput) -> dict[str, Any]:
    """The data of the `orchestration.input_requested` webhook."""
    return {"orchestration_id": workflow.info().workflow_id, "input": pending.model_dump(mode="json")}


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
        self._run.end_llm_call(record, reply.usage)
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
        """Run an approved call to its result: the tool call, then, as long as its server asks for
        input (`input_required`) or answers with a task, the answers and the polls. Resumes where
        the record says after continue-as-new; returns with `call.result` unset when it stopped
        waiting for that."""
        assert call.server is not None and call.tool is not None
        if call.exchange is None:
            call.status = "running"
            call.started_at = workflow.now()
            self._run.emit_for(
                call,
                RunEventType.TOOL_STARTED,
                server=call.server,
                tool=call.tool,
                arguments=call.arguments,
            )
            output = await self._tool_call(call)
        else:
            output = await self._exchange_step(call)
        while output is not None and self._goes_on(call, output):
            output = await self._exchange_step(call)
        if output is not None:
            self._finish_call(call, output)

    async def _exchange_step(self, call: ToolCallRecord) -> ToolCallOutput | None:
        """One step of a call whose server asked for input or runs it as a task: the output that
        moves it on, or None when it stopped waiting for continue-as-new."""
        exchange = call.exchange
        assert exchange is not None
        if exchange.task is not None:
            return await self._follow_task(call)
        if not await self._inputs_answered(call):
            return None
        refused = server_inputs.refusal(call)
        if refused is not None:
            return ToolCallOutput(text=refused, is_error=True)
        return await self._tool_call(call, server_inputs.responses(call), exchange.request_state)

    def _goes_on(self, call: ToolCallRecord, output: ToolCallOutput) -> bool:
        """Record what `output` says beyond a result: the server's requests (a new round) or its
        task. True when the call goes on, False when `output` is its result."""
        if output.input_required is None and output.task is None:
            return False
        exchange = call.exchange = call.exchange or ToolExchange()
        exchange.notes.extend(output.notes)
        output.notes = []  # kept with the exchange, told the model with the call's result
        if output.task is not None:
            exchange.task = output.task
            self._run.emit_for(call, RunEventType.TASK_STATUS, **output.task.model_dump(include=_TASK_SHOWN))
            return True
        asked = output.input_required
        assert asked is not None
        exchange.round += 1
        if exchange.round > server_inputs.MAX_INPUT_ROUNDS:
            output.text, output.is_error = (
                f"the server asked for input more than {server_inputs.MAX_INPUT_ROUNDS} times; the call was stopped",
                True,
            )
            output.input_required = None
            return False
        exchange.request_state, exchange.answered = asked.request_state, asked.answered
        self._ask(call, asked.requests)
        return True

    def _ask(self, call: ToolCallRecord, requests: dict[str, dict[str, Any]]) -> None:
        """Open a round of the server's requests: announced to people (events, Current Details,
        webhook), or answered by the server's sampling policy when it needs nobody."""
        exchange = call.exchange
        assert exchange is not None
        exchange.inputs = server_inputs.open_round(call, requests, workflow.now())
        tool = self._run.catalog_tool(call)
        for record in exchange.inputs:
            if record.kind == "sampling" and tool.sampling != "approve":
                action = "accept" if tool.sampling == "auto" else "decline"
                answerer = f"{POLICY_ANSWERER_PREFIX}sampling={tool.sampling}"
                policy = InputAnswer(input_id=record.input_id, action=action, answerer=answerer)
                server_inputs.answer(record, policy, workflow.now())
                self._run.emit_input(call, RunEventType.INPUT_ANSWERED, record)
                continue
            self._run.emit_input(call, RunEventType.INPUT_REQUESTED, record)
            pending = self._run.pending_input(call, record)
            self._notifications.send("orchestration.input_requested", functools.partial(_input_requested, pending))
        self._publish.refresh()
        self._publish.details()

    async def _inputs_answered(self, call: ToolCallRecord) -> bool:
        """Wait until every request of the current round is answered (by a person, or declined
        when it expires), then sample the model for the accepted sampling requests. False when
        the wait stopped for continue-as-new."""
        exchange = call.exchange
        assert exchange is not None
        while exchange.waiting():
            waiting = exchange.waiting()
            due = min(self._run.input_expires_at(record) for record in waiting)
            remaining = (due - workflow.now()).total_seconds()
            if remaining <= 0:
                for record in waiting:
                    if self._run.input_expires_at(record) <= workflow.now():
                        server_inputs.time_out(record, workflow.now())
                        self._run.emit_input(call, RunEventType.INPUT_ANSWERED, record)
                self._publish.refresh()
                continue
            try:
                await workflow.wait_condition(
                    lambda: not exchange.waiting() or self._continue_as_new_due(),
                    timeout=timedelta(seconds=remaining),
                    timeout_summary=f"input to {call.server}.{call.tool} ({call.tool_call_id}) times out",
                )
            except TimeoutError:
                continue
            if exchange.waiting() and self._continue_as_new_due():
                return False
        for record in server_inputs.to_sample(call):
            record.response = await self._sample(call, record)
        self._publish.refresh()
        return True

    async def _sample(self, call: ToolCallRecord, record: InputRecord) -> dict[str, Any] | None:
        """Answer a server's sampling request with the run's model: an LLM call of the run
        (recorded, counted in its usage) that the conversation never sees."""
        state = self._run.state
        assert state is not None
        step = LLMCallRecord(
            index=len(state.steps),
            status="running",
            step=call.step,
            started_at=workflow.now(),
            tool_call_id=call.tool_call_id,
            server=call.server,
        )
        state.steps.append(step)
        request = LLMRequest(
            model=state.model,
            messages=server_inputs.sampling_messages(record.params),
            max_tokens=server_inputs.sampling_max_tokens(record.params),
        )
        self._publish.details(f"sampling the model for {call.server}.{call.tool}")
        try:
            reply = await workflow.execute_activity(
                contract.CHAT_COMPLETION_ACTIVITY,
                request,
                result_type=LLMReply,
                summary=f"sampling for {call.server}.{call.tool}",
                **options.llm_options(),
            )
        except FailureError as err:
            reraise_cancellation(err)
            self._run.end_step(step, "failed")
            message = failure_message(err)
            self._run.emit(RunEventType.SAMPLING, step_index=step.index, tool_call_id=call.tool_call_id, error=message)
            # The server gets no answer: the call ends, and the model is told why (`refusal`).
            server_inputs.sampling_failed(record, f"the model failed: {message}", workflow.now())
            return None
        self._run.end_llm_call(step, reply.usage)
        self._run.emit(
            RunEventType.SAMPLING,
            step_index=step.index,
            tool_call_id=call.tool_call_id,
            input_id=record.input_id,
            usage=reply.usage.model_dump(),
        )
        return server_inputs.sampling_response(reply.message.text() or "", state.model, reply.finish_reason)

    async def _follow_task(self, call: ToolCallRecord) -> ToolCallOutput | None:
        """Poll the call's task with durable timers until it ends (its output), answering what it
        asks with `tasks/update`; None when it stopped for continue-as-new."""
        exchange = call.exchange
        assert exchange is not None and exchange.task is not None and call.server is not None
        while True:
            task = exchange.task
            if task.status in ("completed", "failed"):
                return task.output or ToolCallOutput(
                    text=f"the task ended {task.status} without a result", is_error=True
                )
            if task.status == "cancelled":
                return ToolCallOutput(text=f"the server cancelled the task: {task.status_message or ''}", is_error=True)
            fresh = {key: request for key, request in task.input_requests.items() if key not in exchange.task_keys}
            if task.status == "input_required" and fresh:
                exchange.round += 1
                exchange.task_keys.extend(fresh)
                self._ask(call, fresh)
            if any(record.response is None for record in exchange.inputs):  # asked, or allowed and not sampled yet
                if not await self._inputs_answered(call):
                    return None
                refused = server_inputs.refusal(call)
                if refused is not None:
                    await self._task_request(contract.CANCEL_TASK_ACTIVITY, call)
                    return ToolCallOutput(text=refused, is_error=True)
                await self._task_request(contract.UPDATE_TASK_ACTIVITY, call, server_inputs.responses(call))
                exchange.inputs = []
            if self._continue_as_new_due():
                return None
            interval = min(max((task.poll_interval_ms or 5000) / 1000, TASK_POLL_MIN_SECONDS), TASK_POLL_MAX_SECONDS)
            self._publish.details(f"{call.server}.{call.tool}: task {task.status} {task.status_message or ''}")
            await workflow.sleep(interval, summary=f"poll task of {call.server}.{call.tool}")
            seen = await self._task_request(contract.GET_TASK_ACTIVITY, call)
            if seen is None:
                return ToolCallOutput(text="the task could not be polled", is_error=True)
            if (seen.status, seen.status_message) != (task.status, task.status_message):
                self._run.emit_for(call, RunEventType.TASK_STATUS, **seen.model_dump(include=_TASK_SHOWN))
            exchange.task = seen

    async def _task_request(
        self, activity: str, call: ToolCallRecord, responses: dict[str, dict[str, Any]] | None = None
    ) -> ServerTask | None:
        """One task request (`tasks/get`, `tasks/update`, `tasks/cancel`) for `call`'s task; a
        failure ends the call (None), its message kept."""
        exchange = call.exchange
        assert exchange is not None and exchange.task is not None and call.server is not None
        request = TaskRequest(
            server=call.server,
            task_id=exchange.task.task_id,
            owner=self._run.request.owner,
            output_limit_bytes=self._run.request.tool_output_limit_bytes,
            input_responses=responses,
        )
        try:
            return await workflow.execute_activity(
                activity,
                request,
                result_type=ServerTask if activity == contract.GET_TASK_ACTIVITY else None,
                summary=f"{activity.removeprefix(contract.ACTIVITY_PREFIX)} {call.server}.{call.tool}",
                **options.task_options(),
            )
        except FailureError as err:
            reraise_cancellation(err)
            exchange.notes.append(f"(task request failed: {failure_message(err)})")
            return None

    async def cancel_tasks(self) -> None:
        """The run was cancelled: cancel the tasks its calls were following (best effort)."""
        state = self._run.state
        calls = [
            call
            for call in (state.open_calls() if state else [])
            if call.exchange is not None
            and call.exchange.task is not None
            and call.exchange.task.status in ("working", "input_required")
        ]
        await asyncio.gather(*(self._task_request(contract.CANCEL_TASK_ACTIVITY, call) for call in calls))

    async def _tool_call(
        self,
        call: ToolCallRecord,
        responses: dict[str, dict[str, Any]] | None = None,
        request_state: str | None = None,
    ) -> ToolCallOutput | None:
        """One `tools/call` (a retry when `responses` are given): its output, or None when it
        failed (the call then has its error as result)."""
        summary = f"tool {call.server}.{call.tool}" + (f": {call.intent}" if call.intent else "")
        self._publish.details(f"running {call.server}.{call.tool}")
        try:
            with _tracer.start_as_current_span("orch.tool_call", attributes=_span_attributes(call)):
                return await self._call_tool(call, summary[:200], responses, request_state)
        except FailureError as err:  # ActivityError; a local activity's failure may come unwrapped
            reraise_cancellation(err)
            call.result = call.output_preview = f"error: {failure_message(err)}"
            self._run.end_step(call, "error")
            self._run.emit_tool_finished(call)
            return None

    def _finish_call(self, call: ToolCallRecord, output: ToolCallOutput) -> None:
        """The call's result: the tool message the model gets, with what it should know beside it."""
        call.result = f"error: {output.text}" if output.is_error else output.text
        status = "error" if output.is_error else "completed"
        if call.original_arguments is not None:
            call.result = f"(Approved with edited arguments: {json.dumps(call.arguments)})\n{call.result}"
        notes = [*(call.exchange.notes if call.exchange else []), *output.notes]
        late = server_inputs.timed_out_note(call) if call.exchange else None
        if late:
            notes.append(late)
        if notes:
            call.result = "\n".join([call.result, *notes])
        state = self._run.state
        assert state is not None
        state.usage.tool_calls += 1
        state.usage.cost_usd = round(state.usage.cost_usd + call.price_usd, 10)
        self._publish.cost(call)
        call.output_preview = call.result[:OUTPUT_PREVIEW_CHARS]
        self._run.end_step(call, status)
        self._run.emit_tool_finished(call)
        workflow.logger.debug("tool %s.%s %s", call.server, call.tool, status)

    async def _call_tool(
        self,
        call: ToolCallRecord,
        summary: str,
        responses: dict[str, dict[str, Any]] | None,
        request_state: str | None,
    ) -> ToolCallOutput:
        assert call.server is not None and call.tool is not None
        timeout = self._run.request.tool_timeout_seconds
        round_number = call.exchange.round if call.exchange else 0
        input = ToolCallInput(
            server=call.server,
            tool=call.tool,
            arguments=call.arguments,
            timeout_seconds=timeout,
            output_limit_bytes=self._run.request.tool_output_limit_bytes,
            idempotency_key=f"{workflow.info().workflow_id}/{call.tool_call_id}",
            definition_hash=call.definition_hash or None,
            owner=self._run.request.owner,
            tool_call_id=call.tool_call_id,
            input_responses=responses,
            request_state=request_state,
        )
        if self._run.request.tool_call_mode() == "local_activity" and patches.patched(patches.LOCAL_TOOL_CALLS):
            # The result is recorded as a marker in the same task completion as the next LLM
            # call's command, so it is recorded before the model is shown it.
            return await workflow.execute_local_activity(
                contract.CALL_TOOL_ACTIVITY,
                input,
                result_type=ToolCallOutput,
                activity_id=f"{TOOL_ACTIVITY_ID_PREFIX}{call.tool_call_id}"
                + (f"#{round_number}" if round_number else ""),
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
