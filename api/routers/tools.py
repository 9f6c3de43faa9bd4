"""/v1/tools: the configured MCP servers' tools and their policy."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ServiceDep
from api.errors import error_responses
from api.schemas import ToolsResponse

router = APIRouter(prefix="/v1/tools", tags=["tools"])


@router.get("", response_model=ToolsResponse, responses=error_responses(503))
async def list_tools(service: ServiceDep) -> ToolsResponse:
    """Asked of a worker through Temporal (the API holds no MCP connection or secret); cached briefly."""
    return await service.tools()
