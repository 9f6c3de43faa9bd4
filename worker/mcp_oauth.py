"""OAuth 2.0 to MCP servers, with the MCP SDK's client auth (`mcp.client.auth`): which provider
authenticates a session, and the client the authorization code flow registers as. The flows
themselves (discovery, registration, PKCE, token exchange and refresh) are the SDK's; tokens
and registrations are kept in the store (`worker.store.oauth_grants`), sealed.

- `oauth_client_credentials`: the server's own client id and secret, configured once; one
  token for every run (subject "").
- `oauth_per_key`: each API key connects once (`GET /v1/mcp/servers/{name}/oauth/connect`,
  `api.mcp_connect`); a run uses its key's token, refreshed by the SDK when it expires.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import httpx2
from mcp.client.auth import OAuthClientProvider
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.shared.auth import OAuthClientMetadata
from pydantic import AnyUrl

from activities.mcp_config import MCPAuthRequired, MCPServerConfig, ServerAuth, resolve_placeholders
from worker.store.oauth_grants import GrantStorage

if TYPE_CHECKING:  # the API imports this module, and no activity
    from activities.mcp_pool import AuthFactory

CALLBACK_PATH = "/v1/mcp/oauth/callback"
CLIENT_NAME = "durable-orchestrations"
SERVER_SUBJECT = ""
LOCAL_SUBJECT = "local"
"""The subject of the loopback user (keys off), who connects per-key servers for itself."""

StorageFor = Callable[[str, str], GrantStorage]


def subject_of(key_name: str | None) -> str:
    """The grant's subject for the API key named `key_name` (None: keys are off)."""
    return key_name if key_name is not None else LOCAL_SUBJECT


def connect_path(server: str) -> str:
    return f"/v1/mcp/servers/{server}/oauth/connect"


def client_metadata(auth: ServerAuth, redirect_uri: str) -> OAuthClientMetadata:
    """The client an authorization code flow registers as (or presents, with `client_id`)."""
    return OAuthClientMetadata(
        client_name=CLIENT_NAME,
        redirect_uris=[AnyUrl(redirect_uri)],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method="client_secret_post" if auth.client_secret else "none",
        scope=auth.scope,
    )


def oauth_auth_factory(storage_for: StorageFor, redirect_uri: str) -> AuthFactory:
    """The pool's auth for each session: None, the server's client credentials, or the key's token."""

    async def auth_for(server: str, config: MCPServerConfig, key_name: str | None) -> httpx2.Auth | None:
        auth = config.auth
        assert config.url is not None or auth.type == "none"
        if auth.type == "oauth_client_credentials":
            assert auth.client_id is not None and auth.client_secret is not None and config.url is not None
            secret = resolve_placeholders({"client_secret": auth.client_secret})["client_secret"]
            return ClientCredentialsOAuthProvider(
                server_url=config.url,
                storage=storage_for(server, SERVER_SUBJECT),
                client_id=auth.client_id,
                client_secret=secret,
                scope=auth.scope,
                issuer=auth.issuer,
            )
        if auth.type == "oauth_per_key":
            assert config.url is not None
            subject = subject_of(key_name)
            storage = storage_for(server, subject)
            if await storage.get_tokens() is None:
                raise _not_connected(server, subject)

            async def needs_a_person(*_: object) -> NoReturn:
                raise _not_connected(server, subject)

            return StoredGrantProvider(
                server_url=config.url,
                client_metadata=client_metadata(auth, redirect_uri),
                storage=storage,
                redirect_handler=needs_a_person,
                callback_handler=needs_a_person,
            )
        return None

    return auth_for


class StoredGrantProvider(OAuthClientProvider):
    """The SDK's provider over a grant read back from the store. The SDK learns a token's expiry
    and the token endpoint only in the process that obtained the token; loaded from storage, a
    token would count as valid until the server refuses it, and a 401 starts a new
    authorization (a person's), not a refresh. Here both are restored (`GrantStorage` counts
    the lifetime left and keeps what was discovered), so an expired token is refreshed first,
    as the SDK does for tokens it obtained itself."""

    def __init__(self, *, storage: GrantStorage, **kwargs: Any) -> None:
        super().__init__(storage=storage, **kwargs)
        self._grant = storage

    async def _initialize(self) -> None:
        await super()._initialize()
        tokens = self.context.current_tokens
        if tokens is not None and tokens.expires_in is not None:
            self.context.update_token_expiry(tokens)
        # Where to refresh: the token endpoint found when the key connected (the SDK otherwise
        # knows it only after a 401 and a new discovery, which ends in a new authorization).
        discovery = await self._grant.get_discovery()
        self.context.oauth_metadata = discovery.authorization_server
        self.context.protected_resource_metadata = discovery.resource
        if discovery.authorization_server is not None:
            self.context.auth_server_url = str(discovery.authorization_server.issuer)


def _not_connected(server: str, subject: str) -> MCPAuthRequired:
    who = "this machine's user" if subject == LOCAL_SUBJECT else f"API key {subject!r}"
    return MCPAuthRequired(
        f"MCP server {server!r} needs each API key's own OAuth authorization and {who} has none "
        f"(or it expired): connect with GET {connect_path(server)}"
    )
