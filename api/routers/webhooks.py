"""/v1/webhooks/approvals and /v1/webhooks/inputs: decisions and answers from other systems,
signed per Standard Webhooks."""

from __future__ import annotations

from typing import TypeVar

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ValidationError

from api.auth import WEBHOOK_SENDER
from api.deps import ServiceDep, SettingsDep
from api.errors import APIError, error_responses
from api.routers.orchestrations import QUEUED_DECISION
from api.schemas import WebhookApprovalRequest, WebhookInputRequest
from api.service import OrchestrationService
from api.webhook_signatures import TOLERANCE_SECONDS, WebhookVerificationError, verify
from worker.settings import Settings
from workflows.contract import WEBHOOK_APPROVER_PREFIX
from workflows.messages import ApprovalDecision, InputAnswer, OrchestrationStatus
from workflows.validation_errors import first_problem

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
BodyT = TypeVar("BodyT", bound=BaseModel)


@router.post(
    "/approvals",
    response_model=OrchestrationStatus,
    responses={202: QUEUED_DECISION, **error_responses(400, 401, 404, 409, 422, 503)},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": WebhookApprovalRequest.model_json_schema()}},
        }
    },
)
async def webhook_approval(
    request: Request, response: Response, service: ServiceDep, settings: SettingsDep
) -> OrchestrationStatus:
    """Decide a tool call. Headers `webhook-id`, `webhook-timestamp` and `webhook-signature`
    (`v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` with ORCH_WEBHOOK_INBOUND_SECRET,
    or ORCH_WEBHOOK_SECRET when that is unset) are required; a replayed `webhook-id` changes
    nothing and answers with the current status. The approver recorded is `webhook/<approver>`."""
    webhook_id, approval = await _verified(request, settings, WebhookApprovalRequest)
    approver = WEBHOOK_APPROVER_PREFIX + (approval.approver or "")
    try:
        decision = ApprovalDecision.model_validate(
            approval.model_dump(exclude={"orchestration_id"}) | {"approver": approver}
        )
    except ValidationError as err:
        message = f"approver, recorded as {WEBHOOK_APPROVER_PREFIX}<approver>: {first_problem(err, located=False)}"
        raise APIError(422, "invalid_request", message) from None
    if not _first_sight(service, webhook_id):
        return await service.status(approval.orchestration_id, WEBHOOK_SENDER)
    # The update id makes a replay that reaches another API replica a no-op too.
    status_now, applied = await service.decide(
        approval.orchestration_id, [decision], WEBHOOK_SENDER, update_id=f"webhook-{webhook_id}"
    )
    if not applied:
        response.status_code = 202
    return status_now


@router.post(
    "/inputs",
    response_model=OrchestrationStatus,
    responses={202: QUEUED_DECISION, **error_responses(400, 401, 404, 409, 422, 503)},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": WebhookInputRequest.model_json_schema()}},
        }
    },
)
async def webhook_input(
    request: Request, response: Response, service: ServiceDep, settings: SettingsDep
) -> OrchestrationStatus:
    """Answer what an MCP server asked in the middle of a tool call (a run's `pending_inputs`),
    signed as `/v1/webhooks/approvals`. The answerer recorded is `webhook/<answerer>`."""
    webhook_id, body = await _verified(request, settings, WebhookInputRequest)
    answerer = WEBHOOK_APPROVER_PREFIX + (body.answerer or "")
    try:
        answer = InputAnswer.model_validate(body.model_dump(exclude={"orchestration_id"}) | {"answerer": answerer})
    except ValidationError as err:
        message = f"answerer, recorded as {WEBHOOK_APPROVER_PREFIX}<answerer>: {first_problem(err, located=False)}"
        raise APIError(422, "invalid_request", message) from None
    if not _first_sight(service, webhook_id):
        return await service.status(body.orchestration_id, WEBHOOK_SENDER)
    status_now, applied = await service.answer(
        body.orchestration_id, answer, WEBHOOK_SENDER, update_id=f"webhook-{webhook_id}"
    )
    if not applied:
        response.status_code = 202
    return status_now


async def _verified(request: Request, settings: Settings, model: type[BodyT]) -> tuple[str, BodyT]:
    """The webhook's id and body, once its signature is checked (401) and its body read (400, 422)."""
    secret = settings.webhook_inbound_secret or settings.webhook_secret
    if not secret:
        raise APIError(
            503,
            "webhooks_disabled",
            "inbound webhooks need ORCH_WEBHOOK_INBOUND_SECRET or ORCH_WEBHOOK_SECRET on the API",
        )
    body = await request.body()
    try:
        webhook_id = verify(secret, request.headers, body)
    except WebhookVerificationError as err:
        raise APIError(401, "bad_signature", str(err)) from None
    try:
        return webhook_id, model.model_validate_json(body)
    except ValidationError as err:
        if any(e["type"] == "json_invalid" for e in err.errors()):
            raise APIError(400, "invalid_json", "request body is not valid JSON") from None
        raise APIError(422, "invalid_request", first_problem(err, located=False)) from None


def _first_sight(service: OrchestrationService, webhook_id: str) -> bool:
    """False for a replayed `webhook-id`. A signature passes from TOLERANCE_SECONDS before its
    timestamp to TOLERANCE_SECONDS after it (the standardwebhooks library's 5 minutes), so its
    id is remembered for both."""
    return service.seen_webhooks.first_sight(webhook_id, TOLERANCE_SECONDS * 2)
