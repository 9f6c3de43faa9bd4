"""The OpenAI Responses API's request (`POST /v1/responses`), read strictly: what it asks of a run.

Every field is either supported or refused with a 400 that names it (`param`) and says why;
nothing is dropped without a word. `tools` are `mcp` tools naming servers this service already
has: `server_label` is the server's name, `server_url` (optional) must be that server's URL, and
`require_approval` and `allowed_tools` become the run's own options (`RunOptions`), which only
ever tighten the server's policy. The input's `mcp_approval_response` items are decisions about
the calls of the response they follow (`previous_response_id`); its messages are the run's
prompt. What a response shows of its run: `api.response_output`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from activities.mcp_config import public_url
from api.errors import APIError
from api.response_output import parse_approval_request_id
from api.schemas import CreateOrchestration
from workflows.activity_io import ServerTools
from workflows.chat_messages import ChatMessage
from workflows.limits import Metadata, ModelName, Reason
from workflows.messages import ApprovalDecision
from workflows.run_request import ApprovalFilter, ToolNames
from workflows.validation_errors import first_problem

_RUN_SETTINGS = "the run's model calls are made by the worker, with its own settings"
UNSUPPORTED_FIELDS = {
    "temperature": _RUN_SETTINGS,
    "top_p": _RUN_SETTINGS,
    "top_logprobs": _RUN_SETTINGS,
    "max_output_tokens": _RUN_SETTINGS,
    "reasoning": _RUN_SETTINGS,
    "service_tier": _RUN_SETTINGS,
    "truncation": _RUN_SETTINGS + " (the run keeps its conversation to its context budget)",
    "text": "the answer is text; structured output formats are not supported",
    "prompt_cache_key": _RUN_SETTINGS,
    "prompt_cache_retention": _RUN_SETTINGS,
    "include": "there is nothing extra to include: no reasoning, logprobs or search results are kept",
    "prompt": "there are no stored prompt templates here; send `instructions` and `input`",
    "conversation": "conversations are continued with `previous_response_id`",
    "context_management": "the run keeps its conversation to its context budget",
    "user": "the caller is the API key",
    "safety_identifier": "the caller is the API key",
    "stream_options": "a stream is always resumable (`starting_after`) and has no other options",
    "background_options": "background responses have no options",
}
"""Fields of OpenAI's Responses API that this service refuses, and why (others: not supported)."""
_MCP_TOOL_FIELDS = {"type", "server_label", "server_url", "require_approval", "allowed_tools"}
_MCP_TOOL_REFUSED = {
    "headers": "a server's credentials are configured with the server (`/v1/mcp/servers`, OAuth per key), "
    "never sent with a request",
    "authorization": "a server's credentials are configured with the server (`/v1/mcp/servers`, OAuth per key), "
    "never sent with a request",
    "connector_id": "only MCP servers configured on this service can be used",
    "tunnel_id": "only MCP servers configured on this service can be used",
    "server_description": "the model sees each tool's own description",
    "defer_loading": "every tool of a run is offered from its start",
    "allowed_callers": "tools are called by the model directly",
}


