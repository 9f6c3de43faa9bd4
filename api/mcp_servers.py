"""MCP servers over the API: the bodies of `/v1/mcp/servers`, a server as the API shows it
(secrets never: `has_secret` instead), and PATCH's merge.

A server's configuration is the file loader's model (`activities.mcp_config.MCPServerConfig`),
so a server added over the API is checked exactly as one in ORCH_MCP_CONFIG. The API only
stores it (`worker.store.servers`); the workers load it within seconds (`worker.mcp_registry`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from activities.mcp_config import (
    AuthType,
    Availability,
    MCPServerConfig,
    RootConfig,
    RuleConfig,
    Transport,
)
from api.errors import APIError
from worker.store.servers import ServerHealth, StoredServer
from workflows.activity_io import SamplingPolicy, ServerTools
from workflows.validation_errors import first_problem

ServerName = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="Letters, digits, `_` and `-` (it prefixes the tools' function names).",
    ),
]


class CreateMCPServer(MCPServerConfig):
    """A server to add: its name and every field of an ORCH_MCP_CONFIG entry."""

    name: ServerName


class ServerAuthPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: AuthType | None = None
    client_id: str | None = Field(default=None, max_length=500)
    client_secret: str | None = Field(default=None, max_length=2000)
    scope: str | None = Field(default=None, max_length=2000)
    issuer: str | None = Field(default=None, max_length=2000)


class UpdateMCPServer(BaseModel):
    """A JSON merge patch (RFC 7396) of a server: omitted fields stay as they are, `null` resets a
    field to its default, `headers`, `env` and `auth` are merged member by member (a `null`
    member is removed)."""

    model_config = ConfigDict(extra="forbid")

    command: str | None = None
    args: list[str] | None = None
    env: dict[str, str | None] | None = None
    cwd: str | None = None
    url: str | None = None
    transport: str | None = None
    headers: dict[str, str | None] | None = None
    enabled: bool | None = None
    tools_to_execute: list[str] | None = None
    tools_to_auto_execute: list[str] | None = None
    tool_deny_list: list[str] | None = None
    model_intent: bool | None = None
    tool_pricing: dict[str, float] | None = None
    auto_approve_rules: dict[str, list[RuleConfig]] | None = None
    availability: Availability | None = None
    auth: ServerAuthPatch | None = None
    sampling: SamplingPolicy | None = None
    roots: list[RootConfig] | None = None


class SecretValue(BaseModel):
    has_secret: Literal[True] = True


class AuthView(BaseModel):
    type: AuthType
    client_id: str | None = None
    scope: str | None = None
    issuer: str | None = None
    has_secret: bool = Field(default=False, description="A client secret is stored (it is never returned).")


class HealthView(BaseModel):
    state: Literal["connected", "disconnected", "error"]
    last_error: str | None = None
    last_error_at: datetime | None = None
    checked_at: datetime | None = None


class MCPServerView(BaseModel):
    """A server as the API shows it: every setting but secrets, its health and bookkeeping.
    Servers from ORCH_MCP_CONFIG (`source: "config"`) are read-only and shown as the workers
    report them."""

    name: str
    source: Literal["api", "config"]
    read_only: bool
    transport: Transport | str
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, SecretValue] = Field(default_factory=dict)
    env: dict[str, SecretValue] = Field(default_factory=dict)
    enabled: bool
    availability: Availability
    tools_to_execute: list[str] | None = None
    tools_to_auto_execute: list[str] | None = None
    tool_deny_list: list[str] | None = None
    model_intent: bool | None = None
    tool_pricing: dict[str, float] | None = None
    auto_approve_rules: dict[str, list[RuleConfig]] | None = None
    sampling: SamplingPolicy | None = Field(
        default=None, description="The server's requests to use the model: `approve`, `auto` or `deny`."
    )
    roots: list[RootConfig] | None = None
    auth: AuthView
    health: HealthView | None = None
    oauth_connected_keys: list[str] | None = Field(
        default=None, description="OAuth per key: the API keys that connected (`local` with keys off)."
    )
    revision: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class MCPServerList(BaseModel):
    servers: list[MCPServerView]


class OAuthConnectStart(BaseModel):
    authorization_url: str = Field(description="Open it in a browser; the authorization server sends you back here.")
    expires_in: int = Field(description="Seconds this API process waits for the authorization to complete.")


def view_of(stored: StoredServer, health: ServerHealth | None, connected: list[str] | None) -> MCPServerView:
    config = stored.config
    auth = config.auth
    return MCPServerView(
        name=stored.name,
        source="api",
        read_only=False,
        transport=config.transport or "stdio",
        command=config.command,
        args=config.args,
        cwd=config.cwd,
        url=config.url,
        headers=dict.fromkeys(sorted(config.headers), SecretValue()),
        env=dict.fromkeys(sorted(config.env), SecretValue()),
        enabled=config.is_enabled,
        availability=config.availability,
        tools_to_execute=config.tools_to_execute,
        tools_to_auto_execute=config.tools_to_auto_execute,
        tool_deny_list=config.tool_deny_list,
        model_intent=config.model_intent,
        tool_pricing=config.tool_pricing,
        auto_approve_rules=config.auto_approve_rules,
        sampling=config.sampling,
        roots=config.roots,
        auth=AuthView(
            type=auth.type,
            client_id=auth.client_id,
            scope=auth.scope,
            issuer=auth.issuer,
            has_secret=stored.has_client_secret,
        ),
        health=_health_view(health),
        oauth_connected_keys=connected if auth.type == "oauth_per_key" else None,
        revision=stored.revision,
        created_at=stored.created_at,
        updated_at=stored.updated_at,
    )


def view_of_file_entry(listed: ServerTools, health: ServerHealth | None) -> MCPServerView:
    """A server of the workers' ORCH_MCP_CONFIG, as their tool listing describes it."""
    listed_health = HealthView(state=listed.state, last_error=listed.error) if listed.state is not None else None
    return MCPServerView(
        name=listed.name,
        source="config",
        read_only=True,
        transport=listed.transport,
        enabled=listed.enabled,
        availability=listed.availability,
        auth=AuthView(type=listed.auth),
        health=_health_view(health) or listed_health,
    )


