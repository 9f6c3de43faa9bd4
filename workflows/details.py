"""What the Temporal web UI shows as a run's "Current Details": markdown saying what the run
is doing, and for each call that waits for a person, what it would do and the exact signal
input that approves or denies it (ready to paste into More Actions -> Send a Signal).
Pure: the workflow passes its status in."""

from __future__ import annotations

import json
from typing import Any

from workflows.contract import SUBMIT_APPROVAL_SIGNAL, SUBMIT_INPUT_SIGNAL
from workflows.messages import TERMINAL_STATUSES, OrchestrationStatus, PendingApproval, PendingInput

APPROVER_PLACEHOLDER = "<your name>"


def current_details(status: OrchestrationStatus, doing: str | None = None) -> str:
    """The run's Current Details; `doing` says what a running run is busy with."""
    where = f"model `{status.model}`, step {status.step} of {status.max_steps}" if status.model else "starting"
    if status.status in TERMINAL_STATUSES:
        stop = f" ({status.stop_reason.value})" if status.stop_reason else ""
        ended = f"**{status.status.value.capitalize()}**{stop}; {where}."
        return f"{ended}\n\nError: {status.error[:500]}" if status.error else ended
    if not status.pending_approvals and not status.pending_inputs:
        return f"**Running**: {doing or 'working'}; {where}."
    lines: list[str] = []
    if status.pending_approvals:
        count = len(status.pending_approvals)
        lines += [
            f"**Waiting for approval** of {count} tool call{'s' if count > 1 else ''}; {where}.",
            f"Decide each with More Actions -> Send a Signal -> `{SUBMIT_APPROVAL_SIGNAL}`, the Data below (put your "
            "name in `approver`: a decision without one is recorded without an approver).",
        ]
        for number, pending in enumerate(status.pending_approvals, 1):
            lines.extend(_pending(number, pending))
    if status.pending_inputs:
        count = len(status.pending_inputs)
        lines += [
            f"**Waiting for input**: {count} question{'s' if count > 1 else ''} of MCP servers; {where}.",
            f"Answer each with More Actions -> Send a Signal -> `{SUBMIT_INPUT_SIGNAL}`, the Data below (put your "
            "name in `answerer`).",
        ]
        for number, pending_input in enumerate(status.pending_inputs, 1):
            lines.extend(_question(number, pending_input))
    return "\n\n".join(lines)


def _question(number: int, pending: PendingInput) -> list[str]:
    answer: dict[str, Any] = {"input_id": pending.input_id, "answerer": APPROVER_PLACEHOLDER}
    lines = [f"### {number}. `{pending.server}.{pending.tool}` asks (call `{pending.tool_call_id}`)"]
    if pending.kind == "sampling":
        lines.append(f"To use the model (sampling):\n```json\n{json.dumps(pending.sampling, indent=2)}\n```")
        accept = answer | {"action": "accept"}
    else:
        lines.append(f"Question: {pending.message}")
        if pending.url:
            lines.append(f"Go to: {pending.url}")
        schema = pending.requested_schema or {}
        lines.append(f"Answer schema:\n```json\n{json.dumps(schema, indent=2)}\n```")
        example = {name: f"<{spec.get('type', 'value')}>" for name, spec in (schema.get("properties") or {}).items()}
        accept = answer | {"action": "accept", "content": example}
    lines += [
        f"Expires {pending.expires_at.isoformat(timespec='seconds')} (then it counts as declined).",
        f"Accept:\n```json\n{json.dumps(accept, indent=2)}\n```",
        f"Decline:\n```json\n{json.dumps(answer | {'action': 'decline'}, indent=2)}\n```",
    ]
    return lines


def _pending(number: int, pending: PendingApproval) -> list[str]:
    decision = {"tool_call_id": pending.tool_call_id, "approver": APPROVER_PLACEHOLDER}
    approve = decision | {"decision": "approve", "approval_hash": pending.approval_hash}
    deny = decision | {"decision": "deny", "reason": "<why>"}
    lines = [f"### {number}. `{pending.server}.{pending.tool}` (call `{pending.tool_call_id}`)"]
    if pending.intent:
        lines.append(f"Intent (the model's words): {pending.intent}")
    lines += [
        f"Arguments:\n```json\n{json.dumps(pending.arguments, indent=2)}\n```",
        f"Expires {pending.expires_at.isoformat(timespec='seconds')} (then it counts as denied).",
        f"Approve:\n```json\n{json.dumps(approve, indent=2)}\n```",
        f"Deny:\n```json\n{json.dumps(deny, indent=2)}\n```",
    ]
    return lines
