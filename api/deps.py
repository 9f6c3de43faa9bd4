"""FastAPI dependencies: the service (one Temporal client per process), the events hub and the settings."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.errors import APIError
from api.events import RunEventsHub
from api.mcp_connect import OAuthConnections
from api.service import OrchestrationService
from worker.settings import Settings
from worker.store.shared import Store


def get_service(request: Request) -> OrchestrationService:
    service: OrchestrationService = request.app.state.service
    return service


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_events_hub(request: Request) -> RunEventsHub:
    hub: RunEventsHub = request.app.state.events
    return hub


def get_store(request: Request) -> Store:
    """The store; 503 when ORCH_DATABASE_URL is not set."""
    store: Store | None = request.app.state.store
    if store is None:
        raise APIError(
            503,
            "store_not_configured",
            "this API has no store: set ORCH_DATABASE_URL (and run `orch db upgrade`) to manage MCP servers "
            "and assistants over the API",
        )
    return store


def get_oauth_connections(request: Request) -> OAuthConnections:
    connections: OAuthConnections = request.app.state.oauth_connections
    return connections


ServiceDep = Annotated[OrchestrationService, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
EventsHubDep = Annotated[RunEventsHub, Depends(get_events_hub)]
StoreDep = Annotated[Store, Depends(get_store)]
OAuthConnectionsDep = Annotated[OAuthConnections, Depends(get_oauth_connections)]
