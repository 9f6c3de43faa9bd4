"""Whether a person's decision applies to a waiting tool call, and what deciding does: pure
functions of the call and the decision, so every rule is tested without a server.

The workflow's `submit_approval` signal ignores (and records) a decision these refuse; its
`decide` and `decide_many` updates refuse it, typed for the API to answer 404 or 409.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from temporalio.exceptions import ApplicationError

from workflows.contract import (
    DECISION_ALREADY_MADE,
    DECISION_INVALID,
    DECISION_MISMATCH,
    DECISION_UNKNOWN_CALL,
    TIMED_OUT_APPROVER,
)
from workflows.messages import ApprovalDecision, IgnoredDecision
from workflows.state import ToolCallRecord
from workflows.tool_calls import schema_problem


def rejection(
    decision: ApprovalDecision,
    call: ToolCallRecord | None,
    *,
    decided_before: bool,
    input_schema: dict[str, Any] | None,
) -> ApplicationError | None:
    """Why `decision` cannot apply to `call` (the open call with its id, None when there is
    none; `decided_before`: an answered call has that id), or None when it applies."""
    if call is None:
        if decided_before:
            return ApplicationError("already decided", type=DECISION_ALREADY_MADE)
        return ApplicationError("unknown tool call", type=DECISION_UNKNOWN_CALL)
    if call.auto_execute or call.problem is not None:
        return ApplicationError("tool call does not need approval", type=DECISION_ALREADY_MADE)
    if call.decision is not None:
        return ApplicationError("already decided", type=DECISION_ALREADY_MADE)
    if decision.approval_hash is not None and decision.approval_hash != call.approval_hash:
        return ApplicationError(
            "approval_hash does not match this call (other arguments or tool definition)", type=DECISION_MISMATCH
        )
    if decision.arguments is not None:
        if decision.decision != "approve":
            return ApplicationError("`arguments` can only come with `approve`", type=DECISION_INVALID)
        problem = schema_problem(input_schema or {}, decision.arguments)
        if problem is not None:
            return ApplicationError(
                f"arguments do not match the input schema of {call.server}.{call.tool}: {problem}",
                type=DECISION_INVALID,
            )
    return None


def batch_rejection(
    decisions: Sequence[ApprovalDecision], rejection_of: Callable[[ApprovalDecision], ApplicationError | None]
) -> ApplicationError | None:
    """Why a batch cannot apply as a whole (a call decided twice in it, or any one decision
    that cannot apply, named), or None when all of them apply."""
    ids = [decision.tool_call_id for decision in decisions]
    if len(set(ids)) != len(ids):
        return ApplicationError("a tool call is decided twice in this batch", type=DECISION_INVALID)
    for decision in decisions:
        refused = rejection_of(decision)
        if refused is not None:
            return ApplicationError(f"tool call {decision.tool_call_id!r}: {refused.message}", type=refused.type)
    return None


def ignored(decision: ApprovalDecision, why: str, received_at: datetime) -> IgnoredDecision:
    """The record of a signalled decision that did not apply."""
    return IgnoredDecision(
        tool_call_id=decision.tool_call_id,
        decision=decision.decision,
        approver=decision.approver,
        why=why,
        received_at=received_at,
    )


def decide(call: ToolCallRecord, decision: ApprovalDecision, now: datetime) -> bool:
    """Apply `decision` (already checked by `rejection`) to `call`; True when it approves
    other arguments than the model's, which the run then uses (and shows the model). The
    call keeps the arguments it runs with, and the decision without them."""
    call.decision = decision.model_copy(update={"arguments": None})
    call.decided_at = now
    call.status = "running" if decision.decision == "approve" else "denied"
    edited = decision.decision == "approve" and decision.arguments is not None and decision.arguments != call.arguments
    if edited:
        assert decision.arguments is not None
        call.original_arguments, call.arguments = call.arguments, decision.arguments
    return edited


def time_out(call: ToolCallRecord, now: datetime) -> None:
    """Nobody decided within the approval timeout: the call is denied, by the system."""
    call.decision = ApprovalDecision(
        tool_call_id=call.tool_call_id, decision="deny", reason="approval timed out", approver=TIMED_OUT_APPROVER
    )
    call.decided_at = now
    call.status = "denied"


def expires_at(call: ToolCallRecord, timeout_seconds: float) -> datetime:
    """When the wait for a decision on `call` ends (it was requested, i.e. it waits or waited)."""
    assert call.requested_at is not None
    return call.requested_at + timedelta(seconds=timeout_seconds)


def waits(call: ToolCallRecord) -> bool:
    """Whether `call` waits for a person now."""
    return call.requested_at is not None and call.decision is None
