"""Continue-as-new keeps messages, usage, the step trace and pending approvals."""

from __future__ import annotations

from temporalio.client import WorkflowExecutionStatus

from tests.conftest import CallLog, WorkerFactory, toolbox_stdio
from tests.scripted_llm import Reply, ScriptedLLM, tool_call
from tests.waiting import result_of
from workflows.messages import ApprovalDecision
from workflows.orchestration import Orchestration


def _echo(i: int) -> Reply:
    return Reply(content=f"step {i}", tool_calls=[tool_call(f"e{i}", "toolbox__echo", {"text": f"echo {i}"})])


async def test_continue_as_new_mid_run_keeps_state_and_pending_approvals(
    run_worker: WorkerFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    gated = Reply(tool_calls=[tool_call("pay", "toolbox__transfer", {"account": "acme", "amount": 7})])
    llm.script("m-can", *[_echo(i) for i in range(1, 5)], gated, _echo(6), _echo(7), Reply(content="all done"))
    server = toolbox_stdio(call_log, tools_to_auto_execute=["echo"])
    async with run_worker({"toolbox": server}) as h:
        handle = await h.start(
            {"input": "long task", "model": "m-can", "max_steps": 10, "continue_as_new_after_events": 50}
        )
        waiting = await h.wait_pending(handle)
        first_run = (await handle.describe()).run_id
        [pending] = waiting.pending_approvals
        # Unknown-call decisions add history while the run waits, until it continues as new.
        for i in range(20):
            await handle.signal(Orchestration.submit_approval, ApprovalDecision(tool_call_id=f"x{i}", decision="deny"))
        carried = await h.wait_for(handle, lambda s: len(s.ignored_decisions) == 20)
        assert (await handle.describe()).run_id != first_run, "the run continued as new while waiting"
        assert carried.status == "waiting_for_approval"
        assert carried.pending_approvals == [pending], "the pending approval went along unchanged"
        await handle.signal(Orchestration.submit_approval, ApprovalDecision(tool_call_id="pay", decision="approve"))
        final = await result_of(handle)
        start_of_chain = h.client.get_workflow_handle(handle.id, run_id=handle.result_run_id)
        first_description = await start_of_chain.describe()
    assert first_description.status == WorkflowExecutionStatus.CONTINUED_AS_NEW
    assert final.status == "completed" and final.output == "all done" and final.step == 8
    assert [s.index for s in final.steps] == list(range(len(final.steps)))
    assert [s.kind for s in final.steps].count("llm") == 8
    assert [s.tool_call_id for s in final.steps if s.kind == "tool"] == ["e1", "e2", "e3", "e4", "pay", "e6", "e7"]
    assert final.usage.prompt_tokens == 80 and final.usage.tool_calls == 7
    assert len(final.ignored_decisions) == 20
    last_messages = llm.requests_for("m-can")[-1]["messages"]
    assert [m["role"] for m in last_messages] == ["user"] + ["assistant", "tool"] * 7
    assert [m["content"] for m in last_messages if m["role"] == "tool"] == [
        "echo 1",
        "echo 2",
        "echo 3",
        "echo 4",
        "transferred 7 to acme",
        "echo 6",
        "echo 7",
    ]
    assert len(call_log.calls("transfer")) == 1 and len(call_log.calls("echo")) == 6
