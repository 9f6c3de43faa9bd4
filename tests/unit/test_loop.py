"""The agent loop with fake activities: answers, auto-approved tools, problems the model is told
about, max_steps, LLM failures, continue-as-new, and the ListTools workflow."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from tests.unit.conftest import Harness
from tests.unit.fakes import DEFAULT_MODEL, answer, asks, call
from tests.waiting import eventually
from workflows.activity_io import ListToolsInput, PrepareRunInput, ToolCallInput, ToolCallOutput
from workflows.contract import ORCHESTRATION_STATUS_ATTRIBUTE, RUN_FAILED
from workflows.list_tools import ListTools
from workflows.messages import ApprovalDecision, EventsQuery, OrchestrationStatus, Usage
from workflows.orchestration import Orchestration


@pytest.mark.parametrize("llm_call", ["activity", "local_activity"])
async def test_final_answer_without_tools(harness: Harness, llm_call: str) -> None:
    fakes = harness.fakes
    fakes.script(answer("hello there"))
    handle = await harness.start(
        input="say hi", instructions="be brief", mcp_servers=["files", "bank"], llm_call=llm_call, metadata={"t": "1"}
    )
    final = await harness.result(handle)
    assert (final.status, final.stop_reason, final.output, final.step) == (
        "completed",
        "final_answer",
        "hello there",
        1,
    )
    assert (final.model, final.metadata, final.error) == (DEFAULT_MODEL, {"t": "1"}, None)
    assert [(s.kind, s.status, s.step) for s in final.steps] == [("llm", "completed", 1)]
    assert final.usage == Usage(prompt_tokens=10, completion_tokens=5)
    assert final.unavailable_servers == {"offline": "connection refused"}
    assert fakes.prepare_inputs == [PrepareRunInput(mcp_servers=["files", "bank"])]
    [request] = fakes.llm_requests
    assert request.model == DEFAULT_MODEL
    assert [(m.role, m.text()) for m in request.messages] == [("system", "be brief"), ("user", "say hi")]
    assert [tool["function"]["name"] for tool in request.tools] == ["files__read", "bank__transfer"]
    assert fakes.tool_calls == []
    assert fakes.webhook_types() == ["orchestration.completed"]
    assert fakes.webhooks[0].data["orchestration"]["output"] == "hello there"
    description = await handle.describe()
    assert description.typed_search_attributes.get(ORCHESTRATION_STATUS_ATTRIBUTE) == "completed"
    assert (await description.memo())["orchestration"]["output"] == "hello there"


async def test_auto_approved_tool_runs_then_the_model_answers(harness: Harness) -> None:
    fakes = harness.fakes
    fakes.script(asks(call("c1", "files__read", {"path": "a.txt"}), text="let me look"), answer("a.txt says hi"))
    handle = await harness.start(model="other-model", tool_timeout_seconds=7, tool_output_limit_bytes=1000)
    final = await harness.result(handle)
    assert (final.output, final.step, final.model) == ("a.txt says hi", 2, "other-model")
    assert fakes.tool_calls == [
        ToolCallInput(
            server="files",
            tool="read",
            arguments={"path": "a.txt"},
            timeout_seconds=7,
            output_limit_bytes=1000,
            idempotency_key=f"{handle.id}/c1",
            definition_hash="def-read",
            tool_call_id="c1",
        )
    ]
    assert fakes.tool_messages() == {"c1": "contents of a.txt"}
    assert [m.role for m in fakes.llm_requests[1].messages] == ["user", "assistant", "tool"]
    assert [(s.kind, s.status, s.step) for s in final.steps] == [
        ("llm", "completed", 1),
        ("tool", "completed", 1),
        ("llm", "completed", 2),
    ]
    tool_step = final.steps[1]
    assert (tool_step.decision, tool_step.output_preview) == (None, "contents of a.txt")
    assert final.usage == Usage(prompt_tokens=20, completion_tokens=10, tool_calls=1, cost_usd=0.25)


@pytest.mark.parametrize(
    "outcome, shown",
    [
        (ToolCallOutput(text="no such file", is_error=True), "error: no such file"),
        (ApplicationError("read timed out after 7s", type="ToolTimeout", non_retryable=True), "error: read timed out"),
    ],
    ids=["error-result", "activity-failure"],
)
async def test_tool_failure_is_shown_to_the_model(
    harness: Harness, outcome: ToolCallOutput | ApplicationError, shown: str
) -> None:
    fakes = harness.fakes
    fakes.tool_results["read"] = outcome
    fakes.script(asks(call("c1", "files__read", {"path": "a.txt"})), answer("could not read it"))
    final = await harness.result(await harness.start())
    assert final.output == "could not read it"
    assert fakes.tool_messages()["c1"].startswith(shown)
    assert final.steps[1].status == "error"
    assert len(fakes.tool_calls) == 1, "a non-retryable failure is not retried"


async def test_repeated_tool_call_ids_are_made_unique(harness: Harness) -> None:
    fakes = harness.fakes
    fakes.script(asks(call("c1", "files__read", {"path": "a"}), call("c1", "files__read", {"path": "b"})), answer("ok"))
    handle = await harness.start()
    final = await harness.result(handle)
    assert [s.tool_call_id for s in final.steps if s.kind == "tool"] == ["c1", "call_1_1"]
    assert fakes.tool_messages() == {"c1": "contents of a", "call_1_1": "contents of b"}
    # The two calls run concurrently: in either order.
    assert sorted(c.idempotency_key for c in fakes.tool_calls) == [f"{handle.id}/c1", f"{handle.id}/call_1_1"]
    assistant = fakes.llm_requests[1].messages[1]
    assert [c.id for c in assistant.tool_calls or []] == ["c1", "call_1_1"], "the model sees the ids it is answered by"


@pytest.mark.parametrize(
    "requested, shown",
    [
        (call("c1", "nope__tool", {}), "error: unknown tool 'nope__tool'; use one of the tools you were given"),
        (call("c1", "files__read", "{not json"), "error: arguments are not valid JSON"),
        (call("c1", "files__read", {"path": 3}), "error: arguments do not match the input schema of files__read"),
        (call("c1", "bank__transfer", {"account": "x"}), "error: arguments do not match the input schema of bank__"),
    ],
    ids=["unknown-tool", "invalid-json", "schema-mismatch", "gated-schema-mismatch"],
)
async def test_a_call_that_cannot_run_is_reported_to_the_model_without_running(
    harness: Harness, requested: object, shown: str
) -> None:
    fakes = harness.fakes
    fakes.script(asks(requested), answer("sorry"))  # type: ignore[arg-type]
    final = await harness.result(await harness.start())
    assert (final.status, final.output) == ("completed", "sorry")
    assert fakes.tool_calls == []
    assert fakes.tool_messages()["c1"].startswith(shown)
    assert final.steps[1].status == "error" and final.steps[1].output_preview == fakes.tool_messages()["c1"]
    assert fakes.webhook_types() == ["orchestration.completed"], "it never waited for approval"


async def test_max_steps_ends_the_run_with_the_last_assistant_text(harness: Harness) -> None:
    fakes = harness.fakes
    fakes.script(*[asks(call(f"c{i}", "files__read", {"path": f"{i}.txt"}), text=f"reading {i}") for i in (1, 2, 3)])
    final = await harness.result(await harness.start(max_steps=2))
    assert (final.status, final.stop_reason, final.step, final.output) == ("completed", "max_steps", 2, "reading 2")
    assert len(fakes.llm_requests) == 2
    # The last step's call still runs, though no LLM call follows to see its output.
    assert [c.arguments["path"] for c in fakes.tool_calls] == ["1.txt", "2.txt"]
    assert [(s.kind, s.status) for s in final.steps][-1] == ("tool", "completed")


@pytest.mark.parametrize("llm_call", ["activity", "local_activity"])
async def test_llm_failure_fails_the_run(harness: Harness, llm_call: str) -> None:
    fakes = harness.fakes
    fakes.script(ApplicationError("model 'x' does not exist", type="LLMRequestRejected", non_retryable=True))
    handle = await harness.start(llm_call=llm_call)
    with pytest.raises(WorkflowFailureError) as caught:
        await harness.result(handle)
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == RUN_FAILED
    assert cause.message == "LLM call failed: model 'x' does not exist"
    failed = OrchestrationStatus.model_validate(cause.details[0])
    assert (failed.status, failed.stop_reason, failed.error) == ("failed", "error", cause.message)
    assert [(s.kind, s.status) for s in failed.steps] == [("llm", "failed")]
    assert (await harness.status(handle)).status == "failed"
    assert len(fakes.llm_requests) == 1, "a rejected request is not retried"
    assert fakes.webhook_types() == ["orchestration.failed"]


async def test_prepare_run_failure_fails_the_run_before_any_llm_call(harness: Harness) -> None:
    fakes = harness.fakes
    fakes.tool_catalog = ApplicationError("${TOKEN} is not set", type="MCPConfigError", non_retryable=True)
    handle = await harness.start()
    with pytest.raises(WorkflowFailureError) as caught:
        await harness.result(handle)
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == RUN_FAILED
    assert cause.message == "listing the MCP tools failed: ${TOKEN} is not set"
    assert len(fakes.prepare_inputs) == 1 and fakes.llm_requests == []
    # Failed like any other failure: the search attribute, the memo and the webhook say so.
    description = await handle.describe()
    assert description.status == WorkflowExecutionStatus.FAILED
    assert description.typed_search_attributes.get(ORCHESTRATION_STATUS_ATTRIBUTE) == "failed"
    final = (await description.memo())["orchestration"]
    assert (final["status"], final["error"]) == ("failed", "listing the MCP tools failed: ${TOKEN} is not set")
    assert fakes.webhook_types() == ["orchestration.failed"]


async def test_transient_llm_failure_is_retried(harness: Harness) -> None:
    fakes = harness.fakes
    fakes.script(ApplicationError("503 from llm: busy", type="LLMUnavailable"), answer("back again"))
    final = await harness.result(await harness.start())
    assert (final.status, final.output) == ("completed", "back again")
    assert len(fakes.llm_requests) == 2
    assert [(s.kind, s.status) for s in final.steps] == [("llm", "completed")]


async def test_continue_as_new_carries_a_pending_approval(harness: Harness) -> None:
    fakes = harness.fakes
    fakes.script(asks(call("pay1", "bank__transfer", {"account": "acme", "amount": 50})), answer("paid"))
    handle = await harness.start(continue_as_new_after_events=50)
    waiting = await harness.wait_pending(handle)
    first_run = (await handle.describe()).run_id
    # Decisions naming no call only add history while the run waits, until it continues as new.
    for i in range(20):
        decision = ApprovalDecision(tool_call_id=f"x{i}", decision="deny")
        await eventually(lambda decision=decision: _signalled(handle, decision), f"decision x{i} delivered")
    # Wait on `describe`, not on the status query: the test server may leave a query sent to a
    # run that is just continuing as new unanswered until the RPC times out.
    await eventually(lambda: _run_id_changed(harness, handle.id, first_run), "a continued run")
    carried = await harness.wait_for(handle, lambda s: len(s.ignored_decisions) == 20)
    assert carried.status == "waiting_for_approval"
    assert carried.pending_approvals == waiting.pending_approvals
    await handle.signal(Orchestration.submit_approval, ApprovalDecision(tool_call_id="pay1", decision="approve"))
    final = await harness.result(handle)
    first = await harness.client.get_workflow_handle(handle.id, run_id=first_run).describe()
    assert first.status == WorkflowExecutionStatus.CONTINUED_AS_NEW
    assert (final.output, final.step, len(final.ignored_decisions)) == ("paid", 2, 20)
    assert len(fakes.prepare_inputs) == 1, "the catalog went along"
    assert [c.arguments for c in fakes.tool_calls] == [{"account": "acme", "amount": 50}]
    assert fakes.tool_messages() == {"pay1": "transferred 50 to acme"}
    events = (await handle.query(Orchestration.events, EventsQuery())).events
    assert [e.id for e in events] == list(range(1, len(events) + 1)), "numbered across runs"


async def _signalled(handle: WorkflowHandle[Any, Any], decision: ApprovalDecision) -> bool:
    """The signal sent to the run's latest part. The test server may refuse one sent as the run
    continues as new ("Completed workflow"): it is then sent again, to the new part."""
    try:
        await handle.signal(Orchestration.submit_approval, decision)
    except RPCError as err:
        if "Completed workflow" not in err.message:
            raise
        return False
    return True


async def _run_id_changed(harness: Harness, workflow_id: str, first_run: str) -> bool:
    return (await harness.client.get_workflow_handle(workflow_id).describe()).run_id != first_run


async def test_list_tools_returns_the_describe_tools_listing(harness: Harness) -> None:
    listing = await harness.client.execute_workflow(
        ListTools.run, ListToolsInput(servers=["bank"]), id=f"list-{harness.task_queue}", task_queue=harness.task_queue
    )
    assert listing == harness.fakes.listing
    assert harness.fakes.describe_inputs == [ListToolsInput(servers=["bank"])]
