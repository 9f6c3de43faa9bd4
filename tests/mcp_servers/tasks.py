"""The MCP Tasks extension (`io.modelcontextprotocol/tasks`, SEP-2663, protocol 2026-07-28) as an
SDK server `Extension`, and a test server "jobs" whose tools run as tasks.

Run over stdio: `python -m tests.mcp_servers.tasks [--state-dir DIR]`; over streamable HTTP on
127.0.0.1: `python -m tests.mcp_servers.tasks --http PORT [--state-dir DIR]`. `--state-dir`
defaults to a fresh temporary directory. Nothing is printed to stdout (over stdio it is the
protocol channel); the SDK logs to stderr.

The extension (`TasksExtension`), following the draft spec
(github.com/modelcontextprotocol/experimental-ext-tasks, specification/draft/tasks.md):

- advertises `capabilities.extensions["io.modelcontextprotocol/tasks"] = {}`;
- answers a `tools/call` of one of its tools with a `CreateTaskResult`
  `{"resultType": "task", "taskId", "status": "working", ...}` when the request opted in: its
  `_meta["io.modelcontextprotocol/clientCapabilities"].extensions` names the extension (the
  SDK client stamps its capabilities into every 2026-07-28 request). Otherwise the tool runs
  synchronously, or, for a tool that needs a task, the call fails with -32021;
- serves `tasks/get` (the task, plus `inputRequests` / `result` / `error` by status),
  `tasks/update` (`inputResponses` to outstanding input requests) and `tasks/cancel`, each
  refusing a non-declaring client with -32021, an unknown task with -32602, and, over HTTP,
  a request whose `Mcp-Name` header is not its `taskId` with -32020.

The task is stored (in memory) before the `CreateTaskResult` is returned, so `tasks/get`
resolves it from then on. The tool body runs in the background, outside the request, in a
task group that `TasksExtension.running()` opens: pass it as (or enter it in) the server's
lifespan. Inside the body, `current_task()` is the running task: it sets the status message
and asks the client for input (`elicit`), which turns the task `input_required` until a
`tasks/update` answers.

The jobs server records each start of a job body as a JSON line {"tool", "name", "pid", "at"}
in `<state-dir>/starts.jsonl`, and each cancellation (a `tasks/cancel` that reached the body)
as {"cancelled": name}.
"""

from __future__ import annotations

import argparse
import contextvars
import json
import logging
import os
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import anyio
import anyio.abc
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.elicitation import (
    AcceptedElicitation,
    CancelledElicitation,
    DeclinedElicitation,
    ElicitationResult,
    render_elicitation_schema,
)
from mcp.server.extension import Extension, MethodBinding
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.server import require_client_extension
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import MCP_NAME_HEADER, decode_header_value
from mcp_types import (
    HEADER_MISMATCH,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    CallToolRequestParams,
    ElicitRequest,
    ElicitRequestFormParams,
    ElicitResult,
    ErrorData,
    RequestParams,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, ValidationError

logger = logging.getLogger(__name__)

TASKS_EXTENSION = "io.modelcontextprotocol/tasks"

TaskStatus = Literal["working", "input_required", "completed", "cancelled", "failed"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "cancelled", "failed"})

SchemaT = TypeVar("SchemaT", bound=BaseModel)


class TaskIdParams(RequestParams):
    """Params of `tasks/get` and `tasks/cancel`."""

    task_id: str


class UpdateTaskParams(TaskIdParams):
    """Params of `tasks/update`: responses (ElicitResult JSON) to outstanding input requests, by key."""

    input_responses: dict[str, dict[str, Any]]


