"""The run as clients see it: the decisions, the status and its steps, the events, the
memo; shared by the API, the CLI and the workflow. What a run is asked to do is in
`workflows.run_request`, the activities' inputs and outputs in `workflows.activity_io`, the
workflow's own state in `workflows.state`.

Every workflow, signal, query and activity takes exactly one model, so fields can be added
later (with defaults) without breaking running histories.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from workflows.chat_messages import ChatMessage
from workflows.limits import MAX_ARGUMENTS_BYTES, Approver, Reason, arguments_problem

OUTPUT_PREVIEW_CHARS = 500


class RunStatus(StrEnum):
    """Lifecycle of one orchestration, also kept in the `OrchestrationStatus` search attribute."""

    RUNNING = "running"
    WAITING_FOR_APPROVAL = "waiting_for_approval"
    WAITING_FOR_INPUT = "waiting_for_input"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"


class StopReason(StrEnum):
    """Why a finished run stopped."""

    FINAL_ANSWER = "final_answer"
    MAX_STEPS = "max_steps"
    CANCELLED = "cancelled"
    ERROR = "error"
    TIMEOUT = "timeout"


# --- Run state and status -----------------------------------------------------------


class TokenUsage(BaseModel):
    """Token counts of one LLM call."""

    prompt_tokens: int = 0
    completion_tokens: int = 0


class Usage(BaseModel):
    """Totals of a run."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    tool_calls: int = 0
    cost_usd: float = 0.0


class PendingApproval(BaseModel):
    """A tool call waiting for a human decision."""

    tool_call_id: str
    server: str
    tool: str
    arguments: dict[str, Any]
    intent: str | None = None
    requested_at: datetime
    expires_at: datetime
    approval_hash: str = Field(
        default="",
        description="SHA-256 of server, tool, arguments and the tool definition pinned at run start; "
        "a decision carrying it applies only to exactly this call.",
    )
    input_schema: dict[str, Any] | None = Field(
        default=None, description="The tool's input schema: what edited `arguments` in an approval must match."
    )


class PendingInput(BaseModel):
    """Something an MCP server asks a person in the middle of a tool call: a form to fill in
    (`elicitation`), or a request to sample the run's model (`sampling`, when the server's policy
    is `approve`). Answered with `InputAnswer`."""

    input_id: str = Field(description="`<tool_call_id>/<round>/<the server's key>`: unique in the run.")
    tool_call_id: str
    server: str
    tool: str
    kind: Literal["elicitation", "sampling"]
    message: str | None = Field(default=None, description="What the server says it needs (elicitation).")
    requested_schema: dict[str, Any] | None = Field(
        default=None, description="Elicitation: the JSON Schema an accepted answer's `content` must match."
    )
    url: str | None = Field(default=None, description="URL-mode elicitation: where the person goes.")
    sampling: dict[str, Any] | None = Field(
        default=None, description="Sampling: the server's request (messages, system prompt, max tokens)."
    )
    source: Literal["tool_call", "task"] = Field(
        default="tool_call", description="`task`: asked by a running MCP task (answered with tasks/update)."
    )
    requested_at: datetime
    expires_at: datetime


class StepRecord(BaseModel):
    """One LLM call or one tool call: the run's audit trail."""

    index: int
    kind: Literal["llm", "tool"]
    status: str
    step: int | None = Field(
        default=None,
        description="The loop step, as the run's `step` and the Temporal UI count it: the number of the LLM call "
        "(1, 2, ...), and for a tool call the number of the LLM call that asked for it.",
    )
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: int | None = None
    # LLM calls
    usage: TokenUsage | None = None
    # Tool calls
    tool_call_id: str | None = None
    server: str | None = None
    tool: str | None = None
    arguments: dict[str, Any] | None = None
    intent: str | None = None
    decision: Literal["approve", "deny"] | None = None
    approver: str | None = None
    reason: str | None = None
    decided_at: datetime | None = None
    approval_hash: str | None = None
    approved_by_rule: str | None = Field(
        default=None, description="The auto-approval rule whose constraints the arguments met."
    )
    arguments_preview: str | None = Field(
        default=None,
        description="In place of `arguments` (and `original_arguments`) when the record was shortened to fit "
        "Temporal's payload limit; the full arguments are in the run's history.",
    )
    original_arguments: dict[str, Any] | None = Field(
        default=None, description="The model's arguments, when the approver ran the tool with edited ones."
    )
    output_preview: str | None = None


class ApprovalDecision(BaseModel):
    """Argument of the `submit_approval` signal; also the body of the approvals endpoint.

    Bounded (workflows/limits.py): a signal over a bound is dropped by the worker, the API
    answers 422."""

    tool_call_id: str = Field(max_length=128)
    decision: Literal["approve", "deny"]
    reason: Reason = None
    approver: Approver = None
    approval_hash: str | None = Field(
        default=None,
        max_length=128,
        description="The pending call's `approval_hash`: refused if the call differs from it.",
    )
    arguments: dict[str, Any] | None = Field(
        default=None,
        description="With `approve` only: run the tool with these arguments instead of the model's. They must "
        f"match the tool's input schema (at most {MAX_ARGUMENTS_BYTES} bytes as JSON); the model is shown the "
        "arguments that were used.",
    )

    @field_validator("arguments")
    @classmethod
    def _arguments_bounded(cls, arguments: dict[str, Any] | None) -> dict[str, Any] | None:
        problem = None if arguments is None else arguments_problem(arguments)
        if problem is not None:
            raise ValueError(problem)
        return arguments


