"""The MCP server configuration file (`ORCH_MCP_CONFIG`): the desktop clients' `mcpServers`
format, extended with per-server tool policy.

Only the worker reads this file. `${VAR}` placeholders in `env` and `headers` stay
unresolved here and are filled in at connect time (`resolve_placeholders`), so secrets
never reach workflow history, the API, logs or webhooks.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from jsonschema import exceptions as jsonschema_exceptions
from jsonschema import validators
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from workflows.activity_io import ApprovalRule, SamplingPolicy
from workflows.validation_errors import first_problem

Transport = Literal["stdio", "streamable_http", "sse"]
ToolPolicy = Literal["execute", "auto_execute", "denied"]
Availability = Literal["force_on", "default_on", "default_off"]
AuthType = Literal["none", "oauth_client_credentials", "oauth_per_key"]

_TRANSPORT_ALIASES = {
    "http": "streamable_http",
    "streamable-http": "streamable_http",
    "streamableHttp": "streamable_http",
}
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class MCPConfigError(Exception):
    """The config file is missing, not JSON or invalid; the message names the file and the problem."""


class MCPAuthRequired(Exception):
    """The server takes OAuth tokens per API key and the run's key has none (or they can no
    longer be refreshed): the key's owner must connect first. Retrying cannot help."""


class RuleConfig(BaseModel):
    """One entry of `auto_approve_rules`: calls whose arguments match `arguments` (a JSON
    Schema, e.g. `{"properties": {"amount": {"maximum": 100}}, "required": ["amount"]}`)
    run without waiting for a person."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    arguments: dict[str, Any]

    @field_validator("arguments")
    @classmethod
    def _valid_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        try:
            validators.validator_for(schema).check_schema(schema)
        except jsonschema_exceptions.SchemaError as err:
            raise ValueError(f"not a valid JSON Schema: {err.message}") from None
        return schema


class ServerAuth(BaseModel):
    """How the worker authenticates to an HTTP server beyond its static `headers`: OAuth 2.0
    with the server's own client credentials (`oauth_client_credentials`, configured once), or
    with the token each API key obtained by connecting (`oauth_per_key`: authorization code
    with PKCE; `client_id` optional, the authorization server may register the client)."""

    model_config = ConfigDict(extra="forbid")

    type: AuthType = "none"
    client_id: str | None = Field(default=None, max_length=500)
    client_secret: str | None = Field(default=None, max_length=2000, description="Stored sealed, never returned.")
    scope: str | None = Field(default=None, max_length=2000, description="Space-separated scopes to ask for.")
    issuer: str | None = Field(
        default=None, max_length=2000, description="The authorization server the client credentials belong to."
    )

    @model_validator(mode="after")
    def _complete(self) -> ServerAuth:
        if self.type == "oauth_client_credentials" and not (self.client_id and self.client_secret):
            raise ValueError("oauth_client_credentials needs `client_id` and `client_secret`")
        if self.type == "none" and (self.client_id or self.client_secret):
            raise ValueError("`client_id` and `client_secret` need type oauth_client_credentials or oauth_per_key")
        return self


class RootConfig(BaseModel):
    """One entry of `roots`: a directory the server may work in, as MCP's `roots/list` answers it."""

    model_config = ConfigDict(extra="forbid")

    uri: str = Field(max_length=2000, description="A `file://` URI.")
    name: str | None = Field(default=None, max_length=200)

    @field_validator("uri")
    @classmethod
    def _file_uri(cls, uri: str) -> str:
        if not uri.startswith("file://"):
            raise ValueError("must be a file:// URI")
        return uri


