"""The `Orchestration` workflow: one durable agent loop per run.

LLM call -> tool calls (auto-approved ones run at once, the others wait for a human
decision sent with the `submit_approval` signal) -> tool messages -> LLM call, until the
model answers without tools or `max_steps` LLM calls were made. All I/O happens in
activities; this module only decides.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, FailureError

with workflow.unsafe.imports_passed_through():
    # The message models are plain pydantic data classes with no side effects; activities
    # are scheduled by the names in workflows.contract (no activity module is imported).
    from workflows import approvals, contract, options
    from workflows.activity_io import LLMReply, LLMRequest, PrepareRunInput, ToolCallInput, ToolCallOutput, ToolCatalog
    from workflows.context import fit_to_budget
    from workflows.limits import (
        IGNORED_DECISIONS_KEPT,
        MAX_ERROR_CHARS,
        PAYLOAD_BUDGET_BYTES,
        fitted_status,
        json_bytes,
        preview,
        shorten_steps,
    )
    from workflows.messages import (
        OUTPUT_PREVIEW_CHARS,
        TERMINAL_STATUSES,
        ApprovalDecision,
        ChatMessage,
        DecisionBatch,
        EventsPage,
        EventsQuery,
        OrchestrationStatus,
        RunEventType,
        RunStatus,
        StepRecord,
        StopReason,
    )
    from workflows.notifications import Notifications
    from workflows.publishing import Publisher
    from workflows.run_record import RunRecord
    from workflows.state import OpenToolCall, OrchestrationInput, OrchestrationState
    from workflows.tool_calls import unique_tool_call_ids

ARGUMENTS_VALIDATED_PATCH = "arguments-validated-against-input-schema"
"""Runs from before this patch opened tool calls without checking the arguments against the
tool's input schema; their histories replay that way."""

UNIQUE_TOOL_CALL_IDS_PATCH = "unique-tool-call-ids"
"""Runs from before this patch kept the model's tool-call ids even when they repeated."""

ARGUMENTS_BOUNDED_PATCH = "arguments-bounded"
"""Runs from before this patch ran tool calls whatever the size of their arguments."""


class _RunFailed(Exception):
    """Internal: the run cannot go on (e.g. the LLM rejected the request); `type` is the
    failure's error type."""

    def __init__(self, message: str, type: str = contract.RUN_FAILED) -> None:
        super().__init__(message)
        self.type = type


