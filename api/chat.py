"""The OpenAI-compatible chat facade: a chat completion request runs as an orchestration.

`POST /v1/chat/completions` starts a run with the request's messages, follows its events
until it ends (or waits too long for a person), and answers with a normal chat
completion (or its chunks, with `stream: true`), plus the orchestration's id and state in
the extension fields `orchestration_id` and `orchestration`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.events import next_event
from api.schemas import AssistantName, CreateOrchestration, Links
from workflows.chat_messages import ChatMessage
from workflows.limits import Metadata, ModelName, ServerNames
from workflows.messages import (
    FINAL_EVENT_TYPES,
    OrchestrationStatus,
    PendingApproval,
    PendingInput,
    RunEvent,
    RunEventType,
    RunStatus,
    StopReason,
)
from workflows.run_request import MaxSteps


class StreamOptions(BaseModel):
    include_usage: bool = Field(default=False, strict=True)


class ChatCompletionRequest(BaseModel):
    """An OpenAI chat completion request, plus the orchestration's own fields. Sampling
    fields (`temperature`, `seed`, ...) are accepted and not forwarded: the run's model
    calls use the worker's settings.

    `assistant` names a saved assistant (`api.assistants`): its options apply where the request
    sets none, its instructions as the system prompt before the messages. OpenAI's clients
    always send `model`, so the assistant's model applies when `model` is omitted (or null) or
    is the assistant's name (`model="support", extra_body={"assistant": "support"}`); any other
    `model` is the request's own and wins."""

    model_config = ConfigDict(extra="allow")

    model: ModelName = Field(default=None, description="Default: the worker's ORCH_DEFAULT_MODEL.")
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = Field(default=False, strict=True)
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1, le=1, strict=True, description="One choice only.")
    tools: list[dict[str, Any]] | None = Field(
        default=None, description="Not supported: the tools are the MCP servers' (`mcp_servers`)."
    )
    metadata: Metadata = Field(default_factory=dict)
    execute_tools: bool | None = Field(
        default=None,
        strict=True,
        description="Run the MCP tools the model asks for (default ORCH_CHAT_EXECUTE_TOOLS, true); false: "
        "the model is offered no tools.",
    )
    mcp_servers: ServerNames = Field(default=None, description="Server names; default: every enabled one.")
    max_steps: MaxSteps | None = None
    approval_wait_seconds: float | None = Field(
        default=None,
        strict=True,
        ge=0,
        le=3600,
        description="How long to wait while a tool call waits for approval before answering with the pending "
        "calls (default ORCH_CHAT_APPROVAL_WAIT_SECONDS).",
    )
    assistant: AssistantName | None = Field(
        default=None,
        description="A saved assistant (`/v1/assistants`): its options apply where this request sets none; its "
        "model when `model` is omitted or is the assistant's name.",
    )

    def to_run(self, execute_tools: bool) -> CreateOrchestration:
        """The run's body. It sets only what this request set, so that an assistant's options
        fill in the rest (`api.assistants`)."""
        options: dict[str, Any] = {}
        if self.model is not None and self.model != self.assistant:
            options["model"] = self.model
        if not execute_tools:
            options["mcp_servers"] = []
        elif "mcp_servers" in self.model_fields_set:
            options["mcp_servers"] = self.mcp_servers
        if self.max_steps is not None:
            options["max_steps"] = self.max_steps
        return CreateOrchestration(messages=self.messages, metadata=self.metadata, assistant=self.assistant, **options)


class ChatCompletionMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None


class ChatChoice(BaseModel):
    index: int = 0
    message: ChatCompletionMessage
    finish_reason: Literal["stop", "length"]


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class OrchestrationRef(BaseModel):
    """Extension field: the run behind the completion."""

    id: str
    status: RunStatus
    pending_approvals: list[PendingApproval] = Field(default_factory=list)
    pending_inputs: list[PendingInput] = Field(default_factory=list)
    links: Links


