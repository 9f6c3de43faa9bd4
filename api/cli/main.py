"""`orch`: start a local stack, start and follow runs, decide tool calls, answer what MCP servers
ask, manage assistants and MCP servers, migrate the store.

Commands other than `dev`, `keys` and `db` talk to the API (`--api-url`, env ORCH_API_URL,
default http://127.0.0.1:8000; `--api-key`, env ORCH_API_KEY, when the API has keys) and
print readable text, or JSON with `--json` (`assistants create|update` and `servers add|update`
read their body from `--json FILE` instead, `-` for stdin).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from api.cli.client import CLIError, OrchestrationsClient
from api.cli.client_commands import add_client_command, say
from api.cli.forms import field_value, fill_in, form_fields, has_form
from api.cli.render import (
    ANSWERED,
    event_line,
    input_view,
    pending_view,
    question,
    status_view,
    table,
    waiting_for,
)
from api.cli.resources import RESOURCE_COMMANDS, add_db_command, add_resource_commands, migrate_store
from workflows.messages import RunStatus
from workflows.validation_errors import first_problem


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "dev":
            # Imported here: the engine (Temporal, the MCP SDK) is for `dev` only, so the
            # client commands start in a fraction of the time.
            from api.cli.dev import run_dev
            from api.cli.dev_stack import DevOptions

            options = DevOptions(
                state_dir=Path(args.state_dir),
                api_port=args.api_port,
                temporal_port=args.temporal_port,
                ui_port=args.ui_port,
                model_port=args.model_port,
            )
            return run_dev(options, say)
        if args.command == "keys":
            return _new_secrets_key() if args.keys_command == "secrets-key" else _new_key(args)
        if args.command == "db":
            return migrate_store(args)
        client = OrchestrationsClient(args.api_url, args.api_key)
        try:
            return COMMANDS[args.command](client, args)
        finally:
            client.close()
    except CLIError as err:
        sys.stderr.write(f"orch: {err}\n")
        return 1
    except KeyboardInterrupt:
        return 130


def _run(client: OrchestrationsClient, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"input": args.prompt}
    if args.model:
        body["model"] = args.model
    if args.server:
        body["mcp_servers"] = args.server
    if args.assistant:
        body["assistant"] = args.assistant
    created = client.start(body)
    run_id = created["id"]
    if args.no_wait:
        say(json.dumps(created) if args.json else run_id)
        return 0
    if not args.json:
        say(f"started {run_id}  ({created['links']['temporal_ui']})")
    return _follow(client, run_id, args)


def _follow(client: OrchestrationsClient, run_id: str, args: argparse.Namespace) -> int:
    """Print the run's events as they come (its event stream); ask y/n at each pending
    approval, and for the answer to each question of an MCP server, while stdin can answer."""
    interactive = not args.json
    for event in client.events(run_id):
        line = None if args.json else event_line(event)
        if line:
            say(line)
        if event["type"] == "tool_pending":
            pending = {"tool_call_id": event["tool_call_id"], **event["data"]}
            if not args.json:
                say(pending_view(run_id, pending))
            if interactive:
                interactive = _ask(client, run_id, pending)
        elif event["type"] == "input_requested":
            pending = {"tool_call_id": event.get("tool_call_id"), **event["data"]}
            if not args.json:
                say(input_view(run_id, pending))
            if interactive:
                interactive = _ask_input(client, run_id, pending)
    run = client.get(run_id)
    say(json.dumps(run) if args.json else _final_line(run))
    return 0 if run["status"] == "completed" else 1


ANSWERS = {"y": "approve", "yes": "approve", "n": "deny", "no": "deny"}
DECIDED = {"approve": "approved", "deny": "denied"}


def _ask(client: OrchestrationsClient, run_id: str, pending: dict[str, Any]) -> bool:
    """Ask approve/deny on the terminal ("y" or "n", optionally followed by a reason), again
    on any other answer (a typo or a bare Enter decides nothing); False when stdin cannot
    answer (then decide elsewhere)."""
    while True:
        try:
            answer = input("approve? [y/n, optionally followed by a reason] ").strip()
        except EOFError:
            say("  (no terminal input: decide with the commands above)")
            return False
        word, _, reason = answer.partition(" ")
        decision = ANSWERS.get(word.lower())
        if decision is not None:
            break
        say("  answer y (approve) or n (deny), optionally followed by a reason")
    client.decide(
        run_id, pending["tool_call_id"], decision, reason.strip() or None, _approver(), pending.get("approval_hash")
    )
    return True


NO_TERMINAL_INPUT = "  (no terminal input: answer with the commands above)"
ALLOWED = {"y": "accept", "yes": "accept", "n": "decline", "no": "decline"}
INPUT_ANSWERS = {**ALLOWED, "c": "cancel", "cancel": "cancel"}


def _ask_input(client: OrchestrationsClient, run_id: str, pending: dict[str, Any]) -> bool:
    """Ask on the terminal how to answer a server's question: fill in its form (each field in
    turn), decline or cancel it; for a sampling request, allow (the run's model answers) or not.
    False when stdin cannot answer (then answer elsewhere)."""
    if pending.get("kind") == "sampling":
        prompt, words, hint = "allow? [y/n, optionally followed by a reason] ", ALLOWED, "y (allow) or n (decline)"
    else:
        fill = "done" if pending.get("url") else "fill in"
        prompt, words, hint = f"answer? [y = {fill} / n = decline / c = cancel] ", INPUT_ANSWERS, "y, n or c"
    while True:
        try:
            answer = input(prompt).strip()
        except EOFError:
            say(NO_TERMINAL_INPUT)
            return False
        word, _, reason = answer.partition(" ")
        action = words.get(word.lower())
        if action is not None:
            break
        say(f"  answer {hint}, optionally followed by a reason")
    while True:
        content = None
        if action == "accept" and has_form(pending):
            try:
                content = fill_in(pending)
            except EOFError:
                say(NO_TERMINAL_INPUT)
                return False
        elif action == "accept" and pending.get("kind") == "elicitation":
            content = None if pending.get("url") else {}
        try:
            client.answer(run_id, pending["input_id"], action, content, _approver(), reason.strip() or None)
        except CLIError as err:
            # Not answered: the form again when the API refused its content (422), else go on
            # following (e.g. answered elsewhere, or expired, meanwhile).
            say(f"  not answered: {err}")
            if content and str(err).startswith("422"):
                continue
        return True


def _final_line(run: dict[str, Any]) -> str:
    if run["status"] == "completed":
        return f"{run['status']} ({run.get('stop_reason')}): {run.get('output') or ''}"
    return f"{run['status']}: {run.get('error') or run.get('stop_reason') or ''}"


def _status(client: OrchestrationsClient, args: argparse.Namespace) -> int:
    run = client.get(args.id)
    say(json.dumps(run, indent=2) if args.json else status_view(run))
    return 0


def _list(client: OrchestrationsClient, args: argparse.Namespace) -> int:
    page = client.list(args.status, args.limit)
    if args.json:
        say(json.dumps(page, indent=2))
        return 0
    rows = [
        [r["id"], r["status"], r.get("stop_reason") or "", (r.get("created_at") or "")[:19], _waiting_for(client, r)]
        for r in page["data"]
    ]
    say(table(rows, ["id", "status", "stop reason", "created", "waiting for"]) if rows else "no orchestrations")
    return 0


def _waiting_for(client: OrchestrationsClient, summary: dict[str, Any]) -> str:
    """The calls and questions a waiting run waits for (the list has statuses only, so read each
    waiting run)."""
    if summary["status"] not in (RunStatus.WAITING_FOR_APPROVAL, RunStatus.WAITING_FOR_INPUT):
        return ""
    try:
        return waiting_for(client.get(summary["id"]))
    except CLIError:  # e.g. decided and finished since the list was read
        return "?"


def _decide(decision: str) -> Any:
    def command(client: OrchestrationsClient, args: argparse.Namespace) -> int:
        approval_hash = args.hash or _shown_hash(client, args, decision)
        run = client.decide(args.id, args.call_id, decision, args.reason, args.approver or _approver(), approval_hash)
        say(json.dumps(run, indent=2) if args.json else f"{DECIDED[decision]} {args.call_id}; run is {run['status']}")
        return 0

    return command


def _shown_hash(client: OrchestrationsClient, args: argparse.Namespace, decision: str) -> str | None:
    """Without `--hash`: show the pending call being decided, and bind the decision to it."""
    run = client.get(args.id)
    pending = next((p for p in run.get("pending_approvals") or [] if p["tool_call_id"] == args.call_id), None)
    if pending is None:
        return None  # not pending: the API says why (unknown, already decided, run finished)
    if not args.json:
        say(f"{decision}: {pending['server']}.{pending['tool']} {json.dumps(pending['arguments'])}")
    approval_hash: str | None = pending.get("approval_hash") or None
    return approval_hash


def _answer(client: OrchestrationsClient, args: argparse.Namespace) -> int:
    """Answer what an MCP server asks: accept (the form's fields from --field/--json-content,
    else asked on the terminal), --decline or --cancel."""
    action = "decline" if args.decline else "cancel" if args.cancel else "accept"
    if action != "accept" and (args.field or args.json_content):
        raise CLIError(f"--field and --json-content come with accepting, not with --{action}")
    pending = _shown_input(client, args, action)
    content = _content(pending, args) if action == "accept" else None
    if content is None and action == "accept" and has_form(pending):
        if args.json:
            sys.stderr.write("orch: give the answer with --field NAME=VALUE (or --json-content)\n")
            return 2
        assert pending is not None
        try:
            content = fill_in(pending)
        except EOFError:
            sys.stderr.write("orch: no terminal input: give the answer with --field NAME=VALUE (or --json-content)\n")
            return 2
    elif content is None and action == "accept" and pending is not None and pending.get("kind") == "elicitation":
        content = None if pending.get("url") else {}
    run = client.answer(args.id, args.input_id, action, content, args.answerer or _approver(), args.reason)
    say(json.dumps(run, indent=2) if args.json else f"{ANSWERED[action]} {args.input_id}; run is {run['status']}")
    return 0


def _shown_input(client: OrchestrationsClient, args: argparse.Namespace, action: str) -> dict[str, Any] | None:
    """The question being answered (shown unless --json), None when the run does not wait for it
    (then the API says why: unknown, already answered, run finished)."""
    run = client.get(args.id)
    pending = next((p for p in run.get("pending_inputs") or [] if p.get("input_id") == args.input_id), None)
    if pending is not None and not args.json:
        say(f"{action}: {question(pending)}")
    return pending


def _content(pending: dict[str, Any] | None, args: argparse.Namespace) -> dict[str, Any] | None:
    """The content given with --json-content and --field (each converted to its field's type in
    the requested schema), None when neither is."""
    if not args.field and not args.json_content:
        return None
    if pending is not None and pending.get("kind") == "sampling":
        raise CLIError("a sampling request takes no content: accept it as it is, or --decline")
    content: dict[str, Any] = {}
    if args.json_content:
        try:
            content = json.loads(args.json_content)
        except ValueError as err:
            raise CLIError(f"--json-content is not JSON: {err}") from None
        if not isinstance(content, dict):
            raise CLIError("--json-content must be a JSON object")
    properties = form_fields(pending) if pending is not None else {}
    for field in args.field or []:
        name, sep, text = field.partition("=")
        if not sep or not name:
            raise CLIError(f"--field wants NAME=VALUE, not {field!r}")
        if properties and name not in properties:
            raise CLIError(f"no field {name!r} in the form (its fields: {', '.join(properties)})")
        try:
            content[name] = field_value(properties[name], text) if name in properties else text
        except ValueError as err:
            raise CLIError(f"--field {name}: {err}") from None
    return content


def _cancel(client: OrchestrationsClient, args: argparse.Namespace) -> int:
    answer = client.cancel(args.id)
    say(json.dumps(answer) if args.json else f"cancel requested; run is {answer['status']}")
    return 0


def _approver() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # getuser fails without a passwd entry (containers)
        return "cli"


def _new_key(args: argparse.Namespace) -> int:
    """Make an API key; print it once, and the entry (with its hash only) for ORCH_API_KEYS."""
    from pydantic import ValidationError

    from api.api_keys import APIKeyEntry, hash_key, new_key

    key = new_key()
    entry: dict[str, Any] = {"name": args.name, "sha256": hash_key(key), "roles": args.role or ["run"]}
    if args.scope:
        entry["mcp_scopes"] = args.scope
    try:
        APIKeyEntry.model_validate(entry)
    except ValidationError as err:
        raise CLIError(f"invalid key {first_problem(err)}") from None
    if args.json:
        say(json.dumps({"key": key, "entry": entry}))
        return 0
    say(f"API key for {args.name} (shown once; only its hash is stored):\n  {key}")
    say('Add this entry to the "keys" list of your ORCH_API_KEYS file:')
    say("  " + json.dumps(entry))
    return 0


def _new_secrets_key() -> int:
    """Print a new ORCH_SECRETS_KEY, alone on its line, for `$(orch keys secrets-key)`."""
    from worker.store.sealing import new_secrets_key

    say(new_secrets_key())
    return 0


COMMANDS: dict[str, Callable[[OrchestrationsClient, argparse.Namespace], int]] = {
    "run": _run,
    "status": _status,
    "list": _list,
    "approve": _decide("approve"),
    "deny": _decide("deny"),
    "answer": _answer,
    "cancel": _cancel,
    **RESOURCE_COMMANDS,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orch", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    dev = commands.add_parser("dev", help="start Temporal, a worker and the API on this machine")
    dev.add_argument(
        "--state-dir",
        default=os.environ.get("ORCH_STATE_DIR", ".orch"),
        help="Temporal's SQLite file, the store, its secrets key and the logs, one orch dev at a time "
        "(default: %(default)s, env ORCH_STATE_DIR)",
    )
    dev.add_argument(
        "--api-port",
        type=int,
        default=int(os.environ.get("ORCH_API_PORT", "8000")),
        help="port of the API (default: %(default)s, env ORCH_API_PORT)",
    )
    dev.add_argument("--temporal-port", type=int, default=7233, help="port of Temporal's gRPC (default: %(default)s)")
    dev.add_argument("--ui-port", type=int, default=8233, help="port of the Temporal web UI (default: %(default)s)")
    dev.add_argument(
        "--model-port",
        type=int,
        default=8400,
        help="port of the demo model, without OPENAI_BASE_URL (default: %(default)s)",
    )

    keys = commands.add_parser("keys", help="make API keys for ORCH_API_KEYS, or an ORCH_SECRETS_KEY")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    new = key_commands.add_parser("new", help="make a key; prints it once and its entry for the keys file")
    new.add_argument("name", help="the key's name: the identity in audit records")
    new.add_argument("--role", action="append", help="run, approve or admin (repeatable; default run)")
    new.add_argument("--scope", action="append", help="MCP `server` or `server.tool` its runs may use (repeatable)")
    new.add_argument("--json", action="store_true", help="print JSON instead of text")
    key_commands.add_parser(
        "secrets-key",
        help="print a new ORCH_SECRETS_KEY, which seals the secrets the store keeps "
        "(e.g. export ORCH_SECRETS_KEY=$(orch keys secrets-key))",
    )
    add_db_command(commands)

    def client_command(name: str, help_text: str) -> argparse.ArgumentParser:
        return add_client_command(commands, name, help_text)

    run = client_command("run", "start a run and follow it, asking y/n at each approval")
    run.add_argument("prompt")
    run.add_argument("--model")
    run.add_argument("--server", action="append", help="MCP server to use (repeatable; default: all enabled)")
    run.add_argument("--assistant", help="a saved assistant whose options apply where no flag is given")
    run.add_argument("--no-wait", action="store_true", help="print the run id and return")
    client_command("status", "show a run").add_argument("id")
    listing = client_command("list", "list runs")
    listing.add_argument("--status", choices=[s.value for s in RunStatus])
    listing.add_argument("--limit", type=int, default=20)
    for name in ("approve", "deny"):
        sub = client_command(name, f"{name} a pending tool call")
        sub.add_argument("id")
        sub.add_argument("call_id")
        sub.add_argument("--reason")
        sub.add_argument("--approver")
        sub.add_argument(
            "--hash",
            help="the approval_hash shown with the call: the decision applies only to exactly that call "
            "(default: the call as pending now, which is shown)",
        )
    answer = client_command("answer", "answer what an MCP server asks in a run: accept, --decline or --cancel")
    answer.add_argument("id")
    answer.add_argument("input_id", help="the question's input_id, as `orch status` shows it")
    answer.add_argument(
        "--field",
        action="append",
        metavar="NAME=VALUE",
        help="a field of the answer, converted to its type in the requested schema (a boolean: true/false/yes/no; "
        "an array: comma-separated); repeatable (default: each field is asked on the terminal)",
    )
    answer.add_argument("--json-content", metavar="JSON", help="the answer as a JSON object (--field goes over it)")
    refusal = answer.add_mutually_exclusive_group()
    refusal.add_argument("--decline", action="store_true", help="decline to answer")
    refusal.add_argument("--cancel", action="store_true", help="cancel the question (not the run)")
    answer.add_argument("--reason")
    answer.add_argument("--answerer")
    client_command("cancel", "cancel a run").add_argument("id")
    add_resource_commands(commands)
    return parser


if __name__ == "__main__":
    sys.exit(main())