def _error_json(code: int, message: str) -> dict[str, Any]:
    return ErrorData(code=code, message=message).model_dump(by_alias=True, mode="json", exclude_none=True)


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class TaskRecord:
    """One task's state in the store."""

    task_id: str
    tool: str
    ttl_ms: int | None
    poll_interval_ms: int
    status: TaskStatus = "working"
    status_message: str | None = None
    created_at: datetime = field(default_factory=_now)
    last_updated_at: datetime = field(default_factory=_now)
    input_requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Outstanding input requests (wire JSON), by key."""
    used_keys: set[str] = field(default_factory=set)
    """Every input-request key this task ever issued: a key is never reused."""
    answers: dict[str, ElicitResult] = field(default_factory=dict)
    answered: dict[str, anyio.Event] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    cancel_scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    cancel_requested: bool = False

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def expired(self, now: datetime) -> bool:
        return self.ttl_ms is not None and (now - self.created_at).total_seconds() * 1000 > self.ttl_ms

    def update(self, status: TaskStatus | None = None, message: str | None = None) -> None:
        if status is not None:
            self.status = status
        if message is not None:
            self.status_message = message
        self.last_updated_at = _now()

    def task_json(self) -> dict[str, Any]:
        """The `Task` fields."""
        task: dict[str, Any] = {
            "taskId": self.task_id,
            "status": self.status,
            "createdAt": _iso(self.created_at),
            "lastUpdatedAt": _iso(self.last_updated_at),
            "ttlMs": self.ttl_ms,
            "pollIntervalMs": self.poll_interval_ms,
        }
        if self.status_message is not None:
            task["statusMessage"] = self.status_message
        return task

    def create_result(self) -> dict[str, Any]:
        """The `CreateTaskResult` a `tools/call` answers with."""
        return {"resultType": "task", **self.task_json()}

    def detailed_json(self) -> dict[str, Any]:
        """The `DetailedTask` of `tasks/get`: the task plus its status's payload."""
        detailed = {"resultType": "complete", **self.task_json()}
        if self.status == "input_required":
            detailed["inputRequests"] = dict(self.input_requests)
        elif self.status == "completed":
            detailed["result"] = self.result
        elif self.status == "failed":
            detailed["error"] = self.error
        return detailed


class TaskStore:
    """The tasks, in memory, by id; an expired task (past its TTL) is dropped when next looked up."""

    def __init__(self) -> None:
        self._tasks: dict[str, TaskRecord] = {}

    def create(self, tool: str, *, ttl_ms: int | None, poll_interval_ms: int, message: str | None) -> TaskRecord:
        # 128 random bits: task ids are bearer handles for the task's state.
        record = TaskRecord(
            task_id=secrets.token_urlsafe(16), tool=tool, ttl_ms=ttl_ms, poll_interval_ms=poll_interval_ms
        )
        record.status_message = message
        self._tasks[record.task_id] = record
        return record

    def get(self, task_id: str) -> TaskRecord | None:
        now = _now()
        for expired in [key for key, record in self._tasks.items() if record.expired(now)]:
            self._tasks.pop(expired).cancel_scope.cancel()
        return self._tasks.get(task_id)


_current_task: contextvars.ContextVar[RunningTask | None] = contextvars.ContextVar("current_task", default=None)


def current_task() -> RunningTask | None:
    """The task the calling tool body runs as, or None when it runs synchronously."""
    return _current_task.get()


class RunningTask:
    """What a tool body running as a task can do with its task."""

    def __init__(self, record: TaskRecord) -> None:
        self._record = record

    @property
    def task_id(self) -> str:
        return self._record.task_id

    @property
    def cancel_requested(self) -> bool:
        """Whether a `tasks/cancel` asked for this task (as opposed to, say, a server shutdown)."""
        return self._record.cancel_requested

    def set_status_message(self, message: str) -> None:
        self._record.update(message=message)

    async def elicit(self, key: str, message: str, schema: type[SchemaT]) -> ElicitationResult[SchemaT]:
        """Ask the client (form elicitation) and wait for its answer: the task is `input_required`
        with `inputRequests[key]` until a `tasks/update` answers that key, then `working` again.

        Raises:
            ValueError: `key` was already used by this task (keys are unique over its lifetime).
            ToolError: The client accepted with content that does not fit `schema`.
        """
        record = self._record
        if key in record.used_keys:
            raise ValueError(f"input request key {key!r} was already used by task {record.task_id}")
        request = ElicitRequest(
            params=ElicitRequestFormParams(message=message, requested_schema=render_elicitation_schema(schema))
        )
        answered = anyio.Event()
        record.used_keys.add(key)
        record.answered[key] = answered
        record.input_requests[key] = request.model_dump(by_alias=True, mode="json", exclude_none=True)
        record.update(status="input_required", message=message)
        await answered.wait()
        answer = record.answers.pop(key)
        if answer.action == "decline":
            return DeclinedElicitation()
        if answer.action == "cancel":
            return CancelledElicitation()
        try:
            return AcceptedElicitation(data=schema.model_validate(answer.content or {}))
        except ValidationError as e:
            raise ToolError(f"the answer to {key!r} does not match the requested schema") from e


