"""OAuth tokens and client registrations, per server and subject, sealed: the MCP SDK's
`TokenStorage` over the store (the SDK's providers read and write them; this holds no flow)."""

from __future__ import annotations

import time

from mcp.shared.auth import OAuthClientInformationFull, OAuthMetadata, OAuthToken, ProtectedResourceMetadata
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from worker.store.database import sessions
from worker.store.sealing import Sealer
from worker.store.tables import OAuthGrantRow, utcnow


class OAuthGrants:
    """The `mcp_oauth_grants` table."""

    def __init__(self, engine: AsyncEngine, sealer: Sealer) -> None:
        self._sessions = sessions(engine)
        self._sealer = sealer

    def storage(self, server: str, subject: str) -> GrantStorage:
        return GrantStorage(self, server, subject)

    async def connected(self, server: str) -> list[str]:
        """The subjects holding tokens for `server`."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(OAuthGrantRow.subject).where(
                    OAuthGrantRow.server == server, OAuthGrantRow.sealed_tokens.is_not(None)
                )
            )
            return list(rows.all())

    async def forget(self, server: str, subject: str | None = None) -> bool:
        """Drop `subject`'s grant for `server` (every subject's when None)."""
        async with self._sessions.begin() as session:
            query = delete(OAuthGrantRow).where(OAuthGrantRow.server == server)
            if subject is not None:
                query = query.where(OAuthGrantRow.subject == subject)
            return bool((await session.execute(query)).rowcount)

    async def discovery(self, server: str, subject: str) -> Discovery:
        async with self._sessions() as session:
            row = await session.get(OAuthGrantRow, (server, subject))
        found = (row.discovery if row is not None else None) or {}
        return Discovery(
            OAuthMetadata.model_validate(found["authorization_server"]) if found.get("authorization_server") else None,
            ProtectedResourceMetadata.model_validate(found["resource"]) if found.get("resource") else None,
        )

    async def read(self, server: str, subject: str) -> tuple[OAuthToken | None, OAuthClientInformationFull | None]:
        async with self._sessions() as session:
            row = await session.get(OAuthGrantRow, (server, subject))
        if row is None:
            return None, None
        tokens = _with_remaining_lifetime(self._sealer.open(row.sealed_tokens)) if row.sealed_tokens else None
        client = (
            OAuthClientInformationFull.model_validate(self._sealer.open(row.sealed_client))
            if row.sealed_client
            else None
        )
        return tokens, client

    async def write(
        self,
        server: str,
        subject: str,
        *,
        tokens: OAuthToken | None = None,
        client: OAuthClientInformationFull | None = None,
        discovery: Discovery | None = None,
    ) -> None:
        """Write what is given of `subject`'s grant for `server` (the row made if need be)."""
        async with self._sessions.begin() as session:
            row = await session.get(OAuthGrantRow, (server, subject), with_for_update=True)
            if row is None:
                row = OAuthGrantRow(server=server, subject=subject)
                session.add(row)
            if tokens is not None:
                stored = tokens.model_dump(mode="json", exclude_none=True)
                if tokens.expires_in is not None:
                    stored[_EXPIRES_AT] = time.time() + tokens.expires_in
                row.sealed_tokens = self._sealer.seal(stored)
            if client is not None:
                row.sealed_client = self._sealer.seal(client.model_dump(mode="json", exclude_none=True))
            if discovery is not None:
                row.discovery = {
                    "authorization_server": _json(discovery.authorization_server),
                    "resource": _json(discovery.resource),
                }
            row.updated_at = utcnow()


_EXPIRES_AT = "expires_at"


def _json(model: OAuthMetadata | ProtectedResourceMetadata | None) -> dict[str, object] | None:
    return None if model is None else model.model_dump(mode="json", exclude_none=True)


def _with_remaining_lifetime(stored: dict[str, object]) -> OAuthToken:
    """The stored token with `expires_in` counted from now: OAuth gives a lifetime, not an
    expiry time, so one read back later must say how much of it is left."""
    expires_at = stored.pop(_EXPIRES_AT, None)
    token = OAuthToken.model_validate(stored)
    if isinstance(expires_at, int | float):
        token.expires_in = max(0, int(expires_at - time.time()))
    return token


class Discovery:
    """What the SDK discovered when a grant was made: where to refresh its tokens."""

    def __init__(self, authorization_server: OAuthMetadata | None, resource: ProtectedResourceMetadata | None) -> None:
        self.authorization_server = authorization_server
        self.resource = resource


class GrantStorage:
    """One server's grant for one subject, as the SDK's `TokenStorage` protocol asks."""

    def __init__(self, grants: OAuthGrants, server: str, subject: str) -> None:
        self._grants = grants
        self.server = server
        self.subject = subject

    async def get_tokens(self) -> OAuthToken | None:
        return (await self._grants.read(self.server, self.subject))[0]

    async def set_tokens(self, tokens: OAuthToken) -> None:
        await self._grants.write(self.server, self.subject, tokens=tokens)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return (await self._grants.read(self.server, self.subject))[1]

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        await self._grants.write(self.server, self.subject, client=client_info)

    async def get_discovery(self) -> Discovery:
        return await self._grants.discovery(self.server, self.subject)

    async def set_discovery(self, discovery: Discovery) -> None:
        await self._grants.write(self.server, self.subject, discovery=discovery)
