"""Scripted stand-ins for the worker's activities, registered under the production names.

The pattern of Temporal's samples: `@activity.defn(name=...)` with the name the workflow
schedules, the same input and output models, and scripted data instead of I/O. Every call is
recorded, so a test asserts both on the run's result and on what each activity was given.

| production                            | name                    | input           | output         |
|---------------------------------------|-------------------------|-----------------|----------------|
| `MCPActivities.prepare_run`           | `prepare_run`           | PrepareRunInput | PreparedRun    |
| `LLMActivities.chat_completion`       | `chat_completion`       | LLMRequest      | LLMReply       |
| `LLMActivities.chat_completion_delta` | `chat_completion_delta` | LLMDeltaRequest | LLMReply       |
| `MCPActivities.call_tool`             | `call_tool`             | ToolCallInput   | ToolCallOutput |
| `MCPActivities.describe_tools`        | `describe_tools`        | ListToolsInput  | ToolListing    |
| `WebhookActivities.deliver_webhook`   | `deliver_webhook`       | WebhookEvent    | None           |
| `MCPActivities.get_task`              | `orch.get_task`         | TaskRequest     | ServerTask     |
| `MCPActivities.update_task`           | `orch.update_task`      | TaskRequest     | None           |
| `MCPActivities.cancel_task`           | `orch.cancel_task`      | TaskRequest     | None           |
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.conversations import ConversationCache
from workflows.activity_io import (
    ApprovalRule,
    CatalogTool,
    ListToolsInput,
    LLMDeltaRequest,
    LLMReply,
    LLMRequest,
    PreparedRun,
    PrepareRunInput,
    ServerTask,
    ServerTools,
    TaskRequest,
    ToolCallInput,
    ToolCallOutput,
    ToolCatalog,
    ToolDescription,
    ToolListing,
    WebhookEvent,
    WorkerDefaults,
)
from workflows.chat_messages import ChatMessage, FunctionCall, LLMToolCall
from workflows.contract import (
    CALL_TOOL_ACTIVITY,
    CANCEL_TASK_ACTIVITY,
    CHAT_COMPLETION_ACTIVITY,
    CHAT_COMPLETION_DELTA_ACTIVITY,
    DELIVER_WEBHOOK_ACTIVITY,
    DESCRIBE_TOOLS_ACTIVITY,
    GET_TASK_ACTIVITY,
    PREPARE_RUN_ACTIVITY,
    UPDATE_TASK_ACTIVITY,
)
from workflows.messages import TokenUsage

DEFAULT_MODEL = "fake-model"

READ_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"path": {"type": "string"}},
    "required": ["path"],
    "additionalProperties": False,
}
TRANSFER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"account": {"type": "string"}, "amount": {"type": "number"}},
    "required": ["account", "amount"],
    "additionalProperties": False,
}
SMALL_AMOUNTS = ApprovalRule(
    name="small-amounts",
    arguments={"type": "object", "properties": {"amount": {"type": "number", "maximum": 10}}, "required": ["amount"]},
)

READ = CatalogTool(
    server="files",
    tool="read",
    function_name="files__read",
    description="Read a file.",
    input_schema=READ_SCHEMA,
    auto_execute=True,
    price_usd=0.25,
    definition_hash="def-read",
)
"""Auto-approved: runs as soon as the model asks."""
TRANSFER = CatalogTool(
    server="bank",
    tool="transfer",
    function_name="bank__transfer",
    description="Move money.",
    input_schema=TRANSFER_SCHEMA,
    auto_approve_rules=[SMALL_AMOUNTS],
    definition_hash="def-transfer",
)
"""Gated: waits for a person, unless the amount is at most 10 (rule `small-amounts`)."""


def catalog() -> ToolCatalog:
    """What `prepare_run` answers: one auto-approved tool, one gated tool with a rule."""
    return ToolCatalog(
        tools=[READ.model_copy(deep=True), TRANSFER.model_copy(deep=True)],
        unavailable_servers={"offline": "connection refused"},
    )


# --- LLM replies ---------------------------------------------------------------------------


def call(call_id: str, function_name: str, arguments: dict[str, Any] | str) -> LLMToolCall:
    """A tool call as the model sends it (`arguments` may be raw, even invalid, JSON text)."""
    raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return LLMToolCall(id=call_id, function=FunctionCall(name=function_name, arguments=raw))


def asks(*calls: LLMToolCall, text: str | None = None) -> LLMReply:
    """A reply asking for tool calls."""
    return LLMReply(
        message=ChatMessage(role="assistant", content=text, tool_calls=list(calls)),
        usage=TokenUsage(prompt_tokens=10, completion_tokens=5),
        finish_reason="tool_calls",
    )


def answer(text: str) -> LLMReply:
    """A final answer."""
    return LLMReply(
        message=ChatMessage(role="assistant", content=text),
        usage=TokenUsage(prompt_tokens=10, completion_tokens=5),
        finish_reason="stop",
    )


Turn = LLMReply | BaseException | Callable[[LLMRequest], "LLMReply | BaseException"]
ToolResult = ToolCallOutput | BaseException | Callable[[ToolCallInput], "ToolCallOutput | BaseException"]


def _transfer(input: ToolCallInput) -> ToolCallOutput:
    return ToolCallOutput(text=f"transferred {input.arguments['amount']} to {input.arguments['account']}")


def _read(input: ToolCallInput) -> ToolCallOutput:
    return ToolCallOutput(text=f"contents of {input.arguments['path']}")


@dataclass
class FakeActivities:
    """The activities of one test's worker: scripted answers, recorded inputs."""

    llm_turns: list[Turn] = field(default_factory=list)
    """Consumed one per `chat_completion` attempt; running out fails the LLM call (non-retryable)."""
    tool_results: dict[str, ToolResult] = field(default_factory=lambda: {"read": _read, "transfer": _transfer})
    """By MCP tool name."""
    tool_catalog: ToolCatalog | BaseException = field(default_factory=catalog)
    """What `prepare_run` answers, or raises."""
    listing: ToolListing = field(
        default_factory=lambda: ToolListing(
            servers=[
                ServerTools(
                    name="bank",
                    transport="stdio",
                    enabled=True,
                    tools=[
                        ToolDescription(
                            name="transfer",
                            input_schema=TRANSFER_SCHEMA,
                            policy="execute",
                            auto_approve_rules=[SMALL_AMOUNTS],
                        )
                    ],
                )
            ]
        )
    )

    prepare_inputs: list[PrepareRunInput] = field(default_factory=list)
    llm_requests: list[LLMRequest] = field(default_factory=list)
    conversations: ConversationCache = field(default_factory=ConversationCache)
    tool_calls: list[ToolCallInput] = field(default_factory=list)
    describe_inputs: list[ListToolsInput] = field(default_factory=list)
    webhooks: list[WebhookEvent] = field(default_factory=list)
    task_polls: list[ServerTask | Callable[[TaskRequest], ServerTask]] = field(default_factory=list)
    """Consumed one per `get_task`; the last one repeats."""
    task_requests: list[tuple[str, TaskRequest]] = field(default_factory=list)

    def script(self, *turns: Turn) -> None:
        self.llm_turns.extend(turns)

    def activities(self) -> list[Callable[..., Any]]:
        return [
            self.prepare_run,
            self.chat_completion,
            self.chat_completion_delta,
            self.call_tool,
            self.describe_tools,
            self.deliver_webhook,
            self.get_task,
            self.update_task,
            self.cancel_task,
        ]

    @activity.defn(name=PREPARE_RUN_ACTIVITY)
    async def prepare_run(self, input: PrepareRunInput) -> PreparedRun:
        self.prepare_inputs.append(input)
        if isinstance(self.tool_catalog, BaseException):
            raise self.tool_catalog
        return PreparedRun(catalog=self.tool_catalog, defaults=WorkerDefaults(model=DEFAULT_MODEL))

    @activity.defn(name=CHAT_COMPLETION_ACTIVITY)
    async def chat_completion(self, request: LLMRequest) -> LLMReply:
        self.llm_requests.append(request)
        if not self.llm_turns:
            raise ApplicationError("the fake LLM's script ran out", type="ScriptExhausted", non_retryable=True)
        return _played(self.llm_turns.pop(0), request)

    @activity.defn(name=CHAT_COMPLETION_DELTA_ACTIVITY)
    async def chat_completion_delta(self, delta: LLMDeltaRequest) -> LLMReply:
        """The real worker's cache rebuilds the whole request (this fake has no run to ask)."""
        info = activity.info()
        run = (info.workflow_id or "", info.workflow_run_id or "")
        request = self.conversations.resolve(run, delta)
        if request is None:
            raise ApplicationError("the fake lost the conversation", type="ConversationLost", non_retryable=True)
        self.conversations.store(run, delta.step, request)
        return await self.chat_completion(request)

    @activity.defn(name=CALL_TOOL_ACTIVITY)
    async def call_tool(self, input: ToolCallInput) -> ToolCallOutput:
        self.tool_calls.append(input)
        result = self.tool_results.get(input.tool)
        if result is None:  # as the real activity does for a server the worker lacks
            raise ApplicationError(f"no fake for {input.tool}", type="MCPServerNotConfigured", non_retryable=True)
        return _played(result, input)

    @activity.defn(name=DESCRIBE_TOOLS_ACTIVITY)
    async def describe_tools(self, input: ListToolsInput) -> ToolListing:
        self.describe_inputs.append(input)
        return self.listing

    @activity.defn(name=DELIVER_WEBHOOK_ACTIVITY)
    async def deliver_webhook(self, event: WebhookEvent) -> None:
        self.webhooks.append(event)

    @activity.defn(name=GET_TASK_ACTIVITY)
    async def get_task(self, input: TaskRequest) -> ServerTask:
        self.task_requests.append(("get", input))
        poll = self.task_polls.pop(0) if len(self.task_polls) > 1 else self.task_polls[0]
        return _played(poll, input)

    @activity.defn(name=UPDATE_TASK_ACTIVITY)
    async def update_task(self, input: TaskRequest) -> None:
        self.task_requests.append(("update", input))

    @activity.defn(name=CANCEL_TASK_ACTIVITY)
    async def cancel_task(self, input: TaskRequest) -> None:
        self.task_requests.append(("cancel", input))

    # --- What the model was shown ----------------------------------------------------------

    def tool_messages(self, request: int = -1) -> dict[str, str | None]:
        """The tool messages of one LLM request, by tool call id."""
        return {m.tool_call_id or "": m.text() for m in self.llm_requests[request].messages if m.role == "tool"}

    def webhook_types(self) -> list[str]:
        return [event.event_type for event in self.webhooks]


def _played(scripted: Any, argument: Any) -> Any:
    """A scripted answer: the value itself, an exception raised, or a function of the input."""
    if callable(scripted) and not isinstance(scripted, BaseException):
        scripted = scripted(argument)
    if isinstance(scripted, BaseException):
        raise scripted
    return scripted
