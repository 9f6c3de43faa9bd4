"""Signed approval webhooks, the tool catalog, health, Temporal outages, and OpenAPI."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time

import httpx
import pytest

from api import service
from tests.api.conftest import APIFactory, serve_api, signed
from tests.conftest import REPO_ROOT, CallLog, toolbox_stdio
from tests.scripted_llm import Reply, ScriptedLLM, free_port, tool_call
from tests.waiting import WAIT_SECONDS, result_of, wait_for_port
from worker.settings import Settings


async def test_webhook_approval_good_wrong_stale_and_replayed(
    api_stack: APIFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script(
        "m-hook",
        Reply(tool_calls=[tool_call("t1", "toolbox__transfer", {"account": "a", "amount": 1})]),
        Reply(content="done"),
    )
    async with api_stack({"toolbox": toolbox_stdio(call_log)}) as api:
        run_id = (await api.http.post("/v1/orchestrations", json={"input": "pay", "model": "m-hook"})).json()["id"]
        await api.wait_for(run_id, lambda s: s["status"] == "waiting_for_approval")
        body = {"orchestration_id": run_id, "tool_call_id": "t1", "decision": "approve", "approver": "erp"}

        wrong = await api.http.post("/v1/webhooks/approvals", **signed(body, "msg_1", secret="other-secret"))
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "bad_signature"
        stale = await api.http.post("/v1/webhooks/approvals", **signed(body, "msg_2", at=int(time.time()) - 600))
        assert stale.status_code == 401 and "window" in stale.json()["error"]["message"]
        unsigned = await api.http.post("/v1/webhooks/approvals", json=body)
        assert unsigned.status_code == 401

        good = await api.http.post("/v1/webhooks/approvals", **signed(body, "msg_3"))
        assert good.status_code == 200, good.text
        replayed = await api.http.post("/v1/webhooks/approvals", **signed(body, "msg_3"))
        assert replayed.status_code == 200, "a replayed webhook-id is a no-op"
        final = await api.wait_for(run_id, lambda s: s["status"] == "completed")
    step = next(s for s in final["steps"] if s["kind"] == "tool")
    assert step["approver"] == "webhook/erp" and step["decision"] == "approve"
    assert len(call_log.calls("transfer")) == 1
    assert final["ignored_decisions"] == []


async def test_tools_lists_each_server_with_policy_without_secrets(
    api_stack: APIFactory, call_log: CallLog, monkeypatch
) -> None:
    monkeypatch.setenv("ORCH_TEST_TOOLS_SECRET", "tools-secret-value")
    small = {"name": "small", "arguments": {"properties": {"amount": {"maximum": 100}}}}
    server = toolbox_stdio(
        call_log,
        tools_to_auto_execute=["echo"],
        tool_deny_list=["delete_everything"],
        auto_approve_rules={"transfer": [small]},
    )
    server["env"]["TOOLBOX_SECRET"] = "${ORCH_TEST_TOOLS_SECRET}"
    async with api_stack({"toolbox": server, "down": {"url": "http://127.0.0.1:9/mcp"}}) as api:
        response = await api.http.get("/v1/tools")
    assert response.status_code == 200, response.text
    servers = {s["name"]: s for s in response.json()["servers"]}
    policies = {t["name"]: t["policy"] for t in servers["toolbox"]["tools"]}
    assert policies["echo"] == "auto_execute"
    assert policies["transfer"] == "execute"
    rules = {t["name"]: t["auto_approve_rules"] for t in servers["toolbox"]["tools"]}
    assert rules["transfer"] == [small] and rules["echo"] == []
    assert policies["delete_everything"] == "denied"
    assert servers["down"]["error"] and servers["down"]["tools"] == []
    assert "tools-secret-value" not in response.text and "ORCH_TEST_TOOLS_SECRET" not in response.text


async def test_finished_run_is_readable_with_the_worker_stopped(
    api_stack: APIFactory, llm: ScriptedLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    llm.script("m-after", Reply(content="kept"))
    async with api_stack() as api:
        run_id = (await api.http.post("/v1/orchestrations", json={"input": "x", "model": "m-after"})).json()["id"]
        await api.wait_for(run_id, lambda s: s["status"] == "completed")
        target = api.worker.client.service_client.config.target_host
    # The worker is gone now; a fresh API process reads the final status from Temporal alone.
    # A query that waited for a worker would now take WAIT_SECONDS, far beyond the bound below.
    monkeypatch.setattr(service, "QUERY_TIMEOUT_SECONDS", WAIT_SECONDS)
    async with serve_api(Settings(), temporal=target) as (http, _):
        started = time.monotonic()
        response = await http.get(f"/v1/orchestrations/{run_id}")
        elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response.json()["output"] == "kept" and response.json()["status"] == "completed"
    assert elapsed < WAIT_SECONDS / 2, "no query to a missing worker"


async def test_health_and_a_temporal_outage_answers_503_quickly() -> None:
    async with serve_api(Settings()) as (http, _):
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        started = time.monotonic()
        responses = [
            await http.get("/readyz"),
            await http.get("/v1/orchestrations/orch-x"),
            await http.post("/v1/orchestrations", json={"input": "x"}),
        ]
        elapsed = time.monotonic() - started
    for response in responses:
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "temporal_unavailable"
    assert elapsed < 20, "each call gives up within seconds"


async def test_readyz_when_temporal_is_up(api_stack: APIFactory) -> None:
    async with api_stack() as api:
        assert (await api.http.get("/readyz")).json() == {"status": "ready"}


async def test_openapi_documents_every_endpoint_and_error(api_stack: APIFactory) -> None:
    async with api_stack() as api:
        spec = (await api.http.get("/openapi.json")).json()
        docs = await api.http.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    paths = spec["paths"]
    expected = {
        ("/v1/orchestrations", "post"),
        ("/v1/orchestrations", "get"),
        ("/v1/orchestrations/{orchestration_id}", "get"),
        ("/v1/orchestrations/{orchestration_id}/approvals", "post"),
        ("/v1/orchestrations/{orchestration_id}/cancel", "post"),
        ("/v1/webhooks/approvals", "post"),
        ("/v1/tools", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    }
    assert expected <= {(path, method) for path, methods in paths.items() for method in methods}
    approvals = paths["/v1/orchestrations/{orchestration_id}/approvals"]["post"]["responses"]
    assert {"200", "404", "409", "422"} <= set(approvals)
    assert approvals["409"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    status_schema = spec["components"]["schemas"]["OrchestrationStatus"]["properties"]
    assert {"pending_approvals", "steps", "usage", "stop_reason"} <= set(status_schema)
    assert "orchestration_id" in json.dumps(paths["/v1/webhooks/approvals"]["post"]["requestBody"])


@pytest.mark.parametrize("command", [["-m", "api"], ["-m", "uvicorn", "api.app:app", "--port", "{port}"]])
async def test_entry_points_serve_the_api(command: list[str]) -> None:
    port = free_port()
    env = dict(os.environ, ORCH_API_PORT=str(port), TEMPORAL_ADDRESS="127.0.0.1:1")
    args = [part.format(port=port) for part in command]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *args, cwd=REPO_ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await wait_for_port(port)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            assert (await http.get("/healthz")).json() == {"status": "ok"}
    finally:
        proc.terminate()
        await proc.wait()


async def test_approval_with_no_worker_is_queued_and_applies_when_one_returns(
    worker_process, llm: ScriptedLLM, call_log: CallLog, temporal_env
) -> None:
    llm.script(
        "m-queued",
        Reply(tool_calls=[tool_call("t1", "toolbox__transfer", {"account": "a", "amount": 2})]),
        Reply(content="paid later"),
    )
    servers = {"toolbox": toolbox_stdio(call_log)}
    first, h = worker_process(servers)
    await first.start()
    handle = await h.start({"input": "pay", "model": "m-queued"})
    await h.wait_pending(handle)
    assert await first.stop(signal.SIGTERM) == 0
    target = temporal_env.client.service_client.config.target_host
    async with serve_api(Settings(task_queue=h.task_queue), temporal=target) as (http, _):
        queued = await http.post(
            f"/v1/orchestrations/{handle.id}/approvals",
            json={"tool_call_id": "t1", "decision": "approve", "approver": "night-shift"},
        )
    assert queued.status_code == 202, queued.text
    second, _ = worker_process(servers)
    await second.start()
    final = await result_of(handle)
    assert final.output == "paid later" and len(call_log.calls("transfer")) == 1
    assert next(s for s in final.steps if s.kind == "tool").approver == "night-shift"
