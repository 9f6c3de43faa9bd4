"""`orch`: start a local stack, start and follow runs, decide tool calls, manage assistants and
MCP servers, migrate the store.

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
from pathlib import Path
from typing import Any

from api.cli.client import CLIError, OrchestrationsClient
from api.cli.render import (
    assistant_view,
    assistants_table,
    connect_view,
    event_line,
    pending_view,
    server_view,
    servers_table,
    status_view,
    table,
    waiting_for,
)
from workflows.messages import RunStatus
from workflows.validation_errors import first_problem


def say(text: str) -> None:
    """The CLI's output (its product, not logging)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


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
            return _new_key(args)
        if args.command == "db":
            # Imported here: the store (SQLAlchemy, Alembic) is for `db` only.
            from worker.store.__main__ import main as store_main

            return store_main([args.db_command])
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
    approval while stdin can answer."""
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
    """The calls a waiting run waits for (the list has statuses only, so read each waiting run)."""
    if summary["status"] != "waiting_for_approval":
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


def _show(args: argparse.Namespace, text: str, answer: Any) -> int:
    """`text`, or the API's `answer` with --json."""
    say(json.dumps(answer, indent=2) if args.json else text)
    return 0


def read_json_object(source: str | None) -> dict[str, Any]:
    """The JSON object in file `source` (`-`: stdin); empty without one."""
    if source is None:
        return {}
    where = "stdin" if source == "-" else source
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
    except OSError as err:
        raise CLIError(f"cannot read {where}: {err.strerror}") from None
    try:
        body = json.loads(text)
    except ValueError as err:
        raise CLIError(f"{where} is not JSON: {err}") from None
    if not isinstance(body, dict):
        raise CLIError(f"{where} must hold a JSON object")
    return body


def _given(body: dict[str, Any], **flags: Any) -> dict[str, Any]:
    """`body` with the flags that were given (not None) set over it."""
    return body | {name: value for name, value in flags.items() if value is not None}


def _named(body: dict[str, Any], name: str) -> dict[str, Any]:
    if body.get("name", name) != name:
        raise CLIError(f"the JSON names {body['name']!r}, the command {name!r}")
    return body | {"name": name}


def _changes(body: dict[str, Any]) -> dict[str, Any]:
    if not body:
        raise CLIError("nothing to change: give --json FILE (or -) or a flag")
    return body


def assistant_body(args: argparse.Namespace) -> dict[str, Any]:
    """An assistant's options (create) or merge patch (update): `--json`, and the flags over it."""
    return _given(
        read_json_object(args.body_file),
        description=args.description,
        model=args.model,
        instructions=args.instructions,
        mcp_servers=args.server,
        max_steps=args.max_steps,
    )


def _assistants(client: OrchestrationsClient, args: argparse.Namespace) -> int:
    if args.action == "list":
        listed = client.assistants()
        return _show(args, assistants_table(listed["assistants"]), listed)
    if args.action == "get":
        found = client.assistant(args.name)
        return _show(args, assistant_view(found), found)
    if args.action == "create":
        created = client.create_assistant(_named(assistant_body(args), args.name))
        return _show(args, f"created assistant {args.name}\n{assistant_view(created)}", created)
    if args.action == "update":
        updated = client.update_assistant(args.name, _changes(assistant_body(args)))
        return _show(args, f"updated assistant {args.name}\n{assistant_view(updated)}", updated)
    client.delete_assistant(args.name)
    return _show(args, f"deleted assistant {args.name}", {"deleted": args.name})


def server_body(args: argparse.Namespace) -> dict[str, Any]:
    """`orch servers add`: the server's config from `--json`, and the flags over it."""
    body = _given(
        read_json_object(args.body_file),
        url=args.url,
        command=args.stdio_command,
        args=args.arg,
        transport=args.transport,
        availability=args.availability,
    )
    for field, pairs, flag in (("headers", args.header, "--header"), ("env", args.env, "--env")):
        if pairs:
            body[field] = _pairs_over(body.get(field), pairs, flag)
    if args.disabled:
        body["enabled"] = False
    return body


def server_patch(args: argparse.Namespace) -> dict[str, Any]:
    """`orch servers update`: a merge patch from `--json`, and the flags over it."""
    return _given(read_json_object(args.body_file), enabled=args.enabled, availability=args.availability)


def _pairs_over(given: Any, pairs: list[str], flag: str) -> dict[str, Any]:
    """`NAME=VALUE` flags set over the object `given` (from --json)."""
    if given is not None and not isinstance(given, dict):
        raise CLIError(f"{flag}: the JSON's value for it is not an object")
    merged = dict(given or {})
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name:
            raise CLIError(f"{flag} wants NAME=VALUE, not {pair!r}")
        merged[name] = value
    return merged


def _servers(client: OrchestrationsClient, args: argparse.Namespace) -> int:
    if args.action == "list":
        listed = client.servers()
        return _show(args, servers_table(listed["servers"]), listed)
    if args.action == "get":
        found = client.server(args.name)
        return _show(args, server_view(found), found)
    if args.action == "add":
        added = client.add_server(_named(server_body(args), args.name))
        return _show(args, f"added MCP server {args.name}\n{server_view(added)}", added)
    if args.action == "update":
        updated = client.update_server(args.name, _changes(server_patch(args)))
        return _show(args, f"updated MCP server {args.name}\n{server_view(updated)}", updated)
    if args.action == "remove":
        client.remove_server(args.name)
        return _show(args, f"removed MCP server {args.name}", {"removed": args.name})
    if args.action == "connect":
        started = client.connect_server(args.name)
        return _show(args, connect_view(args.name, started), started)
    client.disconnect_server(args.name)
    return _show(args, f"disconnected your API key from MCP server {args.name}", {"disconnected": args.name})


