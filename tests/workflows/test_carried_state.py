"""State carried across continue-as-new by runs from before one record per tool call (an
audit step per call, plus an `OpenToolCall` per call of the current step) is read into the
records of today with nothing lost: the same audit steps, the same open calls."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from workflows.activity_io import PreparedRun
from workflows.messages import StepRecord
from workflows.state import OrchestrationInput, OrchestrationState, ToolCallRecord

HISTORIES = Path(__file__).parent.parent / "histories"


def _carried_inputs() -> dict[str, dict[str, Any]]:
    """The input of every recorded run that started from carried state of the old shape."""
    inputs = {}
    for path in sorted(HISTORIES.glob("*.json")):
        started = json.loads(path.read_text())["events"][0]["workflowExecutionStartedEventAttributes"]
        data = json.loads(base64.b64decode(started["input"]["payloads"][0]["data"]))
        if (data.get("state") or {}).get("open_calls") is not None:
            inputs[path.stem] = data
    return inputs


CARRIED = _carried_inputs()


def test_there_are_recorded_runs_that_carried_the_old_shape() -> None:
    assert {"continue_as_new_pending.run2", "continue_as_new_pending.run3"} <= set(CARRIED)


@pytest.mark.parametrize("name", sorted(CARRIED))
def test_the_old_shape_gives_the_same_audit_steps_and_open_calls(name: str) -> None:
    old = CARRIED[name]["state"]
    state = OrchestrationInput.model_validate(CARRIED[name]).state
    assert state is not None

    assert [step.audit() for step in state.steps] == [StepRecord.model_validate(step) for step in old["steps"]]

    opened = {call.tool_call_id: call for call in state.open_calls()}
    assert set(opened) == {call["tool_call_id"] for call in old["open_calls"]}
    for before in map(dict, old["open_calls"]):
        call = opened[before.pop("tool_call_id")]
        assert call.index == before.pop("step_index")
        assert call.model_dump(mode="json", include=set(before)) == before
    answered = [call for call in state.tool_calls() if call.answered]
    assert all(call.tool_call_id not in opened for call in answered)


def test_a_decided_call_of_the_old_shape_keeps_its_decision() -> None:
    step = {
        "index": 1,
        "kind": "tool",
        "status": "denied",
        "step": 1,
        "tool_call_id": "c1",
        "server": "bank",
        "tool": "pay",
        "arguments": {"amount": 5},
        "decision": "deny",
        "approver": "ann",
        "reason": "no",
        "decided_at": "2026-11-21T12:00:00Z",
        "approval_hash": "h",
    }
    rule = step | {"tool_call_id": "c2", "index": 2, "status": "completed", "decision": "approve"}
    rule |= {"approver": "rule:small", "reason": None, "approval_hash": None, "approved_by_rule": "small"}
    data = {
        "run_request": {"input": "pay"},
        "state": {
            "created_at": "2026-11-21T11:59:00Z",
            "model": "m",
            "catalog": {"default_model": "m"},
            "messages": [{"role": "user", "content": "pay"}],
            "steps": [{"index": 0, "kind": "llm", "status": "completed", "step": 1}, step, rule],
            "open_calls": [],
        },
    }
    state = OrchestrationInput.model_validate(data).state
    assert state is not None
    denied, by_rule = state.tool_calls()
    assert isinstance(denied, ToolCallRecord) and denied.answered and by_rule.answered
    assert denied.decision is not None and (denied.decision.decision, denied.decision.approver) == ("deny", "ann")
    assert by_rule.decision is None and by_rule.rule == "small"
    assert [s.audit() for s in state.steps] == [StepRecord.model_validate(s) for s in data["state"]["steps"]]


def test_the_workers_defaults_recorded_inside_the_catalog_are_read_out_of_it() -> None:
    old_catalog = {"default_model": "m", "default_webhook": False, "tools": [], "unavailable_servers": {"x": "down"}}
    prepared = PreparedRun.model_validate(old_catalog)
    assert (prepared.defaults.model, prepared.defaults.webhook) == ("m", False)
    assert prepared.catalog.unavailable_servers == {"x": "down"}

    state = {"created_at": "2026-11-21T11:59:00Z", "model": "m", "catalog": old_catalog, "messages": []}
    assert OrchestrationState.model_validate(state).worker_webhook is False
    older = old_catalog.copy()
    del older["default_webhook"]  # recorded before the field existed: the worker decides
    assert PreparedRun.model_validate(older).defaults.webhook is True
    assert OrchestrationState.model_validate(state | {"catalog": older}).worker_webhook is True
