"""MCP activities: resolve a run's tool catalog at start, and call one tool."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import Any

import mcp_types
from mcp import MCPError
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities.heartbeat import heartbeating
from activities.mcp_config import MCPAuthRequired, MCPConfigError, MCPServerConfig, ToolPolicy, public_url
from activities.mcp_pool import (
    MCPServerUnknown,
    MCPSessionPool,
    MCPToolTimeout,
    describe_error,
    roots_of,
)
from activities.mcp_tasks import CreatedTask, DetailedTask, cancel_task, get_task, server_task, update_task
from activities.observed import annotate, measured
from workflows import metrics
from workflows.activity_io import (
    ApprovalRule,
    CatalogTool,
    InputRequired,
    ListToolsInput,
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
    WorkerDefaults,
)
from workflows.contract import (
    CALL_TOOL_ACTIVITY,
    CANCEL_TASK_ACTIVITY,
    DESCRIBE_TOOLS_ACTIVITY,
    GET_TASK_ACTIVITY,
    PREPARE_RUN_ACTIVITY,
    TOOL_PROGRESS_SIGNAL,
    UPDATE_TASK_ACTIVITY,
)
from workflows.messages import ToolProgress
from workflows.run_request import requires_approval
from workflows.scopes import scope_allows
from workflows.tool_calls import definition_hash

logger = logging.getLogger(__name__)

LIST_TOOLS_TIMEOUT_SECONDS = 30.0
TASK_REQUEST_TIMEOUT_SECONDS = 10.0
PROGRESS_INTERVAL_SECONDS = 1.0
"""A call's progress reaches its run at most this often (the last one always)."""
_FUNCTION_NAME_INVALID = re.compile(r"[^A-Za-z0-9_-]")
_FUNCTION_NAME_MAX = 64


