"""Settings of the worker and the API, from the environment (the README's settings table)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """One settings class for every process; names are the environment variables the README lists.
    Where and how to reach Temporal is the SDK's own configuration (`worker.connection`)."""

    model_config = SettingsConfigDict(env_prefix="ORCH_", extra="ignore", populate_by_name=True)

    task_queue: str = Field(default="orchestrations", validation_alias="ORCH_TASK_QUEUE")
    mcp_config: str | None = Field(default=None, validation_alias="ORCH_MCP_CONFIG")
    openai_base_url: str = Field(default="https://api.openai.com/v1", validation_alias="OPENAI_BASE_URL")
    openai_api_key: str | None = Field(default=None, validation_alias="OPENAI_API_KEY", repr=False)
    default_model: str = Field(default="gpt-4o-mini", validation_alias="ORCH_DEFAULT_MODEL")
    webhook_url: str | None = Field(default=None, validation_alias="ORCH_WEBHOOK_URL")
    webhook_secret: str | None = Field(default=None, validation_alias="ORCH_WEBHOOK_SECRET", repr=False)
    webhook_inbound_secret: str | None = Field(
        default=None,
        validation_alias="ORCH_WEBHOOK_INBOUND_SECRET",
        repr=False,
        description="Verifies inbound approval webhooks (unset: ORCH_WEBHOOK_SECRET), so receivers of the "
        "notifications, which know ORCH_WEBHOOK_SECRET, cannot sign approvals.",
    )
    temporal_ui_url: str = Field(default="http://localhost:8233", validation_alias="ORCH_TEMPORAL_UI_URL")
    api_host: str = Field(default="127.0.0.1", validation_alias="ORCH_API_HOST")
    api_port: int = Field(default=8000, validation_alias="ORCH_API_PORT")
    graceful_shutdown_seconds: float = Field(default=30.0, validation_alias="ORCH_GRACEFUL_SHUTDOWN_SECONDS")
    webhook_allowed_hosts: str = Field(
        default="",
        validation_alias="ORCH_WEBHOOK_ALLOWED_HOSTS",
        description="Comma-separated hosts that webhooks may reach although they are loopback/private/link-local.",
    )
    encryption_key: str | None = Field(default=None, validation_alias="ORCH_ENCRYPTION_KEY", repr=False)
    max_request_bytes: int = Field(default=1_048_576, ge=1024, validation_alias="ORCH_MAX_REQUEST_BYTES")
    api_keys: str | None = Field(
        default=None,
        validation_alias="ORCH_API_KEYS",
        repr=False,
        description="Path to the API keys JSON file, or that JSON inline (see api/auth.py). Unset: loopback only.",
    )
    page_token_key: str | None = Field(
        default=None,
        validation_alias="ORCH_PAGE_TOKEN_KEY",
        repr=False,
        description="Signs listing page tokens; the same on every API replica. Unset: derived from ORCH_API_KEYS "
        "and ORCH_ENCRYPTION_KEY, or, with neither, random per process.",
    )
    max_prompt_bytes: int = Field(default=262_144, ge=1024, validation_alias="ORCH_MAX_PROMPT_BYTES")
    events_poll_seconds: float = Field(
        default=0.25,
        gt=0,
        le=10,
        validation_alias="ORCH_EVENTS_POLL_SECONDS",
        description="How often the API asks a watched run for new events (once per run, however many watchers).",
    )
    events_stream_seconds: float = Field(
        default=3600.0,
        gt=0,
        validation_alias="ORCH_EVENTS_STREAM_SECONDS",
        description="An event stream is closed after this long; clients resume with Last-Event-ID.",
    )
    chat_execute_tools: bool = Field(
        default=True,
        validation_alias="ORCH_CHAT_EXECUTE_TOOLS",
        description="POST /v1/chat/completions runs MCP tools unless the request says `execute_tools: false`.",
    )
    chat_approval_wait_seconds: float = Field(
        default=30.0,
        ge=0,
        validation_alias="ORCH_CHAT_APPROVAL_WAIT_SECONDS",
        description="How long a chat completion waits on a pending approval before answering with the pending calls.",
    )
    chat_timeout_seconds: float = Field(
        default=600.0,
        gt=0,
        validation_alias="ORCH_CHAT_TIMEOUT_SECONDS",
        description="How long a chat completion waits for its run in all before answering that it still runs.",
    )
    health_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        validation_alias="ORCH_HEALTH_PORT",
        description="The worker serves /healthz and /readyz on this port (worker/health.py). Unset: no endpoint.",
    )
    health_host: str = Field(default="0.0.0.0", validation_alias="ORCH_HEALTH_HOST")
    metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        validation_alias="ORCH_METRICS_PORT",
        description="Serve Prometheus metrics on this port (`/metrics`; worker/telemetry.py). Unset: none.",
    )
    metrics_host: str = Field(default="0.0.0.0", validation_alias="ORCH_METRICS_HOST")
    log_format: Literal["text", "json"] = Field(
        default="text",
        validation_alias="ORCH_LOG_FORMAT",
        description="`json`: one JSON object per log line, with the run's id on lines about a run.",
    )
    max_cached_workflows: int = Field(
        default=1000,
        ge=2,
        validation_alias="ORCH_MAX_CACHED_WORKFLOWS",
        description="Runs a worker keeps in memory (~0.12 MB each); others are replayed from history when touched.",
    )
    conversation_cache_mb: int = Field(
        default=64,
        ge=0,
        validation_alias="ORCH_CONVERSATION_CACHE_MB",
        description="Memory for the runs' conversations kept between their LLM calls; a run whose conversation "
        "is not kept is asked for it (one query).",
    )

    database_url: str | None = Field(
        default=None,
        validation_alias="ORCH_DATABASE_URL",
        repr=False,
        description="The store of MCP servers added over the API, OAuth tokens and assistants "
        "(sqlite:///path or postgresql://...), shared by the API and the workers. Unset: no store "
        "(servers only from ORCH_MCP_CONFIG). `orch dev` keeps a SQLite file in its state directory.",
    )
    secrets_key: str | None = Field(
        default=None,
        validation_alias="ORCH_SECRETS_KEY",
        repr=False,
        description="Seals the secrets written through the API (header and env values, OAuth client "
        "secrets and tokens): Fernet keys, comma-separated, the first seals (`orch keys secrets-key`).",
    )
    public_url: str | None = Field(
        default=None,
        validation_alias="ORCH_PUBLIC_URL",
        description="The API's address as browsers reach it, for OAuth redirects. Unset: http://ORCH_API_HOST:ORCH_API_PORT.",
    )
    mcp_api_commands: bool = Field(
        default=False,
        validation_alias="ORCH_MCP_API_COMMANDS",
        description="Allow stdio MCP servers (commands the workers run) to be added over the API. Off: only "
        "HTTP servers can be; commands come from ORCH_MCP_CONFIG. Checked by the API and by each worker.",
    )
    store_poll_seconds: float = Field(
        default=2.0,
        gt=0,
        le=60,
        validation_alias="ORCH_STORE_POLL_SECONDS",
        description="How often a worker looks for MCP servers added, changed or removed over the API.",
    )
    health_check_seconds: float = Field(
        default=30.0,
        gt=0,
        validation_alias="ORCH_HEALTH_CHECK_SECONDS",
        description="How often a worker checks each MCP server (ping, or tools/list) for GET /v1/mcp/servers.",
    )

    @property
    def api_base_url(self) -> str:
        """The API's address as browsers reach it (ORCH_PUBLIC_URL, or its host and port)."""
        return (self.public_url or f"http://{self.api_host}:{self.api_port}").rstrip("/")

    @property
    def webhook_hosts_allowed(self) -> frozenset[str]:
        return frozenset(host.strip().lower() for host in self.webhook_allowed_hosts.split(",") if host.strip())
