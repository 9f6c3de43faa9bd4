"""/v1/mcp/servers: MCP servers as managed resources (admin), their health, and connecting an
API key to a server with OAuth per key (any key, for itself)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import HTMLResponse

from api.auth import Admin, Caller
from api.deps import OAuthConnectionsDep, ServiceDep, SettingsDep, StoreDep
from api.errors import APIError, error_responses
from api.mcp_connect import FLOW_SECONDS
from api.mcp_servers import (
    CreateMCPServer,
    MCPServerList,
    MCPServerView,
    OAuthConnectStart,
    UpdateMCPServer,
    merged,
    validated,
    view_of,
    view_of_file_entry,
)
from api.service import OrchestrationService
from worker.mcp_oauth import CALLBACK_PATH, subject_of
from worker.store.sealing import SecretsKeyError
from worker.store.servers import ServerChanged, ServerExists, StoredServer
from worker.store.shared import Store
from workflows.activity_io import ServerTools

router = APIRouter(prefix="/v1/mcp", tags=["mcp servers"])
callback_router = APIRouter(tags=["mcp servers"])


@router.get("/servers", response_model=MCPServerList, responses=error_responses(401, 403, 503))
async def list_servers(_: Admin, store: StoreDep, service: ServiceDep) -> MCPServerList:
    """Every server: those added over the API, then the workers' ORCH_MCP_CONFIG ones (read-only),
    each with its health as the workers last checked it."""
    health = await store.servers.health()
    views = [
        view_of(server, health.get(server.name), await _connected(store, server))
        for server in await store.servers.list()
    ]
    stored = {view.name for view in views}
    views += [
        view_of_file_entry(listed, health.get(listed.name))
        for listed in await _file_entries(service)
        if listed.name not in stored
    ]
    return MCPServerList(servers=views)


@router.post(
    "/servers",
    status_code=201,
    response_model=MCPServerView,
    responses=error_responses(400, 401, 403, 409, 413, 422, 503),
)
async def create_server(
    body: CreateMCPServer, _: Admin, store: StoreDep, service: ServiceDep, settings: SettingsDep
) -> MCPServerView:
    """Add a server. Secrets in `headers`, `env` and `auth.client_secret` are stored sealed with
    ORCH_SECRETS_KEY and never returned. Workers use it within seconds."""
    if any(listed.name == body.name for listed in await _file_entries(service)):
        raise APIError(409, "server_read_only", f"MCP server {body.name!r} is defined in the workers' ORCH_MCP_CONFIG")
    config = validated(
        body.model_dump(mode="json", exclude={"name"}, exclude_unset=True), commands=settings.mcp_api_commands
    )
    try:
        stored = await store.servers.create(body.name, config)
    except ServerExists:
        raise APIError(409, "server_exists", f"MCP server {body.name!r} exists: PATCH it instead") from None
    except SecretsKeyError as err:
        raise _no_secrets_key(err) from None
    service.tools.forget()
    return view_of(stored, None, [])


@router.get("/servers/{name}", response_model=MCPServerView, responses=error_responses(401, 403, 404, 503))
async def get_server(name: str, _: Admin, store: StoreDep, service: ServiceDep) -> MCPServerView:
    stored = await store.servers.get(name)
    if stored is not None:
        return view_of(stored, (await store.servers.health()).get(name), await _connected(store, stored))
    for listed in await _file_entries(service):
        if listed.name == name:
            return view_of_file_entry(listed, (await store.servers.health()).get(name))
    raise _unknown(name)


@router.patch(
    "/servers/{name}", response_model=MCPServerView, responses=error_responses(400, 401, 403, 404, 409, 413, 422, 503)
)
async def update_server(
    name: str, patch: UpdateMCPServer, _: Admin, store: StoreDep, service: ServiceDep, settings: SettingsDep
) -> MCPServerView:
    """Change a server (a JSON merge patch: omitted fields stay, `null` resets, `headers`, `env`
    and `auth` merge by member). Runs already started keep the tools and policy they pinned."""
    current = await _stored_with_secrets(store, service, name)
    try:
        changed = merged(current.config, patch, commands=settings.mcp_api_commands)
        stored = await store.servers.replace(name, changed, revision=current.revision)
    except SecretsKeyError as err:
        raise _no_secrets_key(err) from None
    except ServerChanged:
        raise APIError(
            409, "changed_meanwhile", f"MCP server {name!r} changed meanwhile (revision): read it and retry"
        ) from None
    if stored is None:
        raise _unknown(name)
    service.tools.forget()
    return view_of(stored, (await store.servers.health()).get(name), await _connected(store, stored))


@router.delete("/servers/{name}", status_code=204, responses=error_responses(401, 403, 404, 409, 503))
async def delete_server(name: str, _: Admin, store: StoreDep, service: ServiceDep) -> Response:
    """Remove a server and its OAuth grants. Runs already started keep its tools in their
    catalog; their calls to it fail with a tool error once workers have dropped it."""
    if not await store.servers.delete(name):
        if any(listed.name == name for listed in await _file_entries(service)):
            raise _read_only(name)
        raise _unknown(name)
    await store.grants.forget(name)
    service.tools.forget()
    return Response(status_code=204)


@router.get(
    "/servers/{name}/oauth/connect",
    response_model=OAuthConnectStart,
    responses=error_responses(401, 404, 409, 502, 503),
)
async def connect(
    name: str, caller: Caller, store: StoreDep, service: ServiceDep, connections: OAuthConnectionsDep
) -> OAuthConnectStart:
    """Connect the calling API key to a server with OAuth per key: open `authorization_url`, sign
    in and allow; the authorization server sends the browser back to this API, which stores the
    key's tokens (sealed). Runs started with this key then call the server with its token."""
    stored = await _stored_with_secrets(store, service, name)
    if stored.config.auth.type != "oauth_per_key":
        raise APIError(409, "not_oauth_per_key", f"MCP server {name!r} does not take OAuth per API key")
    subject = subject_of(caller.name)
    url = await connections.start(name, stored.config, store.grants.storage(name, subject), subject)
    return OAuthConnectStart(authorization_url=url, expires_in=FLOW_SECONDS)


