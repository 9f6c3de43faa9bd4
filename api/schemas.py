"""Request and response bodies of the HTTP API (the run status itself is the shared
`OrchestrationStatus` model)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, model_validator

from workflows.activity_io import ServerTools
from workflows.limits import ModelName, ServerNames
from workflows.messages import ApprovalDecision, InputAnswer, RunStatus, StopReason
from workflows.run_request import OrchestrationRequest, RunOptions

AssistantName = Annotated[
    str,
    Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="An assistant's name: letters, digits, `_` and `-`."),
]
ASSISTANT_FIELD_DESCRIPTION = (
    "A saved assistant (`/v1/assistants`): each of its options this body does not set itself applies; "
    "what the body sets wins."
)


class CreateOrchestration(RunOptions):
    """Body of POST /v1/orchestrations. Give `input`, `messages`, or both (input is appended).
    The options are the run's own (`RunOptions`); the API bounds names and checks the URL."""

    input: str | None = Field(default=None, min_length=1, description="The user's prompt.")
    model: ModelName = Field(default=None, description="Default: the worker's ORCH_DEFAULT_MODEL.")
    mcp_servers: ServerNames = Field(default=None, description="Server names; default: every enabled one.")
    webhook_url: AnyHttpUrl | None = Field(default=None, description="Where this run's events are POSTed.")
    assistant: AssistantName | None = Field(default=None, description=ASSISTANT_FIELD_DESCRIPTION)

    @model_validator(mode="after")
    def _needs_a_prompt(self) -> CreateOrchestration:
        has_user_message = any(m.role not in ("system", "developer") for m in self.messages or [])
        if self.input is None and not has_user_message:
            raise ValueError("give `input` or `messages` with at least one user message")
        return self

    def to_run_request(self) -> OrchestrationRequest:
        return OrchestrationRequest.model_validate(
            self.model_dump(exclude={"webhook_url", "assistant"})
            | {"webhook_url": str(self.webhook_url) if self.webhook_url else None}
        )


class Links(BaseModel):
    self: str
    approvals: str
    inputs: str = Field(description="Where the answers to what MCP servers ask go.")
    temporal_ui: str


class CreatedOrchestration(BaseModel):
    """Answer of POST /v1/orchestrations (202 new run, 200 same Idempotency-Key and body)."""

    id: str
    status: RunStatus
    links: Links


class OrchestrationSummary(BaseModel):
    """One entry of GET /v1/orchestrations."""

    id: str
    status: RunStatus
    stop_reason: StopReason | None = None
    created_at: datetime | None = None
    closed_at: datetime | None = None
    links: Links


class OrchestrationList(BaseModel):
    data: list[OrchestrationSummary]
    next_page_token: str | None = None


class ApprovalRequest(ApprovalDecision):
    """Body of POST /v1/orchestrations/{id}/approvals: the signal's decision, strictly checked."""

    model_config = ConfigDict(extra="forbid")

    tool_call_id: str = Field(min_length=1, max_length=128)


class ApprovalBatch(BaseModel):
    """Body of POST /v1/orchestrations/{id}/approvals/batch."""

    model_config = ConfigDict(extra="forbid")

    decisions: list[ApprovalRequest] = Field(min_length=1, max_length=100)


class WebhookApprovalRequest(ApprovalRequest):
    """Body of POST /v1/webhooks/approvals: an approval plus the run it is for."""

    orchestration_id: str = Field(min_length=1)


class InputAnswerRequest(InputAnswer):
    """Body of POST /v1/orchestrations/{id}/inputs: an answer to a server's question, strictly
    checked (the answerer recorded is the caller's key, or `answerer` with keys off)."""

    model_config = ConfigDict(extra="forbid")

    input_id: str = Field(min_length=1, max_length=600)


class WebhookInputRequest(InputAnswerRequest):
    """Body of POST /v1/webhooks/inputs: an answer plus the run it is for."""

    orchestration_id: str = Field(min_length=1)


class CancelAccepted(BaseModel):
    id: str
    status: RunStatus


class ToolsResponse(BaseModel):
    """GET /v1/tools: each configured server's tools and their policy."""

    servers: list[ServerTools]


class Health(BaseModel):
    status: Literal["ok", "ready"]
