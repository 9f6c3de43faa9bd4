"""Settings of the worker and the API, from the environment (DESIGN.md "Configuration")."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """One settings class for every process; names are the environment variables of DESIGN.md."""

    model_config = SettingsConfigDict(env_prefix="ORCH_", extra="ignore", populate_by_name=True)

    temporal_address: str = Field(default="localhost:7233", validation_alias="TEMPORAL_ADDRESS")
    temporal_namespace: str = Field(default="default", validation_alias="TEMPORAL_NAMESPACE")
    task_queue: str = Field(default="orchestrations", validation_alias="ORCH_TASK_QUEUE")
    mcp_config: str | None = Field(default=None, validation_alias="ORCH_MCP_CONFIG")
    openai_base_url: str = Field(default="https://api.openai.com/v1", validation_alias="OPENAI_BASE_URL")
    openai_api_key: str | None = Field(default=None, validation_alias="OPENAI_API_KEY", repr=False)
    default_model: str = Field(default="gpt-4o-mini", validation_alias="ORCH_DEFAULT_MODEL")
    webhook_url: str | None = Field(default=None, validation_alias="ORCH_WEBHOOK_URL")
    webhook_secret: str | None = Field(default=None, validation_alias="ORCH_WEBHOOK_SECRET", repr=False)
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
    max_prompt_bytes: int = Field(default=262_144, ge=1024, validation_alias="ORCH_MAX_PROMPT_BYTES")
    max_cached_workflows: int = Field(
        default=1000,
        ge=2,
        validation_alias="ORCH_MAX_CACHED_WORKFLOWS",
        description="Runs a worker keeps in memory (~0.12 MB each); others are replayed from history when touched.",
    )

    @property
    def webhook_hosts_allowed(self) -> frozenset[str]:
        return frozenset(host.strip().lower() for host in self.webhook_allowed_hosts.split(",") if host.strip())
