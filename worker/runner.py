"""Building and running the Temporal worker that hosts the workflow and its activities."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from activities.conversations import ConversationCache, Conversations
from activities.llm import DEFAULT_LLM_TIMEOUT, LLMActivities
from activities.mcp_config import MCPConfig, MCPConfigError, load_mcp_config
from activities.mcp_pool import MCPSessionPool
from activities.mcp_tools import MCPActivities
from activities.webhooks import PublicAddressTransport, WebhookActivities
from worker.codec import EncryptionKeyError
from worker.connection import TemporalConnection
from worker.converter import data_converter
from worker.health import WorkerHealth, serving
from worker.mcp_oauth import CALLBACK_PATH, oauth_auth_factory
from worker.mcp_registry import ServerRegistry, kept_current
from worker.plugin import OrchestrationPlugin
from worker.settings import Settings
from worker.store.database import StoreError
from worker.store.sealing import SecretsKeyError
from worker.store.shared import Store, open_store
from workflows.activity_io import WorkerDefaults
from workflows.contract import (
    ACTIVITIES_BEFORE_PREFIX,
    ACTIVITY_PREFIX,
    CALL_TOOL_ACTIVITY,
    CANCEL_TASK_ACTIVITY,
    CHAT_COMPLETION_ACTIVITY,
    CHAT_COMPLETION_DELTA_ACTIVITY,
    DELIVER_WEBHOOK_ACTIVITY,
    DESCRIBE_TOOLS_ACTIVITY,
    GET_TASK_ACTIVITY,
    PREPARE_RUN_ACTIVITY,
    UPDATE_TASK_ACTIVITY,
)

logger = logging.getLogger("worker")

WEBHOOK_TIMEOUT = httpx.Timeout(10.0)
HEARTBEAT_THROTTLE = timedelta(seconds=2)


class WorkerConfigError(Exception):
    """A setting a worker refuses to start with, said in one line."""


def checked_config(settings: Settings) -> MCPConfig:
    """What a worker refuses to start with, checked: the MCP config (returned) and the
    encryption key. `orch dev` checks the same before it starts anything."""
    try:
        config = load_mcp_config(settings.mcp_config)
        data_converter(settings.encryption_key)
    except (MCPConfigError, EncryptionKeyError) as err:
        raise WorkerConfigError(str(err)) from None
    return config


@dataclass
class WorkerResources:
    """The long-lived clients activities share within one worker process."""

    activities: Sequence[Any]
    pool: MCPSessionPool


@contextlib.asynccontextmanager
async def worker_resources(
    settings: Settings, mcp_config: MCPConfig, *, webhook_transport: httpx.AsyncBaseTransport | None = None
) -> AsyncIterator[WorkerResources]:
    """Open the shared HTTP clients and the MCP session pool; close them on exit.

    `webhook_transport` replaces the webhook client's network transport (tests confine
    deliveries to loopback with it); by default only public addresses and the hosts in
    ORCH_WEBHOOK_ALLOWED_HOSTS are reached. With ORCH_DATABASE_URL, the store's MCP servers
    are added to `mcp_config`'s and kept current (`worker.mcp_registry`); WorkerConfigError
    when the store cannot be used.
    """
    transport = webhook_transport or PublicAddressTransport(settings.webhook_hosts_allowed)
    try:
        store = await open_store(settings)
    except (StoreError, SecretsKeyError) as err:
        raise WorkerConfigError(str(err)) from None
    async with contextlib.AsyncExitStack() as stack:
        if store is not None:
            stack.push_async_callback(store.aclose)
        pool = _pool(settings, mcp_config, store)
        stack.push_async_callback(pool.aclose)
        if store is not None:
            registry = ServerRegistry(mcp_config, store, pool, commands=settings.mcp_api_commands)
            await stack.enter_async_context(
                kept_current(registry, settings.store_poll_seconds, settings.health_check_seconds)
            )
        async with _activities(settings, pool, webhook_transport=transport) as resources:
            yield resources


def _pool(settings: Settings, mcp_config: MCPConfig, store: Store | None) -> MCPSessionPool:
    if store is None:
        return MCPSessionPool(mcp_config)
    redirect_uri = settings.api_base_url + CALLBACK_PATH
    return MCPSessionPool(mcp_config, auth=oauth_auth_factory(store.grants.storage, redirect_uri))


@contextlib.asynccontextmanager
async def _activities(
    settings: Settings, pool: MCPSessionPool, *, webhook_transport: httpx.AsyncBaseTransport
) -> AsyncIterator[WorkerResources]:
    # Temporal owns retries: httpx's transport retries stay at 0 (its default).
    async with (
        httpx.AsyncClient(timeout=DEFAULT_LLM_TIMEOUT) as llm_http,
        httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT, transport=webhook_transport) as webhook_http,
    ):
        conversations = Conversations(ConversationCache(settings.conversation_cache_mb * 1024 * 1024))
        llm = LLMActivities(llm_http, settings.openai_base_url, settings.openai_api_key, conversations)
        mcp = MCPActivities(pool, WorkerDefaults(model=settings.default_model, webhook=bool(settings.webhook_url)))
        webhooks = WebhookActivities(webhook_http, settings.webhook_url, settings.webhook_secret)
        activities: dict[str, Callable[[Any], Awaitable[Any]]] = {
            CHAT_COMPLETION_ACTIVITY: llm.chat_completion,
            CHAT_COMPLETION_DELTA_ACTIVITY: llm.chat_completion_delta,
            PREPARE_RUN_ACTIVITY: mcp.prepare_run,
            CALL_TOOL_ACTIVITY: mcp.call_tool,
            DESCRIBE_TOOLS_ACTIVITY: mcp.describe_tools,
            GET_TASK_ACTIVITY: mcp.get_task,
            UPDATE_TASK_ACTIVITY: mcp.update_task,
            CANCEL_TASK_ACTIVITY: mcp.cancel_task,
            DELIVER_WEBHOOK_ACTIVITY: webhooks.deliver_webhook,
        }
        bare = [_under_bare_name(name, activities[name]) for name in ACTIVITIES_BEFORE_PREFIX]
        yield WorkerResources(activities=[*activities.values(), *bare], pool=pool)


def _under_bare_name(name: str, method: Callable[[Any], Awaitable[Any]]) -> Callable[[Any], Awaitable[Any]]:
    """`method` (the activity named `name`) registered again under the name it had before
    names were prefixed (`orch.call_tool` -> `call_tool`): runs from before then, and their
    tasks already queued, still schedule it by that name."""

    # The same signature and type hints (so the same payload types), not its activity definition.
    @functools.wraps(method, updated=())
    async def bare(input: Any) -> Any:
        return await method(input)

    return activity.defn(name=name.removeprefix(ACTIVITY_PREFIX))(bare)


def build_worker(
    client: Client,
    task_queue: str,
    activities: Sequence[Any],
    *,
    graceful_shutdown_seconds: float = 30.0,
    max_cached_workflows: int = 1000,
) -> Worker:
    """A worker for the workflows and `activities`; `client` was made with `OrchestrationPlugin`
    (which brings the workflows and the workflow runner)."""
    if not any(isinstance(plugin, OrchestrationPlugin) for plugin in client.config()["plugins"]):
        raise ValueError("the client was not connected with OrchestrationPlugin: its workers would run no workflow")
    return Worker(
        client,
        task_queue=task_queue,
        activities=list(activities),
        graceful_shutdown_timeout=timedelta(seconds=graceful_shutdown_seconds),
        max_cached_workflows=max_cached_workflows,
        # Heartbeats carry cancellation to in-flight LLM and tool calls; sending them at
        # most 2 s apart (instead of 80% of the heartbeat timeout) makes cancel prompt.
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
        default_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
    )


async def run_worker(settings: Settings, mcp_config: MCPConfig, temporal: TemporalConnection) -> None:
    """Run until SIGTERM or SIGINT, then let in-flight activities finish within the grace period.
    Raises TemporalConnectError when Temporal cannot be reached."""
    client = await temporal.connect(settings.encryption_key)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with worker_resources(settings, mcp_config) as resources:
        worker = build_worker(
            client,
            settings.task_queue,
            resources.activities,
            graceful_shutdown_seconds=settings.graceful_shutdown_seconds,
            max_cached_workflows=settings.max_cached_workflows,
        )
        servers = ", ".join(resources.pool.config.servers) or "none"
        logger.info(
            "worker polling task queue %r on %s; MCP servers: %s",
            settings.task_queue,
            temporal.describe(),
            servers,
        )
        health: contextlib.AbstractAsyncContextManager[object] = contextlib.nullcontext()
        if settings.health_port is not None:
            health = serving(WorkerHealth(worker, client, resources.pool), settings.health_host, settings.health_port)
        async with health:
            running = asyncio.create_task(worker.run())
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait({running, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not running.done():
                logger.info(
                    "stopping: waiting up to %.0fs for in-flight activities", settings.graceful_shutdown_seconds
                )
                await worker.shutdown()
            stopped.cancel()
            await running
    logger.info("worker stopped")
