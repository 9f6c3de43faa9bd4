"""The workflow's own state: the request it runs and what it carries across continue-as-new
(the pinned catalog, the conversation, one record per LLM call and per tool call). The API
builds the input of a new run (`OrchestrationInput` with no state) and sees the records only
as the audit steps they give (`StepRecord`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from workflows.activity_io import ServerTask, ToolCatalog
from workflows.chat_messages import ChatMessage
from workflows.contract import RULE_APPROVER_PREFIX
from workflows.messages import (
    ApprovalDecision,
    IgnoredDecision,
    InputAnswer,
    RunEvent,
    StepRecord,
    TokenUsage,
    Usage,
)
from workflows.run_request import OrchestrationRequest

OPEN_STEP_STATUSES = ("pending", "running", "waiting_for_approval")
"""A step in one of these has not ended; a run that finishes ends it as `cancelled`."""


class LLMCallRecord(BaseModel):
    """One LLM call of the run."""

    kind: Literal["llm"] = "llm"
    index: int
    step: int | None = None
    status: str
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: int | None = None
    usage: TokenUsage | None = None
    tool_call_id: str | None = Field(default=None, description="Sampling: the tool call whose server asked for it.")
    server: str | None = None

    def audit(self) -> StepRecord:
        return StepRecord.model_validate(self.model_dump())


class InputRecord(BaseModel):
    """One request a server made in the middle of a tool call, and its answer."""

    input_id: str
    key: str = Field(description="The server's key for it (what the response is sent under).")
    method: str = Field(description="`elicitation/create` or `sampling/createMessage`.")
    params: dict[str, Any]
    requested_at: datetime
    answer: InputAnswer | None = None
    answered_at: datetime | None = None
    response: dict[str, Any] | None = Field(default=None, description="What the server is sent (MCP JSON).")

    @property
    def kind(self) -> Literal["elicitation", "sampling"]:
        return "sampling" if self.method == "sampling/createMessage" else "elicitation"


class ToolExchange(BaseModel):
    """What a call's server asked since the call started, and where the call is: a round of
    `input_required` (answered, then the call is retried with `request_state`), or a task it polls."""

    round: int = 0
    request_state: str | None = None
    inputs: list[InputRecord] = Field(default_factory=list, description="The current round's requests.")
    answered: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Responses the worker gave itself this round (roots)."
    )
    task: ServerTask | None = None
    task_keys: list[str] = Field(default_factory=list, description="The task's request keys asked already.")
    notes: list[str] = Field(default_factory=list, description="What the model is told beside the result.")

    def waiting(self) -> list[InputRecord]:
        """The requests nobody has answered yet."""
        return [record for record in self.inputs if record.answer is None]


class ToolCallRecord(BaseModel):
    """One tool call of the run, from the model's request to the tool message the model gets:
    what was asked, the policy that applies, the decision, the execution. Its audit step is
    derived from it (`audit`); nothing else holds the call."""

    kind: Literal["tool"] = "tool"
    index: int
    step: int | None = Field(default=None, description="The LLM call that asked for it.")
    tool_call_id: str
    function_name: str
    server: str | None = None
    tool: str | None = None
    arguments: dict[str, Any] = Field(default_factory=dict)
    intent: str | None = None
    original_arguments: dict[str, Any] | None = None
    arguments_preview: str | None = Field(
        default=None, description="In place of the arguments of an answered call, to fit continue-as-new."
    )
    # The policy, resolved when the call is opened
    problem: str | None = None
    auto_execute: bool = False
    rule: str | None = None
    price_usd: float = 0.0
    definition_hash: str = ""
    approval_hash: str = ""
    # The decision
    requested_at: datetime | None = None
    decision: ApprovalDecision | None = None
    decided_at: datetime | None = None
    # The execution
    status: str = "pending"
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: int | None = None
    output_preview: str | None = None
    result: str | None = Field(default=None, description="The tool message, until the model has it.")
    answered: bool = Field(default=False, description="The tool message is in the conversation.")
    exchange: ToolExchange | None = Field(
        default=None, description="While the server asks for input or runs the call as a task."
    )

    def refuse(self, problem: str) -> None:
        """The call cannot run: the model gets `problem` as an error, and no policy applies to it."""
        self.problem, self.status, self.output_preview = problem, "error", f"error: {problem}"
        self.auto_execute, self.rule = False, None

    @property
    def approver(self) -> str | None:
        """Who decided: the person (or the timeout's `system`), or the rule that admitted it."""
        if self.decision is not None:
            return self.decision.approver
        return f"{RULE_APPROVER_PREFIX}{self.rule}" if self.rule else None

    def audit(self) -> StepRecord:
        """The call as the run's audit trail shows it."""
        decision = self.decision
        shortened = self.arguments_preview is not None
        return StepRecord(
            index=self.index,
            kind="tool",
            status=self.status,
            step=self.step,
            started_at=self.started_at,
            finished_at=self.finished_at,
            duration_ms=self.duration_ms,
            tool_call_id=self.tool_call_id,
            server=self.server,
            tool=self.tool or self.function_name,
            arguments=None if shortened else self.arguments,
            intent=self.intent,
            decision=decision.decision if decision else ("approve" if self.rule else None),
            approver=self.approver,
            reason=decision.reason if decision else None,
            decided_at=self.decided_at,
            approval_hash=(self.approval_hash or None) if decision else None,
            approved_by_rule=self.rule,
            arguments_preview=self.arguments_preview,
            original_arguments=None if shortened else self.original_arguments,
            output_preview=self.output_preview,
        )


StepState = Annotated[LLMCallRecord | ToolCallRecord, Field(discriminator="kind")]


class OrchestrationState(BaseModel):
    """Everything a run needs to go on after continue-as-new."""

    created_at: datetime
    model: str
    catalog: ToolCatalog
    worker_webhook: bool = Field(
        default=True, description="The worker that started the run has ORCH_WEBHOOK_URL (pinned at run start)."
    )
    messages: list[ChatMessage]
    llm_calls: int = 0
    usage: Usage = Field(default_factory=Usage)
    steps: list[StepState] = Field(default_factory=list)
    ignored_decisions: list[IgnoredDecision] = Field(default_factory=list)
    continued_runs: int = 0
    events: list[RunEvent] = Field(default_factory=list)
    next_event_id: int = 1

    @model_validator(mode="before")
    @classmethod
    def _from_earlier_shapes(cls, data: Any) -> Any:
        """State carried by runs from before the worker's defaults left the catalog, and from
        before one record per tool call: its audit steps, and the current step's calls in
        `open_calls`, become the records they describe."""
        if not isinstance(data, dict):
            return data
        catalog = data.get("catalog")
        if "worker_webhook" not in data and isinstance(catalog, dict) and "default_webhook" in catalog:
            data = data | {"worker_webhook": catalog["default_webhook"]}
        if "open_calls" in data:
            open_calls = {call["step_index"]: call for call in data["open_calls"] or []}
            steps = [
                _tool_call_record(step, open_calls.get(step["index"])) if step.get("kind") == "tool" else step
                for step in data.get("steps") or []
            ]
            data = {key: value for key, value in data.items() if key != "open_calls"} | {"steps": steps}
        return data

    def tool_calls(self) -> list[ToolCallRecord]:
        return [step for step in self.steps if isinstance(step, ToolCallRecord)]

    def open_calls(self) -> list[ToolCallRecord]:
        """The calls of the current step whose tool message the model does not have yet."""
        return [call for call in self.tool_calls() if not call.answered]


def _tool_call_record(step: dict[str, Any], open_call: dict[str, Any] | None) -> dict[str, Any]:
    """The record of a tool call carried as an audit step and, while open, an `OpenToolCall`."""
    shown = ("kind", "index", "step", "status", "started_at", "finished_at", "duration_ms", "tool_call_id", "server")
    record = {key: step.get(key) for key in shown} | {
        "tool": step.get("tool"),
        "function_name": step.get("tool") or "",
        "arguments": step.get("arguments") or {},
        "intent": step.get("intent"),
        "original_arguments": step.get("original_arguments"),
        "arguments_preview": step.get("arguments_preview"),
        "output_preview": step.get("output_preview"),
        "rule": step.get("approved_by_rule"),
        "approval_hash": step.get("approval_hash") or "",
        "decided_at": step.get("decided_at"),
    }
    if step.get("decision") and not step.get("approved_by_rule"):
        record["decision"] = {
            "tool_call_id": step["tool_call_id"],
            "decision": step["decision"],
            "approver": step.get("approver"),
            "reason": step.get("reason"),
        }
    if open_call is None:
        return record | {"answered": True}
    working = {key: value for key, value in open_call.items() if key not in ("step_index", "decided_at")}
    return record | working | {"decided_at": open_call.get("decided_at") or step.get("decided_at")}


class OrchestrationInput(BaseModel):
    """The workflow's single argument: the request, plus carried state after continue-as-new."""

    run_request: OrchestrationRequest
    state: OrchestrationState | None = None
