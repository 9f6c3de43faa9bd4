"""The `Orchestration` workflow: one durable agent loop per run.

LLM call -> tool calls (auto-approved ones run at once, the others wait for a human
decision sent with the `submit_approval` signal) -> tool messages -> LLM call, until the
model answers without tools or `max_steps` LLM calls were made. All I/O happens in
activities; this module only decides.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    # The message models are plain pydantic data classes with no side effects; activities
    # are scheduled by the names in workflows.contract (no activity module is imported).
    from workflows import approvals, contract, options, patches, server_inputs
    from workflows.activity_io import LLMRequest, PreparedRun, PrepareRunInput
    from workflows.chat_messages import ChatMessage
    from workflows.failures import RunFailed, failure_message, reraise_cancellation
    from workflows.limits import (
        PAYLOAD_BUDGET_BYTES,
        fitted_status,
        json_bytes,
        shorten_settled_calls,
    )
    from workflows.messages import (
        TERMINAL_STATUSES,
        ApprovalDecision,
        DecisionBatch,
        EventsPage,
        EventsQuery,
        InputAnswer,
        OrchestrationStatus,
        RunEventType,
        RunHistory,
        RunStatus,
        StopReason,
        ToolProgress,
    )
    from workflows.notifications import Notifications
    from workflows.publishing import Publisher
    from workflows.run_record import RunRecord
    from workflows.state import OrchestrationInput, OrchestrationState
    from workflows.steps import Steps
    from workflows.tool_calls import unique_tool_call_ids


CONTINUE_AS_NEW_AFTER_BYTES = 32 * 1024 * 1024
"""History size at which a run continues as new whatever its event count: well under
Temporal's 50 MB limit, with room for the task that does it."""


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
        self._steps = Steps(self._run, self._publish, self._notifications, self._continue_as_new_due)
        self._by_count = False

    # --- Temporal interface ---------------------------------------------------------

    @workflow.run
    async def run(self, input: OrchestrationInput) -> OrchestrationStatus:
        """Loop until a final answer, `max_steps`, a failure or cancellation."""
        self._by_count = patches.patched(patches.CONTINUE_AS_NEW_BY_COUNT)
        try:
            if self._run.state is None:
                self._run.state = await self._start_state()
            self._publish.status(RunStatus.RUNNING)
            return await self._loop(self._run.state)
        except asyncio.CancelledError:
            await self._steps.cancel_tasks()
            self._finish(RunStatus.CANCELLED, StopReason.CANCELLED)
            raise
        except RunFailed as failure:
            # Every way a run fails ends here, in the workflow task that found it (so no open
            # run's history holds a failure recorded differently): status, memo, webhook.
            self._run.error = str(failure)
            self._finish(RunStatus.FAILED, StopReason.ERROR)
            self._notifications.send("orchestration.failed", self._status_data)
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
            self._run.ignore(approvals.ignored(decision, rejection.message, workflow.now()))
            workflow.logger.info("decision for %s ignored: %s", decision.tool_call_id, rejection.message)
            return
        self._apply(decision, "signal")

    @workflow.update(
        name=contract.DECIDE_UPDATE,
        description="Decide one waiting tool call (the API's approvals endpoint); refused, not ignored, when it "
        "cannot apply. Answers with the run's status, the decision applied.",
    )
    def decide(self, decision: ApprovalDecision) -> OrchestrationStatus:
        """Decide a pending tool call atomically and return the fresh status."""
        self._apply(decision, "update")
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
            self._apply(decision, "update")
        return self.status()

    @decide_many.validator
    def _validate_batch(self, batch: DecisionBatch) -> None:
        rejection = approvals.batch_rejection(batch.decisions, self._run.rejection)
        if rejection is not None:
            raise rejection

    def _apply(self, decision: ApprovalDecision, channel: str) -> None:
        call = self._run.find_open_call(decision.tool_call_id)
        assert call is not None
        if approvals.decide(call, decision, workflow.now()):
            self._run.show_model_edited_arguments(call)
        self._publish.decided(call, channel)
        self._run.emit_decision(call)
        self._show_at_once()
        workflow.logger.info(
            "tool call %s: %s by %s", call.tool_call_id, decision.decision, decision.approver or "unknown"
        )

    @workflow.signal(
        name=contract.SUBMIT_INPUT_SIGNAL,
        description='Answer what an MCP server asks during a tool call: {"input_id": ..., "action": "accept" | '
        '"decline" | "cancel", "content": {...}, "answerer": "<your name>"}. The run\'s Current Details show the '
        "exact input for each question. An answer that does not apply is ignored and recorded.",
    )
    def submit_input(self, answer: InputAnswer) -> None:
        """Answer a server's request; one that does not apply is ignored and recorded."""
        rejection = self._run.input_rejection(answer)
        if rejection is not None:
            self._run.ignore(server_inputs.ignored(answer, rejection.message, workflow.now()))
            workflow.logger.info("answer to %s ignored: %s", answer.input_id, rejection.message)
            return
        self._answer(answer)

    @workflow.update(
        name=contract.ANSWER_INPUT_UPDATE,
        description="Answer what an MCP server asks during a tool call (the API's inputs endpoint); refused, not "
        "ignored, when it cannot apply. Answers with the run's status, the answer applied.",
    )
    def answer_input(self, answer: InputAnswer) -> OrchestrationStatus:
        self._answer(answer)
        return self.status()

    @answer_input.validator
    def _validate_answer(self, answer: InputAnswer) -> None:
        rejection = self._run.input_rejection(answer)
        if rejection is not None:
            raise rejection

    def _answer(self, answer: InputAnswer) -> None:
        found = self._run.find_input(answer.input_id)
        assert found is not None
        call, record = found
        server_inputs.answer(record, answer, workflow.now())
        self._run.emit_input(call, RunEventType.INPUT_ANSWERED, record)
        self._show_at_once()
        workflow.logger.info("input %s: %s by %s", answer.input_id, answer.action, answer.answerer or "unknown")

    def _show_at_once(self) -> None:
        """A decision or an answer shows in the status at once (the update answers with it); the
        status is published (search attribute, status event) when the run moves on."""
        if self._run.status not in TERMINAL_STATUSES:
            self._run.status = self._run.open_status()
            self._publish.details()

    @workflow.signal(
        name=contract.TOOL_PROGRESS_SIGNAL,
        description="Internal: a running tool call's progress, sent by the worker that runs it.",
    )
    def tool_progress(self, update: ToolProgress) -> None:
        call = self._run.find_open_call(update.tool_call_id)
        if call is None or call.status != "running":
            return
        self._run.emit_for(call, RunEventType.TOOL_PROGRESS, **update.model_dump(exclude={"tool_call_id"}))
        of = f"/{update.total:g}" if update.total is not None else ""
        self._publish.details(f"running {call.server}.{call.tool}: {update.progress:g}{of} {update.message or ''}")

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

    @workflow.query(
        name=contract.CONVERSATION_QUERY,
        description="Internal: the LLM call in flight as a whole (its conversation and tools), for a worker that "
        "does not keep this run's conversation.",
    )
    def conversation(self) -> LLMRequest:
        return self._steps.whole_request()

    @workflow.query(
        name=contract.HISTORY_QUERY,
        description="The run's conversation without its instructions: what a follow-up run continues from.",
    )
    def history(self) -> RunHistory:
        return self._run.history()

    # --- The loop ---------------------------------------------------------------------

    async def _start_state(self) -> OrchestrationState:
        messages = self._initial_messages()
        try:
            prepared = await workflow.execute_activity(
                options.activity_name(contract.PREPARE_RUN_ACTIVITY),
                PrepareRunInput(
                    mcp_servers=self._run.request.mcp_servers,
                    tool_scope=self._run.request.tool_scope,
                    owner=self._run.request.owner,
                    require_approval=self._run.request.require_approval,
                    allowed_tools=self._run.request.allowed_tools,
                ),
                result_type=PreparedRun,
                summary="list MCP tools and resolve policy",
                **options.prepare_options(),
            )
        except ActivityError as err:
            reraise_cancellation(err)
            raise RunFailed(f"listing the MCP tools failed: {failure_message(err)}") from None
        for name, problem in prepared.catalog.unavailable_servers.items():
            workflow.logger.warning("MCP server %s unavailable for this run: %s", name, problem)
        if prepared.catalog.servers is not None:  # recorded by workers that announce it
            self._run.emit_tools_listed(prepared.catalog)
        return OrchestrationState(
            created_at=self._run.created_at,
            model=self._run.request.model or prepared.defaults.model,
            catalog=prepared.catalog,
            worker_webhook=prepared.defaults.webhook,
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
            raise RunFailed(
                "a run needs `input` or `messages` with at least one user message", contract.INVALID_REQUEST
            )
        return messages

    async def _loop(self, state: OrchestrationState) -> OrchestrationStatus:
        while True:
            if state.open_calls():
                await self._settle_open_calls(state)
            if state.llm_calls >= self._run.request.max_steps:
                return await self._complete(StopReason.MAX_STEPS, _last_assistant_text(state.messages))
            if self._continue_as_new_due():
                await self._continue_as_new(state)
            reply = await self._steps.call_llm(state)
            if reply.message.tool_calls and patches.patched(patches.UNIQUE_TOOL_CALL_IDS):
                used = {call.tool_call_id for call in state.tool_calls()}
                reply.message.tool_calls = unique_tool_call_ids(reply.message.tool_calls, used, state.llm_calls)
            state.messages.append(reply.message)
            if not reply.message.tool_calls:
                return await self._complete(StopReason.FINAL_ANSWER, reply.message.text())
            opened = self._run.open_tool_calls(
                reply.message.tool_calls,
                validate_arguments=patches.patched(patches.ARGUMENTS_VALIDATED),
                bound_arguments=patches.patched(patches.ARGUMENTS_BOUNDED),
            )
            self._publish.decided_by_rules(opened)

    async def _settle_open_calls(self, state: OrchestrationState) -> None:
        """Give every open call its one tool message, in call order."""
        calls = state.open_calls()
        await asyncio.gather(*(self._steps.settle(call) for call in calls if call.result is None))
        if any(call.result is None for call in calls):
            # Stopped waiting to continue-as-new: the undecided calls go along, still pending.
            await self._continue_as_new(state)
        for call in calls:
            state.messages.append(ChatMessage(role="tool", tool_call_id=call.tool_call_id, content=call.result))
            call.result, call.answered = None, True
        self._publish.refresh()

    # --- Finishing, continue-as-new, notifications ------------------------------------

    async def _complete(self, reason: StopReason, output: str | None) -> OrchestrationStatus:
        self._run.output = output
        self._finish(RunStatus.COMPLETED, reason)
        self._notifications.send("orchestration.completed", self._status_data)
        await self._notifications.drain()
        return self.status()

    def _finish(self, status: RunStatus, reason: StopReason) -> None:
        self._run.finish(status, reason)
        self._publish.status(status)
        self._publish.final_memo()
        self._publish.finished(status)

    def _status_data(self) -> dict[str, Any]:
        return {"orchestration": self.status().model_dump(mode="json")}

    def _continue_as_new_due(self) -> bool:
        """At the run's event count, or near Temporal's size limit. A step records about what it
        adds (ARCHITECTURE.md, "History per step"), so the server's suggestion (4 MB on a default
        server) would only make runs with large tool outputs carry their state over and over;
        runs from before the patch still follow it."""
        info = workflow.info()
        if info.get_current_history_length() >= self._run.request.continue_as_new_after_events:
            return True
        if self._by_count:
            return info.get_current_history_size() >= CONTINUE_AS_NEW_AFTER_BYTES
        return info.is_continue_as_new_suggested()

    async def _continue_as_new(self, state: OrchestrationState) -> None:
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._notifications.drain()
        state.continued_runs += 1
        state.events, state.next_event_id = self._run.events.carried(), self._run.events.next_id
        next_input = OrchestrationInput(run_request=self._run.request, state=state)
        if json_bytes(next_input) > PAYLOAD_BUDGET_BYTES:
            shorten_settled_calls(state.tool_calls())
            size = json_bytes(next_input)
            if size > PAYLOAD_BUDGET_BYTES:
                raise RunFailed(
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
