"""A per-worker pool of live MCP client sessions, one per configured server.

Spawning a stdio server costs hundreds of milliseconds; a call on a live session about
one. So sessions are opened on first use and shared by every activity (of every run) in
this worker process. Each session is opened and closed by one owner task: the SDK's
transports use anyio task groups, which must be exited by the task that entered them.
A session that fails in transport is dropped and reopened by the next call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from typing import Any, cast

import httpx2
import mcp_types
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

from activities.mcp_config import MCPAuthRequired, MCPConfig, MCPConfigError, MCPServerConfig, resolve_placeholders
from activities.redaction import redact

logger = logging.getLogger(__name__)

DEFAULT_CONNECT_TIMEOUT_SECONDS = 30.0


class MCPServerUnknown(Exception):
    """The run names a server that this worker's config does not have."""


class MCPToolTimeout(Exception):
    """The server did not answer a `tools/call` within the run's tool timeout."""


class MCPTransportError(Exception):
    """The session broke (process died, connection lost); the call may be retried."""


AuthFactory = Callable[[str, MCPServerConfig, str | None], Awaitable[httpx2.Auth | None]]
"""How the pool authenticates to an HTTP server: (server, its config, the API key the call is
for) -> the httpx2 auth to send with (None: the static headers only). Raises MCPAuthRequired."""

SessionKey = tuple[str, str | None]


class _Session:
    """One live client session, owned by the task that opened it."""

    def __init__(
        self,
        key: SessionKey,
        config: MCPServerConfig,
        environ: Mapping[str, str] | None,
        auth: httpx2.Auth | None = None,
    ) -> None:
        self.key = key
        self.name = key[0]
        self.config = config
        self._environ = environ
        self._auth = auth
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._client: Client | None = None
        self._failure: BaseException | None = None
        self._owner: asyncio.Task[None] | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            raise MCPTransportError(f"MCP server {self.name!r}: session is closed")
        return self._client

    async def open(self, timeout: float) -> None:
        self._owner = asyncio.create_task(self._own(), name=f"mcp-session-{self.name}")
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            await self.close()
            raise MCPTransportError(f"MCP server {self.name!r}: no session within {timeout:.0f}s") from None
        if self._client is None:
            failure = _first_cause(self._failure)
            if isinstance(failure, MCPAuthRequired):
                raise failure
            if isinstance(failure, MCPConfigError):
                raise MCPConfigError(f"MCP server {self.name!r}: {failure}") from None
            raise MCPTransportError(f"MCP server {self.name!r}: cannot connect: {describe_error(failure)}") from failure

    async def close(self) -> None:
        self._stop.set()
        if self._owner is not None and not self._owner.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._owner), 10)
            except TimeoutError:
                self._owner.cancel()
            except asyncio.CancelledError:
                self._owner.cancel()
                raise  # whoever closes was cancelled: it must stop too (swallowing it hung the registry's stop)

    async def _own(self) -> None:
        try:
            async with AsyncExitStack() as stack:
                transport = await self._transport(stack)
                client = await stack.enter_async_context(Client(transport, client_info=_CLIENT_INFO))
                self._client = client
                self._ready.set()
                await self._stop.wait()
        except BaseException as err:  # reported to whoever waits in open(); never raised in this task
            self._failure = err
            if self._client is not None:
                logger.warning("MCP session %s ended: %s", self.name, describe_error(err))
        finally:
            self._client = None
            self._ready.set()

    async def _transport(self, stack: AsyncExitStack) -> Any:
        config = self.config
        if config.transport == "stdio":
            assert config.command is not None
            return StdioServerParameters(
                command=config.command,
                args=config.args,
                env=resolve_placeholders(config.env, self._environ) or None,
                cwd=config.cwd,
            )
        assert config.url is not None
        headers = resolve_placeholders(config.headers, self._environ)
        if config.transport == "sse":
            return sse_client(config.url, headers=headers, auth=self._auth)
        http = await stack.enter_async_context(create_mcp_http_client(headers=headers, auth=self._auth))
        return streamable_http_client(config.url, http_client=http)


_CLIENT_INFO = mcp_types.Implementation(name="durable-orchestrations", version="0.1.0")


