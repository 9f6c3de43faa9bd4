"""Fault suite (marked `fault`): what servers ask and run outlives the workers. A tool call the
server runs as an MCP task outlives the workers that poll it (counted in the jobs server's own
record: the tool started once); a question waiting for a person outlives the worker that asked."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

from tests.conftest import REPO_ROOT, JobsServer, WorkerProcess
from tests.scripted_llm import Reply, ScriptedLLM, free_port, tool_call
from tests.waiting import eventually, result_of, wait_for_port
from workflows.contract import GET_TASK_ACTIVITY
from workflows.messages import InputAnswer
from workflows.orchestration import Orchestration

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


async def test_a_question_waiting_for_a_person_outlives_its_worker(
    worker_process: Callable[..., Any], llm: ScriptedLLM, tmp_path: Path
) -> None:
    llm.script(
        "m-ask-crash",
        Reply(tool_calls=[tool_call("b1", "trip__book_trip", {"destination": "Lima"})]),
        Reply(content="booked after the crash"),
    )
    log = tmp_path / "interactive.jsonl"
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.mcp_servers.interactive", "--http", str(port),
        cwd=REPO_ROOT, env={"INTERACTIVE_CALL_LOG": str(log), "PATH": "/usr/bin:/bin"},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await wait_for_port(port)
        servers = {"trip": {"url": f"http://127.0.0.1:{port}/mcp", "tools_to_auto_execute": ["*"]}}
        first, h = worker_process(servers)
        await first.start()
        handle = await h.start({"input": "book", "model": "m-ask-crash"})
        date = await h.wait_for(handle, lambda s: bool(s.pending_inputs))
        assert await first.stop(signal.SIGKILL) == -signal.SIGKILL

        second, _ = worker_process(servers)
        await second.start()
        answer = InputAnswer(input_id=date.pending_inputs[0].input_id, action="accept", content={"date": "May 1"})
        await handle.execute_update(Orchestration.answer_input, answer)
        seats = await h.wait_for(handle, lambda s: any("/2/" in p.input_id for p in s.pending_inputs))
        answer = InputAnswer(input_id=seats.pending_inputs[0].input_id, action="accept", content={"seats": 1})
        await handle.execute_update(Orchestration.answer_input, answer)
        final = await result_of(handle)
    finally:
        server.kill()
        await server.wait()
    assert final.output == "booked after the crash"
    messages = llm.requests_for("m-ask-crash")[-1]["messages"]
    assert next(m["content"] for m in messages if m.get("tool_call_id") == "b1") == "booked Lima on May 1: 1 seat(s)"
    ran = [json.loads(line) for line in log.read_text().splitlines()]
    assert [entry["tool"] for entry in ran] == ["book_trip"], "the tool body ran once"


def _polls_at_least(handle: WorkflowHandle[Any, Any], count: int) -> Callable[[], Any]:
    async def reached() -> bool:
        return await _polls(handle) >= count

    return reached