class ResponsesRequest(BaseModel):
    """Body of `POST /v1/responses`: OpenAI's fields this service supports. Any other field is
    refused (400, `param` naming it)."""

    model_config = ConfigDict(extra="allow")

    model: ModelName = Field(default=None, description="Default: the worker's ORCH_DEFAULT_MODEL.")
    input: str | list[dict[str, Any]] | None = Field(
        default=None,
        description="The prompt, or items: messages (`role`, `content` as text or `input_text` parts) and "
        "`mcp_approval_response` items (with `previous_response_id`).",
    )
    instructions: str | None = Field(default=None, description="The system prompt (not carried to follow-ups).")
    tools: list[dict[str, Any]] = Field(
        default_factory=list,
        max_length=50,
        description="`mcp` tools: `server_label` names a server of this service (`GET /v1/tools`); `server_url`, "
        "if given, must be its URL; `require_approval` (default `always`) and `allowed_tools` only tighten the "
        "server's own policy.",
    )
    previous_response_id: str | None = Field(
        default=None, max_length=200, description="Continue that response: answer its approval requests, or follow up."
    )
    background: bool = Field(default=False, strict=True, description="Answer at once; poll GET /v1/responses/{id}.")
    stream: bool = Field(default=False, strict=True, description="Server-Sent Events of the response as it goes.")
    metadata: Metadata = Field(default_factory=dict)
    max_tool_calls: int | None = Field(default=None, ge=1, le=1000, strict=True)
    store: bool = Field(
        default=True, strict=True, description="Always true: every response is a durable run, kept by Temporal."
    )
    tool_choice: Literal["auto"] = Field(default="auto", description="Only `auto`: the model decides.")
    parallel_tool_calls: Literal[True] = Field(default=True, description="Only true: a reply's calls run together.")

    def plan(self) -> ResponsePlan:
        """What the request asks for, or a 400 naming the first field that cannot be honoured."""
        for name in self.model_extra or {}:
            why = UNSUPPORTED_FIELDS.get(name, "it is not part of this service's Responses API")
            raise _refused(name, f"`{name}` is not supported: {why}")
        if self.store is False:
            raise _refused(
                "store",
                "`store: false` cannot be honoured: every response is a durable run, kept by Temporal for the "
                "namespace's retention",
            )
        plan = ResponsePlan(tools=[_mcp_tool(tool, index) for index, tool in enumerate(self.tools)])
        labels = [tool.server_label for tool in plan.tools]
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            raise _refused("tools", f"each server may be named once; repeated: {repeated}")
        items: list[Any] = (
            [{"role": "user", "content": self.input}] if isinstance(self.input, str) else self.input or []
        )
        for index, item in enumerate(items):
            _read_item(item, index, plan)
        if plan.approvals and self.previous_response_id is None:
            raise _refused("input", "`mcp_approval_response` items answer the response named by `previous_response_id`")
        if plan.approvals and plan.messages:
            raise _refused(
                "input",
                "a request that answers approval requests cannot add messages: the run goes on from where it waited",
            )
        if not plan.approvals and not any(message.role == "user" for message in plan.messages):
            raise _refused("input", "give `input`: a prompt, or items with at least one user message")
        return plan

    def run_body(self, plan: ResponsePlan, history: list[ChatMessage]) -> CreateOrchestration:
        """The run that answers this request, after `history` (a follow-up's earlier conversation)."""
        labels = [tool.server_label for tool in plan.tools]
        try:
            return CreateOrchestration(
                messages=[*history, *plan.messages],
                model=self.model,
                instructions=self.instructions,
                mcp_servers=labels,
                require_approval={tool.server_label: tool.require_approval for tool in plan.tools} or None,
                allowed_tools={tool.server_label: tool.allowed for tool in plan.tools if tool.allowed is not None}
                or None,
                max_tool_calls=self.max_tool_calls,
                metadata=self.metadata,
            )
        except ValidationError as err:
            raise APIError(422, "invalid_request", first_problem(err, located=False)) from None

    def echo(self, plan: ResponsePlan) -> dict[str, Any]:
        """What each response of the run repeats of this request (kept in the run's memo)."""
        return {
            "model": self.model,
            "instructions": self.instructions,
            "tools": [tool.shown() for tool in plan.tools],
            "max_tool_calls": self.max_tool_calls,
            "background": self.background,
            "previous_response_id": self.previous_response_id,
        }

    def check_pinned(self, plan: ResponsePlan, started: dict[str, Any]) -> None:
        """A request answering approvals goes on with its run as it `started`: what it sends of the
        run's model, instructions, tools, tool-call bound and metadata must be what the run has."""
        sent: dict[str, Any] = {
            "model": self.model,
            "instructions": self.instructions,
            "max_tool_calls": self.max_tool_calls,
            "metadata": self.metadata,
            "tools": [tool.shown() for tool in plan.tools],
        }
        for name in sorted(self.model_fields_set & set(sent)):
            if sent[name] != started.get(name):
                raise APIError(
                    400,
                    "pinned_by_the_run",
                    f"`{name}` differs from the run's: a run keeps what it started with; leave it out, or send the "
                    "same",
                    param=name,
                )


class McpTool(BaseModel):
    """An `mcp` tool of the request, as this service reads it."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["mcp"]
    server_label: str = Field(min_length=1, max_length=128)
    server_url: str | None = Field(default=None, max_length=2048)
    require_approval: Literal["always", "never"] | ApprovalFilter = "always"
    allowed_tools: list[str] | ToolNames | None = None

    @property
    def allowed(self) -> list[str] | None:
        return self.allowed_tools.tool_names if isinstance(self.allowed_tools, ToolNames) else self.allowed_tools

    def shown(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class ApprovalAnswer(BaseModel):
    """An `mcp_approval_response` input item."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["mcp_approval_response"]
    approval_request_id: str = Field(min_length=1, max_length=300)
    approve: bool = Field(strict=True)
    reason: Reason = None
    id: str | None = Field(default=None, max_length=300)


