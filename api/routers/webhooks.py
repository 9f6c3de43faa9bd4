"""/v1/webhooks/approvals: approvals from other systems, signed per Standard Webhooks."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from api.auth import WEBHOOK_SENDER
from api.deps import ServiceDep, SettingsDep
from api.errors import APIError, error_responses
from api.routers.orchestrations import QUEUED_DECISION
from api.schemas import WebhookApprovalRequest
from api.webhook_signatures import TOLERANCE_SECONDS, WebhookVerificationError, verify
from workflows.contract import WEBHOOK_APPROVER_PREFIX
from workflows.messages import ApprovalDecision, OrchestrationStatus
from workflows.validation_errors import first_problem

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


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
    secret = settings.webhook_inbound_secret or settings.webhook_secret
    if not secret:
        raise APIError(
            503,
            "webhooks_disabled",
            "inbound approvals need ORCH_WEBHOOK_INBOUND_SECRET or ORCH_WEBHOOK_SECRET on the API",
        )
    body = await request.body()
    try:
        webhook_id = verify(secret, request.headers, body)
    except WebhookVerificationError as err:
        raise APIError(401, "bad_signature", str(err)) from None
    try:
        approval = WebhookApprovalRequest.model_validate_json(body)
    except ValidationError as err:
        if any(e["type"] == "json_invalid" for e in err.errors()):
            raise APIError(400, "invalid_json", "request body is not valid JSON") from None
        raise APIError(422, "invalid_request", first_problem(err, located=False)) from None
    approver = WEBHOOK_APPROVER_PREFIX + (approval.approver or "")
    try:
        decision = ApprovalDecision.model_validate(
            approval.model_dump(exclude={"orchestration_id"}) | {"approver": approver}
        )
    except ValidationError as err:
        message = f"approver, recorded as {WEBHOOK_APPROVER_PREFIX}<approver>: {first_problem(err, located=False)}"
        raise APIError(422, "invalid_request", message) from None
    # A signature passes from TOLERANCE_SECONDS before its timestamp to TOLERANCE_SECONDS after it
    # (the standardwebhooks library's 5 minutes), so its webhook-id is remembered for both.
    if not service.seen_webhooks.first_sight(webhook_id, TOLERANCE_SECONDS * 2):
        return await service.status(approval.orchestration_id, WEBHOOK_SENDER)
    # The update id makes a replay that reaches another API replica a no-op too.
    status_now, applied = await service.decide(
        approval.orchestration_id, [decision], WEBHOOK_SENDER, update_id=f"webhook-{webhook_id}"
    )
    if not applied:
        response.status_code = 202
    return status_now
