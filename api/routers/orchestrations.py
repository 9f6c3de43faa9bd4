"""/v1/orchestrations: start, read, list, decide, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status

from api.auth import Approver, Caller, Runner
from api.deps import ServiceDep, SettingsDep
from api.errors import error_responses
from api.limits import check_run_request, check_scope
from api.schemas import (
    ApprovalRequest,
    CancelAccepted,
    CreatedOrchestration,
    CreateOrchestration,
    OrchestrationList,
)
from workflows.messages import ApprovalDecision, OrchestrationStatus, RunStatus

router = APIRouter(prefix="/v1/orchestrations", tags=["orchestrations"])

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
    settings: SettingsDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=255)] = None,
) -> CreatedOrchestration:
    """Start a run. It goes on in the background: poll `links.self` (or watch the Temporal UI)."""
    check_run_request(body, settings)
    check_scope(body, caller)
    run_id, run_status, created = await service.start(body, idempotency_key, caller)
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


@router.post(
    "/{orchestration_id}/approvals",
    response_model=OrchestrationStatus,
    responses={202: QUEUED_DECISION, **error_responses(400, 401, 403, 404, 409, 422, 503)},
)
async def decide_tool_call(
    orchestration_id: str, body: ApprovalRequest, caller: Approver, service: ServiceDep, response: Response
) -> OrchestrationStatus:
    """Approve or deny one pending tool call (`approve` role); answers with the fresh status.
    With API keys on, the approver recorded in the audit trail is the key's name."""
    decision = ApprovalDecision.model_validate(body.model_dump())
    if caller.name is not None:
        decision.approver = caller.name
    status_now, applied = await service.decide(orchestration_id, decision, caller)
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
