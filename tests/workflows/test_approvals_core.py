"""The approval rules as plain functions (workflows/approvals.py): no server, no workflow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workflows import approvals, contract
from workflows.contract import DECISION_ALREADY_MADE, DECISION_INVALID, DECISION_MISMATCH, DECISION_UNKNOWN_CALL
from workflows.messages import ApprovalDecision
from workflows.state import ToolCallRecord

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
SCHEMA = {"type": "object", "properties": {"amount": {"type": "integer"}}, "required": ["amount"]}


def _call(**fields: object) -> ToolCallRecord:
    values: dict = {
        "tool_call_id": "call_1",
        "function_name": "bank__pay",
        "index": 1,
        "step": 1,
        "status": "waiting_for_approval",
        "server": "bank",
        "tool": "pay",
        "arguments": {"amount": 5},
        "approval_hash": "h1",
        "requested_at": NOW,
    }
    return ToolCallRecord.model_validate(values | fields)


def _decision(**fields: object) -> ApprovalDecision:
    return ApprovalDecision.model_validate({"tool_call_id": "call_1", "decision": "approve"} | fields)


def _refused(decision: ApprovalDecision, call: ToolCallRecord | None, decided_before: bool = False) -> tuple | None:
    error = approvals.rejection(decision, call, decided_before=decided_before, input_schema=SCHEMA)
    return None if error is None else (error.type, error.message)


def test_a_decision_for_a_waiting_call_applies() -> None:
    assert _refused(_decision(), _call()) is None
    assert _refused(_decision(approval_hash="h1", approver="ann"), _call()) is None
    assert _refused(_decision(decision="deny", reason="no"), _call()) is None


@pytest.mark.parametrize(
    ("decision", "call", "decided_before", "refusal"),
    [
        (_decision(), None, False, (DECISION_UNKNOWN_CALL, "unknown tool call")),
        (_decision(), None, True, (DECISION_ALREADY_MADE, "already decided")),
        (_decision(), _call(auto_execute=True), False, (DECISION_ALREADY_MADE, "tool call does not need approval")),
        (
            _decision(),
            _call(problem="no such tool"),
            False,
            (DECISION_ALREADY_MADE, "tool call does not need approval"),
        ),
        (_decision(), _call(decision=_decision(decision="deny")), False, (DECISION_ALREADY_MADE, "already decided")),
        (
            _decision(approval_hash="other"),
            _call(),
            False,
            (DECISION_MISMATCH, "approval_hash does not match this call (other arguments or tool definition)"),
        ),
        (
            _decision(decision="deny", arguments={"amount": 1}),
            _call(),
            False,
            (DECISION_INVALID, "`arguments` can only come with `approve`"),
        ),
    ],
)
def test_a_decision_that_cannot_apply_says_why(decision, call, decided_before, refusal) -> None:
    assert _refused(decision, call, decided_before) == refusal


def test_edited_arguments_must_match_the_tools_input_schema() -> None:
    type_, message = _refused(_decision(arguments={"amount": "5"}), _call())
    assert type_ == DECISION_INVALID and message.startswith("arguments do not match the input schema of bank.pay:")
    assert _refused(_decision(arguments={"amount": 6}), _call()) is None


def test_a_batch_applies_whole_or_names_the_decision_that_cannot() -> None:
    calls = {"call_1": _call(), "call_2": _call(tool_call_id="call_2", approval_hash="h2")}

    def rejection_of(decision: ApprovalDecision):
        call = calls.get(decision.tool_call_id)
        return approvals.rejection(decision, call, decided_before=False, input_schema=SCHEMA)

    both = [_decision(), _decision(tool_call_id="call_2")]
    assert approvals.batch_rejection(both, rejection_of) is None
    twice = approvals.batch_rejection([_decision(), _decision(decision="deny")], rejection_of)
    assert twice is not None and (twice.type, twice.message) == (
        DECISION_INVALID,
        "a tool call is decided twice in this batch",
    )
    unknown = approvals.batch_rejection([_decision(), _decision(tool_call_id="call_9")], rejection_of)
    assert unknown is not None and (unknown.type, unknown.message) == (
        DECISION_UNKNOWN_CALL,
        "tool call 'call_9': unknown tool call",
    )


def test_deciding_records_the_decision_and_keeps_the_models_arguments_when_edited() -> None:
    call = _call()
    assert approvals.decide(call, _decision(approver="ann"), NOW) is False
    assert call.decision is not None and call.decision.approver == "ann" and call.decided_at == NOW
    assert call.original_arguments is None and not approvals.waits(call)
    step = call.audit()
    assert (step.decision, step.approver, step.status, step.decided_at, step.approval_hash) == (
        "approve",
        "ann",
        "running",
        NOW,
        "h1",
    )

    edited = _call()
    assert approvals.decide(edited, _decision(arguments={"amount": 1}), NOW) is True
    assert edited.arguments == {"amount": 1} and edited.original_arguments == {"amount": 5}
    assert edited.decision is not None and edited.decision.arguments is None  # the call holds the arguments
    assert (edited.audit().arguments, edited.audit().original_arguments) == ({"amount": 1}, {"amount": 5})

    same = _call()
    assert approvals.decide(same, _decision(arguments={"amount": 5}), NOW) is False
    assert same.original_arguments is None


def test_nobody_deciding_in_time_is_a_denial_by_the_system() -> None:
    call = _call()
    assert approvals.waits(call) and approvals.expires_at(call, 3600) == NOW + timedelta(hours=1)
    approvals.time_out(call, NOW + timedelta(hours=1))
    assert call.decision is not None
    assert (call.decision.decision, call.decision.approver, call.decision.reason) == (
        "deny",
        contract.TIMED_OUT_APPROVER,
        "approval timed out",
    )
    assert not approvals.waits(call) and call.audit().status == "denied"


def test_a_call_not_yet_asked_about_does_not_wait() -> None:
    assert not approvals.waits(_call(requested_at=None))


def test_an_ignored_decision_keeps_who_sent_what_and_why() -> None:
    record = approvals.ignored(_decision(approver="bob"), "unknown tool call", NOW)
    assert (record.tool_call_id, record.decision, record.approver, record.why, record.received_at) == (
        "call_1",
        "approve",
        "bob",
        "unknown tool call",
        NOW,
    )