class MCPActivities:
    """Activities over the worker's MCP session pool (injected, so tests pass their own)."""

    def __init__(self, pool: MCPSessionPool, defaults: WorkerDefaults) -> None:
        self._pool = pool
        self._defaults = defaults

    @activity.defn(name=PREPARE_RUN_ACTIVITY)
    async def prepare_run(self, input: PrepareRunInput) -> PreparedRun:
        """List the tools of the run's servers and apply each server's policy, once per run;
        with the worker's defaults.

        The result is recorded in history, so a config change or a server changing its tools
        never alters a running orchestration. An unreachable server is recorded as unavailable
        and the run goes on without its tools.
        """
        config = self._pool.config
        named = input.mcp_servers or []
        catalog = ToolCatalog()
        listed: list[str] = []
        used_names: set[str] = set()
        for server in config.offered_servers(input.mcp_servers):
            server_config = config.servers.get(server)
            if server_config is None:
                catalog.unavailable_servers[server] = "not configured on this worker"
                continue
            if not server_config.is_enabled:
                catalog.unavailable_servers[server] = "disabled in the MCP config"
                continue
            if not scope_allows(input.tool_scope, server):
                if server in named:
                    catalog.unavailable_servers[server] = "outside the API key's MCP scope"
                continue
            try:
                tools = await self._list_tools(server, input.owner)
            except MCPAuthRequired as err:
                catalog.unavailable_servers[server] = str(err)
                continue
            except Exception as err:
                catalog.unavailable_servers[server] = describe_error(err)
                continue
            listed.append(server)
            allowed = (input.allowed_tools or {}).get(server)
            for tool in tools:
                policy, rules = _policy(server_config, tool)
                if policy == "denied" or not scope_allows(input.tool_scope, server, tool.name):
                    continue
                if allowed is not None and tool.name not in allowed:
                    continue
                if requires_approval((input.require_approval or {}).get(server), tool.name):
                    policy, rules = "execute", []  # the run asks for a person: the stricter of the two wins
                catalog.tools.append(
                    CatalogTool(
                        server=server,
                        tool=tool.name,
                        function_name=_function_name(server, tool.name, used_names),
                        description=_tool_description(tool),
                        input_schema=_tool_schema(tool),
                        model_intent=server_config.model_intent,
                        auto_execute=policy == "auto_execute",
                        auto_approve_rules=rules,
                        price_usd=server_config.tool_pricing.get(tool.name, 0.0),
                        definition_hash=_definition_hash(tool),
                        sampling=server_config.sampling,
                    )
                )
        catalog.servers = listed
        return PreparedRun(catalog=catalog, defaults=self._defaults)

    @activity.defn(name=DESCRIBE_TOOLS_ACTIVITY)
    async def describe_tools(self, input: ListToolsInput) -> ToolListing:
        """Every configured server's tools with their policy, for GET /v1/tools."""
        config = self._pool.config
        names = input.servers if input.servers is not None else list(config.servers)
        listing = ToolListing()
        for name in names:
            server_config = config.servers.get(name)
            if server_config is None:
                continue
            entry = ServerTools(
                name=name,
                transport=server_config.transport or "stdio",
                enabled=server_config.is_enabled,
                url=public_url(server_config.url) if server_config.url else None,
                source=config.source_of(name),
                availability=server_config.availability,
                auth=server_config.auth.type,
                state="disconnected",
            )
            listing.servers.append(entry)
            if not entry.enabled or entry.auth == "oauth_per_key":
                continue  # disabled: off everywhere; per key: each key's own tools, listed at its runs
            try:
                tools = await self._list_tools(name)
            except Exception as err:
                entry.error = describe_error(err)
                entry.state = "error"
                continue
            entry.state = "connected"
            for tool in tools:
                policy, rules = _policy(server_config, tool)
                entry.tools.append(
                    ToolDescription(
                        name=tool.name,
                        description=_tool_description(tool),
                        input_schema=_tool_schema(tool),
                        policy=policy,
                        auto_approve_rules=rules,
                    )
                )
        return listing

    @activity.defn(name=CALL_TOOL_ACTIVITY)
    async def call_tool(self, input: ToolCallInput) -> ToolCallOutput:
        """Run one tool call, or retry it with the answers to what its server asked. An MCP error
        result is data for the model; transport failures raise. A server may answer that it needs
        input (`input_required`; the roots it asks for are answered here, from its configuration)
        or with a task, which the run follows."""
        # The idempotency key lets a server recognise a retried delivery of the same call.
        meta = {"io.github.durable-orchestrations/idempotency-key": input.idempotency_key}
        labels = {"server": input.server, "tool": input.tool}
        annotate({"orch.mcp.server": input.server, "orch.mcp.tool": input.tool})
        progress = _ProgressReporter(input.tool_call_id) if input.tool_call_id else None
        try:
            with measured(metrics.TOOL_CALLS, metrics.TOOL_CALL_LATENCY, labels) as outcome:
                async with heartbeating():
                    if input.definition_hash and input.request_state is None and input.input_responses is None:
                        await self._check_pinned_definition(input)
                    answer = await self._pool.call_tool(
                        input.server,
                        input.tool,
                        input.arguments,
                        timeout=input.timeout_seconds,
                        meta=meta,
                        subject=input.owner,
                        input_responses=input.input_responses,
                        request_state=input.request_state,
                        on_progress=progress.report if progress else None,
                    )
                    if progress is not None:
                        await progress.flush()
                result = answer.result
                outcome["outcome"] = "error" if getattr(result, "is_error", False) else "ok"
        except MCPToolTimeout as err:
            # Expected and reported to the model: logged without a traceback (BENIGN).
            raise ApplicationError(
                str(err), type="ToolTimeout", non_retryable=True, category=ApplicationErrorCategory.BENIGN
            ) from None
        except MCPServerUnknown as err:
            raise ApplicationError(str(err), type="MCPServerNotConfigured", non_retryable=True) from None
        except MCPAuthRequired as err:
            raise ApplicationError(
                str(err), type="MCPAuthRequired", non_retryable=True, category=ApplicationErrorCategory.BENIGN
            ) from None
        except MCPConfigError as err:
            # e.g. a `${VAR}` the worker's environment lacks: retrying cannot help.
            raise ApplicationError(str(err), type="MCPConfigError", non_retryable=True) from None
        if isinstance(result, mcp_types.InputRequiredResult):
            return ToolCallOutput(input_required=self._input_required(input.server, result), notes=answer.notes)
        if isinstance(result, CreatedTask):
            return ToolCallOutput(task=server_task(result), notes=answer.notes)
        output = _output(result, input.output_limit_bytes)
        output.notes = answer.notes
        return output

    def _input_required(self, server: str, result: mcp_types.InputRequiredResult) -> InputRequired:
        """What the server asks, as the run records it; roots answered from the server's configuration."""
        asked = InputRequired(request_state=result.request_state)
        config = self._pool.config.servers.get(server)
        for key, request in (result.input_requests or {}).items():
            if isinstance(request, mcp_types.ListRootsRequest):
                roots = roots_of(config) if config is not None else mcp_types.ListRootsResult(roots=[])
                asked.answered[key] = roots.model_dump(mode="json", by_alias=True, exclude_none=True)
            else:
                asked.requests[key] = request.model_dump(mode="json", by_alias=True, exclude_none=True)
        return asked

    @activity.defn(name=GET_TASK_ACTIVITY)
    async def get_task(self, input: TaskRequest) -> ServerTask:
        """`tasks/get`: where a task a tool call answered with is; its result once it has one."""
        task: DetailedTask = await self._task_request(input, get_task)
        seen = server_task(task)
        if task.status == "completed":
            result = mcp_types.CallToolResult.model_validate(task.result or {"content": []}, by_name=False)
            seen.output = _output(result, input.output_limit_bytes)
        elif task.status == "failed":
            error = task.error or {}
            seen.output = ToolCallOutput(
                text=f"MCP error {error.get('code', '')}: {error.get('message') or task.status_message or 'failed'}",
                is_error=True,
            )
        return seen

    @activity.defn(name=UPDATE_TASK_ACTIVITY)
    async def update_task(self, input: TaskRequest) -> None:
        """`tasks/update`: the answers to what an `input_required` task asked."""
        responses = input.input_responses or {}
        await self._task_request(
            input, lambda session, task_id, timeout: update_task(session, task_id, responses, timeout)
        )

    @activity.defn(name=CANCEL_TASK_ACTIVITY)
    async def cancel_task(self, input: TaskRequest) -> None:
        """`tasks/cancel` (the run was cancelled)."""
        await self._task_request(input, cancel_task)

    async def _task_request(self, input: TaskRequest, send: Any) -> Any:
        annotate({"orch.mcp.server": input.server, "orch.mcp.task": input.task_id})
        try:
            async with self._pool.task_session(input.server, input.owner) as session:
                return await send(session, input.task_id, TASK_REQUEST_TIMEOUT_SECONDS)
        except MCPServerUnknown as err:
            raise ApplicationError(str(err), type="MCPServerNotConfigured", non_retryable=True) from None
        except MCPAuthRequired as err:
            raise ApplicationError(str(err), type="MCPAuthRequired", non_retryable=True) from None
        except MCPError as err:
            if err.code == mcp_types.INVALID_PARAMS:  # unknown or expired task: asking again cannot help
                raise ApplicationError(
                    f"task {input.task_id}: MCP error {err.code}: {err.error.message}",
                    type="TaskGone",
                    non_retryable=True,
                ) from None
            raise

    async def _list_tools(self, server: str, subject: str | None = None) -> list[mcp_types.Tool]:
        """A server's tools (as `subject`'s key sees them), fresh, bounded in time, heartbeating meanwhile."""
        async with heartbeating():
            return await asyncio.wait_for(self._pool.list_tools(server, subject), LIST_TOOLS_TIMEOUT_SECONDS)

    async def _check_pinned_definition(self, input: ToolCallInput) -> None:
        """Refuse a call whose tool changed its description or schema since the run started
        (a "rug pull": the person approved, and the model chose, the old definition)."""
        tools = await self._pool.list_tools(input.server, input.owner)
        current = next((tool for tool in tools if tool.name == input.tool), None)
        if current is None or _definition_hash(current) != input.definition_hash:
            what = "is gone" if current is None else "changed its description or input schema"
            raise ApplicationError(
                f"tool {input.server}.{input.tool} {what} since this run started; refusing to call it",
                type="ToolDefinitionChanged",
                non_retryable=True,
                category=ApplicationErrorCategory.BENIGN,
            )