class InputAnswer(BaseModel):
    """Argument of the `submit_input` signal and the `answer_input` update; also the body of the
    inputs endpoint. `accept` with `content` (an elicitation: it must match the requested schema;
    a sampling request: none, the run's model answers it), `decline` or `cancel`."""

    input_id: str = Field(max_length=600)
    action: Literal["accept", "decline", "cancel"]
    content: dict[str, str | int | float | bool | list[str] | None] | None = Field(
        default=None, description="With `accept` of an elicitation: the answer, matching `requested_schema`."
    )
    answerer: Approver = None
    reason: Reason = None

    @field_validator("content")
    @classmethod
    def _content_bounded(cls, content: dict[str, Any] | None) -> dict[str, Any] | None:
        problem = None if content is None else arguments_problem(content)
        if problem is not None:
            raise ValueError(problem)
        return content


class ToolProgress(BaseModel):
    """Argument of the `tool_progress` signal a worker sends while a tool call runs (MCP
    `notifications/progress`, throttled)."""

    tool_call_id: str = Field(max_length=128)
    progress: float
    total: float | None = None
    message: str | None = Field(default=None, max_length=1000)


class DecisionBatch(BaseModel):
    """Argument of the `decide_many` update: several decisions applied together, or none."""

    decisions: list[ApprovalDecision] = Field(min_length=1, max_length=100)


class IgnoredDecision(BaseModel):
    """A decision that named an unknown or already-decided call: kept for the audit."""

    tool_call_id: str
    decision: str
    approver: str | None = None
    why: str
    received_at: datetime


class OrchestrationStatus(BaseModel):
    """The `status` query result and the body of GET /v1/orchestrations/{id}."""

    id: str
    status: RunStatus
    stop_reason: StopReason | None = None
    model: str | None = None
    step: int = 0
    max_steps: int
    pending_approvals: list[PendingApproval] = Field(default_factory=list)
    pending_inputs: list[PendingInput] = Field(
        default_factory=list, description="What MCP servers ask people in the middle of tool calls."
    )
    steps: list[StepRecord] = Field(default_factory=list)
    output: str | None = None
    error: str | None = None
    usage: Usage = Field(default_factory=Usage)
    created_at: datetime
    updated_at: datetime
    metadata: dict[str, str] = Field(default_factory=dict)
    ignored_decisions: list[IgnoredDecision] = Field(default_factory=list)
    unavailable_servers: dict[str, str] = Field(default_factory=dict)
    owner: str | None = Field(default=None, description="The API key that started the run (when keys are on).")
    shortened: bool = Field(
        default=False,
        description="Large parts were cut to fit Temporal's payload limit: step arguments became "
        "`arguments_preview`, a long `output` ends with how much was left out, the oldest steps and ignored "
        "decisions may be missing. The full record is the run's history.",
    )


# --- Run events (GET /v1/orchestrations/{id}/events) ----------------------------------


class RunEventType(StrEnum):
    """What happened; the last event of a run is `completed`, `failed` or `cancelled`."""

    STATUS = "status"
    LLM_STARTED = "llm_started"
    LLM_FINISHED = "llm_finished"
    TOOLS_LISTED = "tools_listed"
    TOOL_PENDING = "tool_pending"
    TOOL_APPROVED = "tool_approved"
    TOOL_DENIED = "tool_denied"
    TOOL_STARTED = "tool_started"
    TOOL_FINISHED = "tool_finished"
    TOOL_PROGRESS = "tool_progress"
    INPUT_REQUESTED = "input_requested"
    INPUT_ANSWERED = "input_answered"
    TASK_STATUS = "task_status"
    SAMPLING = "sampling"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL_STATUSES = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMED_OUT})
FINAL_EVENT = {
    RunStatus.COMPLETED: RunEventType.COMPLETED,
    RunStatus.FAILED: RunEventType.FAILED,
    RunStatus.CANCELLED: RunEventType.CANCELLED,
    RunStatus.TIMED_OUT: RunEventType.FAILED,
}
"""The last event of a run that ended with each terminal status."""
FINAL_EVENT_TYPES = frozenset(FINAL_EVENT.values())


class RunEvent(BaseModel):
    """One event of a run, numbered 1, 2, 3... across continue-as-new (the SSE `id`)."""

    id: int
    type: RunEventType
    at: datetime
    step_index: int | None = None
    tool_call_id: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class RunHistory(BaseModel):
    """Result of the `history` query: the run's conversation, without the system message of its
    `instructions`."""

    messages: list[ChatMessage]


class EventsQuery(BaseModel):
    """Argument of the `events` query: the events after `after`, at most `limit`."""

    after: int = 0
    limit: int = Field(default=500, ge=1, le=5000)


class EventsPage(BaseModel):
    """Result of the `events` query."""

    events: list[RunEvent]
    first_id: int = Field(description="The oldest event still kept (older ones were dropped at continue-as-new).")
    last_id: int
    status: RunStatus


class RunMemo(BaseModel):
    """A run's memo, which Temporal keeps with the run: the API writes who started it and the
    idempotency fields at start, the run writes its final status and events at its end, and
    the API reads them when no worker answers (finished, terminated, no worker)."""

    model_config = ConfigDict(extra="ignore")

    request_hash: str | None = None
    start_nonce: str | None = None
    owner: str | None = None
    orchestration: OrchestrationStatus | None = Field(default=None, description="The final status, shortened to fit.")
    events: list[RunEvent] = Field(default_factory=list)
    response_request: dict[str, Any] | None = Field(
        default=None,
        description="The Responses API request that started the run (`api/responses.py`): what its responses echo.",
    )

    def written(self, *fields: str) -> dict[str, Any]:
        """`fields` as a memo upsert (JSON values)."""
        return self.model_dump(mode="json", include=set(fields))
