"""The MCP servers a worker uses: ORCH_MCP_CONFIG's (read-only) and the store's (added over
the API), merged and kept current. Every `ORCH_STORE_POLL_SECONDS` the worker compares the
stored servers' revisions with its own and reloads on a change, so a server added, changed or
removed over the API is used within seconds, without a restart; the pool closes the sessions
of servers changed or removed. Every `ORCH_HEALTH_CHECK_SECONDS` it checks each server (MCP
ping, or `tools/list`) and records the state in the store for `GET /v1/mcp/servers`.

A running orchestration is not affected by either: its tool catalog was pinned at its start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from activities.mcp_config import MCPConfig, MCPServerConfig
from activities.mcp_pool import MCPSessionPool, describe_error
from worker.store.sealing import SecretsKeyError
from worker.store.shared import Store

logger = logging.getLogger(__name__)

PING_TIMEOUT_SECONDS = 10.0
COMMANDS_REFUSED = "a stdio server from the store: this worker runs none (ORCH_MCP_API_COMMANDS is off)"


class ServerRegistry:
    """Keeps `pool`'s configuration equal to the file's servers plus the store's."""

    def __init__(self, file_config: MCPConfig, store: Store, pool: MCPSessionPool, *, commands: bool) -> None:
        self._file = file_config
        self._store = store
        self._pool = pool
        self._commands = commands
        self._revisions: dict[str, int] | None = None

    async def refresh(self) -> bool:
        """Reload when the stored servers changed; whether they had."""
        revisions = await self._store.servers.revisions()
        if revisions == self._revisions:
            return False
        servers: dict[str, MCPServerConfig] = {}
        for stored in await self._store.servers.list(with_secrets=False):
            if stored.name in self._file.servers:
                logger.warning("MCP server %s is in ORCH_MCP_CONFIG and in the store: the file's is used", stored.name)
                continue
            if stored.config.transport == "stdio" and not self._commands:
                await self._store.servers.record_health(stored.name, "error", COMMANDS_REFUSED)
                continue
            try:
                opened = await self._store.servers.get(stored.name, with_secrets=True)
            except SecretsKeyError as err:
                await self._store.servers.record_health(stored.name, "error", str(err))
                continue
            if opened is not None:
                servers[stored.name] = opened.config
        await self._pool.update(self._file.with_stored(servers))
        if self._revisions is not None:
            logger.info("MCP servers reloaded from the store (%d in all)", len(servers))
        self._revisions = revisions
        return True

    async def check_health(self) -> None:
        """Ping every server a worker connects to on its own (not those with OAuth per key)."""
        config = self._pool.config
        for name, server in config.servers.items():
            if not server.is_enabled or server.auth.type == "oauth_per_key":
                await self._store.servers.record_health(name, "disconnected", None)
                continue
            try:
                await asyncio.wait_for(self._pool.ping(name), PING_TIMEOUT_SECONDS)
            except Exception as err:
                await self._store.servers.record_health(name, "error", describe_error(err))
            else:
                await self._store.servers.record_health(name, "connected", None)

    async def run(self, poll_seconds: float, health_seconds: float) -> None:
        """Refresh and check health forever (a failed round is logged and retried next time)."""
        loop = asyncio.get_running_loop()
        next_health = loop.time()
        while True:
            try:
                await self.refresh()
                if loop.time() >= next_health:
                    next_health = loop.time() + health_seconds
                    await self.check_health()
            except Exception as err:
                logger.warning("MCP server registry: %s", describe_error(err))
            await asyncio.sleep(poll_seconds)


@contextlib.asynccontextmanager
async def kept_current(registry: ServerRegistry, poll_seconds: float, health_seconds: float) -> AsyncIterator[None]:
    """The registry loaded, then refreshed in the background while the block runs."""
    await registry.refresh()
    task = asyncio.create_task(registry.run(poll_seconds, health_seconds), name="mcp-registry")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
