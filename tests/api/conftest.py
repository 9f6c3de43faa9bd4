"""The API served for real on loopback, in front of a worker and the dev server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.webhooks import sign
from api.app import create_app
from tests.conftest import SECRETS_KEY, Harness, LoopbackOnlyTransport, WorkerFactory
from tests.scripted_llm import free_port
from tests.waiting import WAIT_SECONDS, eventually
from worker.connection import TemporalConnection
from worker.plugin import OrchestrationPlugin
from worker.settings import Settings

WEBHOOK_SECRET = "whsec_YXBpLXRlc3Qtc2VjcmV0LWtleQ=="


def signed(body: dict[str, Any], webhook_id: str, *, at: int | None = None, secret: str = WEBHOOK_SECRET) -> dict:
    """`httpx` arguments of an inbound webhook carrying `body`, signed per Standard Webhooks."""
    raw = json.dumps(body).encode()
    timestamp = int(time.time()) if at is None else at
    headers = {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, webhook_id, timestamp, raw),
    }
    return {"content": raw, "headers": headers}


@dataclass
class APIHarness:
    http: httpx.AsyncClient
    worker: Harness
    base_url: str
    app: FastAPI

    async def wait_for(
        self, run_id: str, predicate: Callable[[dict[str, Any]], bool], timeout: float = WAIT_SECONDS
    ) -> dict:
        """Poll `GET /v1/orchestrations/{run_id}` until `predicate` holds for its body."""
        seen: list[dict[str, Any]] = []

        async def reached() -> dict[str, Any] | None:
            response = await self.http.get(f"/v1/orchestrations/{run_id}")
            assert response.status_code == 200, response.text
            seen[:] = [response.json()]
            return seen[0] if predicate(seen[0]) else None

        return await eventually(reached, lambda: f"the condition on {run_id}; last body: {seen}", timeout=timeout)


@contextlib.asynccontextmanager
async def serve_api(
    settings: Settings,
    app: FastAPI | None = None,
    *,
    temporal: str = "127.0.0.1:1",
    connection: TemporalConnection | None = None,
    port: int | None = None,
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """`app` (default: `create_app(settings)` connecting as `connection` says, else to the dev
    server at `temporal`, whose default address has none) under uvicorn on `port` (default: a
    free loopback port)."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app or create_app(settings, connection or TemporalConnection.plain(temporal)),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            timeout_graceful_shutdown=5,
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    base_url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=WAIT_SECONDS) as http:
            yield http, base_url
    finally:
        server.should_exit = True
        await task


APIFactory = Callable[..., contextlib.AbstractAsyncContextManager[APIHarness]]


@pytest.fixture
def api_stack(run_worker: WorkerFactory, temporal_env) -> APIFactory:
    """`async with api_stack(servers) as api:` a worker plus the API on the same task queue."""

    @contextlib.asynccontextmanager
    async def factory(
        servers: dict[str, Any] | None = None, *, namespace: str = "default", **settings: Any
    ) -> AsyncIterator[APIHarness]:
        target = temporal_env.client.service_client.config.target_host
        client = await Client.connect(target, namespace=namespace, plugins=[OrchestrationPlugin()])
        env = WorkflowEnvironment.from_client(client)
        # Runs may name any webhook_url; deliveries never leave this machine. A store
        # (`database_url=store_url`) is shared by the worker and the API, as in a deployment.
        database_url = settings.get("database_url")
        settings.setdefault("mcp_api_commands", True)  # the tests add the toolbox (stdio) over the API
        port = free_port()
        public_url = f"http://127.0.0.1:{port}"
        async with run_worker(
            servers,
            env=env,
            webhook_transport=LoopbackOnlyTransport(),
            database_url=database_url,
            public_url=public_url,
            mcp_api_commands=settings["mcp_api_commands"],
        ) as worker:
            api_settings = Settings(
                task_queue=worker.task_queue,
                webhook_secret=WEBHOOK_SECRET,
                temporal_ui_url="http://127.0.0.1:8233",
                secrets_key=SECRETS_KEY,
                public_url=public_url,
                **settings,
            )
            app = create_app(api_settings, TemporalConnection.plain(target, namespace))
            async with serve_api(api_settings, app, port=port) as (http, base_url):
                yield APIHarness(http=http, worker=worker, base_url=base_url, app=app)

    return factory


async def sse(http: httpx.AsyncClient, path: str, headers: dict[str, str] | None = None) -> AsyncIterator[dict]:
    """The events of one SSE connection, parsed: {"id", "event", "data"}; comments skipped."""
    async with http.stream("GET", path, headers=headers, timeout=WAIT_SECONDS) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        event: dict[str, Any] = {}
        async for line in response.aiter_lines():
            if not line:
                if event:
                    yield event
                event = {}
            elif not line.startswith(":"):
                field, _, value = line.partition(":")
                event[field] = json.loads(value) if field == "data" else value.strip()


async def collect(
    http: httpx.AsyncClient, path: str, *, until: str | None = None, last_event_id: int | None = None
) -> list[dict]:
    """Events until one of type `until` (then the connection is dropped) or the stream's end."""
    headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else None
    events = []
    async with asyncio.timeout(WAIT_SECONDS):
        async for event in sse(http, path, headers):
            events.append(event)
            if event["event"] == until:
                break
    return events
