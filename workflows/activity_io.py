"""What the workflow and its activities pass each other: the run's tool catalog and the
worker's defaults (what `prepare_run` gives and the run pins at its start), and each
activity's input and output.
The API reads `ToolListing` too (`GET /v1/tools`, through the `ListTools` workflow)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from workflows.chat_messages import ChatMessage
from workflows.messages import TokenUsage
from workflows.run_request import DEFAULT_TOOL_OUTPUT_LIMIT_BYTES, ApprovalRequirement

SamplingPolicy = Literal["deny", "auto", "approve"]

# --- Tool catalog, fixed at run start ------------------------------------------------


class ApprovalRule(BaseModel):
    """An argument-level auto-approval rule of one tool (MCP config `auto_approve_rules`)."""

    name: str
    arguments: dict[str, Any] = Field(description="A JSON Schema the call's arguments must match.")


class CatalogTool(BaseModel):
    """One tool as offered to the model, with the policy that applies to it."""

    server: str
    tool: str
    function_name: str
    description: str = ""
    input_schema: dict[str, Any]
    model_intent: bool = False
    auto_execute: bool = False
    auto_approve_rules: list[ApprovalRule] = Field(default_factory=list)
    price_usd: float = 0.0
    definition_hash: str = ""
    sampling: SamplingPolicy = Field(
        default="approve",
        description="What a sampling request of this tool's server gets: `deny`, `auto` (the run's model answers "
        "it) or `approve` (a person sees it first).",
    )


class ToolCatalog(BaseModel):
    """The tools a run may use, resolved once at its start and recorded in history."""

    tools: list[CatalogTool] = Field(default_factory=list)
    unavailable_servers: dict[str, str] = Field(default_factory=dict)
    servers: list[str] | None = Field(
        default=None,
        description="The servers whose tools were listed (also those that offer none). Unset in the catalogs of "
        "runs from before it, which announce no `tools_listed` event.",
    )

    def by_function_name(self, name: str) -> CatalogTool | None:
        return next((tool for tool in self.tools if tool.function_name == name), None)


class WorkerDefaults(BaseModel):
    """What the worker that starts a run supplies where the request is silent."""

    model: str
    webhook: bool = Field(
        default=True, description="The worker has ORCH_WEBHOOK_URL (runs without their own URL notify it)."
    )


class PreparedRun(BaseModel):
    """Result of `prepare_run`: the run's tool catalog and the worker's defaults, both pinned
    at run start."""

    catalog: ToolCatalog
    defaults: WorkerDefaults

    @model_validator(mode="before")
    @classmethod
    def _from_one_catalog(cls, data: Any) -> Any:
        """Runs from before this type recorded one catalog that held the worker's defaults."""
        if isinstance(data, dict) and "catalog" not in data:
            defaults = {"model": data.get("default_model"), "webhook": data.get("default_webhook", True)}
            return {"catalog": data, "defaults": defaults}
        return data


# --- Activity inputs and outputs --------------------------------------------------------


class PrepareRunInput(BaseModel):
    """Which configured MCP servers a run asks for (None: every enabled one)."""

    mcp_servers: list[str] | None = None
    tool_scope: list[str] | None = None
    owner: str | None = Field(default=None, description="The API key that started the run (OAuth per key).")
    require_approval: dict[str, ApprovalRequirement] | None = Field(
        default=None, description="The run's own approval requirement per server (`RunOptions`)."
    )
    allowed_tools: dict[str, list[str]] | None = Field(
        default=None, description="The only tools offered, per server (`RunOptions`)."
    )


class LLMRequest(BaseModel):
    """One chat-completions call."""

    model: str
    messages: list[ChatMessage]
    tools: list[dict[str, Any]] = Field(default_factory=list)
    max_tokens: int | None = Field(default=None, description="Set for a server's sampling request (its bound).")


class LLMDeltaRequest(BaseModel):
    """One chat-completions call of a run, sent as what changed since the run's previous call:
    the messages appended since and the earlier ones edited since (elided to fit the context
    budget). The activity's worker keeps each run's conversation and tools from call to call;
    one that lacks them asks the run (`contract.CONVERSATION_QUERY`), so history records each
    message about once instead of the whole conversation at every step."""

    model: str
    step: int = Field(description="The LLM call's number in this run (its workflow run: continue-as-new starts at 1).")
    base_length: int = Field(description="Messages of the conversation at the previous call (0: this is the first).")
    edited: dict[int, ChatMessage] = Field(
        default_factory=dict, description="Messages below `base_length` changed since the previous call, by index."
    )
    appended: list[ChatMessage]
    tools: list[dict[str, Any]] | None = Field(
        default=None, description="The tools offered; None: the same as at the previous call."
    )

    def length(self) -> int:
        return self.base_length + len(self.appended)


