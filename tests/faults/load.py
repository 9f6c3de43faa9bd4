"""The runs of the load fault test (`test_load.py`): their plan, the model's script, the
expected outcome, what Temporal's history recorded of their tool calls, and the report."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter

from tests.history_text import local_activity
from tests.scripted_llm import Reply, ScriptedLLM, Turn, tool_call
from workflows.activity_io import ToolCallInput
from workflows.messages import ApprovalDecision, OrchestrationStatus, StepRecord
from workflows.orchestration import Orchestration
from workflows.steps import TOOL_ACTIVITY_ID_PREFIX

IDEMPOTENCY_KEY = "io.github.durable-orchestrations/idempotency-key"
UNDECIDED_APPROVAL_TIMEOUT_SECONDS = 30.0
"""Runs left undecided time out by themselves, around the time the worker is killed."""
DECIDED_APPROVAL_TIMEOUT_SECONDS = 600.0
"""Runs that get a decision: never reached, so a decision cannot race the timer."""
LLM_TURNS_PER_RUN = 8
"""Two LLM calls per run, plus retries of calls cut off by the kill."""

Outcome = Literal["approve", "deny", "timeout"]


@dataclass
class LoadRun:
    """One run of the test: the human's choice for its gated transfer, and its handle once started."""

    index: int
    outcome: Outcome
    handle: WorkflowHandle[Any, Any] | None = None

    @property
    def model(self) -> str:
        return f"m-load-{self.index}"

    @property
    def account(self) -> str:
        return f"acct-{self.index}"

    @property
    def pay_id(self) -> str:
        return f"pay-{self.index}"

    @property
    def look_id(self) -> str:
        return f"look-{self.index}"

    @property
    def started(self) -> WorkflowHandle[Any, Any]:
        assert self.handle is not None, f"run {self.index} was not started"
        return self.handle

    @property
    def pay_key(self) -> str:
        return f"{self.started.id}/{self.pay_id}"

    @property
    def look_key(self) -> str:
        return f"{self.started.id}/{self.look_id}"

    def request(self) -> dict[str, Any]:
        timeout = UNDECIDED_APPROVAL_TIMEOUT_SECONDS if self.outcome == "timeout" else DECIDED_APPROVAL_TIMEOUT_SECONDS
        return {"input": f"pay {self.account}", "model": self.model, "approval_timeout_seconds": timeout}

    def script(self, llm: ScriptedLLM) -> None:
        """The model asks for the transfer and an echo, then answers with the tool messages it
        got; each turn reads the request, so a retried LLM call gets the same answer."""

        def turn(body: dict[str, Any]) -> Turn:
            tool_messages = [str(m.get("content")) for m in body["messages"] if m.get("role") == "tool"]
            if tool_messages:
                return Reply(content=" | ".join(tool_messages))
            return Reply(
                tool_calls=[
                    tool_call(self.pay_id, "toolbox__transfer", {"account": self.account, "amount": 1}),
                    tool_call(self.look_id, "toolbox__echo", {"text": self.look_id}),
                ]
            )

        llm.script(self.model, *[turn] * LLM_TURNS_PER_RUN)

    async def send_decision(self) -> None:
        assert self.outcome != "timeout"
        decision = ApprovalDecision(
            tool_call_id=self.pay_id,
            decision=self.outcome,
            reason=f"{self.outcome} by the load test",
            approver="load-test",
        )
        await self.started.signal(Orchestration.submit_approval, decision)

    def check_final(self, final: OrchestrationStatus) -> None:
        """The run completed, and its audit trail and answer match the decision."""
        where = f"run {self.index} ({self.outcome}, {final.id})"
        assert (final.status, final.stop_reason) == ("completed", "final_answer"), f"{where}: {final}"
        pay, look = _tool_step(final, self.pay_id), _tool_step(final, self.look_id)
        assert look.status == "completed", f"{where}: echo {look}"
        assert not final.ignored_decisions, f"{where}: {final.ignored_decisions}"
        if self.outcome == "approve":
            expected = (pay.status, pay.decision, pay.approver) == ("completed", "approve", "load-test")
            first_message = f"transferred 1 to {self.account}"
        elif self.outcome == "deny":
            expected = (pay.status, pay.decision, pay.reason) == ("denied", "deny", "deny by the load test")
            first_message = "denied: deny by the load test"
        else:
            expected = (pay.status, pay.decision, pay.reason) == ("denied", "deny", "approval timed out")
            first_message = "denied: approval timed out"
        assert expected, f"{where}: transfer step {pay}"
        assert final.output == f"{first_message} | {self.look_id}", f"{where}: the model was shown {final.output!r}"
        assert final.usage.tool_calls == (2 if self.outcome == "approve" else 1), f"{where}: {final.usage}"


def plan_runs(count: int, seed: int) -> list[LoadRun]:
    rng = random.Random(seed)
    outcomes: list[Outcome] = ["approve", "deny", "timeout"]
    return [LoadRun(index, rng.choice(outcomes)) for index in range(count)]


