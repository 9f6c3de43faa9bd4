"""The workflow's own state: the request it runs and what it carries across continue-as-new
(the pinned catalog, the conversation, the steps, the open tool calls). The API builds the
input of a new run (`OrchestrationInput` with no state)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from workflows.activity_io import ToolCatalog
from workflows.chat_messages import ChatMessage
from workflows.messages import ApprovalDecision, IgnoredDecision, OrchestrationRequest, RunEvent, StepRecord, Usage

# --- Open tool calls of the current step (carried across continue-as-new) ------------


class OpenToolCall(BaseModel):
    """A tool call of the current step, from parsing to its tool message."""

    tool_call_id: str
    function_name: str
    step_index: int
    server: str | None = None
    tool: str | None = None
    arguments: dict[str, Any] = Field(default_factory=dict)
    intent: str | None = None
    auto_execute: bool = False
    rule: str | None = None
    price_usd: float = 0.0
    problem: str | None = None
    definition_hash: str = ""
    approval_hash: str = ""
    requested_at: datetime | None = None
    decision: ApprovalDecision | None = None
    decided_at: datetime | None = None
    original_arguments: dict[str, Any] | None = None
    result: str | None = None


class OrchestrationState(BaseModel):
    """Everything a run needs to go on after continue-as-new."""

    created_at: datetime
    model: str
    catalog: ToolCatalog
    messages: list[ChatMessage]
    llm_calls: int = 0
    usage: Usage = Field(default_factory=Usage)
    steps: list[StepRecord] = Field(default_factory=list)
    open_calls: list[OpenToolCall] = Field(default_factory=list)
    ignored_decisions: list[IgnoredDecision] = Field(default_factory=list)
    continued_runs: int = 0
    events: list[RunEvent] = Field(default_factory=list)
    next_event_id: int = 1


class OrchestrationInput(BaseModel):
    """The workflow's single argument: the request, plus carried state after continue-as-new."""

    run_request: OrchestrationRequest
    state: OrchestrationState | None = None