def _health_view(health: ServerHealth | None) -> HealthView | None:
    if health is None:
        return None
    return HealthView(
        state=health.state,
        last_error=health.last_error,
        last_error_at=health.last_error_at,
        checked_at=health.checked_at,
    )


def merged(current: MCPServerConfig, patch: UpdateMCPServer, *, commands: bool) -> MCPServerConfig:
    """`current` with `patch` applied, validated as a whole (422 naming the field otherwise)."""
    document: dict[str, Any] = current.model_dump(mode="json", exclude_defaults=True)
    document.pop("type", None)  # resolved into `transport` when it was first validated
    document.pop("disabled", None)
    document["enabled"] = current.is_enabled
    # Dumped with exclude_unset: what the client sent, nested members of `auth` included.
    for field, value in patch.model_dump(mode="json", exclude_unset=True).items():
        if field in ("headers", "env", "auth") and value is not None:
            members = {**document.get(field, {}), **value}
            document[field] = {key: member for key, member in members.items() if member is not None}
        elif value is None:
            document.pop(field, None)
        else:
            document[field] = value
    return validated(document, commands=commands)


def validated(document: dict[str, Any], *, commands: bool) -> MCPServerConfig:
    """The server the API would store (422 naming the field otherwise); a stdio server (a
    command the workers run) only when ORCH_MCP_API_COMMANDS allows it."""
    try:
        config = MCPServerConfig.model_validate(document)
    except ValidationError as err:
        raise APIError(422, "invalid_request", first_problem(err)) from None
    if config.transport == "stdio" and not commands:
        raise APIError(
            422,
            "stdio_not_allowed",
            "command: stdio servers (commands the workers run) are added over the API only with "
            "ORCH_MCP_API_COMMANDS=true; put them in ORCH_MCP_CONFIG, or use an HTTP server (`url`)",
        )
    return config