@dataclass
class ResponsePlan:
    tools: list[McpTool]
    messages: list[ChatMessage] = field(default_factory=list)
    approvals: list[tuple[int, ApprovalAnswer]] = field(default_factory=list)
    """Each answer with its position in `input`."""

    def decisions(self, response_id: str, requests: Collection[str], approver: str | None) -> list[ApprovalDecision]:
        """The answers as decisions by `approver`, each about exactly the call of its request (its
        id and approval hash); 400 unless they answer each of `requests` (the approval requests of
        response `response_id`) once."""
        decisions: list[ApprovalDecision] = []
        for index, answer in self.approvals:
            parsed = parse_approval_request_id(answer.approval_request_id)
            if answer.approval_request_id not in requests or parsed is None:
                raise APIError(
                    400,
                    "unknown_approval_request",
                    f"{answer.approval_request_id!r} is not an approval request of response {response_id}",
                    param=f"input[{index}].approval_request_id",
                )
            tool_call_id, approval_hash = parsed
            if any(decision.tool_call_id == tool_call_id for decision in decisions):
                raise APIError(
                    400, "repeated_approval", "each approval request is answered once", param=f"input[{index}]"
                )
            decisions.append(
                ApprovalDecision(
                    tool_call_id=tool_call_id,
                    decision="approve" if answer.approve else "deny",
                    reason=answer.reason,
                    approver=approver,
                    approval_hash=approval_hash,
                )
            )
        unanswered = sorted(set(requests) - {answer.approval_request_id for _, answer in self.approvals})
        if unanswered:
            raise APIError(
                400,
                "unanswered_approval_requests",
                f"answer every approval request of response {response_id} together; not answered: {unanswered}",
                param="input",
            )
        return decisions


def check_servers(tools: list[McpTool], listing: list[ServerTools]) -> None:
    """400 for a tool naming a server this service lacks or has disabled, or a URL not its."""
    servers = {server.name: server for server in listing}
    for index, tool in enumerate(tools):
        server = servers.get(tool.server_label)
        if server is None:
            raise _refused(
                f"tools[{index}].server_label",
                f"{tool.server_label!r} is not an MCP server of this service (GET /v1/tools lists them); "
                "servers are added by an admin, never by a request",
            )
        if not server.enabled:
            raise _refused(f"tools[{index}].server_label", f"MCP server {tool.server_label!r} is disabled")
        if tool.server_url is not None and (server.url is None or public_url(tool.server_url) != server.url):
            raise _refused(
                f"tools[{index}].server_url",
                f"{tool.server_url!r} is not the URL of MCP server {tool.server_label!r}; leave `server_url` out, or "
                "send the server's own: a request never reaches a server that is not configured",
            )


def _mcp_tool(tool: dict[str, Any], index: int) -> McpTool:
    where = f"tools[{index}]"
    if tool.get("type") != "mcp":
        raise _refused(
            f"{where}.type",
            f"tools of type {tool.get('type')!r} are not supported: only `mcp` tools, run on the server",
        )
    for name in tool:
        if name in _MCP_TOOL_REFUSED:
            raise _refused(f"{where}.{name}", f"`{name}` is not supported: {_MCP_TOOL_REFUSED[name]}")
        if name not in _MCP_TOOL_FIELDS:
            raise _refused(f"{where}.{name}", f"`{name}` is not supported in an `mcp` tool")
    for filter_field in ("require_approval", "allowed_tools"):
        value = tool.get(filter_field)
        filters = [value, *value.values()] if isinstance(value, dict) else []
        if any(isinstance(part, dict) and "read_only" in part for part in filters):
            raise _refused(
                f"{where}.{filter_field}",
                "`read_only` filters are not supported: they trust the server's own readOnlyHint, and this service "
                "never lets a server's word decide what runs without a person; name the tools (`tool_names`)",
            )
    try:
        return McpTool.model_validate(tool)
    except ValidationError as err:
        raise _refused(where, first_problem(err, located=True)) from None


_MESSAGE_FIELDS = {"type", "role", "content", "id", "status"}
_TEXT_PARTS = {"input_text", "output_text", "text"}


def _read_item(item: Any, index: int, plan: ResponsePlan) -> None:
    where = f"input[{index}]"
    if not isinstance(item, dict):
        raise _refused(where, "each input item must be an object")
    kind = item.get("type", "message")
    if kind == "mcp_approval_response":
        try:
            plan.approvals.append((index, ApprovalAnswer.model_validate(item)))
        except ValidationError as err:
            raise _refused(where, first_problem(err, located=True)) from None
        return
    if kind != "message":
        raise _refused(
            f"{where}.type",
            f"input items of type {kind!r} are not supported: send messages and `mcp_approval_response` items; the "
            "run keeps its own tool calls and results (`previous_response_id` continues them)",
        )
    unknown = sorted(set(item) - _MESSAGE_FIELDS)
    if unknown:
        raise _refused(f"{where}.{unknown[0]}", f"`{unknown[0]}` is not supported in a message")
    role = item.get("role")
    if role not in ("user", "system", "developer", "assistant"):
        raise _refused(f"{where}.role", "a message's role is `user`, `system`, `developer` or `assistant`")
    plan.messages.append(ChatMessage(role=role, content=_text(item.get("content"), where)))


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _refused(f"{where}.content", "a message's content is text, or a list of text parts")
    texts = []
    for number, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in _TEXT_PARTS or not isinstance(part.get("text"), str):
            raise _refused(
                f"{where}.content[{number}]",
                f"content parts of type {kind!r} are not supported: only text (`input_text`)",
            )
        texts.append(part["text"])
    return "".join(texts)


def _refused(param: str, message: str) -> APIError:
    return APIError(400, "unsupported" if "not supported" in message else "invalid_request", message, param=param)