class ChatCompletion(BaseModel):
    """An OpenAI chat completion, with the orchestration in extension fields."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: CompletionUsage
    orchestration_id: str
    orchestration: OrchestrationRef


Outcome = Literal["finished", "waiting", "running"]
"""How waiting for a run ended: it finished, waits for a person too long, or runs too long."""


async def wait_for_outcome(
    events: AsyncIterator[RunEvent],
    approval_wait: float,
    overall: float,
    on_event: Callable[[RunEvent], Awaitable[None]] | None = None,
) -> Outcome:
    """Follow `events` until the final one, or `approval_wait` seconds into a wait for approval,
    or `overall` seconds in all."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + overall
    waiting_since: float | None = None
    while True:
        deadline = give_up if waiting_since is None else min(give_up, waiting_since + approval_wait)
        try:
            event = await next_event(events, deadline)
        except StopAsyncIteration:
            return "finished"
        except TimeoutError:
            return "waiting" if waiting_since is not None and loop.time() < give_up else "running"
        if on_event is not None:
            await on_event(event)
        if event.type in FINAL_EVENT_TYPES:
            return "finished"
        if event.type == RunEventType.STATUS:
            waiting = event.data.get("status") in (RunStatus.WAITING_FOR_APPROVAL, RunStatus.WAITING_FOR_INPUT)
            waiting_since = (waiting_since or loop.time()) if waiting else None


def completion(run: OrchestrationStatus, outcome: Outcome, links: Links) -> ChatCompletion:
    """The chat completion for a run that finished, or that waits for approval or still runs."""
    return ChatCompletion(
        id=f"chatcmpl-{run.id}",
        created=int(run.created_at.timestamp()),
        model=run.model or "",
        choices=[
            ChatChoice(message=ChatCompletionMessage(content=answer_text(run, outcome)), finish_reason=finish(run))
        ],
        usage=usage_of(run),
        orchestration_id=run.id,
        orchestration=OrchestrationRef(
            id=run.id,
            status=run.status,
            pending_approvals=run.pending_approvals,
            pending_inputs=run.pending_inputs,
            links=links,
        ),
    )


def answer_text(run: OrchestrationStatus, outcome: Outcome) -> str:
    if outcome == "finished" and run.status == RunStatus.COMPLETED:
        return run.output or ""
    if run.pending_approvals:
        calls = "; ".join(
            f"{p.server}.{p.tool} (tool_call_id {p.tool_call_id}) with {p.arguments}" for p in run.pending_approvals
        )
        return (
            f"Orchestration {run.id} is waiting for approval of: {calls}. Approve or deny with "
            f"POST /v1/orchestrations/{run.id}/approvals, then follow GET /v1/orchestrations/{run.id}."
        )
    if run.pending_inputs:
        asked = "; ".join(
            f"{p.server}.{p.tool} asks {p.message or p.kind} (input_id {p.input_id})" for p in run.pending_inputs
        )
        return (
            f"Orchestration {run.id} is waiting for input: {asked}. Answer with "
            f"POST /v1/orchestrations/{run.id}/inputs, then follow GET /v1/orchestrations/{run.id}."
        )
    return f"Orchestration {run.id} is still {run.status.value}; follow GET /v1/orchestrations/{run.id}."


def finish(run: OrchestrationStatus) -> Literal["stop", "length"]:
    return "length" if run.stop_reason == StopReason.MAX_STEPS else "stop"


def usage_of(run: OrchestrationStatus) -> CompletionUsage:
    return CompletionUsage(
        prompt_tokens=run.usage.prompt_tokens,
        completion_tokens=run.usage.completion_tokens,
        total_tokens=run.usage.prompt_tokens + run.usage.completion_tokens,
    )


def chunks(done: ChatCompletion, include_usage: bool, piece_chars: int = 48) -> list[dict[str, Any]]:
    """The completion as chat.completion.chunk objects: role, content pieces, finish, usage."""
    text = done.choices[0].message.content or ""
    base = {
        "id": done.id,
        "object": "chat.completion.chunk",
        "created": done.created,
        "model": done.model,
        "orchestration_id": done.orchestration_id,
    }

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return base | {"choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}

    pieces = [chunk({"role": "assistant", "content": ""})]
    pieces += [chunk({"content": text[at : at + piece_chars]}) for at in range(0, len(text), piece_chars)]
    pieces.append(
        chunk({}, done.choices[0].finish_reason) | {"orchestration": done.orchestration.model_dump(mode="json")}
    )
    if include_usage:
        pieces.append(base | {"choices": [], "usage": done.usage.model_dump()})
    return pieces


def progress_comment(event: RunEvent) -> str:
    """An SSE comment line telling a streaming client what the run is doing meanwhile."""
    data = event.data
    what = data.get("tool") or data.get("status") or data.get("model") or ""
    return f"orchestration event {event.id}: {event.type.value} {what}".strip()