@workflow.defn(name=contract.ORCHESTRATION_WORKFLOW)
class Orchestration:
    """Runs the agent loop for one orchestration; see module docstring.

    Bad input fails the run where it is found, with a non-retryable error: a request that
    does not fit its model in the data converter (`InvalidPayload`, worker/converter.py), one
    that cannot run here (`InvalidRequest`). Any other exception in workflow code is a bug:
    its workflow task retries until a fixed worker is deployed, and the run goes on.
    """

    @workflow.init
    def __init__(self, input: OrchestrationInput) -> None:
        self._run = RunRecord(workflow.info().workflow_id, input.run_request, input.state, workflow.now)
        self._publish = Publisher(self._run)
        self._notifications = Notifications(self._run)

    # --- Temporal interface ---------------------------------------------------------

    @workflow.run
    async def run(self, input: OrchestrationInput) -> OrchestrationStatus:
        """Loop until a final answer, `max_steps`, a failure or cancellation."""
        try:
            if self._run.state is None:
                self._run.state = await self._start_state()
            self._publish.status(RunStatus.RUNNING)
            return await self._loop(self._run.state)
        except asyncio.CancelledError:
            self._finish(RunStatus.CANCELLED, StopReason.CANCELLED)
            raise
        except _RunFailed as failure:
            # Every way a run fails ends here, in the workflow task that found it (so no open
            # run's history holds a failure recorded differently): status, memo, webhook.
            self._run.error = str(failure)
            self._finish(RunStatus.FAILED, StopReason.ERROR)
            self._notifications.send("orchestration.failed", {"orchestration": self.status().model_dump(mode="json")})
            await self._notifications.drain()
            raise ApplicationError(self._run.error, self.status(), type=failure.type, non_retryable=True) from None

    @workflow.signal(
        name=contract.SUBMIT_APPROVAL_SIGNAL,
        description='Approve or deny a waiting tool call: {"tool_call_id": ..., "decision": "approve" | "deny", '
        '"approver": "<your name>", "reason": ..., "approval_hash": ...}. The run\'s Current Details show the '
        "exact input for each waiting call. A decision that does not apply is ignored and recorded.",
    )
    def submit_approval(self, decision: ApprovalDecision) -> None:
        """Record a human decision for a pending tool call; others are ignored and recorded.

        The raw form for the Temporal UI and CLI; the API uses the `decide` update, which
        refuses instead of ignoring.
        """
        rejection = self._run.rejection(decision)
        if rejection is not None:
            if self._run.state is not None:
                ignored = self._run.state.ignored_decisions
                ignored.append(approvals.ignored(decision, rejection.message, workflow.now()))
                del ignored[:-IGNORED_DECISIONS_KEPT]
            workflow.logger.info("decision for %s ignored: %s", decision.tool_call_id, rejection.message)
            return
        self._apply(decision)

    @workflow.update(
        name=contract.DECIDE_UPDATE,
        description="Decide one waiting tool call (the API's approvals endpoint); refused, not ignored, when it "
        "cannot apply. Answers with the run's status, the decision applied.",
    )
    def decide(self, decision: ApprovalDecision) -> OrchestrationStatus:
        """Decide a pending tool call atomically and return the fresh status."""
        self._apply(decision)
        return self.status()

    @decide.validator
    def _validate_decision(self, decision: ApprovalDecision) -> None:
        rejection = self._run.rejection(decision)
        if rejection is not None:
            raise rejection

    @workflow.update(
        name=contract.DECIDE_MANY_UPDATE,
        description='Decide several waiting tool calls at once, all or none: {"decisions": [...]}.',
    )
    def decide_many(self, batch: DecisionBatch) -> OrchestrationStatus:
        """Decide several pending tool calls at once: all of them, or none if one cannot apply."""
        for decision in batch.decisions:
            self._apply(decision)
        return self.status()

    @decide_many.validator
    def _validate_batch(self, batch: DecisionBatch) -> None:
        rejection = approvals.batch_rejection(batch.decisions, self._run.rejection)
        if rejection is not None:
            raise rejection

    def _apply(self, decision: ApprovalDecision) -> None:
        call = self._run.find_open_call(decision.tool_call_id)
        assert call is not None
        if approvals.decide(call, decision, workflow.now()):
            self._run.show_model_edited_arguments(call)
        # The step and the status say so at once (the update answers with them); the status is
        # published (search attribute, status event) when the run moves on, as it always was.
        self._run.record_decision(call)
        self._run.emit_decision(call)
        if self._run.status not in TERMINAL_STATUSES:
            self._run.status = self._run.open_status()
            self._publish.details()
        workflow.logger.info(
            "tool call %s: %s by %s", call.tool_call_id, decision.decision, decision.approver or "unknown"
        )

    @workflow.query(
        name=contract.STATUS_QUERY,
        description="The run as the API shows it: status, pending approvals (with arguments and approval_hash), "
        "steps with their decisions, output, usage.",
    )
    def status(self) -> OrchestrationStatus:
        """The run as GET /v1/orchestrations/{id} shows it; also the run's result and what the
        decision updates answer: shortened, if need be, to fit in one payload."""
        return fitted_status(self._run.full_status(), PAYLOAD_BUDGET_BYTES)

    @workflow.query(
        name=contract.EVENTS_QUERY,
        description='The run\'s numbered events after an id: {"after": 0, "limit": 500}.',
    )
    def events(self, query: EventsQuery) -> EventsPage:
        """The run's events after `query.after` (what the API streams as Server-Sent Events)."""
        return self._run.events.page(query.after, query.limit, self._run.status)

    # --- The loop ---------------------------------------------------------------------

    async def _start_state(self) -> OrchestrationState:
        messages = self._initial_messages()
        try:
            catalog = await workflow.execute_activity(
                options.activity_name(contract.PREPARE_RUN_ACTIVITY),
                PrepareRunInput(mcp_servers=self._run.request.mcp_servers, tool_scope=self._run.request.tool_scope),
                result_type=ToolCatalog,
                summary="list MCP tools and resolve policy",
                **options.prepare_options(),
            )
        except ActivityError as err:
            _reraise_cancellation(err)
            raise _RunFailed(f"listing the MCP tools failed: {_failure_message(err)}") from None
        for name, problem in catalog.unavailable_servers.items():
            workflow.logger.warning("MCP server %s unavailable for this run: %s", name, problem)
        return OrchestrationState(
            created_at=self._run.created_at,
            model=self._run.request.model or catalog.default_model,
            catalog=catalog,
            messages=messages,
        )

    def _initial_messages(self) -> list[ChatMessage]:
        messages: list[ChatMessage] = []
        if self._run.request.instructions:
            messages.append(ChatMessage(role="system", content=self._run.request.instructions))
        if self._run.request.messages:
            messages.extend(self._run.request.messages)
        if self._run.request.input:
            messages.append(ChatMessage(role="user", content=self._run.request.input))
        if all(m.role in ("system", "developer") for m in messages):
            raise _RunFailed(
                "a run needs `input` or `messages` with at least one user message", contract.INVALID_REQUEST
            )
        return messages

    async def _loop(self, state: OrchestrationState) -> OrchestrationStatus:
        while True:
            if state.open_calls:
                await self._settle_open_calls(state)
            if state.llm_calls >= self._run.request.max_steps:
                return await self._complete(StopReason.MAX_STEPS, _last_assistant_text(state.messages))
            if self._continue_as_new_due():
                await self._continue_as_new(state)
            reply = await self._call_llm(state)
            if reply.message.tool_calls and workflow.patched(UNIQUE_TOOL_CALL_IDS_PATCH):
                used = {step.tool_call_id for step in state.steps if step.tool_call_id}
                reply.message.tool_calls = unique_tool_call_ids(reply.message.tool_calls, used, state.llm_calls)
            state.messages.append(reply.message)
            if not reply.message.tool_calls:
                return await self._complete(StopReason.FINAL_ANSWER, reply.message.text())
            self._run.open_tool_calls(
                reply.message.tool_calls,
                validate_arguments=workflow.patched(ARGUMENTS_VALIDATED_PATCH),
                bound_arguments=workflow.patched(ARGUMENTS_BOUNDED_PATCH),
            )

    async def _call_llm(self, state: OrchestrationState) -> LLMReply:
        number = state.llm_calls + 1
        record = StepRecord(
            index=len(state.steps), kind="llm", status="running", step=number, started_at=workflow.now()
        )
        state.steps.append(record)
        fit_to_budget(state.messages, self._run.request.context_budget_bytes)
        request = LLMRequest(
            model=state.model, messages=state.messages, tools=[tool.openai_tool() for tool in state.catalog.tools]
        )
        size = json_bytes(request)
        if size > PAYLOAD_BUDGET_BYTES:
            self._run.end_step(record, "failed")
            raise _RunFailed(
                f"the conversation and tool definitions are {size} bytes, over the {PAYLOAD_BUDGET_BYTES} one LLM "
                "call can carry; start a new run, or lower context_budget_bytes"
            )
        summary = f"llm {state.model} step {number}"
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
                    summary=summary,
                    **options.llm_local_options(),
                )
            else:
                reply = await workflow.execute_activity(
                    options.activity_name(contract.CHAT_COMPLETION_ACTIVITY),
                    request,
                    result_type=LLMReply,
                    summary=summary,
                    **options.llm_options(),
                )
        except FailureError as err:  # ActivityError; a local activity's failure may come unwrapped
            _reraise_cancellation(err)
            self._run.end_step(record, "failed")
            message = _failure_message(err)
            self._run.emit(
                RunEventType.LLM_FINISHED, step_index=record.index, step=number, status="failed", error=message
            )
            raise _RunFailed(f"LLM call failed: {message}") from None
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
        workflow.logger.info("llm step %d: %d tool call(s)", number, len(reply.message.tool_calls or []))
        return reply

    async def _settle_open_calls(self, state: OrchestrationState) -> None:
        """Give every open call its one tool message, in call order."""
        await asyncio.gather(*(self._settle(call) for call in state.open_calls if call.result is None))
        if any(call.result is None for call in state.open_calls):
            # Stopped waiting to continue-as-new: the undecided calls go along, still pending.
            await self._continue_as_new(state)
        for call in state.open_calls:
            state.messages.append(ChatMessage(role="tool", tool_call_id=call.tool_call_id, content=call.result))
        state.open_calls = []
        self._publish.refresh()

    async def _settle(self, call: OpenToolCall) -> None:
        record = self._run.tool_step(call)
        if call.problem is not None:
            call.result = f"error: {call.problem}"
            self._run.emit_tool_finished(call, record)
            return
        if not call.auto_execute and call.decision is None:
            if not await self._await_decision(call, record):
                return
        if call.decision is not None:
            self._run.record_decision(call)
            if call.decision.decision == "deny":
                call.result = f"denied: {call.decision.reason or 'no reason given'}"
                record.output_preview = call.result
                self._run.end_step(record, "denied")
                return
        await self._execute(call, record)

    async def _await_decision(self, call: OpenToolCall, record: StepRecord) -> bool:
        """Wait for a decision on `call`; False when the wait stopped for continue-as-new."""
        if call.requested_at is None:
            call.requested_at = workflow.now()
            record.status = "waiting_for_approval"
            record.started_at = call.requested_at
            pending = self._run.pending_approval(call)
            self._run.emit_for(
                call,
                RunEventType.TOOL_PENDING,
                **pending.model_dump(mode="json", exclude={"tool_call_id"}),
            )
            self._publish.details()
            self._notifications.send(
                "orchestration.approval_requested",
                {"orchestration_id": workflow.info().workflow_id, "tool_call": pending.model_dump(mode="json")},
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
        self._publish.refresh()
        return call.decision is not None

    async def _execute(self, call: OpenToolCall, record: StepRecord) -> None:
        assert call.server is not None and call.tool is not None
        record.status = "running"
        record.started_at = workflow.now()
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
            output = await workflow.execute_activity(
                options.activity_name(contract.CALL_TOOL_ACTIVITY),
                ToolCallInput(
                    server=call.server,
                    tool=call.tool,
                    arguments=call.arguments,
                    timeout_seconds=self._run.request.tool_timeout_seconds,
                    output_limit_bytes=self._run.request.tool_output_limit_bytes,
                    idempotency_key=f"{workflow.info().workflow_id}/{call.tool_call_id}",
                    definition_hash=call.definition_hash or None,
                ),
                result_type=ToolCallOutput,
                summary=summary[:200],
                **options.tool_options(self._run.request.tool_timeout_seconds),
            )
        except ActivityError as err:
            _reraise_cancellation(err)
            call.result = f"error: {_failure_message(err)}"
            status = "error"
        else:
            call.result = f"error: {output.text}" if output.is_error else output.text
            status = "error" if output.is_error else "completed"
            if call.original_arguments is not None:
                call.result = f"(Approved with edited arguments: {json.dumps(call.arguments)})\n{call.result}"
            assert self._run.state is not None
            self._run.state.usage.tool_calls += 1
            self._run.state.usage.cost_usd = round(self._run.state.usage.cost_usd + call.price_usd, 10)
        record.output_preview = call.result[:OUTPUT_PREVIEW_CHARS]
        self._run.end_step(record, status)
        self._run.emit_tool_finished(call, record)
        workflow.logger.info("tool %s.%s %s", call.server, call.tool, status)

    # --- Finishing, continue-as-new, notifications ------------------------------------

    async def _complete(self, reason: StopReason, output: str | None) -> OrchestrationStatus:
        self._run.output = output
        self._finish(RunStatus.COMPLETED, reason)
        self._notifications.send("orchestration.completed", {"orchestration": self.status().model_dump(mode="json")})
        await self._notifications.drain()
        return self.status()

    def _finish(self, status: RunStatus, reason: StopReason) -> None:
        self._run.finish(status, reason)
        self._publish.status(status)
        self._publish.final_memo()

    def _continue_as_new_due(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= self._run.request.continue_as_new_after_events
        )

    async def _continue_as_new(self, state: OrchestrationState) -> None:
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._notifications.drain()
        state.continued_runs += 1
        state.events, state.next_event_id = self._run.events.carried(), self._run.events.next_id
        next_input = OrchestrationInput(run_request=self._run.request, state=state)
        if json_bytes(next_input) > PAYLOAD_BUDGET_BYTES:
            shorten_steps(state.steps)
            size = json_bytes(next_input)
            if size > PAYLOAD_BUDGET_BYTES:
                raise _RunFailed(
                    f"the run's state is {size} bytes, over the {PAYLOAD_BUDGET_BYTES} it can carry into its next "
                    "part (continue-as-new); start a new run, or lower context_budget_bytes"
                )
        workflow.logger.info("continuing as new (run %d of this orchestration)", state.continued_runs + 1)
        workflow.continue_as_new(next_input, memo=workflow.memo())


def _last_assistant_text(messages: list[ChatMessage]) -> str | None:
    for message in reversed(messages):
        if message.role == "assistant" and message.text():
            return message.text()
    return None


def _reraise_cancellation(err: FailureError) -> None:
    """An activity that ended because the run was cancelled cancels the run, not just the step."""
    if isinstance(err, CancelledError) or isinstance(err.cause, CancelledError):
        raise asyncio.CancelledError() from err


def _failure_message(err: FailureError) -> str:
    """The innermost failure's message: the provider's or the tool server's own words (the
    first MAX_ERROR_CHARS of them)."""
    cause: BaseException | None = err
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    return preview(cause.message if isinstance(cause, FailureError) else str(cause), MAX_ERROR_CHARS)
