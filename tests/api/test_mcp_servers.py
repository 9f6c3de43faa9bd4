"""MCP servers as managed resources: `/v1/mcp/servers` over a store shared by the API and a
worker, the worker picking changes up without a restart, secrets sealed, health."""

from __future__ import annotations

import sqlite3
from typing import Any

import httpx
import pytest

from activities.mcp_config import MCPServerConfig
from tests.api.conftest import APIFactory, APIHarness
from tests.api.test_auth import as_key, keys_json
from tests.conftest import CallLog, toolbox_stdio
from tests.scripted_llm import Reply, ScriptedLLM, free_port, tool_call
from tests.waiting import eventually

SERVERS = "/v1/mcp/servers"
SECRET = "s3cr3t-header-value-7f2a"


def toolbox_body(call_log: CallLog, name: str = "box", **fields: Any) -> dict[str, Any]:
    return {"name": name, **toolbox_stdio(call_log, **fields)}


async def listed_tools(api: APIHarness, server: str, http: httpx.AsyncClient | None = None) -> dict[str, str] | None:
    """The tools GET /v1/tools shows for `server`, with their policy (None: the server is not
    listed), asking a worker afresh."""
    api.app.state.service.tools.forget()
    response = await (http or api.http).get("/v1/tools")
    assert response.status_code == 200, response.text
    for entry in response.json()["servers"]:
        if entry["name"] == server:
            return {tool["name"]: tool["policy"] for tool in entry["tools"]}
    return None


async def test_servers_are_created_read_patched_and_deleted_with_strict_validation(
    api_stack: APIFactory, store_url: str, call_log: CallLog
) -> None:
    async with api_stack({"filed": toolbox_stdio(call_log)}, database_url=store_url) as api:
        body = toolbox_body(call_log, headers={}, tools_to_auto_execute=["echo"], availability="default_off")
        body["env"]["API_TOKEN"] = SECRET
        created = await api.http.post(SERVERS, json=body)
        assert created.status_code == 201, created.text
        view = created.json()
        assert view["source"] == "api" and view["read_only"] is False and view["revision"] == 1
        assert view["env"] == {"API_TOKEN": {"has_secret": True}, "TOOLBOX_CALL_LOG": {"has_secret": True}}
        assert view["availability"] == "default_off" and view["tools_to_auto_execute"] == ["echo"]
        assert SECRET not in created.text

        again = await api.http.post(SERVERS, json=body)
        assert again.status_code == 409 and again.json()["error"]["code"] == "server_exists"
        filed = await api.http.post(SERVERS, json={**body, "name": "filed"})
        assert filed.status_code == 409 and filed.json()["error"]["code"] == "server_read_only"

        for bad, says in [
            ({"name": "x", "transport": "stdio"}, "needs `command`"),
            ({"name": "x", "url": "http://127.0.0.1:1/mcp", "transport": "carrier-pigeon"}, "transport"),
            ({"name": "bad name", "command": "true"}, "name"),
            ({"name": "x", "command": "true", "availability": "sometimes"}, "availability"),
            ({"name": "x", "command": "true", "tools_to_execute": ["a"], "tools_to_auto_execute": ["b"]}, "outside"),
            ({"name": "x", "command": "true", "auth": {"type": "oauth_per_key"}}, "streamable_http and sse"),
            ({"name": "x", "url": "http://h/mcp", "auth": {"type": "oauth_client_credentials"}}, "client_id"),
            ({"name": "x", "command": "true", "surprise": 1}, "surprise"),
            ({"name": "x", "command": "true", "sampling": "always"}, "sampling"),
            ({"name": "x", "command": "true", "roots": [{"uri": "http://h/"}]}, "file://"),
        ]:
            refused = await api.http.post(SERVERS, json=bad)
            assert refused.status_code == 422, (bad, refused.text)
            assert says in refused.json()["error"]["message"], (bad, refused.text)

        # PATCH: omitted fields stay, members of env merge (null removes one), null resets a field.
        patched = await api.http.patch(
            f"{SERVERS}/box", json={"env": {"API_TOKEN": None, "MORE": "x"}, "tools_to_auto_execute": None}
        )
        assert patched.status_code == 200, patched.text
        view = patched.json()
        assert set(view["env"]) == {"TOOLBOX_CALL_LOG", "MORE"} and view["revision"] == 2
        assert view["tools_to_auto_execute"] == [] and view["availability"] == "default_off"
        assert (view["sampling"], view["roots"]) == ("approve", [])
        asking = await api.http.patch(
            f"{SERVERS}/box", json={"sampling": "auto", "roots": [{"uri": "file:///srv", "name": "srv"}]}
        )
        assert (asking.json()["sampling"], asking.json()["roots"]) == ("auto", [{"uri": "file:///srv", "name": "srv"}])
        wrong = await api.http.patch(f"{SERVERS}/box", json={"command": None})
        assert wrong.status_code == 422 and "needs `command`" in wrong.json()["error"]["message"]
        assert (await api.http.patch(f"{SERVERS}/nope", json={"enabled": False})).status_code == 404
        read_only = await api.http.patch(f"{SERVERS}/filed", json={"enabled": False})
        assert read_only.status_code == 409 and read_only.json()["error"]["code"] == "server_read_only"

        listing = (await api.http.get(SERVERS)).json()["servers"]
        assert [(s["name"], s["source"], s["read_only"]) for s in listing] == [
            ("box", "api", False),
            ("filed", "config", True),
        ]
        assert (await api.http.get(f"{SERVERS}/filed")).json()["source"] == "config"
        assert (await api.http.delete(f"{SERVERS}/box")).status_code == 204
        assert (await api.http.get(f"{SERVERS}/box")).status_code == 404
        assert (await api.http.delete(f"{SERVERS}/box")).status_code == 404
        assert (await api.http.delete(f"{SERVERS}/filed")).status_code == 409