class _ProgressReporter:
    """Sends a call's `notifications/progress` to its run as the `tool_progress` signal: the first
    at once, then at most one per PROGRESS_INTERVAL_SECONDS, the last one always (`flush`)."""

    def __init__(self, tool_call_id: str) -> None:
        self._tool_call_id = tool_call_id
        self._sent_at = 0.0
        self._unsent: ToolProgress | None = None

    async def report(self, progress: float, total: float | None, message: str | None) -> None:
        self._unsent = ToolProgress(
            tool_call_id=self._tool_call_id,
            progress=progress,
            total=total,
            message=(message or None) and message[:1000],
        )
        if time.monotonic() - self._sent_at >= PROGRESS_INTERVAL_SECONDS:
            await self.flush()

    async def flush(self) -> None:
        update, self._unsent = self._unsent, None
        if update is None:
            return
        self._sent_at = time.monotonic()
        info = activity.info()
        try:
            handle = activity.client().get_workflow_handle(info.workflow_id or "", run_id=info.workflow_run_id)
            await handle.signal(TOOL_PROGRESS_SIGNAL, update)
        except Exception as err:  # progress is informative: the call goes on without it
            logger.info("progress of %s not delivered: %s", self._tool_call_id, describe_error(err))


def _output(result: mcp_types.CallToolResult, limit_bytes: int) -> ToolCallOutput:
    text, truncated = truncate_utf8(render_result(result), limit_bytes)
    return ToolCallOutput(text=text, is_error=bool(result.is_error), truncated=truncated)