@router.delete("/servers/{name}/oauth/connect", status_code=204, responses=error_responses(401, 404, 503))
async def disconnect(name: str, caller: Caller, store: StoreDep) -> Response:
    """Forget the calling key's tokens for a server (runs of this key then get a tool error
    saying to connect)."""
    if not await store.grants.forget(name, subject_of(caller.name)):
        raise APIError(404, "not_connected", f"this API key has not connected MCP server {name!r}")
    return Response(status_code=204)


@callback_router.get(
    CALLBACK_PATH,
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {}}}, **error_responses(400, 422, 502, json_beside=True)},
)
async def oauth_callback(
    connections: OAuthConnectionsDep,
    state: Annotated[str, Query(max_length=500)],
    code: Annotated[str | None, Query(max_length=4000)] = None,
    iss: Annotated[str | None, Query(max_length=2000)] = None,
    error: Annotated[str | None, Query(max_length=500)] = None,
) -> HTMLResponse:
    """Where the authorization server sends the browser back (no API key: the `state` of a flow
    this process started stands for the key that started it)."""
    flow = await connections.complete(state, code, iss, error)
    return HTMLResponse(
        f"<!doctype html><title>Connected</title><p>MCP server <b>{_html(flow.server)}</b> is connected for "
        f"<b>{_html(flow.subject)}</b>. You can close this window.</p>"
    )


async def _stored_with_secrets(store: Store, service: OrchestrationService, name: str) -> StoredServer:
    try:
        stored = await store.servers.get(name, with_secrets=True)
    except SecretsKeyError as err:
        raise _no_secrets_key(err) from None
    if stored is None:
        if any(listed.name == name for listed in await _file_entries(service)):
            raise _read_only(name)
        raise _unknown(name)
    return stored


async def _file_entries(service: OrchestrationService) -> list[ServerTools]:
    """The servers of the workers' ORCH_MCP_CONFIG, as they list them (none when no worker answers)."""
    try:
        return [server for server in (await service.tools.get()).servers if server.source == "config"]
    except APIError:
        return []


async def _connected(store: Store, server: StoredServer) -> list[str]:
    return await store.grants.connected(server.name) if server.config.auth.type == "oauth_per_key" else []


def _unknown(name: str) -> APIError:
    return APIError(404, "unknown_mcp_server", f"no MCP server {name!r} in the store")


def _read_only(name: str) -> APIError:
    return APIError(
        409, "server_read_only", f"MCP server {name!r} is defined in the workers' ORCH_MCP_CONFIG: change it there"
    )


def _no_secrets_key(err: SecretsKeyError) -> APIError:
    return APIError(503, "secrets_key_missing", str(err))


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
