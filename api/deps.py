"""FastAPI dependencies: the service (one Temporal client per process), the events hub and the settings."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.events import RunEventsHub
from api.service import OrchestrationService
from worker.settings import Settings


def get_service(request: Request) -> OrchestrationService:
    service: OrchestrationService = request.app.state.service
    return service


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_events_hub(request: Request) -> RunEventsHub:
    hub: RunEventsHub = request.app.state.events
    return hub


ServiceDep = Annotated[OrchestrationService, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
EventsHubDep = Annotated[RunEventsHub, Depends(get_events_hub)]
