"""The MCP tools the workers have, as `GET /v1/tools` shows them and as a new run's `mcp_servers`
are checked against: listed on a worker (the `ListTools` workflow: the API opens no MCP
connection and holds no server secret) and kept for a while."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta

from temporalio.client import Client

from api.errors import APIError
from api.schemas import ToolsResponse
from api.temporal_calls import WORKER_TIMEOUT_SECONDS, temporal_call
from workflows import contract
from workflows.activity_io import ListToolsInput, ToolListing

TOOLS_CACHE_SECONDS = 30.0
FORCED_REFRESH_SECONDS = 5.0
"""A run naming a server missing from the cached listing refreshes it if it is older than this
(a server just added), but no more often, however many such requests come; after a listing
no worker answered, callers get that answer at once for this long."""


class ToolListings:
    """The latest listing, one refresh at a time."""

    def __init__(self, client: Client, task_queue: str) -> None:
        self._client = client
        self._task_queue = task_queue
        self._latest: tuple[float, ToolsResponse] | None = None
        self._refresh = asyncio.Lock()
        self._failure: tuple[float, APIError] | None = None
        self.asked = 0
        """Listings asked of a worker so far (for tests and metrics)."""

    async def check_servers(self, names: Sequence[str]) -> None:
        """422 for a named MCP server the workers do not have, or have disabled. When no
        worker answers, the run starts anyway and its worker records the servers it cannot use."""
        listing = await self.naming(names)
        if listing is None:
            return
        servers = {server.name: server for server in listing.servers}
        unknown = [name for name in names if name not in servers]
        if unknown:
            raise APIError(422, "unknown_mcp_server", f"mcp_servers names servers that are not configured: {unknown}")
        disabled = [name for name in names if not servers[name].enabled]
        if disabled:
            raise APIError(422, "mcp_server_disabled", f"mcp_servers names disabled servers: {disabled}")

    async def naming(self, names: Sequence[str]) -> ToolsResponse | None:
        """The listing to check `names` against: refreshed when it lacks one of them (a server just
        added); None when no worker answers."""
        try:
            listing = await self.get()
            if not set(names) <= {server.name for server in listing.servers}:
                listing = await self.get(max_age=FORCED_REFRESH_SECONDS)
        except APIError:
            return None
        return listing

    def forget(self) -> None:
        """Drop the cached listing (a server was added, changed or removed over the API)."""
        self._latest = None
        self._failure = None

    async def get(self, max_age: float = TOOLS_CACHE_SECONDS) -> ToolsResponse:
        """The worker's view of the configured tools, at most `max_age` seconds old. One
        listing at a time: concurrent callers wait for it instead of starting their own."""
        if self._latest is not None and time.monotonic() - self._latest[0] < max_age:
            return self._latest[1]
        async with self._refresh:
            if self._latest is not None and time.monotonic() - self._latest[0] < max_age:
                return self._latest[1]  # refreshed while this caller waited
            if self._failure is not None and time.monotonic() - self._failure[0] < FORCED_REFRESH_SECONDS:
                raise self._failure[1]  # no worker a moment ago: do not make every caller wait again
            try:
                return await self._ask_a_worker()
            except APIError as err:
                self._failure = (time.monotonic(), err)
                raise

    async def _ask_a_worker(self) -> ToolsResponse:
        self.asked += 1
        try:
            async with temporal_call("list tools", WORKER_TIMEOUT_SECONDS):
                listing = await self._client.execute_workflow(
                    contract.LIST_TOOLS_WORKFLOW,
                    ListToolsInput(),
                    result_type=ToolListing,
                    id=f"list-tools-{uuid.uuid4().hex}",
                    task_queue=self._task_queue,
                    execution_timeout=timedelta(seconds=WORKER_TIMEOUT_SECONDS),
                )
        except APIError as err:
            raise APIError(503, "no_worker", f"no worker answered on task queue {self._task_queue!r}") from (err)
        response = ToolsResponse(servers=listing.servers)
        self._latest = (time.monotonic(), response)
        return response
