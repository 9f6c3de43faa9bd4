"""The worker's health endpoint for orchestrators, on ORCH_HEALTH_PORT (off unless set).

- `GET /healthz`: the process answers (a liveness probe: restart only a worker that hangs).
- `GET /readyz`: the worker polls its task queue, Temporal answers, and every enabled MCP
  server answers `tools/list`; 503 naming what is wrong otherwise (a readiness probe).

The MCP servers are asked at most every MCP_CHECK_SECONDS, so frequent probes add no load.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio.client import Client
from temporalio.worker import Worker

from activities.mcp_pool import MCPSessionPool, describe_error

MCP_CHECK_SECONDS = 30.0
CHECK_TIMEOUT_SECONDS = 5.0


class WorkerHealth:
    """What `/readyz` reports about one worker."""

    def __init__(self, worker: Worker, client: Client, pool: MCPSessionPool) -> None:
        self._worker = worker
        self._client = client
        self._pool = pool
        self._mcp: dict[str, str] = {}
        self._mcp_checked_at = float("-inf")

    async def report(self) -> tuple[bool, dict[str, object]]:
        temporal = await self._temporal()
        mcp = await self._mcp_servers()
        polling = self._worker.is_running
        ready = polling and temporal == "ok" and all(state == "ok" for state in mcp.values())
        return ready, {
            "status": "ready" if ready else "not ready",
            "polling": polling,
            "temporal": temporal,
            "mcp": mcp,
        }

    async def _temporal(self) -> str:
        try:
            healthy = await self._client.service_client.check_health(timeout=timedelta(seconds=CHECK_TIMEOUT_SECONDS))
        except Exception as err:  # unreachable, refused, timed out: the reason is the report
            return describe_error(err)
        return "ok" if healthy else "not serving"

    async def _mcp_servers(self) -> dict[str, str]:
        if time.monotonic() - self._mcp_checked_at < MCP_CHECK_SECONDS:
            return self._mcp
        config = self._pool.config
        # A server with OAuth per key answers each key with its own token: none to check with here.
        names = [name for name in config.enabled_servers() if config.servers[name].auth.type != "oauth_per_key"]
        states = await asyncio.gather(*(self._mcp_server(name) for name in names))
        self._mcp, self._mcp_checked_at = dict(zip(names, states, strict=True)), time.monotonic()
        return self._mcp

    async def _mcp_server(self, name: str) -> str:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                await self._pool.list_tools(name)
        except Exception as err:  # any failure to answer is what the probe reports
            return describe_error(err)
        return "ok"

    def app(self) -> Starlette:
        async def healthz(request: Request) -> JSONResponse:
            return JSONResponse({"status": "ok"})

        async def readyz(request: Request) -> JSONResponse:
            ready, report = await self.report()
            return JSONResponse(report, status_code=200 if ready else 503)

        return Starlette(routes=[Route("/healthz", healthz), Route("/readyz", readyz)])


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the worker's own handle SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving(health: WorkerHealth, host: str, port: int) -> AsyncIterator[None]:
    """Serve `health` on host:port while the block runs."""
    server = _Server(uvicorn.Config(health.app(), host=host, port=port, log_config=None, access_log=False))
    task = asyncio.create_task(server.serve())
    try:
        yield
    finally:
        server.should_exit = True
        await task
