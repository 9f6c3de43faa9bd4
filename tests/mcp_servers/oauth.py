"""A real OAuth 2.0 authorization server and an MCP server that requires its bearer tokens.

Run: `python -m tests.mcp_servers.oauth --as-port A --mcp-port M [--token-seconds N]
[--client-id ID --client-secret SECRET]`. A port of 0 picks a free one. Once both servers
listen (on 127.0.0.1 only), the process prints one line to stdout and nothing else:

    READY {"as": "http://127.0.0.1:A", "mcp": "http://127.0.0.1:M/mcp"}

SIGTERM (or SIGINT) stops both servers and the process exits with status 0.

The authorization server (issuer `http://127.0.0.1:A`) is the MCP SDK's own server-side auth
support (`create_auth_routes`) over the in-memory `InMemoryAuthorizationServer` below:

- `GET /.well-known/oauth-authorization-server`: RFC 8414 metadata (the SDK's, plus the
  `client_credentials` grant when a client is configured, plus RFC 9207 `iss` support);
- `POST /register`: RFC 7591 dynamic client registration (the SDK's handler);
- `GET /authorize`: authorization code + PKCE (the SDK's handler); it does not approve at
  once but redirects the browser to the login page `/login?request=<id>`;
- `GET /login?request=<id>`: the login page (HTML). `&user=<name>` plays the person who logs
  in as `<name>` and clicks "allow": a 302 to the client's redirect_uri with `code`, `state`
  and `iss`. `&deny=1` plays a click on "deny": a 302 with `error=access_denied`;
- `POST /token`: `authorization_code` and `refresh_token` (the SDK's handler, which checks
  PKCE and client secrets) and `client_credentials` (handled here, for the client given by
  --client-id/--client-secret, with client_secret_basic or client_secret_post);
- `POST /revoke`: RFC 7009 revocation of a token's whole grant (the SDK's handler, which
  wants `client_id` and `client_secret` in the form);
- `GET /_stats`: test-only JSON counters, see `InMemoryAuthorizationServer.stats`.

Access tokens expire after --token-seconds (default 3600); refresh tokens do not expire
and are rotated on every use; client_credentials tokens come without a refresh token.

The MCP server (streamable HTTP at `http://127.0.0.1:M/mcp`) is the SDK's `MCPServer` as an
OAuth resource server: a request without a valid token gets 401 (a token without scope
`mcp`: 403) and a `WWW-Authenticate` header naming its protected resource metadata
(`/.well-known/oauth-protected-resource/mcp`), which names the authorization server above
and the scope `mcp`. It checks tokens against the authorization server's token table directly
(same process): unknown, revoked, expired, or bound (RFC 8707) to another resource: refused.
Tools: `whoami()` (the token's subject: the user who logged in, or `client:<id>`) and
`echo(text)`.

For tests, `oauth_servers()` runs the process and `log_in()` plays the browser.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import hmac
import html
import json
import math
import os
import secrets
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urljoin, urlparse

import httpx
import uvicorn
from mcp.server.auth.handlers.metadata import MetadataHandler
from mcp.server.auth.handlers.token import TokenErrorResponse, TokenHandler
from mcp.server.auth.json_response import PydanticJSONResponse
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.middleware.client_auth import ClientAuthenticator
from mcp.server.auth.provider import (
    AccessToken,
    AuthorizationCode,
    AuthorizationParams,
    AuthorizeError,
    OAuthAuthorizationServerProvider,
    RefreshToken,
    TokenError,
    TokenErrorCode,
    TokenVerifier,
    construct_redirect_uri,
)
from mcp.server.auth.routes import TOKEN_PATH, build_metadata, cors_middleware, create_auth_routes
from mcp.server.auth.settings import AuthSettings, ClientRegistrationOptions, RevocationOptions
from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthToken
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

SCOPE = "mcp"
"""The one scope of this authorization server; the MCP server requires it."""
METADATA_PATH = "/.well-known/oauth-authorization-server"
LOGIN_PATH = "/login"
STATS_PATH = "/_stats"
AUTHORIZATION_CODE_SECONDS = 300
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")


class IssuedAccessToken(AccessToken):
    """An access token, with the grant it belongs to (kept across refreshes, for revocation)."""

    grant_id: str


class IssuedRefreshToken(RefreshToken):
    """A refresh token, with the grant it belongs to."""

    grant_id: str


@dataclass
class PendingAuthorization:
    """An authorization request waiting on the login page for its person to log in."""

    client: OAuthClientInformationFull
    params: AuthorizationParams


class InMemoryAuthorizationServer(
    OAuthAuthorizationServerProvider[AuthorizationCode, IssuedRefreshToken, IssuedAccessToken]
):
    """The authorization server's state and decisions: registered clients, pending logins,
    codes and tokens, all in memory. The SDK's handlers call the provider methods; the
    login page, the client-credentials grant and the stats are this class's own endpoints."""

    def __init__(
        self,
        *,
        issuer: str,
        resource: str,
        token_seconds: int,
        client_id: str | None = None,
        client_secret: str | None = None,
    ) -> None:
        self.settings = AuthSettings(
            issuer_url=issuer,  # type: ignore[arg-type]
            resource_server_url=resource,  # type: ignore[arg-type]
            required_scopes=[SCOPE],
            client_registration_options=ClientRegistrationOptions(
                enabled=True, valid_scopes=[SCOPE], default_scopes=[SCOPE]
            ),
            revocation_options=RevocationOptions(enabled=True),
            # MCPServerTokenVerifier checks the token's resource itself.
            validate_token_resource=False,
        )
        self.resource = resource
        self.token_seconds = token_seconds
        self.client_id = client_id
        self.client_secret = client_secret
        self.metadata = build_metadata(
            self.settings.issuer_url,
            None,
            self.settings.client_registration_options or ClientRegistrationOptions(),
            self.settings.revocation_options or RevocationOptions(),
        )
        if client_id is not None:
            self.metadata.grant_types_supported = [*(self.metadata.grant_types_supported or []), "client_credentials"]
        self.metadata.authorization_response_iss_parameter_supported = True
        # RFC 9207: the `iss` of a redirect is compared as a string with the metadata's issuer.
        self.issuer = str(self.metadata.issuer)

        self.clients: dict[str, OAuthClientInformationFull] = {}
        self.registered_clients = 0
        if client_id is not None and client_secret is not None:
            # The pre-registered client of the client_credentials grant, known to the SDK's
            # handlers too, so it can revoke its tokens (the SDK's /revoke wants client_secret
            # in the form, whatever the method; our /token takes Basic or the form).
            self.clients[client_id] = OAuthClientInformationFull(
                client_id=client_id,
                client_secret=client_secret,
                grant_types=["client_credentials"],
                token_endpoint_auth_method="client_secret_post",
                scope=SCOPE,
            )
        self.pending: dict[str, PendingAuthorization] = {}
        self.codes: dict[str, AuthorizationCode] = {}
        self.access_tokens: dict[str, IssuedAccessToken] = {}
        self.refresh_tokens: dict[str, IssuedRefreshToken] = {}
        self.issued: Counter[str] = Counter()
        self._sdk_token_handler = TokenHandler(self, ClientAuthenticator(self))

    # -- dynamic client registration -------------------------------------------------------

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        return self.clients.get(client_id)

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        self.clients[client_info.client_id] = client_info
        self.registered_clients += 1

    # -- authorization code + PKCE ---------------------------------------------------------

    async def authorize(self, client: OAuthClientInformationFull, params: AuthorizationParams) -> str:
        """Park the request and send the browser to the login page (nothing is approved yet)."""
        if params.resource is not None and not self._is_our_resource(params.resource):
            raise AuthorizeError("invalid_target", f"unknown resource {params.resource}")
        request_id = secrets.token_urlsafe(16)
        self.pending[request_id] = PendingAuthorization(client=client, params=params)
        return f"{self.issuer}{LOGIN_PATH}?request={request_id}"

    async def login(self, request: Request) -> Response:
        """The login page, and the person's answer on it (`user=<name>` allows, `deny=1` denies)."""
        request_id = request.query_params.get("request", "")
        pending = self.pending.get(request_id)
        if pending is None:
            return PlainTextResponse("unknown or finished authorization request", status_code=400)
        user = request.query_params.get("user")
        denied = request.query_params.get("deny") not in (None, "", "0")
        if not user and not denied:
            return HTMLResponse(_login_page(request_id, pending))
        del self.pending[request_id]
        redirect_uri = str(pending.params.redirect_uri)
        if denied:
            location = construct_redirect_uri(
                redirect_uri,
                error="access_denied",
                error_description="the user denied the request",
                state=pending.params.state,
                iss=self.issuer,
            )
        else:
            code = secrets.token_urlsafe(32)
            self.codes[code] = AuthorizationCode(
                code=code,
                scopes=pending.params.scopes or [SCOPE],
                expires_at=time.time() + AUTHORIZATION_CODE_SECONDS,
                client_id=pending.client.client_id,
                code_challenge=pending.params.code_challenge,
                redirect_uri=pending.params.redirect_uri,
                redirect_uri_provided_explicitly=pending.params.redirect_uri_provided_explicitly,
                resource=pending.params.resource,
                subject=user,
            )
            location = construct_redirect_uri(redirect_uri, code=code, state=pending.params.state, iss=self.issuer)
        return RedirectResponse(location, status_code=302, headers={"Cache-Control": "no-store"})

    async def load_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: str
    ) -> AuthorizationCode | None:
        code = self.codes.get(authorization_code)
        return code if code is not None and code.client_id == client.client_id else None

    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: AuthorizationCode
    ) -> OAuthToken:
        if self.codes.pop(authorization_code.code, None) is None:
            raise TokenError("invalid_grant", "authorization code already used")
        return self._issue(
            "authorization_code",
            client_id=client.client_id,
            scopes=authorization_code.scopes,
            subject=authorization_code.subject,
            resource=authorization_code.resource,
            grant_id=secrets.token_hex(8),
            with_refresh_token=True,
        )

    # -- refresh tokens --------------------------------------------------------------------

    async def load_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: str
    ) -> IssuedRefreshToken | None:
        token = self.refresh_tokens.get(refresh_token)
        return token if token is not None and token.client_id == client.client_id else None

    async def exchange_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: IssuedRefreshToken, scopes: list[str]
    ) -> OAuthToken:
        """Rotate: the old refresh token is spent, a new pair is issued for the same grant."""
        if self.refresh_tokens.pop(refresh_token.token, None) is None:
            raise TokenError("invalid_grant", "refresh token already used")
        return self._issue(
            "refresh_token",
            client_id=client.client_id,
            scopes=scopes,
            subject=refresh_token.subject,
            resource=refresh_token.resource,
            grant_id=refresh_token.grant_id,
            with_refresh_token=True,
        )

    # -- client credentials ----------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        """`POST /token`: the client_credentials grant here, every other grant to the SDK's handler."""
        form = await request.form()  # cached on the request: the SDK's handler reads it again
        if form.get("grant_type") != "client_credentials":
            return await self._sdk_token_handler.handle(request)
        authenticated, used_basic = self._authenticate_client(request, form.get("client_id"), form.get("client_secret"))
        if not authenticated:
            headers = {"WWW-Authenticate": 'Basic realm="token"'} if used_basic else {}
            return _token_error("invalid_client", "unknown client or wrong secret", status=401, headers=headers)
        scope = form.get("scope")
        scopes = str(scope).split() if scope else [SCOPE]
        if any(s != SCOPE for s in scopes):
            return _token_error("invalid_scope", f"this server only grants scope {SCOPE!r}")
        resource = form.get("resource")
        if resource is not None and not self._is_our_resource(str(resource)):
            return _token_error("invalid_target", f"unknown resource {resource}")
        assert self.client_id is not None
        token = self._issue(
            "client_credentials",
            client_id=self.client_id,
            scopes=scopes,
            subject=f"client:{self.client_id}",
            resource=str(resource) if resource is not None else None,
            grant_id=secrets.token_hex(8),
            with_refresh_token=False,
        )
        return PydanticJSONResponse(content=token, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _authenticate_client(self, request: Request, form_id: Any, form_secret: Any) -> tuple[bool, bool]:
        """(whether the request carries the configured client's credentials, whether by HTTP Basic):
        client_secret_basic (the SDK's default) or client_secret_post."""
        header = request.headers.get("Authorization", "")
        used_basic = header.startswith("Basic ")
        if used_basic:
            try:
                client_id, _, client_secret = base64.b64decode(header[6:]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return False, True
            client_id, client_secret = unquote(client_id), unquote(client_secret)
            if form_id is not None and form_id != client_id:
                return False, True
        else:
            client_id, client_secret = str(form_id or ""), str(form_secret or "")
        if self.client_id is None or self.client_secret is None:
            return False, used_basic
        matches = hmac.compare_digest(client_id.encode(), self.client_id.encode()) and hmac.compare_digest(
            client_secret.encode(), self.client_secret.encode()
        )
        return matches, used_basic

    # -- tokens ----------------------------------------------------------------------------

    def _issue(
        self,
        grant_type: str,
        *,
        client_id: str,
        scopes: list[str],
        subject: str | None,
        resource: str | None,
        grant_id: str,
        with_refresh_token: bool,
    ) -> OAuthToken:
        access = secrets.token_urlsafe(32)
        self.access_tokens[access] = IssuedAccessToken(
            token=access,
            client_id=client_id,
            scopes=scopes,
            # Whole seconds, rounded up: the server never rejects a token before the
            # client, counting `expires_in` from when it got the token, takes it for expired.
            expires_at=math.ceil(time.time() + self.token_seconds),
            resource=resource,
            subject=subject,
            claims={"iss": self.issuer},
            grant_id=grant_id,
        )
        refresh: str | None = None
        if with_refresh_token:
            refresh = secrets.token_urlsafe(32)
            self.refresh_tokens[refresh] = IssuedRefreshToken(
                token=refresh,
                client_id=client_id,
                scopes=scopes,
                resource=resource,
                subject=subject,
                grant_id=grant_id,
            )
        self.issued[grant_type] += 1
        return OAuthToken(
            access_token=access,
            expires_in=self.token_seconds,
            scope=" ".join(scopes),
            refresh_token=refresh,
        )

    async def load_access_token(self, token: str) -> IssuedAccessToken | None:
        return self.access_tokens.get(token)

    async def revoke_token(self, token: IssuedAccessToken | IssuedRefreshToken) -> None:
        """Revoke the whole grant the token belongs to: its access and refresh tokens."""
        grant_id = token.grant_id
        for table in (self.access_tokens, self.refresh_tokens):
            for key in [key for key, value in table.items() if value.grant_id == grant_id]:
                del table[key]

    def introspect(self, token: str) -> AccessToken | None:
        """The MCP server's token check: a token issued here, unexpired, for the MCP server
        (or for no resource in particular); None otherwise."""
        found = self.access_tokens.get(token)
        if found is None:
            return None
        if found.expires_at is not None and time.time() >= found.expires_at:
            del self.access_tokens[token]
            return None
        if found.resource is not None and not self._is_our_resource(found.resource):
            return None
        return found

    def _is_our_resource(self, resource: str) -> bool:
        return resource.rstrip("/") == self.resource.rstrip("/")

    # -- the HTTP application --------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """`GET /_stats`: tokens issued per grant type, and how many clients registered themselves."""
        return {
            "tokens_issued": {grant: self.issued[grant] for grant in GRANT_TYPES},
            "registered_clients": self.registered_clients,
        }

    async def _stats(self, request: Request) -> Response:
        return JSONResponse(self.stats(), headers={"Cache-Control": "no-store"})

    def app(self) -> Starlette:
        """The authorization server: the SDK's routes, with its metadata and token endpoint
        replaced by ours (which add client_credentials), plus the login page and the stats."""
        sdk_routes = create_auth_routes(
            self,
            self.settings.issuer_url,
            client_registration_options=self.settings.client_registration_options,
            revocation_options=self.settings.revocation_options,
        )
        routes = [route for route in sdk_routes if route.path not in (METADATA_PATH, TOKEN_PATH)]
        routes += [
            Route(
                METADATA_PATH,
                endpoint=cors_middleware(MetadataHandler(self.metadata).handle, ["GET", "OPTIONS"]),
                methods=["GET", "OPTIONS"],
            ),
            Route(TOKEN_PATH, endpoint=self.token, methods=["POST"]),
            Route(LOGIN_PATH, endpoint=self.login, methods=["GET"]),
            Route(STATS_PATH, endpoint=self._stats, methods=["GET"]),
        ]
        return Starlette(routes=routes)


def _token_error(
    error: TokenErrorCode, description: str, *, status: int = 400, headers: dict[str, str] | None = None
) -> Response:
    return PydanticJSONResponse(
        content=TokenErrorResponse(error=error, error_description=description),
        status_code=status,
        headers={"Cache-Control": "no-store", "Pragma": "no-cache", **(headers or {})},
    )


def _login_page(request_id: str, pending: PendingAuthorization) -> str:
    client = html.escape(pending.client.client_name or pending.client.client_id)
    request_id = html.escape(request_id)
    return f"""<!doctype html>
<title>Log in</title>
<p>{client} asks for access (scope {html.escape(" ".join(pending.params.scopes or [SCOPE]))}).</p>
<form method="get" action="{LOGIN_PATH}">
  <input type="hidden" name="request" value="{request_id}">
  <label>User <input name="user"></label>
  <button>Allow</button>
</form>
<p><a href="{LOGIN_PATH}?request={request_id}&amp;deny=1">Deny</a></p>
"""


# -- the MCP server ------------------------------------------------------------------------


class MCPServerTokenVerifier(TokenVerifier):
    """The MCP server's side of token introspection: asks the authorization server's token table."""

    def __init__(self, authorization_server: InMemoryAuthorizationServer) -> None:
        self.authorization_server = authorization_server

    async def verify_token(self, token: str) -> AccessToken | None:
        return self.authorization_server.introspect(token)


def build_mcp_server(authorization_server: InMemoryAuthorizationServer) -> MCPServer:
    """The protected MCP server: a resource server of `authorization_server`."""
    server = MCPServer(
        "oauth-protected",
        log_level="WARNING",
        token_verifier=MCPServerTokenVerifier(authorization_server),
        auth=authorization_server.settings,
    )

    @server.tool()
    def whoami(ctx: Context) -> str:
        """The subject of the caller's token: the user who logged in, or `client:<id>`."""
        request = ctx.request_context.request
        user = request.scope.get("user") if isinstance(request, Request) else None
        if not isinstance(user, AuthenticatedUser):
            raise RuntimeError("no authenticated caller")
        return user.access_token.subject or ""

    @server.tool()
    def echo(text: str) -> str:
        """Return `text` unchanged."""
        return text

    return server


# -- the process ---------------------------------------------------------------------------


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to `serve` (two servers share one process)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(128)
    return sock


async def serve(
    as_port: int, mcp_port: int, token_seconds: int, client_id: str | None, client_secret: str | None
) -> int:
    """Run both servers until SIGTERM/SIGINT; print the READY line once both are up."""
    as_socket, mcp_socket = _listen(as_port), _listen(mcp_port)
    issuer = f"http://127.0.0.1:{as_socket.getsockname()[1]}"
    mcp_url = f"http://127.0.0.1:{mcp_socket.getsockname()[1]}/mcp"
    authorization_server = InMemoryAuthorizationServer(
        issuer=issuer, resource=mcp_url, token_seconds=token_seconds, client_id=client_id, client_secret=client_secret
    )
    mcp_app = build_mcp_server(authorization_server).streamable_http_app(host="127.0.0.1")
    servers = [
        _Server(uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=3))
        for app in (authorization_server.app(), mcp_app)
    ]

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop)
    tasks = [
        asyncio.create_task(server.serve(sockets=[sock]))
        for server, sock in zip(servers, (as_socket, mcp_socket), strict=True)
    ]
    while not all(server.started for server in servers) and not any(task.done() for task in tasks):
        await asyncio.sleep(0.01)
    if all(server.started for server in servers):
        print("READY " + json.dumps({"as": issuer, "mcp": mcp_url}), flush=True)  # noqa: T201
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    stop()
    await asyncio.gather(*tasks)
    return 0 if all(server.started for server in servers) else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--as-port", type=int, default=0, help="authorization server port (0: a free one)")
    parser.add_argument("--mcp-port", type=int, default=0, help="MCP server port (0: a free one)")
    parser.add_argument("--token-seconds", type=int, default=3600, help="access token lifetime")
    parser.add_argument("--client-id", help="the client allowed the client_credentials grant")
    parser.add_argument("--client-secret", help="its secret")
    args = parser.parse_args()
    if (args.client_id is None) != (args.client_secret is None):
        parser.error("--client-id and --client-secret go together")
    if args.token_seconds < 1:
        parser.error("--token-seconds must be at least 1")
    code = asyncio.run(serve(args.as_port, args.mcp_port, args.token_seconds, args.client_id, args.client_secret))
    sys.exit(code)


