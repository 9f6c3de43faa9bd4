"""What the API does with runs through one Temporal client: start (idempotently), read (the
live status, or what the server keeps of a finished run), list, decide (the update, or the
durable signal when no worker answers) and cancel. Starting: `api.run_start`; calls and their
errors: `api.temporal_calls`; reading without the workflow: `api.projections`; page tokens:
`api.page_tokens`; the tool listing: `api.tool_listing`; webhook replays: `api.webhook_replays`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import QueryRejectCondition
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.auth import Principal
from api.errors import APIError
from api.page_tokens import PageTokens, page_token_key
from api.projections import CLOSED_STOP_REASON, memo_events, minimal_status, read_memo, status_of
from api.run_start import start_run
from api.schemas import CreateOrchestration, Links, OrchestrationSummary
from api.temporal_calls import (
    DECISION_ERRORS,
    QUERY_TIMEOUT_SECONDS,
    REPLAY_TIMEOUT_SECONDS,
    WORKER_TIMEOUT_SECONDS,
    not_found,
    temporal_call,
)
from api.tool_listing import ToolListings
from api.webhook_replays import SeenWebhooks
from worker.settings import Settings
from workflows import contract
from workflows.contract import (
    ORCHESTRATION_OWNER_ATTRIBUTE,
    ORCHESTRATION_STATUS_ATTRIBUTE,
)
from workflows.messages import (
    ApprovalDecision,
    DecisionBatch,
    EventsPage,
    EventsQuery,
    InputAnswer,
    OrchestrationStatus,
    RunHistory,
    RunMemo,
    RunStatus,
)


class OrchestrationService:
    """Start, read, list, decide and cancel orchestrations through one Temporal client."""

    def __init__(self, client: Client, settings: Settings) -> None:
        self._client = client
        self._settings = settings
        self.tools = ToolListings(client, settings.task_queue)
        self.seen_webhooks = SeenWebhooks()
        self._page_tokens = PageTokens(page_token_key(settings))

    # --- Links ------------------------------------------------------------------------

    def links(self, orchestration_id: str) -> Links:
        ui = self._settings.temporal_ui_url.rstrip("/")
        return Links(
            self=f"/v1/orchestrations/{orchestration_id}",
            approvals=f"/v1/orchestrations/{orchestration_id}/approvals",
            inputs=f"/v1/orchestrations/{orchestration_id}/inputs",
            temporal_ui=f"{ui}/namespaces/{self._client.namespace}/workflows/{orchestration_id}",
        )

    # --- Start --------------------------------------------------------------------------

    async def start(
        self,
        body: CreateOrchestration,
        idempotency_key: str | None,
        caller: Principal,
        response_request: dict[str, Any] | None = None,
    ) -> tuple[str, RunStatus, bool]:
        """Start a run owned by `caller`, within its MCP scope; returns (id, status, created).
        A known Idempotency-Key with the same body is not created again. Every way of starting
        a run comes through here, so the size, webhook and scope checks apply to all of them."""
        return await start_run(
            self._client, self._settings, self.tools, body, idempotency_key, caller, response_request
        )

    # --- Read ---------------------------------------------------------------------------

    async def describe(self, orchestration_id: str, caller: Principal) -> tuple[WorkflowExecutionDescription, RunMemo]:
        """The run's description and memo; 404 when it does not exist or `caller` may not read it."""
        handle = self._client.get_workflow_handle(orchestration_id)
        try:
            async with temporal_call("read orchestration"):
                description = await handle.describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise not_found(orchestration_id) from None
            raise
        if description.workflow_type != "Orchestration":
            raise not_found(orchestration_id)
        async with temporal_call("read orchestration"):
            memo = await read_memo(description)
        if not caller.may_read(memo.owner):
            # Another key's run: as unknown as a run that does not exist.
            raise not_found(orchestration_id)
        return description, memo

    async def status(self, orchestration_id: str, caller: Principal) -> OrchestrationStatus:
        """Live status from the workflow (one query, the common case), or, for a finished run
        or one no worker answers for, the final status recorded in its memo."""
        live = await self._live_status(orchestration_id)
        if live is not None:
            if not caller.may_read(live.owner):
                raise not_found(orchestration_id)
            return live
        description, memo = await self.describe(orchestration_id, caller)
        recorded = memo.orchestration
        if recorded is not None:
            if recorded.shortened and description.status == WorkflowExecutionStatus.COMPLETED:
                return await self._result(description) or recorded
            return recorded
        return minimal_status(description, memo)

    async def _result(self, description: WorkflowExecutionDescription) -> OrchestrationStatus | None:
        """A completed run's result: the status whole where its memo had room for a shortened one."""
        handle = self._client.get_workflow_handle(
            description.id, run_id=description.run_id, result_type=OrchestrationStatus
        )
        try:
            async with temporal_call("read orchestration result"):
                return await handle.result(follow_runs=False)
        except (WorkflowFailureError, RPCError):
            return None

    async def _live_status(self, orchestration_id: str) -> OrchestrationStatus | None:
        """The running workflow's `status` query; None when it is closed (refused by the server
        without asking a worker), unknown, not an orchestration, or no worker answered in time."""
        handle = self._client.get_workflow_handle(orchestration_id)
        try:
            async with temporal_call("query orchestration", QUERY_TIMEOUT_SECONDS):
                return await handle.query(
                    contract.STATUS_QUERY,
                    result_type=OrchestrationStatus,
                    reject_condition=QueryRejectCondition.NOT_OPEN,
                )
        except (WorkflowQueryRejectedError, WorkflowQueryFailedError, APIError, RPCError):
            return None  # describe() tells what the server knows (and answers 404 or 503)

    async def events(self, orchestration_id: str, after: int, timeout: float = QUERY_TIMEOUT_SECONDS) -> EventsPage:
        """The run's events numbered above `after`: the `events` query while it runs, the
        events kept in its memo once it has finished. 503 while no worker answers in `timeout`."""
        handle = self._client.get_workflow_handle(orchestration_id)
        try:
            async with temporal_call("query events", timeout):
                return await handle.query(
                    contract.EVENTS_QUERY,
                    EventsQuery(after=after),
                    result_type=EventsPage,
                    reject_condition=QueryRejectCondition.NOT_OPEN,
                )
        except WorkflowQueryRejectedError:
            pass  # finished: its memo has the events
        except (WorkflowQueryFailedError, RPCError) as err:
            if isinstance(err, RPCError) and err.status == RPCStatusCode.NOT_FOUND:
                raise not_found(orchestration_id) from None
            raise APIError(503, "no_worker", f"no worker answered for {orchestration_id}") from None
        async with temporal_call("read orchestration"):
            description = await handle.describe()
            memo = await read_memo(description)
        if description.status == WorkflowExecutionStatus.RUNNING:
            raise APIError(503, "no_worker", f"no worker answered for {orchestration_id}")
        return memo_events(description, memo, after)

    async def history(self, orchestration_id: str, caller: Principal) -> RunHistory:
        """The run's conversation without its instructions (the `history` query; a finished run's is
        read by a worker replaying it). 503 while no worker answers."""
        await self.describe(orchestration_id, caller)
        handle = self._client.get_workflow_handle(orchestration_id)
        try:
            async with temporal_call("query history", REPLAY_TIMEOUT_SECONDS):
                return await handle.query(contract.HISTORY_QUERY, result_type=RunHistory)
        except (WorkflowQueryFailedError, RPCError):
            raise APIError(503, "no_worker", f"no worker answered for {orchestration_id}") from None

    async def list(
        self, status: RunStatus | None, limit: int, page_token: str | None, caller: Principal
    ) -> tuple[list[Any], str | None]:
        query = 'WorkflowType = "Orchestration"'
        if status is not None:
            query += f' AND {ORCHESTRATION_STATUS_ATTRIBUTE.name} = "{status.value}"'
        if not caller.reads_every_run:
            query += f' AND {ORCHESTRATION_OWNER_ATTRIBUTE.name} = "{caller.name}"'
        token = self._page_tokens.decode(page_token) if page_token else None
        iterator = self._client.list_workflows(query, page_size=limit, next_page_token=token)
        async with temporal_call("list orchestrations"):
            await iterator.fetch_next_page(page_size=limit)
            executions = list(iterator.current_page or [])
            summaries = [await self._summary(execution) for execution in executions]
        next_token = iterator.next_page_token
        return summaries, self._page_tokens.encode(next_token) if next_token else None

    async def _summary(self, execution: WorkflowExecution) -> OrchestrationSummary:
        memo = await read_memo(execution)
        status = status_of(execution, memo)
        return OrchestrationSummary(
            id=execution.id,
            status=status,
            stop_reason=memo.orchestration.stop_reason if memo.orchestration else CLOSED_STOP_REASON.get(status),
            created_at=execution.start_time,
            closed_at=execution.close_time,
            links=self.links(execution.id),
        )

    # --- Decide and cancel ---------------------------------------------------------------

    async def decide(
        self,
        orchestration_id: str,
        decisions: Sequence[ApprovalDecision],
        caller: Principal,
        *,
        update_id: str | None = None,
    ) -> tuple[OrchestrationStatus, bool]:
        """Apply one decision (the `decide` update) or several together (`decide_many`: all
        or none), atomically against the live pending set.

        Returns (status, applied). When no worker answers in time, the decisions are sent as
        the durable `submit_approval` signal instead, so they are never lost: each applies
        when a worker resumes the run (or is ignored and recorded if it no longer fits), and
        `applied` is False.
        """
        if len(decisions) == 1:
            update: str = contract.DECIDE_UPDATE
            argument: ApprovalDecision | DecisionBatch = decisions[0]
        else:
            update, argument = contract.DECIDE_MANY_UPDATE, DecisionBatch(decisions=list(decisions))
        where = f"tool call {decisions[0].tool_call_id!r}: " if len(decisions) == 1 else ""
        return await self._deliver(
            orchestration_id,
            caller,
            (update, argument),
            [(contract.SUBMIT_APPROVAL_SIGNAL, decision) for decision in decisions],
            where=where,
            update_id=update_id,
        )

    async def answer(
        self, orchestration_id: str, answer: InputAnswer, caller: Principal, *, update_id: str | None = None
    ) -> tuple[OrchestrationStatus, bool]:
        """Answer what a server asked in the middle of a tool call (the `answer_input` update),
        or, when no worker answers in time, the durable `submit_input` signal; as `decide`."""
        return await self._deliver(
            orchestration_id,
            caller,
            (contract.ANSWER_INPUT_UPDATE, answer),
            [(contract.SUBMIT_INPUT_SIGNAL, answer)],
            where=f"input {answer.input_id!r}: ",
            update_id=update_id,
        )

    async def _deliver(
        self,
        orchestration_id: str,
        caller: Principal,
        update: tuple[str, Any],
        signals: Sequence[tuple[str, Any]],
        *,
        where: str,
        update_id: str | None,
    ) -> tuple[OrchestrationStatus, bool]:
        """A person's word to a run: the update (refused with a typed error when it cannot apply),
        or the signals when no worker answers in time. Returns (status, applied by the update)."""
        handle: WorkflowHandle[Any, Any] = self._client.get_workflow_handle(orchestration_id)
        name, argument = update
        try:
            # The update first (one round trip); only a failure asks what the run is.
            async with temporal_call(f"{name} update", WORKER_TIMEOUT_SECONDS):
                answer = await handle.execute_update(name, argument, id=update_id, result_type=OrchestrationStatus)
                return answer, True
        except APIError as err:
            if err.status != 503:
                raise
            description = await self._running(orchestration_id, caller)
            async with temporal_call("signal"):
                for signal, signal_argument in signals:
                    await handle.signal(signal, signal_argument)
            return minimal_status(description, RunMemo()), False
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type in DECISION_ERRORS:
                status, code = DECISION_ERRORS[cause.type]
                raise APIError(status, code, f"{where}{cause.message}") from None
            await self._running(orchestration_id, caller)  # 404 when it is not an orchestration
            raise
        except RPCError:
            await self._running(orchestration_id, caller)  # 404 unknown, 409 finished
            raise

    async def _running(self, orchestration_id: str, caller: Principal) -> WorkflowExecutionDescription:
        """The run's description; 404 when unknown, 409 when it has finished."""
        description, _ = await self.describe(orchestration_id, caller)
        if description.status != WorkflowExecutionStatus.RUNNING:
            raise APIError(409, "run_finished", f"orchestration {orchestration_id} has finished")
        return description

    async def cancel(self, orchestration_id: str, caller: Principal) -> RunStatus:
        description, memo = await self.describe(orchestration_id, caller)
        if not caller.may_cancel(memo.owner):
            raise APIError(403, "forbidden", f"only the key that started {orchestration_id} or an admin may cancel it")
        if description.status != WorkflowExecutionStatus.RUNNING:
            return status_of(description, memo)
        async with temporal_call("cancel orchestration"):
            await self._client.get_workflow_handle(orchestration_id).cancel()
        return status_of(description, RunMemo())

    # --- Readiness ----------------------------------------------------------------------

    async def ready(self) -> None:
        async with temporal_call("readiness check", 3.0):
            await self._client.workflow_service.get_system_info(GetSystemInfoRequest(), timeout=timedelta(seconds=3))