def _definition_hash(tool: mcp_types.Tool) -> str:
    return definition_hash(_tool_description(tool), _tool_schema(tool))


def _tool_description(tool: mcp_types.Tool) -> str:
    return tool.description or tool.title or ""


def _policy(server: MCPServerConfig, tool: mcp_types.Tool) -> tuple[ToolPolicy, list[ApprovalRule]]:
    """The tool's policy on `server` (denied when the server does not offer it) and, for a tool
    that waits for approval, the rules that may approve its calls instead of a person."""
    policy = server.policy_for(tool.name) or "denied"
    return policy, server.rules_for(tool.name) if policy == "execute" else []


def _tool_schema(tool: mcp_types.Tool) -> dict[str, Any]:
    """The input schema offered to the model (and pinned by `definition_hash`)."""
    return tool.input_schema or {"type": "object", "properties": {}}


def render_result(result: mcp_types.CallToolResult) -> str:
    """The tool result as the text of a tool message."""
    parts: list[str] = []
    for block in result.content:
        if isinstance(block, mcp_types.TextContent):
            parts.append(block.text)
        elif isinstance(block, mcp_types.ImageContent | mcp_types.AudioContent):
            parts.append(f"[{block.type}: {block.mime_type}, {len(block.data)} base64 chars]")
        elif isinstance(block, mcp_types.EmbeddedResource):
            resource = block.resource
            parts.append(getattr(resource, "text", None) or f"[resource {resource.uri}]")
        else:
            parts.append(json.dumps(block.model_dump(mode="json", by_alias=True, exclude_none=True)))
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content))
    return "\n".join(parts)


def truncate_utf8(text: str, limit_bytes: int) -> tuple[str, bool]:
    """Cut `text` to at most `limit_bytes` of UTF-8, with a marker saying how much was cut."""
    data = text.encode("utf-8")
    if len(data) <= limit_bytes:
        return text, False
    marker = f"\n[truncated: output was {len(data)} bytes, showing the first {{kept}}]"
    kept = max(0, limit_bytes - len(marker) - 16)
    head = data[:kept].decode("utf-8", errors="ignore")
    return head + marker.format(kept=len(head.encode("utf-8"))), True


def _function_name(server: str, tool: str, used: set[str]) -> str:
    """`<server>__<tool>` made valid for OpenAI function names (and unique within the run)."""
    base = _FUNCTION_NAME_INVALID.sub("_", f"{server}__{tool}")[:_FUNCTION_NAME_MAX]
    name, counter = base, 2
    while name in used:
        suffix = f"_{counter}"
        name = base[: _FUNCTION_NAME_MAX - len(suffix)] + suffix
        counter += 1
    used.add(name)
    return name
