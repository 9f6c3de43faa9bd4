"""The store's tables (SQLAlchemy's declarative models). A change here goes with a migration in
`migrations/versions/` (`python -m worker.store revision -m "..."` drafts one)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A time with its zone, read back as UTC on every database (SQLite keeps none)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime: UTCDateTime}


class MCPServerRow(Base):
    """An MCP server added over the API: its configuration without secrets, and the secrets
    (header and env values, the OAuth client secret) sealed with ORCH_SECRETS_KEY."""

    __tablename__ = "mcp_servers"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    config: Mapped[dict[str, Any]]
    sealed_secrets: Mapped[str | None] = mapped_column(Text)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ServerHealthRow(Base):
    """A server's state as a worker last saw it (any server: from the API or ORCH_MCP_CONFIG)."""

    __tablename__ = "mcp_server_health"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]
    checked_at: Mapped[datetime]


class OAuthGrantRow(Base):
    """The OAuth tokens and client registration of one server for one subject: the server
    itself (client credentials; subject "") or one API key (authorization code), sealed."""

    __tablename__ = "mcp_oauth_grants"

    server: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject: Mapped[str] = mapped_column(String(200), primary_key=True)
    sealed_tokens: Mapped[str | None] = mapped_column(Text)
    sealed_client: Mapped[str | None] = mapped_column(Text)
    discovery: Mapped[dict[str, Any] | None] = mapped_column(
        comment="The authorization server's and the resource's metadata, as discovered when the grant was made"
    )
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AssistantRow(Base):
    """A saved preset of run options (model, instructions, servers, limits)."""

    __tablename__ = "assistants"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    spec: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
