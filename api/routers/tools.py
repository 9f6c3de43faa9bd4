"""/v1/tools: the configured MCP servers' tools and their policy."""

from __future__ import annotations

from fastapi import APIRouter

from api.auth import Caller
from api.deps import ServiceDep
from api.errors import error_responses
from api.schemas import ToolsResponse
from workflows.scopes import scope_allows

router = APIRouter(prefix="/v1/tools", tags=["tools"])


@router.get("", response_model=ToolsResponse, responses=error_responses(401, 403, 503))
async def list_tools(caller: Caller, service: ServiceDep) -> ToolsResponse:
    """Asked of a worker through Temporal (the API holds no MCP connection or secret); cached briefly.
    A key with an MCP scope sees only the servers and tools inside it."""
    listing = await service.tools.get()
    if caller.mcp_scopes is None:
        return listing
    servers = [
        server.model_copy(
            update={"tools": [tool for tool in server.tools if scope_allows(caller.mcp_scopes, server.name, tool.name)]}
        )
        for server in listing.servers
        if scope_allows(caller.mcp_scopes, server.name)
    ]
    return ToolsResponse(servers=servers)
