"""/v1/orchestrations: start, read, list, decide, cancel."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Response, status
from fastapi.sse import EventSourceResponse, ServerSentEvent

from api.assistants import AssistantPresetsDep
from api.auth import Approver, Caller, Principal, Runner
from api.deps import EventsHubDep, ServiceDep, SettingsDep
from api.errors import APIError, error_responses
from api.events import next_event
from api.schemas import (
    ApprovalBatch,
    ApprovalRequest,
    CancelAccepted,
    CreatedOrchestration,
    CreateOrchestration,
    InputAnswerRequest,
    OrchestrationList,
)
from api.service import OrchestrationService
from workflows.messages import ApprovalDecision, InputAnswer, OrchestrationStatus, RunStatus

router = APIRouter(prefix="/v1/orchestrations", tags=["orchestrations"])

MAX_EVENT_ID = 10**18 - 1
"""The largest resume point accepted (`after`, `Last-Event-ID`: at most 18 digits)."""
QUEUED_DECISION = {
    "model": OrchestrationStatus,
    "description": "No worker answered in time: the decision was recorded as a signal and applies when a worker "
    "resumes the run (or is ignored and recorded in `ignored_decisions` if it no longer fits)",
}


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CreatedOrchestration,
    responses={
        200: {"model": CreatedOrchestration, "description": "Same Idempotency-Key and body: the existing run"},
        **error_responses(400, 401, 403, 413, 422, 503),
    },
)
async def create_orchestration(
    body: CreateOrchestration,
    caller: Runner,
    service: ServiceDep,
    presets: AssistantPresetsDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=255)] = None,
) -> CreatedOrchestration:
    """Start a run. It goes on in the background: poll `links.self` (or watch the Temporal UI).
    With `assistant`, the assistant's options apply where the body sets none (422
    `unknown_assistant` when there is no such assistant)."""
    run = await presets.apply(body)
    run_id, run_status, created = await service.start(run, idempotency_key, caller)
    response.headers["Location"] = f"/v1/orchestrations/{run_id}"
    if not created:
        response.status_code = status.HTTP_200_OK
    return CreatedOrchestration(id=run_id, status=run_status, links=service.links(run_id))


@router.get("", response_model=OrchestrationList, responses=error_responses(400, 401, 403, 422, 503))
async def list_orchestrations(
    caller: Caller,
    service: ServiceDep,
    status_filter: Annotated[RunStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    page_token: Annotated[str | None, Query(max_length=4096)] = None,
) -> OrchestrationList:
    """Runs, newest first, optionally filtered by status (the `OrchestrationStatus` search attribute).
    A key with only the `run` role sees its own runs."""
    data, next_page_token = await service.list(status_filter, limit, page_token, caller)
    return OrchestrationList(data=data, next_page_token=next_page_token)


@router.get("/{orchestration_id}", response_model=OrchestrationStatus, responses=error_responses(401, 403, 404, 503))
async def get_orchestration(orchestration_id: str, caller: Caller, service: ServiceDep) -> OrchestrationStatus:
    """The run's status, pending approvals, step trace, output and usage; running or finished.
    Another key's run is a 404 for a key with only the `run` role."""
    return await service.status(orchestration_id, caller)


async def _watchable_run(orchestration_id: str, caller: Caller, service: ServiceDep) -> str:
    """The run id, once `caller` may read it (404 otherwise): checked before the stream starts."""
    await service.describe(orchestration_id, caller)
    return orchestration_id


def _resume_after(
    last_event_id: Annotated[
        str | None, Header(description="Sent by EventSource clients on reconnect: resume after this event.")
    ] = None,
    after: Annotated[
        int | None,
        Query(ge=0, le=MAX_EVENT_ID, description="Same as Last-Event-ID, for clients that cannot set it."),
    ] = None,
) -> int:
    """Where the stream resumes; a point past the run's events resumes from its newest one."""
    if after is not None:
        return after
    if not last_event_id:
        return 0
    if not re.fullmatch(r"[0-9]{1,18}", last_event_id):
        raise APIError(400, "bad_last_event_id", "Last-Event-ID must be the id of an event of this stream")
    return int(last_event_id)


