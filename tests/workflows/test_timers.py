"""Durable timers, on the time-skipping test server: a day of waiting passes in seconds."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from tests.conftest import CallLog, WorkerFactory, toolbox_stdio
from tests.scripted_llm import Reply, ScriptedLLM, tool_call
from tests.waiting import result_of


async def test_unanswered_approval_expires_as_denied(
    run_worker: WorkerFactory, llm: ScriptedLLM, call_log: CallLog, time_skipping_env: WorkflowEnvironment
) -> None:
    llm.script(
        "m-expire",
        Reply(tool_calls=[tool_call("t1", "toolbox__transfer", {"account": "a", "amount": 1})]),
        Reply(content="nobody answered"),
    )
    async with run_worker({"toolbox": toolbox_stdio(call_log)}, env=time_skipping_env) as h:
        # Default approval timeout: 86,400 s. Awaiting the result lets the server skip time.
        handle = await h.start({"input": "pay", "model": "m-expire"})
        final = await result_of(handle)
    assert final.status == "completed" and final.output == "nobody answered"
    [step] = [s for s in final.steps if s.kind == "tool"]
    assert (step.status, step.decision, step.reason, step.approver) == (
        "denied",
        "deny",
        "approval timed out",
        "system",
    )
    assert (step.finished_at - step.started_at).total_seconds() >= 86_400
    assert llm.requests_for("m-expire")[1]["messages"][-1]["content"] == "denied: approval timed out"
    assert call_log.calls("transfer") == []
