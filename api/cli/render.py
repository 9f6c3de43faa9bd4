"""Plain-text views of runs for the terminal."""

from __future__ import annotations

import json
from typing import Any


def table(rows: list[list[str]], headers: list[str]) -> str:
    """Left-aligned columns separated by two spaces."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)) for row in [headers, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)


def status_view(run: dict[str, Any]) -> str:
    """A run's status, pending approvals and steps."""
    usage = run.get("usage") or {}
    lines = [
        f"id:      {run['id']}",
        f"status:  {run['status']}" + (f" ({run['stop_reason']})" if run.get("stop_reason") else ""),
        f"model:   {run.get('model') or '-'}   step {run.get('step', 0)}/{run.get('max_steps', '-')}",
        f"usage:   {usage.get('prompt_tokens', 0)} prompt + {usage.get('completion_tokens', 0)} completion tokens, "
        f"{usage.get('tool_calls', 0)} tool call(s), ${usage.get('cost_usd', 0):g}",
    ]
    if run.get("steps"):
        rows = [
            [
                str(s.get("step") or ""),
                s["kind"],
                _step_name(s, run.get("model")),
                s["status"],
                s.get("decision") or "",
                _short(s.get("output_preview")),
            ]
            for s in run["steps"]
        ]
        lines += ["", table(rows, ["step", "kind", "what", "status", "decision", "output"])]
    for pending in run.get("pending_approvals") or []:
        lines += ["", pending_view(run["id"], pending)]
    if run.get("output"):
        lines += ["", f"output:  {run['output']}"]
    if run.get("error"):
        lines += ["", f"error:   {run['error']}"]
    return "\n".join(lines)


def pending_view(run_id: str, pending: dict[str, Any]) -> str:
    intent = f"\n  intent: {pending['intent']}" if pending.get("intent") else ""
    # The commands carry the call's approval_hash: they decide exactly the call shown here.
    bound = f" --hash {pending['approval_hash']}" if pending.get("approval_hash") else ""
    return (
        f"waiting for approval: {pending['server']}.{pending['tool']} {json.dumps(pending['arguments'])}{intent}\n"
        f"  approve: orch approve {run_id} {pending['tool_call_id']}{bound}\n"
        f"  deny:    orch deny {run_id} {pending['tool_call_id']}{bound} --reason '...'"
    )


def event_line(event: dict[str, Any]) -> str | None:
    """One progress line for a run event (None for events that `pending_view` or the final
    line show)."""
    data = event.get("data") or {}
    # The loop step (the LLM call's number), as the run's status and the Temporal UI count it.
    step = f"  step {data['step']}:" if data.get("step") is not None else " "
    kind = event["type"]
    if kind == "llm_started":
        return f"{step} llm {data.get('model')} running"
    if kind == "llm_finished":
        usage = data.get("usage") or {}
        tokens = f" ({usage.get('prompt_tokens', 0)}+{usage.get('completion_tokens', 0)} tokens)" if usage else ""
        return f"{step} llm {data.get('status')}{tokens}" + (f" -> {data['error']}" if data.get("error") else "")
    if kind == "tool_started":
        return f"{step} tool {data.get('server')}.{data.get('tool')} running"
    if kind == "tool_finished":
        detail = _short(data.get("output_preview"), 80)
        return f"{step} tool {data.get('server')}.{data.get('tool')} {data.get('status')}" + (
            f" -> {detail}" if detail else ""
        )
    if kind in ("tool_approved", "tool_denied"):
        verb = "approved" if kind == "tool_approved" else "denied"
        reason = f": {data['reason']}" if data.get("reason") else ""
        return f"{step} {event.get('tool_call_id')} {verb} by {data.get('approver') or 'unknown'}{reason}"
    return None


def waiting_for(run: dict[str, Any]) -> str:
    """What a run waits for: each pending call's tool and id."""
    return ", ".join(f"{p['server']}.{p['tool']} ({p['tool_call_id']})" for p in run.get("pending_approvals") or [])


def _step_name(step: dict[str, Any], model: str | None) -> str:
    if step["kind"] == "llm":
        return model or "-"
    return f"{step.get('server') or '?'}.{step.get('tool') or '?'}"


def _short(text: str | None, limit: int = 40) -> str:
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