class LLMReply(BaseModel):
    """The assistant message and token usage of one chat-completions call."""

    message: ChatMessage
    usage: TokenUsage = Field(default_factory=TokenUsage)
    finish_reason: str | None = None


class ToolCallInput(BaseModel):
    """One MCP `tools/call`, with the per-run limits."""

    server: str
    tool: str
    arguments: dict[str, Any]
    timeout_seconds: float
    output_limit_bytes: int = DEFAULT_TOOL_OUTPUT_LIMIT_BYTES
    idempotency_key: str
    definition_hash: str | None = None
    owner: str | None = Field(default=None, description="The API key that started the run (OAuth per key).")
    tool_call_id: str | None = Field(default=None, description="The run's id of the call (progress is reported by it).")
    input_responses: dict[str, dict[str, Any]] | None = Field(
        default=None, description="A retry after `input_required`: the responses, by the server's request keys."
    )
    request_state: str | None = Field(default=None, description="A retry: the server's state, echoed byte for byte.")


class InputRequired(BaseModel):
    """The server needs answers before the call can finish (MCP `InputRequiredResult`): its
    requests by key, as JSON (`{"method": ..., "params": ...}`); the worker answered the ones it
    can itself (roots, from the server's configuration) in `answered`."""

    requests: dict[str, dict[str, Any]] = Field(default_factory=dict)
    answered: dict[str, dict[str, Any]] = Field(default_factory=dict)
    request_state: str | None = None


class ServerTask(BaseModel):
    """An MCP task (the `io.modelcontextprotocol/tasks` extension) as last seen."""

    task_id: str
    status: Literal["working", "input_required", "completed", "failed", "cancelled"]
    status_message: str | None = None
    poll_interval_ms: int | None = None
    input_requests: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="With `input_required`: what the server asks, by key."
    )
    output: ToolCallOutput | None = Field(default=None, description="With `completed` or `failed`: the result.")


class ToolCallOutput(BaseModel):
    """The text of an MCP tool result; `is_error` when the server flagged it as one. Instead of
    a result, the server may need input first (`input_required`) or answer with a task to poll
    (`task`)."""

    text: str = ""
    is_error: bool = False
    truncated: bool = False
    input_required: InputRequired | None = None
    task: ServerTask | None = None
    notes: list[str] = Field(
        default_factory=list, description="What the model is told beside the result (e.g. a request declined)."
    )


class TaskRequest(BaseModel):
    """`tasks/get`, `tasks/update` (with `input_responses`) or `tasks/cancel` on one server."""

    server: str
    task_id: str
    owner: str | None = None
    output_limit_bytes: int = DEFAULT_TOOL_OUTPUT_LIMIT_BYTES
    input_responses: dict[str, dict[str, Any]] | None = None


class ToolDescription(BaseModel):
    """One tool of a configured server and the policy that applies to it."""

    name: str
    description: str = ""
    input_schema: dict[str, Any] = Field(default_factory=dict)
    policy: Literal["execute", "auto_execute", "denied"]
    auto_approve_rules: list[ApprovalRule] = Field(
        default_factory=list, description="Calls of an `execute` tool whose arguments match one run without approval."
    )


class ServerTools(BaseModel):
    """A configured MCP server as GET /v1/tools shows it (never its command, env or headers)."""

    name: str
    transport: str
    enabled: bool
    url: str | None = Field(
        default=None,
        description="An HTTP server's URL without credentials, query or fragment (what a Responses API request's "
        "`server_url` must match).",
    )
    source: Literal["api", "config"] = Field(
        default="config", description="`api`: added over /v1/mcp/servers; `config`: ORCH_MCP_CONFIG's."
    )
    availability: Literal["force_on", "default_on", "default_off"] = "default_on"
    auth: Literal["none", "oauth_client_credentials", "oauth_per_key"] = "none"
    state: Literal["connected", "disconnected", "error"] | None = Field(
        default=None,
        description="`connected`: its tools were listed; `error`: they could not be (see `error`); "
        "`disconnected`: not connected to (disabled, or OAuth per API key).",
    )
    tools: list[ToolDescription] = Field(default_factory=list)
    error: str | None = None


class ListToolsInput(BaseModel):
    """Which servers to describe (None: all configured, enabled or not)."""

    servers: list[str] | None = None


class ToolListing(BaseModel):
    """Result of the `ListTools` workflow."""

    servers: list[ServerTools] = Field(default_factory=list)


WebhookEventType = Literal[
    "orchestration.approval_requested",
    "orchestration.input_requested",
    "orchestration.completed",
    "orchestration.failed",
]


class WebhookEvent(BaseModel):
    """An outbound event; `url` None means the worker's `ORCH_WEBHOOK_URL` (or no delivery)."""

    url: str | None = None
    event_id: str
    event_type: WebhookEventType
    timestamp: datetime
    data: dict[str, Any]
