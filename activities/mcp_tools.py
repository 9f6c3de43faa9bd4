"""MCP activities: resolve a run's tool catalog at start, and call one tool."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import mcp_types
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities.heartbeat import heartbeating
from activities.mcp_config import MCPAuthRequired, MCPConfigError, MCPServerConfig, ToolPolicy
from activities.mcp_pool import MCPServerUnknown, MCPSessionPool, MCPToolTimeout, describe_error
from activities.observed import annotate, measured
from workflows import metrics
from workflows.activity_io import (
    ApprovalRule,
    CatalogTool,
    ListToolsInput,
    PreparedRun,
    PrepareRunInput,
    ServerTools,
    ToolCallInput,
    ToolCallOutput,
    ToolCatalog,
    ToolDescription,
    ToolListing,
    WorkerDefaults,
)
from workflows.contract import CALL_TOOL_ACTIVITY, DESCRIBE_TOOLS_ACTIVITY, PREPARE_RUN_ACTIVITY
from workflows.scopes import scope_allows
from workflows.tool_calls import definition_hash

logger = logging.getLogger(__name__)

LIST_TOOLS_TIMEOUT_SECONDS = 30.0
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
            for tool in tools:
                policy, rules = _policy(server_config, tool)
                if policy == "denied" or not scope_allows(input.tool_scope, server, tool.name):
                    continue
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
                    )
                )
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
        """Run one tool call. An MCP error result is data for the model; transport failures raise."""
        # The idempotency key lets a server recognise a retried delivery of the same call.
        meta = {"io.github.durable-orchestrations/idempotency-key": input.idempotency_key}
        labels = {"server": input.server, "tool": input.tool}
        annotate({"orch.mcp.server": input.server, "orch.mcp.tool": input.tool})
        try:
            with measured(metrics.TOOL_CALLS, metrics.TOOL_CALL_LATENCY, labels) as outcome:
                async with heartbeating():
                    if input.definition_hash:
                        await self._check_pinned_definition(input)
                    result = await self._pool.call_tool(
                        input.server,
                        input.tool,
                        input.arguments,
                        timeout=input.timeout_seconds,
                        meta=meta,
                        subject=input.owner,
                    )
                outcome["outcome"] = "error" if result.is_error else "ok"
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
        text, truncated = truncate_utf8(render_result(result), input.output_limit_bytes)
        return ToolCallOutput(text=text, is_error=bool(result.is_error), truncated=truncated)

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