class TasksExtension(Extension):
    """`io.modelcontextprotocol/tasks` for an MCPServer: `tools` answer as tasks when the request
    opts in (and run synchronously otherwise); `required` tools (a subset) have no synchronous
    form and fail with -32021 unless the request opts in. The background work runs in the task
    group `running()` opens, which must wrap the server's lifespan."""

    identifier = TASKS_EXTENSION

    def __init__(
        self,
        *,
        tools: Iterable[str],
        required: Iterable[str] = (),
        poll_interval_ms: int = 1000,
        ttl_ms: int | None = 3_600_000,
    ) -> None:
        self.required_tools = frozenset(required)
        self.task_tools = frozenset(tools) | self.required_tools
        self.poll_interval_ms = poll_interval_ms
        self.ttl_ms = ttl_ms
        self.store = TaskStore()
        self._task_group: anyio.abc.TaskGroup | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Open the task group the tasks run in (closing it cancels the tasks still running)."""
        async with anyio.create_task_group() as task_group:
            self._task_group = task_group
            try:
                yield
            finally:
                self._task_group = None
                task_group.cancel_scope.cancel()

    def settings(self) -> dict[str, Any]:
        return {}

    def methods(self) -> list[MethodBinding]:
        versions = frozenset(MODERN_PROTOCOL_VERSIONS)
        return [
            MethodBinding("tasks/get", TaskIdParams, self._get, protocol_versions=versions),
            MethodBinding("tasks/update", UpdateTaskParams, self._update, protocol_versions=versions),
            MethodBinding("tasks/cancel", TaskIdParams, self._cancel, protocol_versions=versions),
        ]

    def opted_in(self, ctx: ServerRequestContext[Any, Any]) -> bool:
        """Whether this request declared the extension (a 2026-07-28 request's own capabilities)."""
        if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            return False
        capabilities = ctx.session.client_capabilities
        return capabilities is not None and TASKS_EXTENSION in (capabilities.extensions or {})

    async def intercept_tool_call(
        self, params: CallToolRequestParams, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        if params.name not in self.task_tools:
            return await call_next(ctx)
        if not self.opted_in(ctx):
            if params.name in self.required_tools:
                require_client_extension(ctx, TASKS_EXTENSION)  # raises -32021 naming the extension
            return await call_next(ctx)
        if self._task_group is None:
            raise RuntimeError("TasksExtension.running() must wrap the server (enter it in the server's lifespan)")
        record = self.store.create(
            params.name, ttl_ms=self.ttl_ms, poll_interval_ms=self.poll_interval_ms, message=f"{params.name} started"
        )
        self._task_group.start_soon(self._run, record, call_next, ctx, name=f"task {record.task_id}")
        return record.create_result()

    async def _run(self, record: TaskRecord, call_next: CallNext, ctx: ServerRequestContext[Any, Any]) -> None:
        """Run the tool (the rest of the tools/call chain) as `record`, and record its outcome."""
        token = _current_task.set(RunningTask(record))
        try:
            await self._outcome(record, call_next, ctx)
        finally:
            _current_task.reset(token)
            if not record.terminal:  # cancelled from outside: the task group closed (server shutdown)
                record.update(status="cancelled", message="cancelled: the server stopped")

    async def _outcome(self, record: TaskRecord, call_next: CallNext, ctx: ServerRequestContext[Any, Any]) -> None:
        result: HandlerResult = None
        with record.cancel_scope:
            try:
                result = await call_next(ctx)
            except MCPError as e:  # a JSON-RPC error: the task failed (a tool error completes, with isError)
                record.error = e.error.model_dump(by_alias=True, mode="json", exclude_none=True)
                record.update(status="failed", message=f"failed: {e.error.message}")
                return
            except Exception:
                logger.exception("task %s (%s) crashed", record.task_id, record.tool)
                record.error = _error_json(INTERNAL_ERROR, "Internal error")
                record.update(status="failed", message="failed: internal error")
                return
        if record.terminal:  # cancelled by tasks/cancel meanwhile
            return
        if record.cancel_scope.cancelled_caught:  # e.g. expired
            record.update(status="cancelled", message="cancelled")
            return
        dumped = (
            result.model_dump(by_alias=True, mode="json", exclude_none=True)
            if isinstance(result, BaseModel)
            else result
        )
        if not isinstance(dumped, dict) or dumped.get("resultType", "complete") != "complete":
            # E.g. an InputRequiredResult: such input is resolved before a task is created (spec SHOULD).
            record.error = _error_json(INTERNAL_ERROR, "the tool did not complete")
            record.update(status="failed", message="failed: the tool did not complete")
            return
        record.result = dumped
        record.update(status="completed", message="completed")

    def _lookup(self, ctx: ServerRequestContext[Any, Any], params: TaskIdParams) -> TaskRecord:
        require_client_extension(ctx, TASKS_EXTENSION)
        headers = getattr(ctx.request, "headers", None)
        if headers is not None and decode_header_value(headers.get(MCP_NAME_HEADER)) != params.task_id:
            # Spec: over Streamable HTTP, Mcp-Name MUST carry params.taskId (for routing).
            raise MCPError(code=HEADER_MISMATCH, message="Mcp-Name header must carry params.taskId")
        record = self.store.get(params.task_id)
        if record is None:
            raise MCPError(code=INVALID_PARAMS, message="Failed to retrieve task: Task not found")
        return record

    async def _get(self, ctx: ServerRequestContext[Any, Any], params: TaskIdParams) -> HandlerResult:
        return self._lookup(ctx, params).detailed_json()

    async def _update(self, ctx: ServerRequestContext[Any, Any], params: UpdateTaskParams) -> HandlerResult:
        record = self._lookup(ctx, params)
        for key, raw in params.input_responses.items():
            if key not in record.input_requests:
                continue  # never issued, already answered or superseded: ignored (spec SHOULD)
            try:
                answer = ElicitResult.model_validate(raw, by_name=False)
            except ValidationError:
                raise MCPError(code=INVALID_PARAMS, message=f"inputResponses[{key!r}] is not an ElicitResult") from None
            del record.input_requests[key]
            record.answers[key] = answer
            record.answered.pop(key).set()
        if record.status == "input_required" and not record.input_requests:
            record.update(status="working", message="input received")
        return {"resultType": "complete"}

    async def _cancel(self, ctx: ServerRequestContext[Any, Any], params: TaskIdParams) -> HandlerResult:
        record = self._lookup(ctx, params)
        if not record.terminal:
            record.cancel_requested = True
            record.input_requests.clear()
            record.update(status="cancelled", message="cancelled by the client")
            record.cancel_scope.cancel()
        return {"resultType": "complete"}


# --- the "jobs" server ---------------------------------------------------------------------


class Proceed(BaseModel):
    proceed: bool


def build_server(state_dir: Path) -> MCPServer:
    """The "jobs" server, its release files and records in `state_dir`."""
    tasks = TasksExtension(tools={"long_job"}, required={"approval_job"}, poll_interval_ms=200)
    server = MCPServer("jobs", extensions=[tasks], lifespan=lambda _server: tasks.running())

    def record(entry: dict[str, Any]) -> None:
        with open(state_dir / "starts.jsonl", "a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")

    def record_start(tool: str, name: str) -> None:
        record({"tool": tool, "name": name, "pid": os.getpid(), "at": time.time()})

    def record_if_cancelled(name: str) -> None:
        task = current_task()
        if task is not None and task.cancel_requested:
            record({"cancelled": name})

    @server.tool()
    async def long_job(name: str) -> str:
        """Work until the file `<state-dir>/release-<name>` exists."""
        record_start("long_job", name)
        task = current_task()
        release = state_dir / f"release-{name}"
        started = time.monotonic()
        reported = -1
        try:
            while not release.exists():
                seconds = int(time.monotonic() - started)
                if task is not None and seconds != reported:
                    task.set_status_message(f"working on {name}: {seconds}s")
                    reported = seconds
                await anyio.sleep(0.05)
        except anyio.get_cancelled_exc_class():
            record_if_cancelled(name)
            raise
        return f"job {name} done"

    @server.tool()
    async def approval_job(name: str) -> str:
        """Work a little, then ask whether to proceed. Only as a task: it goes `input_required`
        with the key `confirm-<name>` until a `tasks/update` answers."""
        record_start("approval_job", name)
        task = current_task()
        if task is None:
            raise ToolError("approval_job runs only as a task")
        try:
            task.set_status_message(f"working on {name}")
            await anyio.sleep(0.1)
            outcome = await task.elicit(f"confirm-{name}", f"Proceed with {name}?", Proceed)
        except anyio.get_cancelled_exc_class():
            record_if_cancelled(name)
            raise
        if isinstance(outcome, AcceptedElicitation) and outcome.data.proceed:
            return f"job {name} proceeded"
        return f"job {name} stopped"

    return server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int, help="serve streamable HTTP on 127.0.0.1:PORT")
    parser.add_argument(
        "--state-dir", type=Path, help="where starts.jsonl and the release files are (default: a temp dir)"
    )
    args = parser.parse_args()
    state_dir: Path = args.state_dir or Path(tempfile.mkdtemp(prefix="jobs-state-"))
    state_dir.mkdir(parents=True, exist_ok=True)
    server = build_server(state_dir)
    if args.http:
        server.run("streamable-http", host="127.0.0.1", port=args.http)
    else:
        server.run()


if __name__ == "__main__":
    main()
