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
from typing import Any, NamedTuple, cast

import httpx2
import mcp_types
from mcp import Client, ClientSession, MCPError, StdioServerParameters
from mcp.client.session import ClientRequestContext
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.dispatcher import ProgressFnT
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from pydantic import TypeAdapter

from activities.mcp_config import MCPAuthRequired, MCPConfig, MCPConfigError, MCPServerConfig, resolve_placeholders
from activities.mcp_tasks import CreatedTask, TasksExtension
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
ProgressCallback = ProgressFnT
ToolAnswer = mcp_types.CallToolResult | mcp_types.InputRequiredResult | CreatedTask
_INPUT_RESPONSE: TypeAdapter[mcp_types.InputResponse] = TypeAdapter(mcp_types.InputResponse)

IN_SESSION_DECLINED = (
    "The server {server} asked for {what} in the middle of the call, on its session ({method}); this service "
    "answers such requests only in the stateless form (MCP 2026-07-28: the tool call returns "
    "InputRequiredResult), so it was declined at once. The server should use that form."
)


class CallAnswer(NamedTuple):
    """A `tools/call`'s answer, and what the model is told beside it."""

    result: ToolAnswer
    notes: list[str]


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
        self.declined: list[str] = []
        """Requests the server sent in the middle of calls on this session, declined (newest last)."""

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
                client = await stack.enter_async_context(
                    Client(
                        transport,
                        client_info=_CLIENT_INFO,
                        # The stateless forms are what the run answers; these callbacks declare the
                        # capabilities (so servers send requests in InputRequiredResult) and answer
                        # the in-session forms of older servers.
                        elicitation_callback=self._in_session_elicitation,
                        sampling_callback=self._in_session_sampling,
                        list_roots_callback=self._roots,
                        extensions=[TasksExtension()],
                    )
                )
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

    async def _in_session_elicitation(
        self, context: ClientRequestContext, params: mcp_types.ElicitRequestParams
    ) -> mcp_types.ElicitResult:
        self.declined.append(IN_SESSION_DECLINED.format(server=self.name, what="input", method="elicitation/create"))
        logger.warning("MCP server %s: in-session elicitation declined", self.name)
        return mcp_types.ElicitResult(action="decline")

    async def _in_session_sampling(
        self, context: ClientRequestContext, params: mcp_types.CreateMessageRequestParams
    ) -> mcp_types.ErrorData:
        what = "the model (sampling)"
        self.declined.append(IN_SESSION_DECLINED.format(server=self.name, what=what, method="sampling/createMessage"))
        logger.warning("MCP server %s: in-session sampling declined", self.name)
        return mcp_types.ErrorData(
            code=mcp_types.INVALID_REQUEST, message="sampling is answered only in InputRequiredResult"
        )

    async def _roots(self, context: ClientRequestContext) -> mcp_types.ListRootsResult:
        return roots_of(self.config)

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
        async with self._using(server) as session:
            client = session.client
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
        async with self._using(server, subject) as session:
            cursor: str | None = None
            while True:
                page = await session.client.list_tools(cursor=cursor, cache_mode="refresh")
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
        input_responses: dict[str, dict[str, Any]] | None = None,
        request_state: str | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> CallAnswer:
        """One `tools/call` (or its retry with the answers to an `InputRequiredResult`). The
        answer is the result, the server's need for input, or a task; a JSON-RPC error from the
        server becomes an error result."""
        async with self._using(server, subject) as session:
            client = session.client
            declined_before = len(session.declined)
            responses = {key: _INPUT_RESPONSE.validate_python(value) for key, value in (input_responses or {}).items()}
            try:
                result = await self._send_call(
                    client, tool, arguments, timeout, meta, responses or None, request_state, on_progress
                )
            except MCPError as err:
                if err.code == mcp_types.REQUEST_TIMEOUT:
                    raise MCPToolTimeout(f"tool {server}.{tool} timed out after {timeout:g}s") from None
                if err.code == mcp_types.CONNECTION_CLOSED:
                    raise
                # The server answered with a protocol error (unknown tool, bad params):
                # that is information for the model, not a transport failure.
                result = mcp_types.CallToolResult(
                    content=[mcp_types.TextContent(type="text", text=f"MCP error {err.code}: {err.error.message}")],
                    is_error=True,
                )
            return CallAnswer(cast(ToolAnswer, result), session.declined[declined_before:])

    async def _send_call(
        self,
        client: Client,
        tool: str,
        arguments: dict[str, Any],
        timeout: float,
        meta: dict[str, Any],
        responses: mcp_types.InputResponses | None,
        request_state: str | None,
        on_progress: ProgressCallback | None,
    ) -> mcp_types.CallToolResult | mcp_types.InputRequiredResult | mcp_types.Result:
        async def send() -> mcp_types.CallToolResult | mcp_types.InputRequiredResult | mcp_types.Result:
            return await client.session.call_tool(
                tool,
                arguments,
                read_timeout_seconds=timeout,
                progress_callback=on_progress,
                input_responses=responses,
                request_state=request_state,
                meta=cast(mcp_types.RequestParamsMeta, meta),
                allow_input_required=True,
                allow_claimed=True,
            )

        try:
            return await send()
        except MCPError as err:
            # 2026-07-28 mirrors some arguments into headers from the tool's listing: a stale
            # listing is refreshed and the call sent once more (as the SDK's Client.call_tool does).
            if err.code != mcp_types.HEADER_MISMATCH or client.protocol_version not in MODERN_PROTOCOL_VERSIONS:
                raise
            await client.list_tools(cache_mode="refresh")
            return await send()

    @contextlib.asynccontextmanager
    async def task_session(self, server: str, subject: str | None = None) -> AsyncIterator[ClientSession]:
        """The session to `server` for a task's requests (`tasks/get`, `tasks/update`, `tasks/cancel`)."""
        async with self._using(server, subject) as session:
            yield session.client.session

    async def aclose(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        await asyncio.gather(*(session.close() for session in sessions), return_exceptions=True)

    @contextlib.asynccontextmanager
    async def _using(self, server: str, subject: str | None = None) -> AsyncIterator[_Session]:
        session = await self._session(server, subject)
        try:
            yield session
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

    def _key(self, server: str, subject: str | None) -> SessionKey:
        """A server with OAuth per key has one session per key, each with that key's token."""
        config = self._config.servers.get(server)
        if config is None:
            raise MCPServerUnknown(f"MCP server {server!r} is not configured on this worker")
        return (server, subject if config.auth.type == "oauth_per_key" else None)

    async def _session(self, server: str, subject: str | None) -> _Session:
        key = self._key(server, subject)
        config = self._config.servers[server]
        per_key = config.auth.type == "oauth_per_key"
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


def roots_of(config: MCPServerConfig) -> mcp_types.ListRootsResult:
    """The roots a server is told (its `roots` in the configuration)."""
    return mcp_types.ListRootsResult(roots=[mcp_types.Root(uri=root.uri, name=root.name) for root in config.roots])


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
