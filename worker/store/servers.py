"""MCP servers added over the API, and every server's health, as the store keeps them.

A server's configuration is `activities.mcp_config.MCPServerConfig`, the model the file loader
validates with. Its secrets (every header and env value, the OAuth client secret) are kept
apart, sealed; the rest is plain JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.mcp_config import MCPServerConfig
from worker.store.database import sessions
from worker.store.sealing import Sealer
from worker.store.tables import MCPServerRow, ServerHealthRow, utcnow

HealthState = Literal["connected", "disconnected", "error"]
SEALED = "<sealed>"
"""What a secret reads as when it was not opened (views of a server never open them)."""


@dataclass(frozen=True)
class StoredServer:
    """A server as stored: its configuration (secrets opened when asked for) and bookkeeping."""

    name: str
    config: MCPServerConfig
    secret_headers: frozenset[str]
    secret_env: frozenset[str]
    has_client_secret: bool
    revision: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class ServerHealth:
    state: HealthState
    last_error: str | None
    last_error_at: datetime | None
    checked_at: datetime


class ServerExists(Exception):
    pass


class ServerChanged(Exception):
    """The server's revision is not the one the change was made from (another change came first)."""


class ServerStore:
    """The `mcp_servers` and `mcp_server_health` tables."""

    def __init__(self, engine: AsyncEngine, sealer: Sealer) -> None:
        self._sessions = sessions(engine)
        self._sealer = sealer

    async def revisions(self) -> dict[str, int]:
        """Each stored server's revision: what a worker compares to see a change."""
        async with self._sessions() as session:
            rows = await session.execute(select(MCPServerRow.name, MCPServerRow.revision))
            return {name: revision for name, revision in rows.all()}

    async def list(self, *, with_secrets: bool = False) -> list[StoredServer]:
        async with self._sessions() as session:
            rows = (await session.scalars(select(MCPServerRow).order_by(MCPServerRow.name))).all()
            return [self._stored(row, with_secrets) for row in rows]

    async def get(self, name: str, *, with_secrets: bool = False) -> StoredServer | None:
        async with self._sessions() as session:
            row = await session.get(MCPServerRow, name)
            return None if row is None else self._stored(row, with_secrets)

    async def create(self, name: str, config: MCPServerConfig) -> StoredServer:
        public, secrets = split_secrets(config)
        try:
            async with self._sessions.begin() as session:
                if await session.get(MCPServerRow, name) is not None:
                    raise ServerExists(name)
                row = MCPServerRow(name=name, config=public, sealed_secrets=self._seal(secrets), revision=1)
                session.add(row)
        except IntegrityError:  # created meanwhile by another request
            raise ServerExists(name) from None
        return self._stored(row, with_secrets=False)

    async def replace(self, name: str, config: MCPServerConfig, *, revision: int | None = None) -> StoredServer | None:
        """Store `config` as the server's whole configuration; None when there is no such server.
        With `revision` (the one `config` was derived from), ServerChanged if it is no longer
        current, so that of two concurrent PATCHes neither undoes the other unseen."""
        public, secrets = split_secrets(config)
        async with self._sessions.begin() as session:
            row = await session.get(MCPServerRow, name, with_for_update=True)
            if row is None:
                return None
            if revision is not None and row.revision != revision:
                raise ServerChanged(name)
            row.config = public
            row.sealed_secrets = self._seal(secrets)
            row.revision += 1
            row.updated_at = utcnow()
        return self._stored(row, with_secrets=False)

    async def delete(self, name: str) -> bool:
        async with self._sessions.begin() as session:
            deleted = await session.execute(delete(MCPServerRow).where(MCPServerRow.name == name))
            await session.execute(delete(ServerHealthRow).where(ServerHealthRow.name == name))
            return bool(deleted.rowcount)

    async def record_health(self, name: str, state: HealthState, error: str | None) -> None:
        now = utcnow()
        async with self._sessions.begin() as session:
            row = await session.get(ServerHealthRow, name)
            if row is None:
                row = ServerHealthRow(name=name, state=state, checked_at=now)
                session.add(row)
            row.state = state
            row.checked_at = now
            if error is not None:
                row.last_error, row.last_error_at = error, now

    async def health(self) -> dict[str, ServerHealth]:
        async with self._sessions() as session:
            rows = (await session.scalars(select(ServerHealthRow))).all()
            return {
                row.name: ServerHealth(row.state, row.last_error, row.last_error_at, row.checked_at) for row in rows
            }

    def _seal(self, secrets: dict[str, Any]) -> str | None:
        return self._sealer.seal(secrets) if any(secrets.values()) else None

    def _stored(self, row: MCPServerRow, with_secrets: bool) -> StoredServer:
        secrets: dict[str, Any] = {}
        names: dict[str, Any] = row.config.get("_secret_names", {})
        if with_secrets and row.sealed_secrets:
            secrets = self._sealer.open(row.sealed_secrets)
        config = MCPServerConfig.model_validate(join_secrets(row.config, secrets))
        return StoredServer(
            name=row.name,
            config=config,
            secret_headers=frozenset(names.get("headers", [])),
            secret_env=frozenset(names.get("env", [])),
            has_client_secret=bool(names.get("client_secret")),
            revision=row.revision,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


def split_secrets(config: MCPServerConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """The configuration as stored in plain JSON (without secrets, with their names), and its
    secrets: header and env values, the OAuth client secret."""
    public = config.model_dump(mode="json", exclude={"headers", "env"}, exclude_defaults=True)
    public.get("auth", {}).pop("client_secret", None)
    secrets = {"headers": config.headers, "env": config.env, "client_secret": config.auth.client_secret}
    public["_secret_names"] = {
        "headers": sorted(config.headers),
        "env": sorted(config.env),
        "client_secret": config.auth.client_secret is not None,
    }
    return public, secrets


def join_secrets(public: dict[str, Any], secrets: dict[str, Any]) -> dict[str, Any]:
    """The configuration to validate: the plain part and the opened secrets (a secret not
    opened reads as `SEALED`, so the model still sees every header and env name)."""
    names = public.get("_secret_names", {})
    merged = {key: value for key, value in public.items() if key != "_secret_names"}
    merged["headers"] = secrets.get("headers") or dict.fromkeys(names.get("headers", []), SEALED)
    merged["env"] = secrets.get("env") or dict.fromkeys(names.get("env", []), SEALED)
    client_secret = secrets.get("client_secret") or (SEALED if names.get("client_secret") else None)
    if client_secret is not None:
        merged["auth"] = {**merged.get("auth", {}), "client_secret": client_secret}
    return merged