@router.get(
    "/{orchestration_id}/events",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "Server-Sent Events: `id` (1, 2, 3...), `event` (the type), `data` (a RunEvent as JSON); "
            "the stream ends after the run's final event (`completed`, `failed` or `cancelled`)",
            "content": {"text/event-stream": {}},
        },
        **error_responses(400, 401, 403, 404, 422, json_beside=True),
    },
)
async def stream_events(
    run_id: Annotated[str, Depends(_watchable_run)],
    after: Annotated[int, Depends(_resume_after)],
    hub: EventsHubDep,
    settings: SettingsDep,
) -> AsyncIterator[ServerSentEvent]:
    """The run's events as they happen: llm_started, llm_finished (with usage), tool_pending,
    tool_approved, tool_denied, tool_started, tool_finished, status, then completed, failed or
    cancelled. Reconnect with `Last-Event-ID` to resume without loss or repeats (a stream is
    also closed after ORCH_EVENTS_STREAM_SECONDS). However many clients watch a run, the API
    asks Temporal once per poll interval."""
    loop = asyncio.get_running_loop()
    closes_at = loop.time() + settings.events_stream_seconds
    async with contextlib.aclosing(hub.follow(run_id, after)) as events:
        while True:
            try:
                event = await next_event(events, closes_at)
            except (StopAsyncIteration, TimeoutError):
                return
            yield ServerSentEvent(id=str(event.id), event=event.type.value, data=event)


@router.post(
    "/{orchestration_id}/approvals",
    response_model=OrchestrationStatus,
    responses={202: QUEUED_DECISION, **error_responses(400, 401, 403, 404, 409, 422, 503)},
)
async def decide_tool_call(
    orchestration_id: str, body: ApprovalRequest, caller: Approver, service: ServiceDep, response: Response
) -> OrchestrationStatus:
    """Approve or deny one pending tool call (`approve` role); answers with the fresh status.
    An approval may carry `arguments` to run the tool with instead of the model's (422 unless
    they match the tool's input schema). With API keys on, the approver recorded in the audit
    trail is the key's name."""
    return await _decide(orchestration_id, [body], caller, service, response)


@router.post(
    "/{orchestration_id}/approvals/batch",
    response_model=OrchestrationStatus,
    responses={202: QUEUED_DECISION, **error_responses(400, 401, 403, 404, 409, 422, 503)},
)
async def decide_tool_calls(
    orchestration_id: str, body: ApprovalBatch, caller: Approver, service: ServiceDep, response: Response
) -> OrchestrationStatus:
    """Decide several pending tool calls in one request: all apply, or none does (the error
    names the call that could not)."""
    return await _decide(orchestration_id, body.decisions, caller, service, response)


async def _decide(
    orchestration_id: str,
    requests: list[ApprovalRequest],
    caller: Principal,
    service: OrchestrationService,
    response: Response,
) -> OrchestrationStatus:
    decisions = [ApprovalDecision.model_validate(request.model_dump()) for request in requests]
    for decision in decisions:
        if caller.name is not None:
            decision.approver = caller.name
    status_now, applied = await service.decide(orchestration_id, decisions, caller)
    if not applied:
        response.status_code = status.HTTP_202_ACCEPTED
    return status_now


@router.post(
    "/{orchestration_id}/inputs",
    response_model=OrchestrationStatus,
    responses={202: QUEUED_DECISION, **error_responses(400, 401, 403, 404, 409, 422, 503)},
)
async def answer_input(
    orchestration_id: str, body: InputAnswerRequest, caller: Approver, service: ServiceDep, response: Response
) -> OrchestrationStatus:
    """Answer what an MCP server asked in the middle of a tool call (one of the run's
    `pending_inputs`; `approve` role): `accept` with `content` matching the requested schema
    (an elicitation) or with none (a sampling request: the run's model answers it), `decline`
    or `cancel`. With API keys on, the answerer recorded is the key's name."""
    answer = InputAnswer.model_validate(body.model_dump())
    if caller.name is not None:
        answer.answerer = caller.name
    status_now, applied = await service.answer(orchestration_id, answer, caller)
    if not applied:
        response.status_code = status.HTTP_202_ACCEPTED
    return status_now


@router.post(
    "/{orchestration_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CancelAccepted,
    responses=error_responses(401, 403, 404, 503),
)
async def cancel_orchestration(orchestration_id: str, caller: Runner, service: ServiceDep) -> CancelAccepted:
    """Ask the run to stop (in-flight LLM and tool calls are cancelled). Idempotent.
    Only the key that started the run, or an admin, may cancel it."""
    return CancelAccepted(id=orchestration_id, status=await service.cancel(orchestration_id, caller))