class MCPSessionPool:
    """Live sessions to the configured MCP servers, shared by all activities of a worker."""

    def __init__(
        self,
        config: MCPConfig,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
        environ: Mapping[str, str] | None = None,
        auth: AuthFactory | None = None,
    ) -> None:
        self._config = config
        self._connect_timeout = connect_timeout
        self._environ = environ
        self._auth = auth
        self._sessions: dict[SessionKey, _Session] = {}
        self._locks: dict[SessionKey, asyncio.Lock] = {}

    @property
    def config(self) -> MCPConfig:
        return self._config

    async def update(self, config: MCPConfig) -> None:
        """Use `config` from now on: sessions of servers removed or changed are closed (the next
        call opens one with the new configuration); the others stay open."""
        self._config = config
        stale = [session for session in self._sessions.values() if config.servers.get(session.name) != session.config]
        for session in stale:
            await self._drop(session)

    async def ping(self, server: str) -> None:
        """Check `server` answers: MCP ping where its protocol has it (handshake-era versions;
        2026-07-28 removed it), `tools/list` otherwise or where the server does not answer ping."""
        async with self._using(server) as client:
            if client.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS:
                try:
                    await client.session.send_ping()
                    return
                except MCPError as err:
                    if err.code != mcp_types.METHOD_NOT_FOUND:
                        raise
            await client.list_tools(cache_mode="refresh")

    async def list_tools(self, server: str, subject: str | None = None) -> list[mcp_types.Tool]:
        """All tools of `server`, following pagination, fresh from the server; `subject`: the API
        key the listing is for (servers with OAuth per key answer each key with its token)."""
        tools: list[mcp_types.Tool] = []
        async with self._using(server, subject) as client:
            cursor: str | None = None
            while True:
                page = await client.list_tools(cursor=cursor, cache_mode="refresh")
                tools.extend(page.tools)
                cursor = page.next_cursor
                if not cursor:
                    return tools

    async def call_tool(
        self,
        server: str,
        tool: str,
        arguments: dict[str, Any],
        *,
        timeout: float,
        meta: dict[str, Any],
        subject: str | None = None,
    ) -> mcp_types.CallToolResult:
        """One `tools/call`. A JSON-RPC error from the server becomes an error result."""
        async with self._using(server, subject) as client:
            try:
                return await client.call_tool(
                    tool, arguments, read_timeout_seconds=timeout, meta=cast(mcp_types.RequestParamsMeta, meta)
                )
            except MCPError as err:
                if err.code == mcp_types.REQUEST_TIMEOUT:
                    raise MCPToolTimeout(f"tool {server}.{tool} timed out after {timeout:g}s") from None
                if err.code == mcp_types.CONNECTION_CLOSED:
                    raise
                # The server answered with a protocol error (unknown tool, bad params):
                # that is information for the model, not a transport failure.
                return mcp_types.CallToolResult(
                    content=[mcp_types.TextContent(type="text", text=f"MCP error {err.code}: {err.error.message}")],
                    is_error=True,
                )

    async def aclose(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        await asyncio.gather(*(session.close() for session in sessions), return_exceptions=True)

    @contextlib.asynccontextmanager
    async def _using(self, server: str, subject: str | None = None) -> AsyncIterator[Client]:
        session = await self._session(server, subject)
        try:
            yield session.client
        except (MCPToolTimeout, MCPServerUnknown, MCPConfigError, MCPAuthRequired):
            raise
        except MCPError as err:
            if err.code != mcp_types.CONNECTION_CLOSED:
                raise
            await self._drop(session)
            raise MCPTransportError(f"MCP server {server!r}: connection closed") from err
        except Exception as err:
            await self._drop(session)
            raise MCPTransportError(f"MCP server {server!r}: {describe_error(err)}") from err

    async def _session(self, server: str, subject: str | None) -> _Session:
        config = self._config.servers.get(server)
        if config is None:
            raise MCPServerUnknown(f"MCP server {server!r} is not configured on this worker")
        # A server with OAuth per key has one session per key, each with that key's token.
        per_key = config.auth.type == "oauth_per_key"
        key: SessionKey = (server, subject if per_key else None)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            session = self._sessions.get(key)
            try:
                # Per key, the key's grant is looked up at every use: a key that disconnected
                # (or whose refresh failed) is refused even while its session is open.
                auth = await self._auth(server, config, subject) if self._auth is not None and per_key else None
            except MCPAuthRequired:
                if session is not None:
                    await self._drop(session)
                raise
            if session is not None and session._client is not None and session.config == config:
                return session
            if session is not None:
                await self._drop(session)
            if self._auth is not None and not per_key:
                auth = await self._auth(server, config, subject)
            session = _Session(key, config, self._environ, auth)
            await session.open(self._connect_timeout)
            self._sessions[key] = session
            logger.info("MCP session to %s opened (%s)", server, config.transport)
            return session

    async def _drop(self, session: _Session) -> None:
        if self._sessions.get(session.key) is session:
            del self._sessions[session.key]
        logger.info("MCP session to %s dropped", session.name)
        await session.close()


def _first_cause(err: BaseException | None) -> BaseException | None:
    """`err`, unwrapped from anyio's exception groups."""
    while isinstance(err, BaseExceptionGroup) and err.exceptions:
        err = err.exceptions[0]
    return err


def describe_error(err: BaseException | None) -> str:
    """A one-line description, redacted (HTTP errors name the URL, whose query may hold a
    token); exception groups from anyio are unwrapped to their first cause."""
    err = _first_cause(err)
    if err is None:
        return "unknown error"
    return f"{type(err).__name__}: {redact(str(err))}" if str(err) else type(err).__name__
