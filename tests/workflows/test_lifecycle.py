"""Cancellation, the OrchestrationStatus search attribute and outbound webhooks."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError

from api.webhook_signatures import verify
from tests.conftest import CallLog, Harness, WebhookReceiver, WorkerFactory, toolbox_stdio
from tests.scripted_llm import HTTPError, Reply, ScriptedLLM, Stall, tool_call
from tests.waiting import WAIT_SECONDS, eventually, result_of
from workflows.messages import ApprovalDecision
from workflows.orchestration import Orchestration

SECRET = "whsec_c2VjcmV0LWZvci10ZXN0cw=="


async def _listed(h: Harness, workflow_id: str, status: str) -> bool:
    """Whether visibility lists the run under `OrchestrationStatus = status` (eventually)."""
    query = f'WorkflowId = "{workflow_id}" AND OrchestrationStatus = "{status}"'

    async def found() -> bool:
        return bool([w async for w in h.client.list_workflows(query)])

    return await eventually(found, f"visibility lists {workflow_id} as {status}", interval=0.2)


async def test_cancel_while_waiting_for_approval(
    run_worker: WorkerFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script("m-cancel", Reply(tool_calls=[tool_call("t1", "toolbox__transfer", {"account": "a", "amount": 1})]))
    async with run_worker({"toolbox": toolbox_stdio(call_log)}) as h:
        handle = await h.start({"input": "pay", "model": "m-cancel"})
        await h.wait_pending(handle)
        assert await _listed(h, handle.id, "waiting_for_approval")
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        description = await handle.describe()
        assert await _listed(h, handle.id, "cancelled")
    assert description.status == WorkflowExecutionStatus.CANCELED
    memo = await description.memo_value("orchestration")
    assert memo["status"] == "cancelled" and memo["stop_reason"] == "cancelled"
    assert memo["pending_approvals"] == []
    assert call_log.calls("transfer") == []


@pytest.mark.parametrize("tool_call_mode", ["local_activity", "activity"])
async def test_cancel_stops_an_in_flight_tool_call(
    run_worker: WorkerFactory, llm: ScriptedLLM, call_log: CallLog, tmp_path: Path, tool_call_mode: str
) -> None:
    never_opened = tmp_path / "gate"
    model = f"m-cancel-tool-{tool_call_mode}"
    llm.script(model, Reply(tool_calls=[tool_call("s", "toolbox__hold", {"gate": str(never_opened)})]))
    async with run_worker({"toolbox": toolbox_stdio(call_log, tools_to_auto_execute=["*"])}) as h:
        request = {"input": "hold", "model": model, "tool_timeout_seconds": 600, "tool_call": tool_call_mode}
        handle = await h.start(request)
        await eventually(lambda: call_log.calls("hold"), "the held call reached the toolbox")
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await asyncio.wait_for(handle.result(), WAIT_SECONDS)
        description = await handle.describe()
        history = await handle.fetch_history()
    assert description.status == WorkflowExecutionStatus.CANCELED
    if tool_call_mode == "activity":
        # The run closed only after the activity confirmed it stopped (seen through its heartbeat).
        assert any(e.HasField("activity_task_canceled_event_attributes") for e in history.events)
    # (A local activity is cancelled by its own worker, which the workflow waits for.)
    assert not description.raw_description.pending_activities
    memo = await description.memo_value("orchestration")
    assert [s["status"] for s in memo["steps"] if s["kind"] == "tool"] == ["cancelled"]


async def test_cancel_stops_an_llm_call_running_as_a_local_activity(
    run_worker: WorkerFactory, llm: ScriptedLLM
) -> None:
    llm.script("m-cancel-local", Stall(seconds=WAIT_SECONDS))
    async with run_worker() as h:
        handle = await h.start({"input": "think", "model": "m-cancel-local", "llm_call": "local_activity"})
        await eventually(lambda: llm.requests_for("m-cancel-local"), "the LLM call reached the model")
        await handle.cancel()
        # The cancel waits for the held workflow task's next heartbeat (80% of its 10 s timeout).
        with pytest.raises(WorkflowFailureError):
            await asyncio.wait_for(handle.result(), WAIT_SECONDS)
        description = await handle.describe()
    assert description.status == WorkflowExecutionStatus.CANCELED
    memo = await description.memo_value("orchestration")
    assert memo["status"] == "cancelled" and [s["status"] for s in memo["steps"]] == ["cancelled"]
    assert len(llm.requests_for("m-cancel-local")) == 1


async def test_signed_webhooks_for_approval_completion_and_failure(
    run_worker: WorkerFactory, llm: ScriptedLLM, call_log: CallLog, webhook_receiver: WebhookReceiver
) -> None:
    url = f"http://127.0.0.1:{webhook_receiver.port}/hook"
    llm.script(
        "m-hooks",
        Reply(tool_calls=[tool_call("t1", "toolbox__transfer", {"account": "a", "amount": 1})]),
        Reply(content="paid"),
    )
    llm.script("m-hooks-fail", HTTPError(401, "bad api key"))
    async with run_worker({"toolbox": toolbox_stdio(call_log)}, webhook_url=url, webhook_secret=SECRET) as h:
        handle = await h.start({"input": "pay", "model": "m-hooks"})
        await h.wait_pending(handle)
        await handle.signal(Orchestration.submit_approval, ApprovalDecision(tool_call_id="t1", decision="approve"))
        await result_of(handle)
        # The run's own webhook_url wins over ORCH_WEBHOOK_URL.
        failing = await h.start({"input": "x", "model": "m-hooks-fail", "webhook_url": url + "?run=2"})
        with pytest.raises(WorkflowFailureError):
            await failing.result()
    types = [event["type"] for event in webhook_receiver.events()]
    assert types == ["orchestration.approval_requested", "orchestration.completed", "orchestration.failed"]
    for headers, body in webhook_receiver.received:
        assert verify(SECRET, headers, body) == headers["webhook-id"]
    approval, completed, failed = webhook_receiver.events()
    assert approval["data"]["tool_call"]["tool_call_id"] == "t1"
    assert approval["data"]["orchestration_id"] == handle.id
    assert completed["data"]["orchestration"]["output"] == "paid"
    assert "bad api key" in failed["data"]["orchestration"]["error"]
