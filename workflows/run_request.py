"""What a run is asked to do: the options a client chooses (declared once, with their
bounds, for the workflow input and the API body alike) and the request the workflow gets."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from workflows.chat_messages import ChatMessage
from workflows.limits import Metadata

DEFAULT_MAX_STEPS = 8
DEFAULT_TOOL_TIMEOUT_SECONDS = 45.0
DEFAULT_APPROVAL_TIMEOUT_SECONDS = 86_400.0
DEFAULT_TOOL_OUTPUT_LIMIT_BYTES = 64 * 1024
DEFAULT_CONTEXT_BUDGET_BYTES = 512 * 1024
# Continue-as-new well before Temporal's 51,200-event hard limit; the server's own
# "suggested" flag (history size) also triggers it.
DEFAULT_CONTINUE_AS_NEW_AFTER_EVENTS = 10_000

# Run options with their bounds, shared by the workflow input and the API body so the two
# cannot drift apart.
MaxSteps = Annotated[int, Field(ge=1, le=1000, description="LLM calls at most.")]
ToolTimeoutSeconds = Annotated[float, Field(gt=0, le=3600, description="Per tool call.")]
ApprovalTimeoutSeconds = Annotated[
    float,
    Field(gt=0, le=30 * 86_400, description='On expiry the call counts as denied with reason "approval timed out".'),
]
ContextBudgetBytes = Annotated[
    int,
    Field(
        ge=16 * 1024,
        le=1536 * 1024,
        description="The conversation sent to the model is kept under this size by eliding the oldest tool outputs.",
    ),
]
LLMCallMode = Annotated[
    Literal["activity", "local_activity"],
    Field(
        description=(
            "How each LLM call runs. `activity` (default): its own activity; status queries and cancel are "
            "answered at once while it runs. `local_activity`: inside the workflow task, the reply recorded as a "
            "marker with the commands that use it; status queries and cancel wait until the call ends or the "
            "task's next heartbeat (up to 8 s). Its tool calls then run as activities."
        )
    ),
]
ToolCallMode = Annotated[
    Literal["local_activity", "activity"] | None,
    Field(
        description=(
            "How each tool call runs. `local_activity` (the default with `llm_call: activity`): inside the workflow "
            "task that schedules the next LLM call, its result recorded as a marker with that command: one "
            "workflow task less per step; a status query or cancel during the tool call waits until it ends (or "
            "the task's next heartbeat, up to 8 s). `activity`: its own activity, for tools that run long. "
            "Not `local_activity` with `llm_call: local_activity`."
        )
    ),
]


class ToolNames(BaseModel):
    """Tools of one server, by their MCP names."""

    model_config = ConfigDict(extra="forbid")

    tool_names: list[str] = Field(default_factory=list, max_length=1000)


class ApprovalFilter(BaseModel):
    """Which tools of a server need a person's approval, as OpenAI's `require_approval` filter says:
    those under `always` do, those under `never` follow the server's own policy, and the others do."""

    model_config = ConfigDict(extra="forbid")

    always: ToolNames | None = None
    never: ToolNames | None = None

    @model_validator(mode="after")
    def _each_tool_once(self) -> ApprovalFilter:
        both = set(self.always.tool_names if self.always else []) & set(self.never.tool_names if self.never else [])
        if both:
            raise ValueError(f"tools both under `always` and `never`: {sorted(both)}")
        return self


ApprovalRequirement = Annotated[
    Literal["always", "never"] | ApprovalFilter,
    Field(
        description="`always`: every call of the server's tools waits for a person; `never`: the server's own "
        "policy applies; a filter: the tools under `never` follow the server's policy, every other one waits."
    ),
]


def requires_approval(requirement: ApprovalRequirement | None, tool: str) -> bool:
    """Whether a run's `requirement` for a server makes a call of `tool` wait for a person, whatever
    the server's policy (which still applies when it does not: the stricter of the two wins)."""
    if requirement is None or requirement == "never":
        return False
    if requirement == "always":
        return True
    return not (requirement.never is not None and tool in requirement.never.tool_names)


class RunOptions(BaseModel):
    """What a client chooses for a run: the fields of POST /v1/orchestrations (whose body,
    `api.schemas.CreateOrchestration`, adds its own checks) and of the run's request."""

    model_config = ConfigDict(extra="forbid")

    input: str | None = Field(default=None, description="The user's prompt.")
    messages: list[ChatMessage] | None = Field(default=None, description="OpenAI chat messages.")
    model: str | None = Field(default=None, description="Default: the worker's ORCH_DEFAULT_MODEL.")
    instructions: str | None = Field(default=None, description="System prompt.")
    mcp_servers: list[str] | None = Field(default=None, description="Server names; default: every enabled one.")
    max_steps: MaxSteps = DEFAULT_MAX_STEPS
    tool_timeout_seconds: ToolTimeoutSeconds = DEFAULT_TOOL_TIMEOUT_SECONDS
    approval_timeout_seconds: ApprovalTimeoutSeconds = DEFAULT_APPROVAL_TIMEOUT_SECONDS
    context_budget_bytes: ContextBudgetBytes = DEFAULT_CONTEXT_BUDGET_BYTES
    llm_call: LLMCallMode = "activity"
    tool_call: ToolCallMode = None
    metadata: Metadata = Field(default_factory=dict)
    require_approval: dict[str, ApprovalRequirement] | None = Field(
        default=None,
        description="Per server name: which of its tools wait for a person's approval. Only ever stricter than the "
        "server's own policy: a tool the server's policy makes wait still waits, and a tool this makes wait is "
        "never run by the server's auto-approval rules.",
    )
    allowed_tools: dict[str, list[str]] | None = Field(
        default=None, description="Per server name: the only tools of it the model is offered (by MCP name)."
    )
    max_tool_calls: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="Tool calls the run makes at most; the model is told that each call after them was not run.",
    )

    @model_validator(mode="after")
    def _one_call_in_the_workflow_task(self) -> RunOptions:
        if self.llm_call == "local_activity" and self.tool_call == "local_activity":
            raise ValueError(
                "llm_call and tool_call cannot both be local_activity: the whole run would be one workflow task"
            )
        return self

    @model_validator(mode="after")
    def _policies_name_the_run_servers(self) -> RunOptions:
        if self.mcp_servers is not None:
            for field in ("require_approval", "allowed_tools"):
                others = sorted(set(getattr(self, field) or {}) - set(self.mcp_servers))
                if others:
                    raise ValueError(f"{field} names servers that are not in mcp_servers: {others}")
        return self

    def tool_call_mode(self) -> Literal["local_activity", "activity"]:
        """`tool_call`, or its default: a local activity unless the LLM call is one."""
        if self.tool_call is not None:
            return self.tool_call
        return "activity" if self.llm_call == "local_activity" else "local_activity"


class OrchestrationRequest(RunOptions):
    """A run's request, as the workflow receives it: the client's options, and what the API or
    the chat route adds (the caller's key and scope, the webhook URL as text)."""

    webhook_url: str | None = None
    tool_output_limit_bytes: int = Field(default=DEFAULT_TOOL_OUTPUT_LIMIT_BYTES, ge=256)
    continue_as_new_after_events: int = Field(default=DEFAULT_CONTINUE_AS_NEW_AFTER_EVENTS, ge=50)
    owner: str | None = Field(default=None, description="Name of the API key that started the run.")
    tool_scope: list[str] | None = Field(
        default=None,
        description="MCP scope of that key (`server` or `server.tool`, globs): tools outside it are never offered.",
    )