COMMANDS = {
    "run": _run,
    "status": _status,
    "list": _list,
    "approve": _decide("approve"),
    "deny": _decide("deny"),
    "cancel": _cancel,
    "assistants": _assistants,
    "servers": _servers,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orch", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    dev = commands.add_parser("dev", help="start Temporal, a worker and the API on this machine")
    dev.add_argument(
        "--state-dir",
        default=os.environ.get("ORCH_STATE_DIR", ".orch"),
        help="Temporal's SQLite file and the logs, one orch dev at a time (default: %(default)s, env ORCH_STATE_DIR)",
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

    keys = commands.add_parser("keys", help="make API keys for ORCH_API_KEYS")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    new = key_commands.add_parser("new", help="make a key; prints it once and its entry for the keys file")
    new.add_argument("name", help="the key's name: the identity in audit records")
    new.add_argument("--role", action="append", help="run, approve or admin (repeatable; default run)")
    new.add_argument("--scope", action="append", help="MCP `server` or `server.tool` its runs may use (repeatable)")
    new.add_argument("--json", action="store_true", help="print JSON instead of text")

    db = commands.add_parser("db", help="migrate the store (ORCH_DATABASE_URL) or show its migration")
    db.add_argument("db_command", choices=["upgrade", "current"])

    def client_command(name: str, help_text: str) -> argparse.ArgumentParser:
        return _client_command(commands, name, help_text)

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
    client_command("cancel", "cancel a run").add_argument("id")
    _assistant_commands(commands.add_parser("assistants", help="saved presets of run options (admin to change)"))
    _server_commands(commands.add_parser("servers", help="MCP servers managed over the API (admin)"))
    return parser


def _client_command(commands: Any, name: str, help_text: str, *, json_output: bool = True) -> argparse.ArgumentParser:
    """A command that calls the API. `json_output`: it takes `--json` to print JSON (commands
    that read a JSON body take `--json FILE` instead)."""
    sub: argparse.ArgumentParser = commands.add_parser(name, help=help_text)
    sub.add_argument("--api-url", default=os.environ.get("ORCH_API_URL", "http://127.0.0.1:8000"))
    sub.add_argument("--api-key", default=os.environ.get("ORCH_API_KEY"), help="default: env ORCH_API_KEY")
    if json_output:
        sub.add_argument("--json", action="store_true", help="print JSON instead of text")
    else:
        sub.set_defaults(json=False)
    return sub


def _body_command(commands: Any, name: str, help_text: str, json_help: str) -> argparse.ArgumentParser:
    sub = _client_command(commands, name, help_text, json_output=False)
    sub.add_argument("name")
    sub.add_argument("--json", dest="body_file", metavar="FILE|-", help=json_help)
    return sub


def _assistant_commands(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    _client_command(actions, "list", "list the assistants")
    _client_command(actions, "get", "show an assistant").add_argument("name")
    for name, help_text, json_help in (
        ("create", "save an assistant", "its options as a JSON object (`-`: stdin); flags override them"),
        ("update", "change an assistant", "a JSON merge patch (`-`: stdin; null clears a field); flags override"),
    ):
        sub = _body_command(actions, name, help_text, json_help)
        sub.add_argument("--description")
        sub.add_argument("--model")
        sub.add_argument("--instructions", help="the system prompt of its runs")
        sub.add_argument("--server", action="append", help="MCP server its runs use (repeatable)")
        sub.add_argument("--max-steps", type=int, help="LLM calls at most per run")
    _client_command(actions, "delete", "delete an assistant").add_argument("name")


AVAILABILITY = ["force_on", "default_on", "default_off"]


def _server_commands(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    _client_command(actions, "list", "list the MCP servers and their health")
    _client_command(actions, "get", "show an MCP server").add_argument("name")
    add = _body_command(
        actions,
        "add",
        "add an MCP server",
        "its config as a JSON object, as in ORCH_MCP_CONFIG (`-`: stdin); flags override it",
    )
    add.add_argument("--url", help="its URL (streamable_http or sse)")
    # dest: `command` is the orch command's own.
    add.add_argument("--command", dest="stdio_command", metavar="COMMAND", help="the command that starts it (stdio)")
    add.add_argument("--arg", action="append", help="an argument of --command (repeatable; --arg=-v for a dash)")
    add.add_argument("--transport", choices=["stdio", "streamable_http", "sse"])
    add.add_argument(
        "--header", action="append", metavar="NAME=VALUE", help="an HTTP header (repeatable; ${VAR}: the worker's)"
    )
    add.add_argument("--env", action="append", metavar="NAME=VALUE", help="an environment variable (repeatable)")
    add.add_argument("--availability", choices=AVAILABILITY)
    add.add_argument("--disabled", action="store_true", help="add it turned off")
    update = _body_command(
        actions,
        "update",
        "change an MCP server",
        "a JSON merge patch (`-`: stdin; null resets a field); flags override it",
    )
    enabled = update.add_mutually_exclusive_group()
    enabled.add_argument("--enable", dest="enabled", action="store_const", const=True, help="turn it on")
    enabled.add_argument("--disable", dest="enabled", action="store_const", const=False, help="turn it off")
    update.add_argument("--availability", choices=AVAILABILITY)
    _client_command(actions, "remove", "remove an MCP server").add_argument("name")
    _client_command(actions, "connect", "connect your API key to a server with OAuth").add_argument("name")
    _client_command(actions, "disconnect", "forget your API key's OAuth tokens for a server").add_argument("name")


if __name__ == "__main__":
    sys.exit(main())