# -- for tests -----------------------------------------------------------------------------


@dataclass
class OAuthServers:
    """A running `python -m tests.mcp_servers.oauth`, as a test sees it."""

    issuer: str
    """The authorization server's issuer (and base URL)."""
    mcp_url: str
    """The MCP server's streamable HTTP endpoint."""
    process: asyncio.subprocess.Process

    async def stats(self) -> dict[str, Any]:
        """The authorization server's `/_stats` counters."""
        async with httpx.AsyncClient() as http:
            response = await http.get(self.issuer + STATS_PATH)
            response.raise_for_status()
            return response.json()

    async def stop(self, timeout: float) -> int:
        """SIGTERM, then the exit status."""
        return await _terminate(self.process, timeout)


async def _terminate(process: asyncio.subprocess.Process, timeout: float) -> int:
    """SIGTERM `process` and return its exit status; kill it (and raise) if it outlives `timeout`."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(process.wait(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise


@contextlib.asynccontextmanager
async def oauth_servers(
    *,
    timeout: float,
    token_seconds: int | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
) -> AsyncIterator[OAuthServers]:
    """Start the process on free ports, wait (at most `timeout`) for its READY line, and
    stop it (SIGTERM) on exit. Its stderr (logs) goes to the test's stderr."""
    args = [sys.executable, "-m", "tests.mcp_servers.oauth"]
    if token_seconds is not None:
        args += ["--token-seconds", str(token_seconds)]
    if client_id is not None and client_secret is not None:
        args += ["--client-id", client_id, "--client-secret", client_secret]
    repo_root = Path(__file__).resolve().parents[2]
    process = await asyncio.create_subprocess_exec(
        *args, cwd=repo_root, env=os.environ.copy(), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), timeout)).decode()
        if not line.startswith("READY "):
            raise RuntimeError(f"oauth servers did not start (exit status {await process.wait()}): {line!r}")
        urls = json.loads(line.removeprefix("READY "))
        servers = OAuthServers(issuer=urls["as"], mcp_url=urls["mcp"], process=process)
        yield servers
    finally:
        await _terminate(process, timeout)


