"""What a new run may ask for: its prompt's size, its webhook target (no SSRF), the MCP
servers of the caller's scope. (Every request's body size and nesting: `api.body_limit`.)"""

from __future__ import annotations

import json
from typing import Any

from api.auth import Principal
from api.errors import APIError
from api.schemas import CreateOrchestration
from worker.settings import Settings
from workflows.scopes import scope_allows
from workflows.webhook_targets import literal_target_problem


def check_run_request(body: CreateOrchestration, settings: Settings) -> None:
    """Refuse prompts over the size limit (413) and webhooks aimed inside the network (422)."""
    prompt: list[Any] = [body.input, body.instructions, [m.model_dump(mode="json") for m in body.messages or []]]
    size = len(json.dumps(prompt).encode())
    if size > settings.max_prompt_bytes:
        raise APIError(413, "prompt_too_large", f"prompt is {size} bytes; the limit is {settings.max_prompt_bytes}")
    if body.webhook_url is not None and body.webhook_url.host:
        problem = literal_target_problem(body.webhook_url.host, settings.webhook_hosts_allowed)
        if problem is not None:
            raise APIError(
                422,
                "webhook_url_refused",
                f"webhook_url refused: {problem} (allowed hosts: ORCH_WEBHOOK_ALLOWED_HOSTS)",
            )


def check_scope(body: CreateOrchestration, caller: Principal) -> None:
    """Refuse (403) a run that names an MCP server outside the caller's scope. Tools outside
    it are filtered out when the run starts, so the model is never offered them."""
    outside = [name for name in body.mcp_servers or [] if not scope_allows(caller.mcp_scopes, name)]
    if outside:
        raise APIError(403, "outside_scope", f"API key {caller.name!r} may not use MCP servers {outside}")
