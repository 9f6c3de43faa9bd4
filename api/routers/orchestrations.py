"""/v1/orchestrations: start, read, list, decide, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status

from api.deps import ServiceDep, SettingsDep
from api.errors import error_responses
from api.limits import check_run_request
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
        **error_responses(400, 413, 422, 503),
    },
)
async def create_orchestration(
    body: CreateOrchestration,
    service: ServiceDep,
    settings: SettingsDep,
    response: Response,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=255)] = None,
) -> CreatedOrchestration:
    """Start a run. It goes on in the background: poll `links.self` (or watch the Temporal UI)."""
    check_run_request(body, settings)
    run_id, run_status, created = await service.start(body, idempotency_key)
    response.headers["Location"] = f"/v1/orchestrations/{run_id}"
    if not created:
        response.status_code = status.HTTP_200_OK
    return CreatedOrchestration(id=run_id, status=run_status, links=service.links(run_id))


@router.get("", response_model=OrchestrationList, responses=error_responses(400, 422, 503))
async def list_orchestrations(
    service: ServiceDep,
    status_filter: Annotated[RunStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    page_token: Annotated[str | None, Query(max_length=4096)] = None,
) -> OrchestrationList:
    """Runs, newest first, optionally filtered by status (the `OrchestrationStatus` search attribute)."""
    data, next_page_token = await service.list(status_filter, limit, page_token)
    return OrchestrationList(data=data, next_page_token=next_page_token)


@router.get("/{orchestration_id}", response_model=OrchestrationStatus, responses=error_responses(404, 503))
async def get_orchestration(orchestration_id: str, service: ServiceDep) -> OrchestrationStatus:
    """The run's status, pending approvals, step trace, output and usage; running or finished."""
    return await service.status(orchestration_id)


@router.post(
    "/{orchestration_id}/approvals",
    response_model=OrchestrationStatus,
    responses={202: QUEUED_DECISION, **error_responses(400, 404, 409, 422, 503)},
)
async def decide_tool_call(
    orchestration_id: str, body: ApprovalRequest, service: ServiceDep, response: Response
) -> OrchestrationStatus:
    """Approve or deny one pending tool call; answers with the fresh status."""
    status_now, applied = await service.decide(orchestration_id, ApprovalDecision.model_validate(body.model_dump()))
    if not applied:
        response.status_code = status.HTTP_202_ACCEPTED
    return status_now


@router.post(
    "/{orchestration_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CancelAccepted,
    responses=error_responses(404, 503),
)
async def cancel_orchestration(orchestration_id: str, service: ServiceDep) -> CancelAccepted:
    """Ask the run to stop (in-flight LLM and tool calls are cancelled). Idempotent."""
    return CancelAccepted(id=orchestration_id, status=await service.cancel(orchestration_id))
