"""Fault suite (marked `fault`): a tool call the server runs as an MCP task outlives the workers
that poll it. Counted in the jobs server's own record: the tool started once, whatever happened
to the workers."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

from tests.conftest import JobsServer, WorkerProcess
from tests.scripted_llm import Reply, ScriptedLLM, tool_call
from tests.waiting import eventually, result_of
from workflows.contract import GET_TASK_ACTIVITY

pytestmark = pytest.mark.fault


async def _polls(handle: WorkflowHandle[Any, Any]) -> int:
    """`tasks/get` requests of the run that completed (from its history)."""
    kinds: dict[int, str] = {}
    completed = 0
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            kinds[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            scheduled = event.activity_task_completed_event_attributes.scheduled_event_id
            completed += kinds.get(scheduled) == GET_TASK_ACTIVITY
    return completed


async def test_a_task_outlives_its_workers_killed_twice_and_runs_once(
    worker_process: Callable[..., Any], llm: ScriptedLLM, jobs_server: JobsServer
) -> None:
    llm.script(
        "m-task",
        Reply(tool_calls=[tool_call("j1", "jobs__long_job", {"name": "nightly"})]),
        Reply(content="the job is done"),
    )
    servers = {"jobs": {"url": jobs_server.url, "tools_to_auto_execute": ["*"]}}
    worker: WorkerProcess
    worker, h = worker_process(servers)
    await worker.start()
    handle = await h.start({"input": "run the nightly job", "model": "m-task"})
    await eventually(lambda: jobs_server.starts("nightly"), "the job started on the server")
    for _ in range(2):
        polled = await eventually(_polls_at_least(handle, 1 + await _polls(handle)), "the worker polls the task")
        assert polled
        assert await worker.stop(signal.SIGKILL) == -signal.SIGKILL
        worker, _ = worker_process(servers)
        await worker.start()
    await eventually(_polls_at_least(handle, 1 + await _polls(handle)), "the third worker polls the task")
    jobs_server.release("nightly")

    final = await result_of(handle)
    assert final.status == "completed" and final.output == "the job is done"
    messages = llm.requests_for("m-task")[-1]["messages"]
    assert next(m["content"] for m in messages if m.get("tool_call_id") == "j1") == "job nightly done"
    assert len(jobs_server.starts("nightly")) == 1, "the tool ran once: every worker polled the same task"
    assert [s.status for s in final.steps if s.kind == "tool"] == ["completed"]
    assert final.usage.tool_calls == 1


def _polls_at_least(handle: WorkflowHandle[Any, Any], count: int) -> Callable[[], Any]:
    async def reached() -> bool:
        return await _polls(handle) >= count

    return reached
