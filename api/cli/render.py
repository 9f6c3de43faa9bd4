"""Plain-text views of runs for the terminal."""

from __future__ import annotations

import json
import shlex
from typing import Any

from api.cli.forms import field_line


def table(rows: list[list[str]], headers: list[str]) -> str:
    """Left-aligned columns separated by two spaces."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)) for row in [headers, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)


def status_view(run: dict[str, Any]) -> str:
    """A run's status, pending approvals and questions, and steps."""
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
    for pending in run.get("pending_inputs") or []:
        lines += ["", input_view(run["id"], pending)]
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


def input_view(run_id: str, pending: dict[str, Any]) -> str:
    """What an MCP server asks in the middle of a tool call (a run's pending input): its
    question and form, or the messages it wants the run's model to answer, when it expires, and
    the `orch answer` commands that answer it."""
    command = f"orch answer {shlex.quote(run_id)} {shlex.quote(pending['input_id'])}"
    where = f"input {pending['input_id']}, call {pending.get('tool_call_id') or '?'}"
    asker = f"{pending.get('server') or '?'}.{pending.get('tool') or '?'}"
    if pending.get("kind") == "sampling":
        sampling = pending.get("sampling") or {}
        limit = f"; up to {sampling['max_tokens']} tokens" if sampling.get("max_tokens") else ""
        lines = [f"{asker} asks to use the run's model (sampling, {where}{limit}):"]
        if sampling.get("system_prompt"):
            lines.append(f"  system: {_short(sampling['system_prompt'], 500)}")
        lines += [
            f"  {m.get('role') or 'user'}: {_short(str(m.get('content') or ''), 500)}"
            for m in sampling.get("messages") or []
        ]
        accept = ("allow:  ", command)
    else:
        lines = [f"{asker} asks ({where}): {pending.get('message') or '(no message)'}"]
        if pending.get("url"):
            lines.append(f"  go to: {pending['url']}")
            accept = ("done:   ", command)
        else:
            schema = pending.get("requested_schema") or {}
            required = set(schema.get("required") or [])
            fields = (schema.get("properties") or {}).items()
            lines += [f"  {field_line(name, spec, name in required)}" for name, spec in fields]
            accept = ("accept: ", command + "".join(f" --field {name}='...'" for name, _ in fields if name in required))
    if pending.get("expires_at"):
        lines.append(f"  expires {pending['expires_at'][:19]} (then it counts as declined)")
    lines += [f"  {accept[0]} {accept[1]}", f"  decline: {command} --decline --reason '...'"]
    return "\n".join(lines)


def question(pending: dict[str, Any]) -> str:
    """What a pending input asks, in one line."""
    asker = f"{pending.get('server') or '?'}.{pending.get('tool') or '?'}"
    if pending.get("kind") == "sampling":
        count = len((pending.get("sampling") or {}).get("messages") or [])
        return f"{asker} asks to use the run's model ({count} message{'' if count == 1 else 's'})"
    where = f" (go to {pending['url']})" if pending.get("url") else ""
    return f"{asker} asks: {pending.get('message') or '(no message)'}{where}"


ANSWERED = {"accept": "accepted", "decline": "declined", "cancel": "cancelled"}


def event_line(event: dict[str, Any]) -> str | None:
    """One progress line for a run event (None for events that `pending_view`, `input_view` or
    the final line show)."""
    data = event.get("data") or {}
    # The loop step (the LLM call's number), as the run's status and the Temporal UI count it.
    step = f"  step {data['step']}:" if data.get("step") is not None else " "
    kind = event["type"]
    if kind == "tools_listed":
        servers = [
            f"{server['server']} ({len(server.get('tools') or [])} tools)" for server in data.get("servers") or []
        ]
        servers += [f"{name} unavailable: {problem}" for name, problem in (data.get("unavailable") or {}).items()]
        return f"  tools: {', '.join(servers) or 'none'}"
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
    return _input_event_line(kind, step, event.get("tool_call_id"), data)


def _input_event_line(kind: str, step: str, call_id: str | None, data: dict[str, Any]) -> str | None:
    """The line of an event about what a server asks or does during a tool call."""
    if kind == "input_answered":
        action = ANSWERED.get(data.get("action") or "", data.get("action"))
        reason = f": {data['reason']}" if data.get("reason") else ""
        return f"{step} {data.get('input_id')} {action} by {data.get('answerer') or 'unknown'}{reason}"
    if kind == "tool_progress":
        total = f"/{_number(data['total'])}" if data.get("total") is not None else ""
        message = f" {data['message']}" if data.get("message") else ""
        return f"{step} tool {call_id} progress {_number(data.get('progress'))}{total}{message}"
    if kind == "task_status":
        message = f": {data['status_message']}" if data.get("status_message") else ""
        return f"{step} task {data.get('task_id')} {data.get('status')}{message}"
    if kind == "sampling":
        if data.get("error"):
            return f"{step} sampling the model for {data.get('input_id') or call_id} failed: {data['error']}"
        usage = data.get("usage") or {}
        tokens = f" ({usage.get('prompt_tokens', 0)}+{usage.get('completion_tokens', 0)} tokens)" if usage else ""
        return f"{step} sampled the model for {data.get('input_id') or call_id}{tokens}"
    return None


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def waiting_for(run: dict[str, Any]) -> str:
    """What a run waits for: each pending call's tool and id, each question's asker and id."""
    calls = [f"{p['server']}.{p['tool']} ({p['tool_call_id']})" for p in run.get("pending_approvals") or []]
    questions = [f"{p['server']}.{p['tool']} asks {p['input_id']}" for p in run.get("pending_inputs") or []]
    return ", ".join(calls + questions)


