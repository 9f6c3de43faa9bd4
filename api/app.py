"""The FastAPI application: `uvicorn api.app:app` or `python -m api`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from api.api_keys import APIKeysError, load_api_keys
from api.body_limit import BodySizeLimit
from api.errors import install_error_handlers
from api.events import RunEventsHub
from api.loopback import origin_of
from api.mcp_connect import OAuthConnections
from api.routers import assistants, chat, codec, health, mcp_servers, orchestrations, responses, tools, webhooks
from api.service import OrchestrationService
from worker import tracing
from worker.connection import TemporalConfigError, TemporalConnection
from worker.settings import Settings
from worker.store.database import StoreError
from worker.store.sealing import SecretsKeyError
from worker.store.shared import open_store


def create_app(settings: Settings | None = None, temporal: TemporalConnection | None = None) -> FastAPI:
    """Build the app; its lifespan opens one (lazy) Temporal client for the process, connected
    as `temporal` says (default: the SDK's environment configuration)."""
    resolved = settings or Settings()
    api_keys = load_api_keys(resolved.api_keys)  # APIKeysError: a bad key file stops the process
    connection = temporal or TemporalConnection.from_environment()  # TemporalConfigError: stops it too

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Lazy: the API starts (and /healthz answers) while Temporal is still coming up;
        # calls made meanwhile answer 503 within seconds.
        client = await connection.connect(resolved.encryption_key, lazy=True)
        try:
            store = await open_store(resolved)
        except (StoreError, SecretsKeyError) as err:
            raise SystemExit(f"api: {err}") from None
        app.state.settings = resolved
        app.state.store = store
        app.state.service = service = OrchestrationService(client, resolved)
        app.state.events = hub = RunEventsHub(service.events, resolved.events_poll_seconds)
        app.state.oauth_connections = connections = OAuthConnections(resolved.api_base_url)
        yield
        await hub.aclose()
        await connections.aclose()
        if store is not None:
            await store.aclose()

    # FastAPI's /docs and /redoc load their scripts from a CDN, blank without internet; these
    # are the same pages with Swagger UI and ReDoc served by the API (fastapi-offline's files).
    app = FastAPIOffline(
        title="Durable orchestrations",
        version="0.1.0",
        description="Durable LLM + MCP tool orchestrations on Temporal, with human approval of tool calls.",
        lifespan=lifespan,
        static_url="/docs-assets",
    )
    app.state.api_keys = api_keys
    # The Temporal UI calls the codec endpoints from the browser: CORS lets it read the
    # answers, and with keys off it is the one origin not on loopback that may POST to them.
    app.state.temporal_ui_origin = temporal_ui_origin = origin_of(resolved.temporal_ui_url)
    if tracing.enabled():
        FastAPIInstrumentor.instrument_app(app, excluded_urls="/healthz,/readyz")
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=resolved.max_request_bytes)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=[temporal_ui_origin],
        allow_methods=["POST"],
        allow_headers=["content-type", "x-namespace", "authorization"],
        allow_credentials=True,
    )
    routers = (orchestrations, chat, responses, webhooks, tools, mcp_servers, assistants, codec, health)
    for module in routers:
        app.include_router(module.router)
    app.include_router(mcp_servers.callback_router)
    return app


def _app_from_environment() -> FastAPI:
    try:
        return create_app()
    except (APIKeysError, TemporalConfigError) as err:
        raise SystemExit(f"api: {err}") from None  # one line, no traceback


app = _app_from_environment()
