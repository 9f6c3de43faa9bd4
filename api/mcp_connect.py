"""Connecting an API key to an MCP server with OAuth per key: the authorization code flow
with PKCE, run by the MCP SDK's `OAuthClientProvider` on this API process.

`start` makes one request to the server with the provider as its auth; the server answers
401, and the SDK discovers the authorization server, registers the client (unless a
`client_id` is configured) and hands over the authorization URL, which `start` returns. The
flow then waits for the callback (`complete`, from `GET /v1/mcp/oauth/callback`), and the SDK
exchanges the code, checks the state and stores the key's tokens, sealed, through the
store's `TokenStorage`. Workers read them from there; the SDK refreshes them.

A flow lives on the process that started it, for `FLOW_SECONDS`: behind several API replicas,
route `/v1/mcp/oauth/callback` to the replica that answered `connect` (sticky sessions), or
send both to one replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlparse

import httpx2
from mcp.client.auth import OAuthClientProvider
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull
from pydantic import AnyUrl

from activities.mcp_config import MCPServerConfig
from api.errors import APIError
from worker.mcp_oauth import CALLBACK_PATH, client_metadata
from worker.store.oauth_grants import Discovery, GrantStorage

logger = logging.getLogger(__name__)

FLOW_SECONDS = 600
"""How long a started authorization waits for its callback."""
DISCOVERY_SECONDS = 30.0
"""How long discovery and registration may take before `connect` answers."""


@dataclass
class _Flow:
    server: str
    subject: str
    url: asyncio.Future[str] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    callback: asyncio.Future[AuthorizationCodeResult] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    task: asyncio.Task[None] | None = None


class OAuthConnections:
    """The authorization code flows in progress on this process, by their `state`."""

    def __init__(self, api_base_url: str) -> None:
        self.redirect_uri = api_base_url + CALLBACK_PATH
        self._flows: dict[str, _Flow] = {}

    async def start(self, server: str, config: MCPServerConfig, storage: GrantStorage, subject: str) -> str:
        """The authorization URL for `subject` to open; the flow goes on in the background."""
        assert config.url is not None
        if config.auth.client_id:
            await storage.set_client_info(
                OAuthClientInformationFull(
                    client_id=config.auth.client_id,
                    client_secret=config.auth.client_secret,
                    redirect_uris=[AnyUrl(self.redirect_uri)],
                    grant_types=["authorization_code", "refresh_token"],
                    token_endpoint_auth_method="client_secret_post" if config.auth.client_secret else "none",
                    scope=config.auth.scope,
                )
            )
        flow = _Flow(server, subject)

        async def redirect(url: str) -> None:
            state = parse_qs(urlparse(url).query).get("state", [""])[0]
            self._flows[state] = flow
            flow.url.set_result(url)

        async def callback() -> AuthorizationCodeResult:
            return await asyncio.wait_for(asyncio.shield(flow.callback), FLOW_SECONDS)

        provider = OAuthClientProvider(
            server_url=config.url,
            client_metadata=client_metadata(config.auth, self.redirect_uri),
            storage=storage,
            redirect_handler=redirect,
            callback_handler=callback,
        )
        flow.task = task = asyncio.create_task(
            self._run(flow, config.url, provider, storage), name=f"oauth-connect-{server}"
        )
        waiting: set[asyncio.Future[object]] = {flow.url, task}  # type: ignore[arg-type]
        await asyncio.wait(waiting, timeout=DISCOVERY_SECONDS, return_when=asyncio.FIRST_COMPLETED)
        if flow.url.done():
            return flow.url.result()
        task.cancel()
        reason = _failure(task) if task.done() else f"no answer within {DISCOVERY_SECONDS:.0f}s"
        raise APIError(502, "oauth_discovery_failed", f"MCP server {server!r}: cannot start its OAuth flow: {reason}")

    async def complete(self, state: str, code: str | None, iss: str | None, error: str | None) -> _Flow:
        """Hand the callback's parameters to the flow waiting for `state`; when it has stored
        the tokens, the flow (which server and subject were connected)."""
        flow = self._flows.pop(state, None)
        if flow is None or flow.task is None or flow.task.done():
            raise APIError(400, "unknown_oauth_state", "unknown or expired authorization: connect again")
        if error or not code:
            flow.task.cancel()
            raise APIError(400, "oauth_denied", f"the authorization server answered {error or 'no code'}")
        flow.callback.set_result(AuthorizationCodeResult(code=code, state=state, iss=iss))
        await asyncio.wait({flow.task}, timeout=DISCOVERY_SECONDS)
        if not flow.task.done():
            flow.task.cancel()
            raise APIError(502, "oauth_token_failed", "the token exchange did not finish in time")
        failure = _failure(flow.task)
        if failure:
            raise APIError(502, "oauth_token_failed", f"the token exchange failed: {failure}")
        return flow

    async def aclose(self) -> None:
        flows, self._flows = list(self._flows.values()), {}
        for flow in flows:
            if flow.task is not None:
                flow.task.cancel()
                with contextlib.suppress(BaseException):
                    await flow.task

    async def _run(self, flow: _Flow, url: str, provider: OAuthClientProvider, storage: GrantStorage) -> None:
        """One MCP request with the provider as auth: its 401 starts the flow, which ends once
        the tokens are stored (the SDK then retries the request; its answer does not matter).
        What the SDK discovered is kept with the grant, for the workers' refreshes."""
        try:
            async with httpx2.AsyncClient(auth=provider, timeout=httpx2.Timeout(30.0, read=FLOW_SECONDS)) as http:
                await http.post(
                    url,
                    json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                    headers={"Accept": "application/json, text/event-stream"},
                )
            context = provider.context
            await storage.set_discovery(Discovery(context.oauth_metadata, context.protected_resource_metadata))
        finally:
            for state, pending in list(self._flows.items()):
                if pending is flow:
                    del self._flows[state]


def _failure(task: asyncio.Task[None]) -> str | None:
    if task.cancelled():
        return "cancelled"
    err = task.exception()
    if err is None:
        return None
    logger.info("OAuth flow failed: %s: %s", type(err).__name__, err)
    return f"{type(err).__name__}: {err}"