def expected_keys(runs: list[LoadRun]) -> dict[tuple[str, str], str]:
    """The idempotency key each logged call must carry, by (tool, the argument naming its run)."""
    keys: dict[tuple[str, str], str] = {}
    for run in runs:
        keys["transfer", run.account] = run.pay_key
        keys["echo", run.look_id] = run.look_key
    return keys


def logged_call_name(call: dict[str, Any]) -> tuple[str, str]:
    arguments = call["arguments"]
    return call["tool"], str(arguments.get("account") or arguments.get("text"))


def _tool_step(final: OrchestrationStatus, tool_call_id: str) -> StepRecord:
    steps = [step for step in final.steps if step.kind == "tool" and step.tool_call_id == tool_call_id]
    assert len(steps) == 1, f"{final.id}: steps for {tool_call_id}: {steps}"
    return steps[0]


@dataclass
class ToolActivity:
    """What one run's history recorded of a `call_tool` activity or local activity (one
    idempotency key)."""

    scheduled: int = 0
    attempt: int = 0
    recorded_at: float = float("inf")
    """Epoch seconds of ActivityTaskCompleted, or of the local activity's marker: from then on
    the call must never run again."""
    local: bool = False
    task_failures: int = 0
    """Workflow tasks of the run that timed out (a worker starved past the task's timeout): a
    local activity run in one of them (its marker never recorded) runs again in the next."""


async def tool_activities(handle: WorkflowHandle[Any, Any]) -> dict[str, ToolActivity]:
    """The run's `call_tool` activities by idempotency key, read from its history."""
    keys: dict[int, str] = {}
    found: dict[str, ToolActivity] = {}
    history = await handle.fetch_history()
    task_failures = sum(
        event.HasField("workflow_task_timed_out_event_attributes")
        or event.HasField("workflow_task_failed_event_attributes")
        for event in history.events
    )
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            scheduled = event.activity_task_scheduled_event_attributes
            if scheduled.activity_type.name != "orch.call_tool":
                continue
            payload = scheduled.input.payloads[0]
            key = pydantic_data_converter.payload_converter.from_payload(payload, ToolCallInput).idempotency_key
            keys[event.event_id] = key
            found.setdefault(key, ToolActivity()).scheduled += 1
        elif event.HasField("activity_task_started_event_attributes"):
            started = event.activity_task_started_event_attributes
            if started.scheduled_event_id in keys:
                found[keys[started.scheduled_event_id]].attempt = started.attempt
        elif event.HasField("activity_task_completed_event_attributes"):
            completed = event.activity_task_completed_event_attributes
            if completed.scheduled_event_id in keys:
                when = event.event_time
                found[keys[completed.scheduled_event_id]].recorded_at = when.seconds + when.nanos / 1e9
        elif (data := local_activity(event)) is not None:
            if data["activity_type"] != "orch.call_tool":
                continue
            key = f"{handle.id}/{data['activity_id'].removeprefix(TOOL_ACTIVITY_ID_PREFIX)}"
            when = event.event_time
            found[key] = ToolActivity(1, data["attempt"], when.seconds + when.nanos / 1e9, local=True)
    for activity in found.values():
        activity.task_failures = task_failures
    return found


def child_pids(parent: int) -> set[int]:
    """Processes whose parent is `parent` (Linux /proc): a worker's stdio MCP servers."""
    return {int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit() and _stat(entry)[1] == parent}


def alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie (a container's PID 1 may never reap orphans)."""
    state, _ = _stat(Path("/proc", str(pid)))
    return state not in ("", "Z", "X")


def _stat(proc: Path) -> tuple[str, int]:
    """State letter and parent pid from /proc/<pid>/stat; ("", 0) when the process is gone."""
    try:
        stat = (proc / "stat").read_text()
    except OSError:
        return "", 0
    # The fields after the command name, which is in parentheses and may contain spaces.
    state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
    return state, int(ppid)


def report(
    runs: list[LoadRun],
    finished: int,
    calls: list[dict[str, Any]],
    executions: Counter[str],
    history: dict[str, ToolActivity],
    rerun_after_recorded: int,
    marks: dict[str, float],
) -> str:
    """The table printed under `pytest -s`; `marks` are seconds since the test began."""
    outcomes = Counter(run.outcome for run in runs)
    tools = Counter(call["tool"] for call in calls)
    rows = [
        ("runs started", len(runs)),
        ("runs finished", finished),
        ("runs lost", len(runs) - finished),
        ("approved / denied / timed out", f"{outcomes['approve']} / {outcomes['deny']} / {outcomes['timeout']}"),
        ("tool executions (transfer / echo)", f"{tools['transfer']} / {tools['echo']}"),
        ("tool activities retried (attempt > 1)", sum(1 for act in history.values() if act.attempt > 1)),
        ("keys executed twice (cut off by the kill)", sum(1 for count in executions.values() if count > 1)),
        ("executed again after result recorded", rerun_after_recorded),
        *((f"seconds until {mark}", f"{seconds:.1f}") for mark, seconds in marks.items()),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"  {name.ljust(width)}  {value}" for name, value in rows]
    return "\n".join(["", "load fault test: two workers, one SIGKILLed midway", *lines, ""])