async def test_secrets_are_sealed_in_the_store_and_never_returned_or_logged(
    api_stack: APIFactory, store_url: str, call_log: CallLog, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    body = {
        "name": "remote",
        "url": f"http://127.0.0.1:{port}/mcp",
        "headers": {"Authorization": f"Bearer {SECRET}"},
        "auth": {"type": "oauth_per_key", "client_id": "cid", "client_secret": f"{SECRET}-client"},
    }
    async with api_stack({}, database_url=store_url) as api:
        created = await api.http.post(SERVERS, json=body)
        assert created.status_code == 201, created.text
        assert created.json()["auth"] == {
            "type": "oauth_per_key",
            "client_id": "cid",
            "scope": None,
            "issuer": None,
            "has_secret": True,
        }
        for response in [created, await api.http.get(SERVERS), await api.http.get(f"{SERVERS}/remote")]:
            assert SECRET not in response.text
    database = sqlite3.connect(store_url.removeprefix("sqlite:///"))
    try:
        dump = "\n".join(database.iterdump())
    finally:
        database.close()
    assert "remote" in dump and "Authorization" in dump
    assert SECRET not in dump, "header values and client secrets are stored sealed"
    assert SECRET not in caplog.text


async def test_a_worker_uses_a_server_added_changed_or_removed_over_the_api_without_a_restart(
    api_stack: APIFactory, store_url: str, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script(
        "m-added",
        Reply(tool_calls=[tool_call("c1", "box__transfer", {"account": "acme", "amount": 5})]),
        Reply(content="paid"),
    )
    llm.script("m-after", Reply(content="nothing to do"))
    async with api_stack({}, database_url=store_url) as api:
        assert await listed_tools(api, "box") is None
        created = await api.http.post(SERVERS, json=toolbox_body(call_log))
        assert created.status_code == 201, created.text
        await eventually(lambda: _has_tool(api, "box", "transfer"), "the worker lists the new server's tools")

        run = await api.http.post("/v1/orchestrations", json={"input": "pay", "model": "m-added"})
        assert run.status_code == 202, run.text
        run_id = run.json()["id"]
        await api.wait_for(run_id, lambda s: s["status"] == "waiting_for_approval")

        # The server's policy changes while the run waits: the run keeps what it pinned.
        denied = await api.http.patch(f"{SERVERS}/box", json={"tool_deny_list": ["transfer"]})
        assert denied.status_code == 200, denied.text
        await eventually(lambda: _lacks_tool(api, "box", "transfer"), "the worker applies the new deny list")
        approve = {"tool_call_id": "c1", "decision": "approve"}
        assert (await api.http.post(f"/v1/orchestrations/{run_id}/approvals", json=approve)).status_code == 200
        done = await api.wait_for(run_id, lambda s: s["status"] == "completed")
        assert done["output"] == "paid"
        assert [call["arguments"] for call in call_log.calls("transfer")] == [{"account": "acme", "amount": 5}]

        # A new run gets the new policy: the denied tool is not offered.
        after = await api.http.post("/v1/orchestrations", json={"input": "pay", "model": "m-after"})
        await api.wait_for(after.json()["id"], lambda s: s["status"] == "completed")
        offered = [tool["function"]["name"] for tool in llm.requests_for("m-after")[0].get("tools", [])]
        assert "box__transfer" not in offered and "box__echo" in offered

        assert (await api.http.delete(f"{SERVERS}/box")).status_code == 204
        await eventually(lambda: _gone(api, "box"), "the worker drops the removed server")
        named = await api.http.post("/v1/orchestrations", json={"input": "x", "mcp_servers": ["box"]})
        assert named.status_code == 422 and named.json()["error"]["code"] == "unknown_mcp_server"


async def test_health_is_shown_with_the_last_error_and_when(
    api_stack: APIFactory, store_url: str, call_log: CallLog
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/mcp"
    async with api_stack({"filed": toolbox_stdio(call_log)}, database_url=store_url) as api:
        for body in [toolbox_body(call_log, name="alive"), {"name": "dead", "url": dead}]:
            assert (await api.http.post(SERVERS, json=body)).status_code == 201
        off = toolbox_body(call_log, name="off", enabled=False)
        assert (await api.http.post(SERVERS, json=off)).status_code == 201

        async def states() -> dict[str, Any] | None:
            listing = (await api.http.get(SERVERS)).json()["servers"]
            health = {server["name"]: server["health"] for server in listing}
            if any(health.get(name) is None for name in ("alive", "dead", "off", "filed")):
                return None
            return health

        health = await eventually(states, "every server's health is recorded")
        assert health["alive"]["state"] == "connected" and health["filed"]["state"] == "connected"
        assert health["off"]["state"] == "disconnected"
        assert health["dead"]["state"] == "error" and health["dead"]["last_error"]
        assert health["dead"]["last_error_at"] and health["dead"]["checked_at"]

        api.app.state.service.tools.forget()
        tools = {entry["name"]: entry for entry in (await api.http.get("/v1/tools")).json()["servers"]}
        assert tools["alive"]["state"] == "connected" and tools["dead"]["state"] == "error"
        assert tools["off"]["state"] == "disconnected"


async def test_only_admins_manage_servers_and_without_a_store_the_routes_say_so(
    api_stack: APIFactory, store_url: str, call_log: CallLog
) -> None:
    async with api_stack({}, database_url=store_url, api_keys=keys_json()) as api:
        async with as_key(api, "alice") as alice:
            assert (await alice.get(SERVERS)).status_code == 403
            assert (await alice.post(SERVERS, json=toolbox_body(call_log))).status_code == 403
        async with as_key(api, "root") as root:
            assert (await root.post(SERVERS, json=toolbox_body(call_log))).status_code == 201
    async with api_stack({}) as api:
        response = await api.http.get(SERVERS)
        assert response.status_code == 503 and response.json()["error"]["code"] == "store_not_configured"


async def _has_tool(api: APIHarness, server: str, tool: str) -> bool:
    return tool in (await listed_tools(api, server) or {})


async def _lacks_tool(api: APIHarness, server: str, tool: str) -> bool:
    tools = await listed_tools(api, server)
    return tools is not None and tools.get(tool) == "denied"


async def _gone(api: APIHarness, server: str) -> bool:
    return await listed_tools(api, server) is None


async def test_commands_are_refused_over_the_api_and_by_workers_unless_allowed(
    api_stack: APIFactory, store_url: str, call_log: CallLog
) -> None:
    async with api_stack({}, database_url=store_url, mcp_api_commands=False) as api:
        refused = await api.http.post(SERVERS, json=toolbox_body(call_log))
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "stdio_not_allowed"
        assert "ORCH_MCP_API_COMMANDS" in refused.json()["error"]["message"]
        remote = {"name": "remote", "url": f"http://127.0.0.1:{free_port()}/mcp"}
        assert (await api.http.post(SERVERS, json=remote)).status_code == 201
        to_stdio = await api.http.patch(f"{SERVERS}/remote", json={"url": None, "transport": "stdio", "command": "sh"})
        assert to_stdio.status_code == 422 and to_stdio.json()["error"]["code"] == "stdio_not_allowed"

        # Written to the store some other way, a worker that runs no commands still refuses it.
        config = MCPServerConfig.model_validate(toolbox_stdio(call_log))
        await api.app.state.store.servers.create("sneaked", config)

        async def refused_by_the_worker() -> dict[str, Any] | None:
            health = (await api.http.get(f"{SERVERS}/sneaked")).json()["health"]
            return health if health and health["state"] == "error" else None

        health = await eventually(refused_by_the_worker, "the worker refuses the stored command")
        assert "ORCH_MCP_API_COMMANDS" in health["last_error"]
        assert await listed_tools(api, "sneaked") is None
    assert call_log.calls() == []
