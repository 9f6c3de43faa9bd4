"""`orch assistants` and `orch servers`: the resources the store holds, managed over the API
(`/v1/assistants`, `/v1/mcp/servers`); and `orch db`: the store's own migrations."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from api.cli.client import CLIError, OrchestrationsClient
from api.cli.client_commands import add_body_command, add_client_command, read_json_object, show
from api.cli.render import assistant_view, assistants_table, connect_view, server_view, servers_table

AVAILABILITY = ["force_on", "default_on", "default_off"]


def add_resource_commands(commands: Any) -> None:
    """`orch assistants ...` and `orch servers ...` on the `orch` parser's commands."""
    _assistant_commands(commands.add_parser("assistants", help="saved presets of run options (admin to change)"))
    _server_commands(commands.add_parser("servers", help="MCP servers managed over the API (admin)"))


def add_db_command(commands: Any) -> None:
    """`orch db upgrade|current` on the `orch` parser's commands."""
    db = commands.add_parser("db", help="migrate the store (ORCH_DATABASE_URL) or show its migration")
    db.add_argument("db_command", choices=["upgrade", "current"])


def migrate_store(args: argparse.Namespace) -> int:
    """`orch db upgrade|current` (`python -m worker.store`)."""
    # Imported here: the store (SQLAlchemy, Alembic) is for `db` only.
    from worker.store.__main__ import main as store_main

    return store_main([args.db_command])


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


def assistants(client: OrchestrationsClient, args: argparse.Namespace) -> int:
    if args.action == "list":
        listed = client.assistants()
        return show(args, assistants_table(listed["assistants"]), listed)
    if args.action == "get":
        found = client.assistant(args.name)
        return show(args, assistant_view(found), found)
    if args.action == "create":
        created = client.create_assistant(_named(assistant_body(args), args.name))
        return show(args, f"created assistant {args.name}\n{assistant_view(created)}", created)
    if args.action == "update":
        updated = client.update_assistant(args.name, _changes(assistant_body(args)))
        return show(args, f"updated assistant {args.name}\n{assistant_view(updated)}", updated)
    client.delete_assistant(args.name)
    return show(args, f"deleted assistant {args.name}", {"deleted": args.name})


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


def servers(client: OrchestrationsClient, args: argparse.Namespace) -> int:
    if args.action == "list":
        listed = client.servers()
        return show(args, servers_table(listed["servers"]), listed)
    if args.action == "get":
        found = client.server(args.name)
        return show(args, server_view(found), found)
    if args.action == "add":
        added = client.add_server(_named(server_body(args), args.name))
        return show(args, f"added MCP server {args.name}\n{server_view(added)}", added)
    if args.action == "update":
        updated = client.update_server(args.name, _changes(server_patch(args)))
        return show(args, f"updated MCP server {args.name}\n{server_view(updated)}", updated)
    if args.action == "remove":
        client.remove_server(args.name)
        return show(args, f"removed MCP server {args.name}", {"removed": args.name})
    if args.action == "connect":
        started = client.connect_server(args.name)
        return show(args, connect_view(args.name, started), started)
    client.disconnect_server(args.name)
    return show(args, f"disconnected your API key from MCP server {args.name}", {"disconnected": args.name})


RESOURCE_COMMANDS: dict[str, Callable[[OrchestrationsClient, argparse.Namespace], int]] = {
    "assistants": assistants,
    "servers": servers,
}
"""The commands above that call the API, by name."""


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


def _assistant_commands(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    add_client_command(actions, "list", "list the assistants")
    add_client_command(actions, "get", "show an assistant").add_argument("name")
    for name, help_text, json_help in (
        ("create", "save an assistant", "its options as a JSON object (`-`: stdin); flags override them"),
        ("update", "change an assistant", "a JSON merge patch (`-`: stdin; null clears a field); flags override"),
    ):
        sub = add_body_command(actions, name, help_text, json_help)
        sub.add_argument("--description")
        sub.add_argument("--model")
        sub.add_argument("--instructions", help="the system prompt of its runs")
        sub.add_argument("--server", action="append", help="MCP server its runs use (repeatable)")
        sub.add_argument("--max-steps", type=int, help="LLM calls at most per run")
    add_client_command(actions, "delete", "delete an assistant").add_argument("name")


def _server_commands(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    add_client_command(actions, "list", "list the MCP servers and their health")
    add_client_command(actions, "get", "show an MCP server").add_argument("name")
    add = add_body_command(
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
    update = add_body_command(
        actions,
        "update",
        "change an MCP server",
        "a JSON merge patch (`-`: stdin; null resets a field); flags override it",
    )
    enabled = update.add_mutually_exclusive_group()
    enabled.add_argument("--enable", dest="enabled", action="store_const", const=True, help="turn it on")
    enabled.add_argument("--disable", dest="enabled", action="store_const", const=False, help="turn it off")
    update.add_argument("--availability", choices=AVAILABILITY)
    add_client_command(actions, "remove", "remove an MCP server").add_argument("name")
    add_client_command(actions, "connect", "connect your API key to a server with OAuth").add_argument("name")
    add_client_command(actions, "disconnect", "forget your API key's OAuth tokens for a server").add_argument("name")
