"""Tool calls the server runs as MCP tasks (the `jobs` server of tests/mcp_servers/tasks.py):
a task that needs input, answered through the signed webhook, and a run cancelled mid-task."""

from __future__ import annotations

from tests.api.conftest import APIFactory, collect, signed
from tests.conftest import JobsServer
from tests.scripted_llm import Reply, ScriptedLLM, tool_call
from tests.waiting import eventually


async def test_a_task_needing_input_is_answered_through_the_webhook(
    api_stack: APIFactory, llm: ScriptedLLM, jobs_server: JobsServer
) -> None:
    llm.script(
        "m-approval-job",
        Reply(tool_calls=[tool_call("j1", "jobs__approval_job", {"name": "deploy"})]),
        Reply(content="deployed"),
    )
    async with api_stack({"jobs": {"url": jobs_server.url, "tools_to_auto_execute": ["*"]}}) as api:
        created = await api.http.post("/v1/orchestrations", json={"input": "deploy", "model": "m-approval-job"})
        run_id = created.json()["id"]
        waiting = await api.wait_for(run_id, lambda s: bool(s["pending_inputs"]))
        [asked] = waiting["pending_inputs"]
        assert (asked["input_id"], asked["source"], asked["message"]) == (
            "j1/1/confirm-deploy",
            "task",
            "Proceed with deploy?",
        )
        assert waiting["status"] == "waiting_for_input"
        body = {
            "orchestration_id": run_id,
            "input_id": asked["input_id"],
            "action": "accept",
            "content": {"proceed": True},
            "answerer": "erp",
        }
        answered = await api.http.post("/v1/webhooks/inputs", **signed(body, "msg_task_1"))
        assert answered.status_code == 200, answered.text
        replayed = await api.http.post("/v1/webhooks/inputs", **signed(body, "msg_task_1"))
        assert replayed.status_code == 200, "a replayed webhook-id changes nothing"
        final = await api.wait_for(run_id, lambda s: s["status"] == "completed")
        events = [e["data"] for e in await collect(api.http, f"/v1/orchestrations/{run_id}/events")]
    assert final["output"] == "deployed"
    messages = llm.requests_for("m-approval-job")[-1]["messages"]
    assert next(m["content"] for m in messages if m.get("tool_call_id") == "j1") == "job deploy proceeded"
    [answer] = [e for e in events if e["type"] == "input_answered"]
    assert (answer["data"]["answerer"], answer["data"]["action"]) == ("webhook/erp", "accept")
    statuses = [e["data"]["status"] for e in events if e["type"] == "task_status"]
    assert statuses[0] == "working" and "input_required" in statuses
    assert len(jobs_server.starts("deploy")) == 1


async def test_cancelling_the_run_cancels_its_task(
    api_stack: APIFactory, llm: ScriptedLLM, jobs_server: JobsServer
) -> None:
    llm.script("m-cancel-job", Reply(tool_calls=[tool_call("j1", "jobs__long_job", {"name": "backfill"})]))
    async with api_stack({"jobs": {"url": jobs_server.url, "tools_to_auto_execute": ["*"]}}) as api:
        created = await api.http.post("/v1/orchestrations", json={"input": "backfill", "model": "m-cancel-job"})
        run_id = created.json()["id"]
        await eventually(lambda: jobs_server.starts("backfill"), "the job started on the server")
        await api.wait_for(run_id, lambda s: any(step.get("status") == "running" for step in s["steps"]))
        cancelled = await api.http.post(f"/v1/orchestrations/{run_id}/cancel")
        assert cancelled.status_code == 202, cancelled.text
        await eventually(lambda: jobs_server.cancelled("backfill"), "the server was asked to cancel the task")
        final = await api.wait_for(run_id, lambda s: s["status"] == "cancelled")
    assert [s["status"] for s in final["steps"] if s["kind"] == "tool"] == ["cancelled"]
    assert len(jobs_server.starts("backfill")) == 1
