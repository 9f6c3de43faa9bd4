"""Everything the API asks of Temporal, with Temporal's errors turned into API errors."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import timedelta
from typing import Any

from temporalio.api.enums.v1 import WorkflowExecutionStatus as RawStatus
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    QueryRejectCondition,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.auth import Principal, load_api_keys
from api.errors import APIError
from api.limits import check_run_request, check_scope
from api.schemas import CreateOrchestration, Links, OrchestrationSummary, ToolsResponse
from worker.settings import Settings
from workflows import contract
from workflows.contract import (
    DECISION_ALREADY_MADE,
    DECISION_INVALID,
    DECISION_MISMATCH,
    DECISION_UNKNOWN_CALL,
    ORCHESTRATION_OWNER_ATTRIBUTE,
    ORCHESTRATION_STATUS_ATTRIBUTE,
)
from workflows.messages import (
    FINAL_EVENT_TYPES,
    ApprovalDecision,
    DecisionBatch,
    EventsPage,
    EventsQuery,
    ListToolsInput,
    OrchestrationInput,
    OrchestrationRequest,
    OrchestrationStatus,
    RunEvent,
    RunEventType,
    RunStatus,
    StopReason,
    ToolListing,
)

TEMPORAL_TIMEOUT_SECONDS = 5.0
WORKER_TIMEOUT_SECONDS = 8.0
TOOLS_CACHE_SECONDS = 30.0
FORCED_REFRESH_SECONDS = 5.0
"""A run naming a server missing from the cached listing refreshes it if it is older than this
(a server just added), but no more often, however many such requests come; after a listing
no worker answered, callers get that answer at once for this long."""
QUERY_TIMEOUT_SECONDS = 3.0

_CLOSED_STATUS = {
    WorkflowExecutionStatus.COMPLETED: RunStatus.COMPLETED,
    WorkflowExecutionStatus.FAILED: RunStatus.FAILED,
    WorkflowExecutionStatus.CANCELED: RunStatus.CANCELLED,
    WorkflowExecutionStatus.TERMINATED: RunStatus.FAILED,
    WorkflowExecutionStatus.TIMED_OUT: RunStatus.TIMED_OUT,
}
_CLOSED_STOP_REASON = {
    RunStatus.CANCELLED: StopReason.CANCELLED,
    RunStatus.TIMED_OUT: StopReason.TIMEOUT,
    RunStatus.FAILED: StopReason.ERROR,
}


@contextlib.asynccontextmanager
async def temporal_call(what: str, timeout: float = TEMPORAL_TIMEOUT_SECONDS) -> AsyncIterator[None]:
    """Bound a Temporal call in time and map transport failures to 503."""
    try:
        async with asyncio.timeout(timeout):
            yield
    except (TimeoutError, RPCTimeoutOrCancelledError):
        raise APIError(503, "temporal_unavailable", f"{what}: Temporal did not answer within {timeout:g}s") from None
    except RPCError as err:
        if err.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.UNKNOWN):
            raise APIError(503, "temporal_unavailable", f"{what}: Temporal is not reachable") from None
        if err.status == RPCStatusCode.INVALID_ARGUMENT:
            raise APIError(400, "bad_request", f"{what}: {err.message}") from None
        raise
    except RuntimeError as err:
        # The SDK's lazy client raises RuntimeError when it cannot connect.
        raise APIError(503, "temporal_unavailable", f"{what}: Temporal is not reachable ({err})") from None


class OrchestrationService:
    """Start, read, list, decide and cancel orchestrations through one Temporal client."""

    def __init__(self, client: Client, settings: Settings) -> None:
        self._client = client
        self._settings = settings
        self._tools: tuple[float, ToolsResponse] | None = None
        self._tools_refresh = asyncio.Lock()
        self._tools_failure: tuple[float, APIError] | None = None
        self.tool_listings = 0
        """Tool listings asked of a worker so far (for tests and metrics)."""
        self._seen_webhooks: dict[str, float] = {}
        self._page_tokens = PageTokens(page_token_key(settings))

    # --- Links ------------------------------------------------------------------------

    def links(self, orchestration_id: str) -> Links:
        ui = self._settings.temporal_ui_url.rstrip("/")
        return Links(
            self=f"/v1/orchestrations/{orchestration_id}",
            approvals=f"/v1/orchestrations/{orchestration_id}/approvals",
            temporal_ui=f"{ui}/namespaces/{self._settings.temporal_namespace}/workflows/{orchestration_id}",
        )

    # --- Start --------------------------------------------------------------------------

    async def start(
        self, body: CreateOrchestration, idempotency_key: str | None, caller: Principal
    ) -> tuple[str, RunStatus, bool]:
        """Start a run owned by `caller`, within its MCP scope; returns (id, status, created).
        A known Idempotency-Key with the same body is not created again. Every way of starting
        a run comes through here, so the size, webhook and scope checks apply to all of them."""
        check_run_request(body, self._settings)
        check_scope(body, caller)
        if body.mcp_servers:
            await self._check_servers(body.mcp_servers)
        request = body.to_run_request()
        request.owner = caller.name
        request.tool_scope = list(caller.mcp_scopes) if caller.mcp_scopes is not None else None
        request_hash = hashlib.sha256(json.dumps(request.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()
        nonce = uuid.uuid4().hex
        if idempotency_key is None:
            workflow_id = f"orch-{uuid.uuid4().hex}"
        else:
            # Same key -> same workflow id, so Temporal itself makes concurrent starts one run.
            # Keys are per caller: two API keys using the same Idempotency-Key get two runs.
            scoped_key = idempotency_key if caller.name is None else f"{caller.name}\n{idempotency_key}"
            workflow_id = "orch-" + hashlib.sha256(scoped_key.encode()).hexdigest()[:32]
        attributes = [SearchAttributePair(ORCHESTRATION_STATUS_ATTRIBUTE, RunStatus.RUNNING.value)]
        if caller.name is not None:
            attributes.append(SearchAttributePair(ORCHESTRATION_OWNER_ATTRIBUTE, caller.name))
        try:
            async with temporal_call("start orchestration"):
                handle = await self._client.start_workflow(
                    contract.ORCHESTRATION_WORKFLOW,
                    OrchestrationInput(run_request=request),
                    result_type=OrchestrationStatus,
                    id=workflow_id,
                    task_queue=self._settings.task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    memo={"request_hash": request_hash, "start_nonce": nonce, "owner": caller.name},
                    search_attributes=TypedSearchAttributes(attributes),
                    static_summary=_summary(request),
                )
        except WorkflowAlreadyStartedError:
            handle = self._client.get_workflow_handle(workflow_id)
        if idempotency_key is None:
            return workflow_id, RunStatus.RUNNING, True
        async with temporal_call("read orchestration"):
            description = await handle.describe()
            memo = await description.memo()
        if memo.get("start_nonce") == nonce:
            return workflow_id, RunStatus.RUNNING, True
        if memo.get("request_hash") != request_hash:
            raise APIError(
                422, "idempotency_key_reused", "this Idempotency-Key was already used with a different request body"
            )
        return workflow_id, _status_of(description, memo), False

    # --- Read ---------------------------------------------------------------------------

    async def describe(
        self, orchestration_id: str, caller: Principal
    ) -> tuple[WorkflowExecutionDescription, Mapping[str, Any]]:
        """The run's description and memo; 404 when it does not exist or `caller` may not read it."""
        handle = self._client.get_workflow_handle(orchestration_id)
        try:
            async with temporal_call("read orchestration"):
                description = await handle.describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise _not_found(orchestration_id) from None
            raise
        if description.workflow_type != "Orchestration":
            raise _not_found(orchestration_id)
        async with temporal_call("read orchestration"):
            memo = await description.memo()
        if not caller.may_read(memo.get("owner")):
            # Another key's run: as unknown as a run that does not exist.
            raise _not_found(orchestration_id)
        return description, memo

    async def status(self, orchestration_id: str, caller: Principal) -> OrchestrationStatus:
        """Live status from the workflow (one query, the common case), or, for a finished run
        or one no worker answers for, the final status recorded in its memo."""
        live = await self._live_status(orchestration_id)
        if live is not None:
            if not caller.may_read(live.owner):
                raise _not_found(orchestration_id)
            return live
        description, memo = await self.describe(orchestration_id, caller)
        final = memo.get("orchestration")
        if isinstance(final, dict):
            recorded = OrchestrationStatus.model_validate(final)
            if recorded.shortened and description.status == WorkflowExecutionStatus.COMPLETED:
                return await self._result(description) or recorded
            return recorded
        return _minimal_status(description, memo)

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

    async def events(self, orchestration_id: str, after: int) -> EventsPage:
        """The run's events numbered above `after`: the `events` query while it runs, the
        events kept in its memo once it has finished. 503 while no worker answers."""
        handle = self._client.get_workflow_handle(orchestration_id)
        try:
            async with temporal_call("query events", QUERY_TIMEOUT_SECONDS):
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
                raise _not_found(orchestration_id) from None
            raise APIError(503, "no_worker", f"no worker answered for {orchestration_id}") from None
        async with temporal_call("read orchestration"):
            description = await handle.describe()
            memo = await description.memo()
        if description.status == WorkflowExecutionStatus.RUNNING:
            raise APIError(503, "no_worker", f"no worker answered for {orchestration_id}")
        return _memo_events(description, memo, after)

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
        memo = await execution.memo()
        final = memo.get("orchestration") if isinstance(memo.get("orchestration"), dict) else None
        status = _status_of(execution, memo)
        return OrchestrationSummary(
            id=execution.id,
            status=status,
            stop_reason=final.get("stop_reason") if final else _CLOSED_STOP_REASON.get(status),
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
        handle: WorkflowHandle[Any, Any] = self._client.get_workflow_handle(orchestration_id)
        try:
            # The update first (one round trip); only a failure asks what the run is.
            async with temporal_call("decide tool call", WORKER_TIMEOUT_SECONDS):
                if len(decisions) == 1:
                    update: str = contract.DECIDE_UPDATE
                    argument: ApprovalDecision | DecisionBatch = decisions[0]
                else:
                    update, argument = contract.DECIDE_MANY_UPDATE, DecisionBatch(decisions=list(decisions))
                answer = await handle.execute_update(update, argument, id=update_id, result_type=OrchestrationStatus)
                return answer, True
        except APIError as err:
            if err.status != 503:
                raise
            description = await self._running(orchestration_id, caller)
            async with temporal_call("signal decision"):
                for decision in decisions:
                    await handle.signal(contract.SUBMIT_APPROVAL_SIGNAL, decision)
            return _minimal_status(description, {}), False
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type in _DECISION_ERRORS:
                status, code = _DECISION_ERRORS[cause.type]
                where = f"tool call {decisions[0].tool_call_id!r}: " if len(decisions) == 1 else ""
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

    def first_sight_of_webhook(self, webhook_id: str, window_seconds: float) -> bool:
        """False when this process already handled `webhook_id` within the signature window."""
        now = time.monotonic()
        self._seen_webhooks = {k: t for k, t in self._seen_webhooks.items() if now - t < window_seconds}
        if webhook_id in self._seen_webhooks:
            return False
        self._seen_webhooks[webhook_id] = now
        return True

    async def cancel(self, orchestration_id: str, caller: Principal) -> RunStatus:
        description, memo = await self.describe(orchestration_id, caller)
        if not caller.may_cancel(memo.get("owner")):
            raise APIError(403, "forbidden", f"only the key that started {orchestration_id} or an admin may cancel it")
        if description.status != WorkflowExecutionStatus.RUNNING:
            return _status_of(description, memo)
        async with temporal_call("cancel orchestration"):
            await self._client.get_workflow_handle(orchestration_id).cancel()
        return _status_of(description, {})

    # --- Tools and readiness ------------------------------------------------------------

    async def _check_servers(self, names: Sequence[str]) -> None:
        """422 for a named MCP server the workers do not have, or have disabled. When no
        worker answers, the run starts anyway and its worker records the servers it cannot use."""
        try:
            listing = await self.tools()
            if not set(names) <= {server.name for server in listing.servers}:
                listing = await self.tools(max_age=FORCED_REFRESH_SECONDS)
        except APIError:
            return
        servers = {server.name: server for server in listing.servers}
        unknown = [name for name in names if name not in servers]
        if unknown:
            raise APIError(422, "unknown_mcp_server", f"mcp_servers names servers that are not configured: {unknown}")
        disabled = [name for name in names if not servers[name].enabled]
        if disabled:
            raise APIError(422, "mcp_server_disabled", f"mcp_servers names disabled servers: {disabled}")

    async def tools(self, max_age: float = TOOLS_CACHE_SECONDS) -> ToolsResponse:
        """The worker's view of the configured tools, at most `max_age` seconds old. One
        listing at a time: concurrent callers wait for it instead of starting their own."""
        if self._tools is not None and time.monotonic() - self._tools[0] < max_age:
            return self._tools[1]
        async with self._tools_refresh:
            if self._tools is not None and time.monotonic() - self._tools[0] < max_age:
                return self._tools[1]  # refreshed while this caller waited
            if self._tools_failure is not None and time.monotonic() - self._tools_failure[0] < FORCED_REFRESH_SECONDS:
                raise self._tools_failure[1]  # no worker a moment ago: do not make every caller wait again
            try:
                return await self._list_tools()
            except APIError as err:
                self._tools_failure = (time.monotonic(), err)
                raise

    async def _list_tools(self) -> ToolsResponse:
        self.tool_listings += 1
        try:
            async with temporal_call("list tools", WORKER_TIMEOUT_SECONDS):
                listing = await self._client.execute_workflow(
                    contract.LIST_TOOLS_WORKFLOW,
                    ListToolsInput(),
                    result_type=ToolListing,
                    id=f"list-tools-{uuid.uuid4().hex}",
                    task_queue=self._settings.task_queue,
                    execution_timeout=timedelta(seconds=WORKER_TIMEOUT_SECONDS),
                )
        except APIError as err:
            raise APIError(503, "no_worker", f"no worker answered on task queue {self._settings.task_queue!r}") from (
                err
            )
        response = ToolsResponse(servers=listing.servers)
        self._tools = (time.monotonic(), response)
        return response

    async def ready(self) -> None:
        async with temporal_call("readiness check", 3.0):
            await self._client.workflow_service.get_system_info(GetSystemInfoRequest(), timeout=timedelta(seconds=3))


_DECISION_ERRORS = {
    DECISION_UNKNOWN_CALL: (404, "unknown_tool_call"),
    DECISION_MISMATCH: (409, "approval_mismatch"),
    DECISION_ALREADY_MADE: (409, "already_decided"),
    DECISION_INVALID: (422, "invalid_decision"),
}


def _not_found(orchestration_id: str) -> APIError:
    return APIError(404, "not_found", f"no orchestration {orchestration_id!r}")


def _status_of(execution: WorkflowExecution, memo: Mapping[str, Any]) -> RunStatus:
    """The run's status: final memo, else the search attribute, else Temporal's own status."""
    final = memo.get("orchestration")
    if isinstance(final, dict) and final.get("status"):
        return RunStatus(final["status"])
    if execution.status is not None and execution.status in _CLOSED_STATUS:
        return _CLOSED_STATUS[execution.status]
    value = execution.typed_search_attributes.get(ORCHESTRATION_STATUS_ATTRIBUTE)
    return RunStatus(value) if value is not None and value in RunStatus._value2member_map_ else RunStatus.RUNNING


def _minimal_status(description: WorkflowExecutionDescription, memo: Mapping[str, Any]) -> OrchestrationStatus:
    """What the server alone knows of a run (no worker answered, or it was terminated)."""
    status = _status_of(description, memo)
    raw = description.raw_description.workflow_execution_info
    error = "terminated" if raw.status == RawStatus.WORKFLOW_EXECUTION_STATUS_TERMINATED else None
    return OrchestrationStatus(
        id=description.id,
        status=status,
        stop_reason=_CLOSED_STOP_REASON.get(status),
        max_steps=0,
        error=error,
        created_at=description.start_time,
        updated_at=description.close_time or description.start_time,
    )


def _memo_events(description: WorkflowExecutionDescription, memo: Mapping[str, Any], after: int) -> EventsPage:
    """A finished run's events from its memo; a run that ended without writing them
    (terminated, timed out, failed at its start) gets a final event made up here."""
    events = [RunEvent.model_validate(event) for event in memo.get("events") or []]
    status = _status_of(description, memo)
    if not any(event.type in FINAL_EVENT_TYPES for event in events):
        final = _minimal_status(description, memo)
        events.append(
            RunEvent(
                id=(events[-1].id if events else 0) + 1,
                type=_FINAL_EVENT.get(status, RunEventType.FAILED),
                at=final.updated_at,
                data={"status": status.value, "stop_reason": final.stop_reason, "error": final.error},
            )
        )
    return EventsPage(
        events=[event for event in events if event.id > after],
        first_id=events[0].id,
        last_id=events[-1].id,
        status=status,
    )


_FINAL_EVENT = {
    RunStatus.COMPLETED: RunEventType.COMPLETED,
    RunStatus.CANCELLED: RunEventType.CANCELLED,
}


def page_token_key(settings: Settings) -> bytes | None:
    """ORCH_PAGE_TOKEN_KEY; unset, a key derived from the secrets every API replica already
    shares (the ORCH_API_KEYS entries, ORCH_ENCRYPTION_KEY), so replicas behind one load
    balancer accept each other's tokens; None when there is neither."""
    if settings.page_token_key:
        return settings.page_token_key.encode()
    api_keys = load_api_keys(settings.api_keys)
    shared = [api_keys.secret_material() if api_keys else b"", (settings.encryption_key or "").encode()]
    if not any(shared):
        return None
    material = b"".join(len(part).to_bytes(4, "big") + part for part in shared)
    return hmac.new(material, b"orchestrations page-token key", hashlib.sha256).digest()


class PageTokens:
    """Temporal's page tokens as the API hands them out: the bytes and an HMAC-SHA256 tag, so a
    forged or garbled token is refused (400) before it reaches Temporal (some visibility stores
    answer a garbled token with a 5xx, which the API would retry for seconds). Without a shared
    key (`page_token_key`), each process makes its own and accepts only tokens it issued."""

    def __init__(self, key: bytes | None) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)
        self._refusal = "page_token is not a token from a previous page"
        if key is None:
            self._refusal += (
                ", or was issued by another API process (replicas accept each other's page tokens only with the "
                "same ORCH_PAGE_TOKEN_KEY)"
            )

    def encode(self, raw: bytes) -> str:
        return _unpadded_base64(raw) + "." + _unpadded_base64(self._tag(raw))

    def decode(self, token: str) -> bytes:
        """The Temporal page token inside `token`; 400 `bad_page_token` unless this key signed it."""
        encoded, _, tag = token.partition(".")
        try:
            raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except (binascii.Error, ValueError):
            raw = b""
        expected = _unpadded_base64(self._tag(raw)).encode()
        # Only the canonical spelling: the decoder skips characters outside the alphabet.
        if raw and _unpadded_base64(raw) == encoded and hmac.compare_digest(tag.encode(), expected):
            return raw
        raise APIError(400, "bad_page_token", self._refusal)

    def _tag(self, raw: bytes) -> bytes:
        return hmac.new(self._key, b"orchestrations-page-token:" + raw, hashlib.sha256).digest()[:16]


def _unpadded_base64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _summary(request: OrchestrationRequest) -> str:
    """The run's Summary in the Temporal UI: the prompt's first words, the model."""
    users = [message for message in request.messages or [] if message.role == "user"]
    prompt = request.input or (users[-1].text() or "" if users else "")
    lines = prompt.strip().splitlines()
    model = f"model {request.model}" if request.model else "the worker's default model"
    return f"{(lines[0] if lines else 'orchestration')[:100]} · {model}"