def _step_name(step: dict[str, Any], model: str | None) -> str:
    if step["kind"] == "llm":
        return model or "-"
    return f"{step.get('server') or '?'}.{step.get('tool') or '?'}"


def _short(text: str | None, limit: int = 40) -> str:
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


ASSISTANT_OPTIONS = (
    "model",
    "instructions",
    "mcp_servers",
    "max_steps",
    "tool_timeout_seconds",
    "approval_timeout_seconds",
    "context_budget_bytes",
)


def assistants_table(assistants: list[dict[str, Any]]) -> str:
    if not assistants:
        return "no assistants"
    rows = [
        [
            a["name"],
            a.get("model") or "-",
            _names(a.get("mcp_servers")),
            _or_dash(a.get("max_steps")),
            _short(a.get("description")) or "",
        ]
        for a in assistants
    ]
    return table(rows, ["name", "model", "servers", "max steps", "description"])


def assistant_view(assistant: dict[str, Any]) -> str:
    """An assistant's options (those it leaves unset as `-`: the run's own or its default)."""
    rows = [("name", assistant["name"]), ("description", _or_dash(assistant.get("description")))]
    rows += [(option, _value(assistant.get(option))) for option in ASSISTANT_OPTIONS]
    rows += [("updated", (assistant.get("updated_at") or "-")[:19])]
    return _fields(rows)


def servers_table(servers: list[dict[str, Any]]) -> str:
    """One line per MCP server: where it comes from, how it is reached, whether runs get it, and
    its health as the workers last saw it."""
    if not servers:
        return "no MCP servers"
    rows = []
    for server in servers:
        health = server.get("health") or {}
        rows.append(
            [
                server["name"],
                server.get("source") or "-",
                server.get("transport") or "-",
                "yes" if server.get("enabled", True) else "no",
                server.get("availability") or "-",
                (server.get("auth") or {}).get("type") or "none",
                health.get("state") or "-",
                _short(health.get("last_error"), 60),
            ]
        )
    return table(rows, ["name", "source", "transport", "enabled", "availability", "auth", "state", "last error"])


def server_view(server: dict[str, Any]) -> str:
    """An MCP server's settings (secrets are never shown, only that they are set), auth and health."""
    auth = server.get("auth") or {}
    health = server.get("health") or {}
    source = server.get("source") or "-"
    rows = [
        ("name", server["name"]),
        ("source", f"{source} (read-only)" if server.get("read_only") else source),
        ("transport", _or_dash(server.get("transport"))),
    ]
    if server.get("command"):
        rows.append(("command", " ".join([server["command"], *(server.get("args") or [])])))
    for field in ("cwd", "url"):
        if server.get(field):
            rows.append((field, server[field]))
    for field in ("headers", "env"):
        if server.get(field):
            rows.append((field, ", ".join(f"{name}=<secret>" for name in server[field])))
    rows += [
        ("enabled", "yes" if server.get("enabled", True) else "no"),
        ("availability", _or_dash(server.get("availability"))),
        ("tools", _value(server.get("tools_to_execute"))),
        ("auto-approved", _value(server.get("tools_to_auto_execute"))),
        ("denied", _value(server.get("tool_deny_list"))),
        ("auth", _auth(auth)),
        ("state", _health(health)),
    ]
    if server.get("oauth_connected_keys"):
        rows.append(("connected keys", ", ".join(server["oauth_connected_keys"])))
    if server.get("revision") is not None:
        rows.append(("revision", str(server["revision"])))
    return _fields(rows)


def connect_view(name: str, started: dict[str, Any]) -> str:
    """What to do with the authorization URL of `orch servers connect`."""
    expires = started.get("expires_in")
    within = f" within {expires // 60} minutes" if isinstance(expires, int) and expires >= 60 else ""
    return (
        f"Open this URL in a browser and allow access{within}, to connect your API key to MCP server {name}:\n"
        f"  {started['authorization_url']}"
    )


def _auth(auth: dict[str, Any]) -> str:
    kind = auth.get("type") or "none"
    details = [f"{field} {auth[field]}" for field in ("client_id", "scope", "issuer") if auth.get(field)]
    if auth.get("has_secret"):
        details.append("secret set")
    return kind + (f" ({', '.join(details)})" if details else "")


def _health(health: dict[str, Any]) -> str:
    if not health:
        return "not checked yet"
    state = health.get("state") or "-"
    checked = f" (checked {health['checked_at'][:19]})" if health.get("checked_at") else ""
    error = f": {health['last_error']}" if health.get("last_error") else ""
    return state + checked + error


def _fields(rows: list[tuple[str, str]]) -> str:
    width = max(len(label) for label, _ in rows) + 1
    return "\n".join(f"{(label + ':').ljust(width)}  {value}" for label, value in rows)


def _value(value: Any) -> str:
    if isinstance(value, list):
        return _names(value)
    return _or_dash(value)


def _names(names: list[str] | None) -> str:
    """Unset (`-`: the default) is not the same as an empty list (`none`)."""
    if names is None:
        return "-"
    return ", ".join(names) if names else "none"


def _or_dash(value: Any) -> str:
    return "-" if value is None else str(value)
