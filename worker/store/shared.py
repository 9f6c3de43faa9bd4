"""The store as a process holds it: one engine, and the tables' interfaces over it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from worker.settings import Settings
from worker.store.assistants import AssistantStore
from worker.store.database import check_current, create_engine
from worker.store.oauth_grants import OAuthGrants
from worker.store.sealing import Sealer
from worker.store.servers import ServerStore


@dataclass
class Store:
    engine: AsyncEngine
    sealer: Sealer
    servers: ServerStore
    assistants: AssistantStore
    grants: OAuthGrants

    async def aclose(self) -> None:
        await self.engine.dispose()


async def open_store(settings: Settings) -> Store | None:
    """The store ORCH_DATABASE_URL names, checked to be at the newest migration (StoreError
    otherwise, SecretsKeyError for a malformed ORCH_SECRETS_KEY); None when it is unset."""
    if not settings.database_url:
        return None
    sealer = Sealer(settings.secrets_key)
    engine = create_engine(settings.database_url)
    try:
        await check_current(engine)
    except BaseException:
        await engine.dispose()
        raise
    return Store(engine, sealer, ServerStore(engine, sealer), AssistantStore(engine), OAuthGrants(engine, sealer))
