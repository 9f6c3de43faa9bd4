"""The client side of MCP's tasks extension (`io.modelcontextprotocol/tasks`, SEP-2663, on the
2026-07-28 protocol): a server may answer a `tools/call` with a task handle, which the run polls
(`tasks/get`), answers when it needs input (`tasks/update`) and may cancel (`tasks/cancel`).

The SDK has no implementation of the extension, only the means to add one: a `ClientExtension`
whose claim makes the session parse `resultType: "task"` (and advertises the extension in every
request's client capabilities), and requests of our own types sent with `send_request`. The run
keeps the task id in its history and polls with durable timers, so no activity stays open while
the task works (`workflows/steps.py`).
"""

from __future__ import annotations

from typing import Any, Literal, NoReturn

import mcp_types
from mcp import ClientSession
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim

from workflows.activity_io import ServerTask

TASKS_EXTENSION = "io.modelcontextprotocol/tasks"
TaskState = Literal["working", "input_required", "completed", "failed", "cancelled"]


class CreatedTask(mcp_types.Result):
    """`CreateTaskResult`: a tool call's answer when the server runs it as a task."""

    result_type: Literal["task"] = "task"
    task_id: str
    status: TaskState = "working"
    status_message: str | None = None
    poll_interval_ms: int | None = None


class DetailedTask(mcp_types.Result):
    """`tasks/get`'s answer: the task, with its requests (`input_required`), its result
    (`completed`: the tool's `CallToolResult`) or its JSON-RPC error (`failed`)."""

    task_id: str
    status: TaskState
    status_message: str | None = None
    poll_interval_ms: int | None = None
    input_requests: dict[str, dict[str, Any]] | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class TaskParams(mcp_types.RequestParams):
    task_id: str
    input_responses: dict[str, dict[str, Any]] | None = None


class GetTask(mcp_types.Request[TaskParams, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    params: TaskParams
    name_param = "taskId"  # the spec routes tasks/* by the `Mcp-Name` header


class UpdateTask(mcp_types.Request[TaskParams, Literal["tasks/update"]]):
    method: Literal["tasks/update"] = "tasks/update"
    params: TaskParams
    name_param = "taskId"


class CancelTask(mcp_types.Request[TaskParams, Literal["tasks/cancel"]]):
    method: Literal["tasks/cancel"] = "tasks/cancel"
    params: TaskParams
    name_param = "taskId"


async def _not_resolved_here(result: CreatedTask, context: ClaimContext) -> NoReturn:
    raise RuntimeError("tasks are followed by the run (workflows/steps.py), never inside one tool call")


class TasksExtension(ClientExtension):
    """Lets a session accept a task as a tool call's answer."""

    identifier = TASKS_EXTENSION

    def claims(self) -> list[ResultClaim[Any]]:
        return [ResultClaim(result_type="task", model=CreatedTask, resolve=_not_resolved_here)]


async def get_task(session: ClientSession, task_id: str, timeout: float) -> DetailedTask:
    return await session.send_request(
        GetTask(params=TaskParams(task_id=task_id)), DetailedTask, request_read_timeout_seconds=timeout
    )


async def update_task(
    session: ClientSession, task_id: str, responses: dict[str, dict[str, Any]], timeout: float
) -> None:
    request = UpdateTask(params=TaskParams(task_id=task_id, input_responses=responses))
    await session.send_request(request, mcp_types.EmptyResult, request_read_timeout_seconds=timeout)


async def cancel_task(session: ClientSession, task_id: str, timeout: float) -> None:
    request = CancelTask(params=TaskParams(task_id=task_id))
    await session.send_request(request, mcp_types.EmptyResult, request_read_timeout_seconds=timeout)


def server_task(task: CreatedTask | DetailedTask) -> ServerTask:
    """The task as the run records it (its result, if any, is rendered by the caller)."""
    requests = task.input_requests if isinstance(task, DetailedTask) else None
    return ServerTask(
        task_id=task.task_id,
        status=task.status,
        status_message=task.status_message,
        poll_interval_ms=task.poll_interval_ms,
        input_requests=requests or {},
    )
