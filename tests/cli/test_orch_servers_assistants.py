"""`orch assistants`, `orch servers` and `orch db` as a person runs them: assistants against the
real API and store, servers against a stand-in API that records what `orch` sends (the requests
and the views are those of /v1/mcp/servers), and the store's migrations on a SQLite file."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from api.cli.render import server_view, servers_table
from tests.api.conftest import APIFactory, api_stack, serve_api
from tests.orch_cli import run_orch
from tests.scripted_llm import Reply, ScriptedLLM
from worker.settings import Settings
from worker.store.database import head_revision

__all__ = ["api_stack"]  # the served stack of tests/api/, as a fixture here

WEB = {
    "name": "web",
    "source": "api",
    "read_only": False,
    "transport": "streamable_http",
    "command": None,
    "args": [],
    "cwd": None,
    "url": "https://mcp.example/mcp",
    "headers": {"Authorization": {"has_secret": True}},
    "env": {},
    "enabled": True,
    "availability": "default_on",
    "tools_to_execute": ["*"],
    "tools_to_auto_execute": [],
    "tool_deny_list": ["delete_repository"],
    "model_intent": False,
    "tool_pricing": {},
    "auto_approve_rules": {},
    "auth": {"type": "oauth_per_key", "client_id": "orch", "scope": "read", "issuer": None, "has_secret": False},
    "health": {
        "state": "error",
        "last_error": "401 Unauthorized from https://mcp.example/mcp: the token expired long ago, connect again",
        "last_error_at": "2026-01-02T03:04:05Z",
        "checked_at": "2026-01-02T03:04:05Z",
    },
    "oauth_connected_keys": ["alice"],
    "revision": 3,
    "created_at": "2026-01-01T00:00:00Z",
    "updated_at": "2026-01-02T00:00:00Z",
}
TIME = {
    "name": "time",
    "source": "config",
    "read_only": True,
    "transport": "stdio",
    "command": "mcp-server-time",
    "enabled": False,
    "availability": "default_off",
    "auth": {"type": "none"},
    "health": None,
}
AUTHORIZATION_URL = "https://auth.example/authorize?client_id=orch&state=abc"


@contextlib.asynccontextmanager
async def stand_in_api() -> AsyncIterator[tuple[str, list[tuple[str, str, Any]]]]:
    """An API answering /v1/mcp/servers as the contract says; yields its URL and the requests
    it got (method, path, JSON body)."""
    requests: list[tuple[str, str, Any]] = []
    app = FastAPI()

    @app.api_route("/v1/mcp/servers{rest:path}", methods=["GET", "POST", "PATCH", "DELETE"])
    async def servers(rest: str, request: Request) -> Response:
        body = await request.body()
        requests.append((request.method, request.url.path, json.loads(body) if body else None))
        if request.method == "DELETE":
            return Response(status_code=204)
        if rest.endswith("/oauth/connect"):
            return JSONResponse({"authorization_url": AUTHORIZATION_URL, "expires_in": 600})
        if request.method == "GET" and not rest:
            return JSONResponse({"servers": [WEB, TIME]})
        return JSONResponse(WEB, status_code=201 if request.method == "POST" else 200)

    async with serve_api(Settings(), app) as (_, base_url):
        yield base_url, requests


async def test_servers_add_sends_the_json_config_with_the_flags_over_it(tmp_path: Path) -> None:
    config = tmp_path / "web.json"
    config.write_text(
        json.dumps({"url": "https://old.example/mcp", "headers": {"X-Team": "ops"}, "model_intent": True})
    )
    async with stand_in_api() as (url, requests):
        code, out, err = await run_orch(
            "servers", "add", "web", "--json", str(config), "--url", "https://mcp.example/mcp",
            "--header", "Authorization=Bearer ${WEB_TOKEN}", "--availability", "default_off", "--disabled",
            "--api-url", url,
        )  # fmt: skip
    assert code == 0, err
    assert requests == [
        (
            "POST",
            "/v1/mcp/servers",
            {
                "name": "web",
                "url": "https://mcp.example/mcp",
                "headers": {"X-Team": "ops", "Authorization": "Bearer ${WEB_TOKEN}"},
                "model_intent": True,
                "availability": "default_off",
                "enabled": False,
            },
        )
    ]
    assert out.startswith("added MCP server web\n") and "Authorization=<secret>" in out


async def test_servers_add_builds_a_stdio_server_from_flags_alone() -> None:
    async with stand_in_api() as (url, requests):
        code, _, err = await run_orch(
            "servers", "add", "clock", "--command", "mcp-server-time", "--arg=--local-timezone", "--arg", "UTC",
            "--env", "TZ=UTC", "--env", "EMPTY=", "--transport", "stdio", "--api-url", url,
        )  # fmt: skip
    assert code == 0, err
    [(_, _, body)] = requests
    assert body == {
        "name": "clock",
        "command": "mcp-server-time",
        "args": ["--local-timezone", "UTC"],
        "transport": "stdio",
        "env": {"TZ": "UTC", "EMPTY": ""},
    }


async def test_servers_update_sends_a_merge_patch_from_stdin_and_flags() -> None:
    async with stand_in_api() as (url, requests):
        patched = await run_orch(
            "servers", "update", "web", "--json", "-", "--disable", "--api-url", url,
            stdin=b'{"tool_deny_list": null, "availability": "force_on"}',
        )  # fmt: skip
        enabled = await run_orch(
            "servers", "update", "web", "--enable", "--availability", "default_on", "--api-url", url
        )
        nothing = await run_orch("servers", "update", "web", "--api-url", url)
    assert patched[0] == 0 and enabled[0] == 0, (patched, enabled)
    assert requests == [
        ("PATCH", "/v1/mcp/servers/web", {"tool_deny_list": None, "availability": "force_on", "enabled": False}),
        ("PATCH", "/v1/mcp/servers/web", {"enabled": True, "availability": "default_on"}),
    ]
    assert nothing[0] == 1 and nothing[2] == "orch: nothing to change: give --json FILE (or -) or a flag\n"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--header", "Authorization"], "orch: --header wants NAME=VALUE, not 'Authorization'"),
        (["--json", "-"], "orch: stdin is not JSON"),
        (["--json", "/nonexistent/web.json"], "orch: cannot read /nonexistent/web.json"),
    ],
)
async def test_servers_add_refuses_bad_input_without_calling_the_api(args: list[str], says: str) -> None:
    async with stand_in_api() as (url, requests):
        code, _, err = await run_orch(
            "servers", "add", "web", "--url", "https://x", *args, "--api-url", url, stdin=b"{"
        )
    assert code == 1 and err.startswith(says), err
    assert requests == []


async def test_servers_remove_connect_and_disconnect() -> None:
    async with stand_in_api() as (url, requests):
        removed = await run_orch("servers", "remove", "web", "--api-url", url)
        connect = await run_orch("servers", "connect", "web", "--api-url", url)
        disconnected = await run_orch("servers", "disconnect", "web", "--api-url", url)
    assert [r[0] for r in (removed, connect, disconnected)] == [0, 0, 0]
    assert [(method, path) for method, path, _ in requests] == [
        ("DELETE", "/v1/mcp/servers/web"),
        ("GET", "/v1/mcp/servers/web/oauth/connect"),
        ("DELETE", "/v1/mcp/servers/web/oauth/connect"),
    ]
    assert removed[1] == "removed MCP server web\n"
    assert connect[1].splitlines() == [
        "Open this URL in a browser and allow access within 10 minutes, to connect your API key to MCP server web:",
        f"  {AUTHORIZATION_URL}",
    ]
    assert disconnected[1] == "disconnected your API key from MCP server web\n"


async def test_servers_list_shows_a_table_and_json() -> None:
    async with stand_in_api() as (url, _):
        code, out, err = await run_orch("servers", "list", "--api-url", url)
        as_json = await run_orch("servers", "list", "--json", "--api-url", url)
    assert code == 0, err
    assert out == servers_table([WEB, TIME]) + "\n"
    assert json.loads(as_json[1]) == {"servers": [WEB, TIME]}


def test_the_servers_table_has_source_auth_and_health() -> None:
    header, web, time = servers_table([WEB, TIME]).splitlines()
    assert header.split() == [
        "name",
        "source",
        "transport",
        "enabled",
        "availability",
        "auth",
        "state",
        "last",
        "error",
    ]
    assert web.split()[:7] == ["web", "api", "streamable_http", "yes", "default_on", "oauth_per_key", "error"]
    last_error = web.split("  ")[-1]
    assert last_error.startswith("401 Unauthorized from https://mcp.example/mcp") and last_error.endswith("…")
    assert len(last_error) == 60
    assert time.split() == ["time", "config", "stdio", "no", "default_off", "none", "-"]


def _fields(view: str) -> dict[str, str]:
    """A `label: value` view as a dict."""
    return {label: value.strip() for label, value in (line.split(":", 1) for line in view.splitlines())}


def test_a_server_view_names_secrets_and_never_shows_them() -> None:
    fields = _fields(server_view(WEB | {"env": {"API_TOKEN": {"has_secret": True}}}))
    assert fields["headers"] == "Authorization=<secret>" and fields["env"] == "API_TOKEN=<secret>"
    assert fields["auth"] == "oauth_per_key (client_id orch, scope read)"
    assert fields["connected keys"] == "alice"
    assert fields["state"].startswith("error (checked 2026-01-02T03:04:05): 401 Unauthorized")
    assert "read-only" in server_view(TIME) and "not checked yet" in server_view(TIME)


async def test_assistants_commands_against_the_api(
    api_stack: APIFactory, llm: ScriptedLLM, store_url: str, tmp_path: Path
) -> None:
    llm.script("m-cli-asst", Reply(content="brief"))
    options = tmp_path / "terse.json"
    options.write_text(json.dumps({"description": "short answers", "model": "other", "tool_timeout_seconds": 30}))
    async with api_stack(database_url=store_url) as api:
        api_url = ("--api-url", api.base_url)
        created = await run_orch(
            "assistants", "create", "terse", "--json", str(options), "--model", "m-cli-asst",
            "--instructions", "Be brief.", "--server", "a", "--server", "b", "--max-steps", "3", *api_url,
        )  # fmt: skip
        listed = await run_orch("assistants", "list", *api_url)
        updated = await run_orch(
            "assistants", "update", "terse", "--json", "-", *api_url, stdin=b'{"mcp_servers": null, "max_steps": 4}'
        )
        run_id = await run_orch("run", "--no-wait", "hi", "--assistant", "terse", *api_url)
        run = await api.wait_for(run_id[1].strip(), lambda s: s["status"] == "completed")
        fetched = await run_orch("assistants", "get", "terse", "--json", *api_url)
        refused = await run_orch("assistants", "create", "terse", "--model", "x", *api_url)
        deleted = await run_orch("assistants", "delete", "terse", *api_url)
        gone = await run_orch("assistants", "get", "terse", *api_url)
        empty = await run_orch("assistants", "list", *api_url)
    assert created[0] == 0, created
    first_line, view = created[1].split("\n", 1)
    assert first_line == "created assistant terse"
    assert _fields(view) | {"updated": "-"} == {
        "name": "terse",
        "description": "short answers",
        "model": "m-cli-asst",
        "instructions": "Be brief.",
        "mcp_servers": "a, b",
        "max_steps": "3",
        "tool_timeout_seconds": "30.0",
        "approval_timeout_seconds": "-",
        "context_budget_bytes": "-",
        "updated": "-",
    }
    assert listed[1].splitlines()[1].split() == ["terse", "m-cli-asst", "a,", "b", "3", "short", "answers"]
    assert updated[0] == 0, updated
    assert _fields(updated[1].split("\n", 1)[1])["mcp_servers"] == "-"  # cleared: the run's own, or every server
    assert run["model"] == "m-cli-asst" and run["max_steps"] == 4 and run["output"] == "brief"
    assistant = json.loads(fetched[1])
    assert {k: assistant[k] for k in ("model", "instructions", "mcp_servers", "max_steps", "tool_timeout_seconds")} == {
        "model": "m-cli-asst",
        "instructions": "Be brief.",
        "mcp_servers": None,
        "max_steps": 4,
        "tool_timeout_seconds": 30,
    }
    assert refused[0] == 1 and refused[2] == "orch: 409: assistant 'terse' exists: PATCH it instead\n"
    assert deleted[:2] == (0, "deleted assistant terse\n")
    assert gone[0] == 1 and gone[2] == "orch: 404: no assistant 'terse'\n"
    assert empty[1] == "no assistants\n"


async def test_db_upgrade_migrates_a_new_store_and_current_says_where_it_is(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'orch.db'}"
    before = await run_orch("db", "current", ORCH_DATABASE_URL=url)
    upgraded = await run_orch("db", "upgrade", ORCH_DATABASE_URL=url)
    after = await run_orch("db", "current", ORCH_DATABASE_URL=url)
    unset = await run_orch("db", "upgrade", ORCH_DATABASE_URL="")
    newest = head_revision()
    assert before[:2] == (0, f"store at no migration (newest: {newest})\n"), before
    assert upgraded[:2] == (0, f"store at {newest} (newest: {newest})\n"), upgraded
    assert after[1] == upgraded[1]
    assert unset[0] == 2 and unset[2] == "ORCH_DATABASE_URL is not set\n"
