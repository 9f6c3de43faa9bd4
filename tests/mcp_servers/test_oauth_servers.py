"""The OAuth test servers (tests/mcp_servers/oauth.py) against the MCP SDK's own OAuth clients:
what the orchestration service's MCP OAuth support will be tested against must itself work
with `ClientCredentialsOAuthProvider` and `OAuthClientProvider` (authorization code + PKCE,
dynamic client registration, refresh)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
import mcp_types
import pytest
from mcp import Client
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from pydantic import AnyUrl

from tests.mcp_servers.oauth import OAuthServers, callback_result, log_in, oauth_servers
from tests.waiting import WAIT_SECONDS, eventually

CLIENT_ID = "orchestrator"
CLIENT_SECRET = "s3cret with spaces & symbols"
REDIRECT_URI = "http://127.0.0.1:1/callback"
"""The client's redirect_uri: never contacted, the test reads the AS's redirect to it."""
SHORT_TOKEN_SECONDS = 2
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "0"},
    },
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream"}


class MemoryTokenStorage(TokenStorage):
    """The client's token storage, in memory; remembers when it last got tokens."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.tokens_set_at = 0.0
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens
        self.tokens_set_at = time.time()

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info

    def expired(self) -> bool:
        """Whether the access token's `expires_in` has run out (as the client counts it)."""
        assert self.tokens is not None and self.tokens.expires_in is not None
        return time.time() > self.tokens_set_at + self.tokens.expires_in


class Browser:
    """The SDK's redirect_handler and callback_handler, with a person at the browser who logs
    in as `user` (or denies, for None): the redirect handler gets the authorization URL, the
    callback handler plays the browser with it and hands the SDK what the redirect_uri got."""

    def __init__(self, user: str | None) -> None:
        self.user = user
        self.authorization_urls: list[str] = []
        self.locations: list[str] = []

    async def redirect_handler(self, authorization_url: str) -> None:
        self.authorization_urls.append(authorization_url)

    async def callback_handler(self) -> AuthorizationCodeResult:
        location = await log_in(self.authorization_urls[-1], self.user, timeout=WAIT_SECONDS)
        self.locations.append(location)
        assert location.startswith(REDIRECT_URI + "?")
        return callback_result(location)


def authorization_code_provider(servers: OAuthServers, storage: TokenStorage, browser: Browser) -> OAuthClientProvider:
    return OAuthClientProvider(
        server_url=servers.mcp_url,
        client_metadata=OAuthClientMetadata(client_name="oauth servers test", redirect_uris=[AnyUrl(REDIRECT_URI)]),
        storage=storage,
        redirect_handler=browser.redirect_handler,
        callback_handler=browser.callback_handler,
    )


@contextlib.asynccontextmanager
async def mcp_client(url: str, auth: OAuthClientProvider) -> AsyncIterator[Client]:
    """An MCP client session over streamable HTTP, authenticated by `auth` (as activities/mcp_pool.py opens one)."""
    async with create_mcp_http_client(auth=auth) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            yield client


async def call_text(client: Client, tool: str, arguments: dict[str, str] | None = None) -> str:
    result = await client.call_tool(tool, arguments or {})
    assert not result.is_error, result
    content = result.content[0]
    assert isinstance(content, mcp_types.TextContent)
    return content.text