async def log_in(authorization_url: str, user: str | None, *, timeout: float) -> str:
    """Play the browser and the person in it: open `authorization_url` (the AS's /authorize),
    follow its redirect to the login page, log in as `user` and allow (or deny, for None), and
    return where the AS then redirects: the client's redirect_uri with `code`, `state` and
    `iss` (or `error`). That last redirect is not followed."""
    async with httpx.AsyncClient(follow_redirects=False, timeout=timeout) as browser:
        authorize = await browser.get(authorization_url)
        if authorize.status_code != 302:
            raise AssertionError(f"/authorize answered {authorize.status_code}: {authorize.text}")
        login_url = urljoin(authorization_url, authorize.headers["location"])
        page = await browser.get(login_url)
        if page.status_code != 200:
            raise AssertionError(f"the login page answered {page.status_code}: {page.text}")
        answer_url = httpx.URL(login_url).copy_merge_params({"user": user} if user is not None else {"deny": "1"})
        answer = await browser.get(answer_url)
        if answer.status_code != 302:
            raise AssertionError(f"the login answered {answer.status_code}: {answer.text}")
        return answer.headers["location"]


def callback_result(location: str) -> AuthorizationCodeResult:
    """What the client's redirect_uri received, as the SDK's callback_handler returns it;
    raises if the AS redirected with an error."""
    query = {key: values[0] for key, values in parse_qs(urlparse(location).query).items()}
    if "error" in query:
        raise PermissionError(f"authorization failed: {query['error']}: {query.get('error_description')}")
    return AuthorizationCodeResult(code=query["code"], state=query.get("state"), iss=query.get("iss"))


if __name__ == "__main__":
    main()