class MCPServerConfig(BaseModel):
    """One entry of `mcpServers`: how to reach the server and which of its tools a run may use."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    url: str | None = None
    transport: Transport | None = None
    type: str | None = Field(default=None, description="Alias of `transport` used by some clients.")
    headers: dict[str, str] = Field(default_factory=dict)
    enabled: bool = True
    disabled: bool = False
    tools_to_execute: list[str] = Field(default_factory=lambda: ["*"])
    tools_to_auto_execute: list[str] = Field(default_factory=list)
    tool_deny_list: list[str] = Field(default_factory=list)
    model_intent: bool = False
    tool_pricing: dict[str, float] = Field(default_factory=dict)
    auto_approve_rules: dict[str, list[RuleConfig]] = Field(default_factory=dict)
    availability: Availability = Field(
        default="default_on",
        description="`force_on`: offered to every run; `default_on`: unless the run names other servers; "
        "`default_off`: only to runs that name it.",
    )
    auth: ServerAuth = Field(default_factory=ServerAuth)
    sampling: SamplingPolicy = Field(
        default="approve",
        description="The server's requests to use the model during a tool call: `approve` (a person allows each "
        "first), `auto` (the run's model answers at once) or `deny`.",
    )
    roots: list[RootConfig] = Field(default_factory=list, description="What the server's `roots/list` is answered.")

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None:
            parsed = urlsplit(url)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise ValueError("must be an http:// or https:// URL with a host")
        return url

    @field_validator("transport", mode="before")
    @classmethod
    def _normalise_transport(cls, value: Any) -> Any:
        return _TRANSPORT_ALIASES.get(value, value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_shape(self) -> MCPServerConfig:
        if self.transport is None and self.type is not None:
            kind = _TRANSPORT_ALIASES.get(self.type, self.type)
            if kind not in ("stdio", "streamable_http", "sse"):
                raise ValueError(f"unknown transport {self.type!r} (use stdio, streamable_http or sse)")
            self.transport = kind  # type: ignore[assignment]
        if self.transport is None:
            if self.command:
                self.transport = "stdio"
            elif self.url:
                self.transport = "streamable_http"
            else:
                raise ValueError("needs `command` (stdio) or `url` (streamable_http, sse)")
        if self.transport == "stdio" and not self.command:
            raise ValueError("transport stdio needs `command`")
        if self.transport != "stdio" and not self.url:
            raise ValueError(f"transport {self.transport} needs `url`")
        if self.transport == "stdio" and self.auth.type != "none":
            raise ValueError("OAuth (`auth`) is for streamable_http and sse servers")
        if "*" not in self.tools_to_execute:
            outside = [
                name
                for name in self.tools_to_auto_execute
                if name != "*" and not any(fnmatch.fnmatchcase(name, p) for p in self.tools_to_execute)
            ]
            if outside:
                raise ValueError(f"tools_to_auto_execute names tools outside tools_to_execute: {outside}")
        negative = {name: price for name, price in self.tool_pricing.items() if price < 0}
        if negative:
            raise ValueError(f"tool_pricing must not be negative: {negative}")
        denied = [tool for tool in self.auto_approve_rules if _matches(tool, self.tool_deny_list)]
        if denied:
            raise ValueError(f"auto_approve_rules name tools in tool_deny_list: {denied}")
        return self

    def rules_for(self, tool: str) -> list[ApprovalRule]:
        """The auto-approval rules of `tool` (keys may be globs), each named."""
        return [
            ApprovalRule(name=rule.name or f"{pattern}#{index}", arguments=rule.arguments)
            for pattern, rules in self.auto_approve_rules.items()
            if fnmatch.fnmatchcase(tool, pattern)
            for index, rule in enumerate(rules, start=1)
        ]

    @property
    def is_enabled(self) -> bool:
        return self.enabled and not self.disabled

    def policy_for(self, tool: str) -> ToolPolicy | None:
        """The policy of `tool`, or None when it is not offered at all (outside the include list)."""
        if _matches(tool, self.tool_deny_list):
            return "denied"
        if not _matches(tool, self.tools_to_execute):
            return None
        return "auto_execute" if _matches(tool, self.tools_to_auto_execute) else "execute"


class MCPConfig(BaseModel):
    """The whole file."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    servers: dict[str, MCPServerConfig] = Field(default_factory=dict, alias="mcpServers")
    _stored: frozenset[str] = PrivateAttr(default=frozenset())

    def with_stored(self, stored: dict[str, MCPServerConfig]) -> MCPConfig:
        """This file's servers and `stored` (added over the API; a name in both keeps the file's)."""
        merged = self.model_copy(update={"servers": {**stored, **self.servers}})
        merged._stored = frozenset(name for name in stored if name not in self.servers)
        return merged

    def source_of(self, name: str) -> Literal["api", "config"]:
        """Where a server comes from: the store (`api`) or ORCH_MCP_CONFIG (`config`)."""
        return "api" if name in self._stored else "config"

    def enabled_servers(self) -> list[str]:
        return [name for name, server in self.servers.items() if server.is_enabled]

    def offered_servers(self, named: list[str] | None) -> list[str]:
        """The servers a run is offered: those it names and every `force_on` one; when it names
        none, every enabled server but the `default_off` ones."""
        forced = [name for name, server in self.servers.items() if server.availability == "force_on"]
        if named is not None:
            return [*named, *(name for name in forced if name not in named and self.servers[name].is_enabled)]
        return [name for name in self.enabled_servers() if self.servers[name].availability != "default_off"]


def load_mcp_config(path: str | Path | None) -> MCPConfig:
    """Read and validate the config file; no path means no MCP servers."""
    if path is None or str(path) == "":
        return MCPConfig()
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as err:
        raise MCPConfigError(f"MCP config {file}: cannot read it ({err.strerror or err})") from None
    try:
        raw = json.loads(text)
    except ValueError as err:
        raise MCPConfigError(f"MCP config {file}: not valid JSON ({err})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("mcpServers", {}), dict):
        raise MCPConfigError(f"MCP config {file}: expected an object with an `mcpServers` object")
    try:
        return MCPConfig.model_validate(raw)
    except ValidationError as err:
        raise MCPConfigError(_one_line(f"MCP config {file}: {first_problem(err)}")) from None


def resolve_placeholders(values: Mapping[str, str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Fill `${VAR}` from the worker's environment; a missing variable is an error naming it."""
    source = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in source:
            raise MCPConfigError(f"environment variable {name} is not set")
        return source[name]

    return {key: _PLACEHOLDER.sub(substitute, value) for key, value in values.items()}


def _one_line(text: str) -> str:
    """Control characters (e.g. a newline in a server name) shown escaped, so the error stays one line."""
    return re.sub(r"[\x00-\x1f\x7f]", lambda match: repr(match.group())[1:-1], text)


def _matches(tool: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(tool, pattern) for pattern in patterns)


def public_url(url: str) -> str | None:
    """What two URLs of one server share when they are the same: scheme, host, port and path,
    without credentials, query or fragment (which may hold secrets, and which a listing never
    shows); None for a URL that is not HTTP."""
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host:
        return None
    default = {"http": 80, "https": 443}[parts.scheme]
    netloc = host if port in (None, default) else f"{host}:{port}"
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"