@pytest.fixture(scope="module")
async def servers() -> AsyncIterator[OAuthServers]:
    async with oauth_servers(timeout=WAIT_SECONDS, client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as running:
        yield running


@pytest.fixture(scope="module")
async def short_lived() -> AsyncIterator[OAuthServers]:
    """The servers with access tokens that expire after SHORT_TOKEN_SECONDS."""
    async with oauth_servers(
        timeout=WAIT_SECONDS, token_seconds=SHORT_TOKEN_SECONDS, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    ) as running:
        yield running


async def test_without_a_token_the_mcp_server_answers_401_and_points_at_its_metadata(servers: OAuthServers) -> None:
    async with httpx.AsyncClient(timeout=WAIT_SECONDS) as http:
        response = await http.post(servers.mcp_url, json=INITIALIZE, headers=MCP_HEADERS)
        assert response.status_code == 401
        assert "mcp-session-id" not in response.headers
        metadata_url = servers.mcp_url.replace("/mcp", "/.well-known/oauth-protected-resource/mcp")
        assert f'resource_metadata="{metadata_url}"' in response.headers["www-authenticate"]

        forged = await http.post(
            servers.mcp_url, json=INITIALIZE, headers={**MCP_HEADERS, "Authorization": "Bearer forged"}
        )
        assert forged.status_code == 401

        resource = (await http.get(metadata_url)).json()
        assert resource["resource"] == servers.mcp_url
        assert resource["authorization_servers"] == [servers.issuer]
        assert resource["scopes_supported"] == ["mcp"]

        authorization_server = (await http.get(servers.issuer + "/.well-known/oauth-authorization-server")).json()
        assert authorization_server["issuer"] == servers.issuer
        assert "client_credentials" in authorization_server["grant_types_supported"]


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
async def test_client_credentials(servers: OAuthServers, auth_method: str) -> None:
    before = (await servers.stats())["tokens_issued"]["client_credentials"]
    storage = MemoryTokenStorage()
    provider = ClientCredentialsOAuthProvider(
        server_url=servers.mcp_url,
        storage=storage,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        token_endpoint_auth_method=auth_method,  # type: ignore[arg-type]
        issuer=servers.issuer,
    )
    async with asyncio.timeout(WAIT_SECONDS), mcp_client(servers.mcp_url, provider) as client:
        assert await call_text(client, "whoami") == f"client:{CLIENT_ID}"
        assert await call_text(client, "echo", {"text": "hello"}) == "hello"
    assert storage.tokens is not None and storage.tokens.scope == "mcp"
    assert (await servers.stats())["tokens_issued"]["client_credentials"] == before + 1


async def test_client_credentials_with_a_wrong_secret_get_no_token(servers: OAuthServers) -> None:
    async with httpx.AsyncClient(timeout=WAIT_SECONDS) as http:
        response = await http.post(
            servers.issuer + "/token", data={"grant_type": "client_credentials"}, auth=(CLIENT_ID, "wrong")
        )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_a_revoked_token_is_refused(servers: OAuthServers) -> None:
    async with httpx.AsyncClient(timeout=WAIT_SECONDS) as http:
        response = await http.post(
            servers.issuer + "/token", data={"grant_type": "client_credentials"}, auth=(CLIENT_ID, CLIENT_SECRET)
        )
        token = response.json()["access_token"]
        headers = {**MCP_HEADERS, "Authorization": f"Bearer {token}"}
        assert (await http.post(servers.mcp_url, json=INITIALIZE, headers=headers)).status_code == 200
        revoke = {"token": token, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
        assert (await http.post(servers.issuer + "/revoke", data=revoke)).status_code == 200
        assert (await http.post(servers.mcp_url, json=INITIALIZE, headers=headers)).status_code == 401


async def test_authorization_code_flow_logs_in_the_user(servers: OAuthServers) -> None:
    before = await servers.stats()
    storage, browser = MemoryTokenStorage(), Browser("alice")
    provider = authorization_code_provider(servers, storage, browser)
    async with asyncio.timeout(WAIT_SECONDS), mcp_client(servers.mcp_url, provider) as client:
        assert await call_text(client, "whoami") == "alice"
    assert len(browser.authorization_urls) == 1
    assert callback_result(browser.locations[0]).iss == servers.issuer  # RFC 9207
    after = await servers.stats()
    assert after["registered_clients"] == before["registered_clients"] + 1
    assert after["tokens_issued"]["authorization_code"] == before["tokens_issued"]["authorization_code"] + 1
    assert storage.tokens is not None and storage.tokens.refresh_token


async def test_a_denied_authorization_gets_no_session(servers: OAuthServers) -> None:
    before = (await servers.stats())["tokens_issued"]["authorization_code"]
    browser = Browser(None)
    provider = authorization_code_provider(servers, MemoryTokenStorage(), browser)
    with pytest.raises(ExceptionGroup) as raised:  # the callback handler's error, from the transport's task group
        async with asyncio.timeout(WAIT_SECONDS), mcp_client(servers.mcp_url, provider):
            pass
    assert raised.group_contains(PermissionError, match="access_denied")
    assert "error=access_denied" in browser.locations[0]
    assert (await servers.stats())["tokens_issued"]["authorization_code"] == before


async def test_an_expired_access_token_is_refreshed(short_lived: OAuthServers) -> None:
    storage, browser = MemoryTokenStorage(), Browser("bob")
    provider = authorization_code_provider(short_lived, storage, browser)
    async with asyncio.timeout(WAIT_SECONDS), mcp_client(short_lived.mcp_url, provider) as client:
        assert await call_text(client, "whoami") == "bob"
        assert storage.tokens is not None and storage.tokens.expires_in == SHORT_TOKEN_SECONDS
        old_token = storage.tokens.access_token
        refreshed_before = (await short_lived.stats())["tokens_issued"]["refresh_token"]

        await eventually(storage.expired, "the access token expired", timeout=WAIT_SECONDS)

        assert await call_text(client, "whoami") == "bob"
        assert storage.tokens.access_token != old_token
        assert (await short_lived.stats())["tokens_issued"]["refresh_token"] > refreshed_before
    assert len(browser.authorization_urls) == 1  # refreshed, never sent back to the login page

    async def old_token_refused() -> bool:
        async with httpx.AsyncClient(timeout=WAIT_SECONDS) as http:
            headers = {**MCP_HEADERS, "Authorization": f"Bearer {old_token}"}
            response = await http.post(short_lived.mcp_url, json=INITIALIZE, headers=headers)
        return response.status_code == 401

    await eventually(old_token_refused, "the MCP server refuses the expired token", timeout=WAIT_SECONDS)


async def test_expired_client_credentials_are_replaced(short_lived: OAuthServers) -> None:
    before = (await short_lived.stats())["tokens_issued"]["client_credentials"]
    storage = MemoryTokenStorage()
    provider = ClientCredentialsOAuthProvider(
        server_url=short_lived.mcp_url,
        storage=storage,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        issuer=short_lived.issuer,
    )
    async with asyncio.timeout(WAIT_SECONDS), mcp_client(short_lived.mcp_url, provider) as client:
        assert await call_text(client, "whoami") == f"client:{CLIENT_ID}"
        await eventually(storage.expired, "the access token expired", timeout=WAIT_SECONDS)
        assert await call_text(client, "whoami") == f"client:{CLIENT_ID}"
    assert (await short_lived.stats())["tokens_issued"]["client_credentials"] >= before + 2


async def test_exits_cleanly_on_sigterm() -> None:
    async with oauth_servers(timeout=WAIT_SECONDS) as running:
        assert await running.stop(WAIT_SECONDS) == 0
