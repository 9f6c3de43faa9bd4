"""OAuth 2.0 to MCP servers, end to end: the API and a worker sharing a store, a real MCP
server that requires bearer tokens and a real authorization server (tests/mcp_servers/oauth.py),
over loopback. The flows are the MCP SDK's; these tests check what the service does with them."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.api.conftest import APIFactory, APIHarness
from tests.api.test_auth import as_key, keys_json
from tests.api.test_mcp_servers import SERVERS, listed_tools
from tests.history_text import payload_texts
from tests.mcp_servers.oauth import log_in, oauth_servers
from tests.scripted_llm import Reply, ScriptedLLM, tool_call
from tests.waiting import WAIT_SECONDS, eventually
from worker.mcp_oauth import SERVER_SUBJECT

CLIENT_ID = "orchestrator"
CLIENT_SECRET = "cc-secret-5d1e"


async def _run(http: httpx.AsyncClient, api: APIHarness, model: str, **body: Any) -> dict[str, Any]:
    started = await http.post("/v1/orchestrations", json={"input": "who am I?", "model": model, **body})
    assert started.status_code == 202, started.text
    return await _finished(http, started.json()["id"])


async def _finished(
    http: httpx.AsyncClient, run_id: str, until: tuple[str, ...] = ("completed", "failed")
) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        body = (await http.get(f"/v1/orchestrations/{run_id}")).json()
        return body if body["status"] in until else None

    return await eventually(reached, f"run {run_id} reaches {until}")


def _tool_results(run: dict[str, Any]) -> list[str]:
    return [step["output_preview"] for step in run["steps"] if step["kind"] == "tool"]


async def _connect(http: httpx.AsyncClient, server: str, user: str) -> None:
    """Connect the calling key to `server`: the person opens the URL, logs in as `user`, allows,
    and the authorization server sends the browser back to the API's callback."""
    started = await http.get(f"{SERVERS}/{server}/oauth/connect")
    assert started.status_code == 200, started.text
    back_to = await log_in(started.json()["authorization_url"], user, timeout=WAIT_SECONDS)
    async with httpx.AsyncClient(timeout=WAIT_SECONDS) as browser:
        landed = await browser.get(back_to)
    assert landed.status_code == 200, landed.text
    assert "is connected" in landed.text


async def test_a_server_with_client_credentials_is_called_with_the_servers_own_token(
    api_stack: APIFactory, store_url: str, llm: ScriptedLLM, caplog: pytest.LogCaptureFixture
) -> None:
    llm.script("m-cc", Reply(tool_calls=[tool_call("c1", "secured__whoami", {})]), Reply(content="done"))
    async with (
        oauth_servers(timeout=WAIT_SECONDS, client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as oauth,
        api_stack({}, database_url=store_url) as api,
    ):
        body = {
            "name": "secured",
            "url": oauth.mcp_url,
            "tools_to_auto_execute": ["whoami"],
            "auth": {
                "type": "oauth_client_credentials",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "issuer": oauth.issuer,
            },
        }
        created = await api.http.post(SERVERS, json=body)
        assert created.status_code == 201, created.text
        assert CLIENT_SECRET not in created.text and created.json()["auth"]["has_secret"] is True
        await eventually(lambda: _listed(api, "secured"), "the worker lists the secured server's tools")
        run = await _run(api.http, api, "m-cc")
        assert run["status"] == "completed", run
        assert _tool_results(run) == ["client:orchestrator"]
        assert (await oauth.stats())["tokens_issued"]["client_credentials"] >= 1

        # Neither the client secret nor the token is in the run's history or any log line.
        tokens, _ = await api.app.state.store.grants.read("secured", SERVER_SUBJECT)
        assert tokens is not None
        history = await api.worker.client.get_workflow_handle(run["id"]).fetch_history()
        for secret in (CLIENT_SECRET, tokens.access_token):
            assert not any(secret in text for text in payload_texts(history))
            assert secret not in caplog.text


async def test_each_api_key_connects_once_and_its_runs_use_its_own_token(
    api_stack: APIFactory, store_url: str, llm: ScriptedLLM
) -> None:
    llm.respond("m-pk", lambda request: _whoami_then_answer(request, "personal__whoami"))
    async with (
        oauth_servers(timeout=WAIT_SECONDS, token_seconds=2) as oauth,
        api_stack({}, database_url=store_url, api_keys=keys_json()) as api,
        as_key(api, "root") as root,
        as_key(api, "alice") as alice,
        as_key(api, "bob") as bob,
    ):
        body = {
            "name": "personal",
            "url": oauth.mcp_url,
            "auth": {"type": "oauth_per_key"},
            "tools_to_auto_execute": ["whoami"],
        }
        assert (await root.post(SERVERS, json=body)).status_code == 201
        await eventually(lambda: _known(api, "personal", root), "the worker has the per-key server")
        not_per_key = await alice.get(f"{SERVERS}/nope/oauth/connect")
        assert not_per_key.status_code == 404

        await _connect(alice, "personal", "alice-at-idp")
        connected_at = time.monotonic()
        view = (await root.get(f"{SERVERS}/personal")).json()
        assert view["oauth_connected_keys"] == ["alice"]

        run = await _run(alice, api, "m-pk", mcp_servers=["personal"])
        assert run["status"] == "completed", run
        assert _tool_results(run) == ["alice-at-idp"]

        # bob never connected: the run goes on without the server and says how to connect.
        run = await _run(bob, api, "m-pk", mcp_servers=["personal"])
        assert "GET /v1/mcp/servers/personal/oauth/connect" in run["unavailable_servers"]["personal"]
        assert "'bob'" in run["unavailable_servers"]["personal"]

        # alice's access token expires (2 s); her next run refreshes it (the SDK, with her refresh token).
        await eventually(lambda: time.monotonic() > connected_at + 3, "alice's access token expires")
        refreshed_before = (await oauth.stats())["tokens_issued"]["refresh_token"]
        run = await _run(alice, api, "m-pk", mcp_servers=["personal"])
        assert _tool_results(run) == ["alice-at-idp"]
        assert (await oauth.stats())["tokens_issued"]["refresh_token"] > refreshed_before

        # Disconnected, alice's next call is a tool error naming the way back, not a crash.
        llm.script(
            "m-pk-wait",
            Reply(tool_calls=[tool_call("w1", "personal__echo", {"text": "hi"})]),
            Reply(content="could not"),
        )
        started = await alice.post(
            "/v1/orchestrations", json={"input": "x", "model": "m-pk-wait", "mcp_servers": ["personal"]}
        )
        run_id = started.json()["id"]
        await _finished(alice, run_id, until=("waiting_for_approval",))
        assert (await alice.delete(f"{SERVERS}/personal/oauth/connect")).status_code == 204
        assert (await alice.delete(f"{SERVERS}/personal/oauth/connect")).status_code == 404
        async with as_key(api, "carol") as carol:  # an approver
            decided = await carol.post(
                f"/v1/orchestrations/{run_id}/approvals", json={"tool_call_id": "w1", "decision": "approve"}
            )
        assert decided.status_code == 200, decided.text
        run = await _finished(alice, run_id)
        assert run["status"] == "completed", run
        step = next(step for step in run["steps"] if step["kind"] == "tool")
        assert step["status"] == "error", step
        assert "/v1/mcp/servers/personal/oauth/connect" in step["output_preview"]


async def test_the_callback_refuses_unknown_states_and_denials(api_stack: APIFactory, store_url: str) -> None:
    async with oauth_servers(timeout=WAIT_SECONDS) as oauth, api_stack({}, database_url=store_url) as api:
        body = {"name": "personal", "url": oauth.mcp_url, "auth": {"type": "oauth_per_key"}}
        assert (await api.http.post(SERVERS, json=body)).status_code == 201
        forged = await api.http.get("/v1/mcp/oauth/callback", params={"state": "forged", "code": "x"})
        assert forged.status_code == 400 and forged.json()["error"]["code"] == "unknown_oauth_state"
        started = (await api.http.get(f"{SERVERS}/personal/oauth/connect")).json()
        back_to = await log_in(started["authorization_url"], None, timeout=WAIT_SECONDS)
        async with httpx.AsyncClient(timeout=WAIT_SECONDS) as browser:
            denied = await browser.get(back_to)
        assert denied.status_code == 400 and denied.json()["error"]["code"] == "oauth_denied"
        assert (await api.http.get(f"{SERVERS}/personal")).json()["oauth_connected_keys"] == []


def _whoami_then_answer(request: dict[str, Any], function: str) -> Reply:
    """Call `function` once (if offered), then answer."""
    offered = [tool["function"]["name"] for tool in request.get("tools") or []]
    if request["messages"][-1]["role"] == "tool" or function not in offered:
        return Reply(content="done")
    return Reply(tool_calls=[tool_call("w1", function, {})])


async def _listed(api: APIHarness, server: str) -> bool:
    return bool(await listed_tools(api, server))


async def _known(api: APIHarness, server: str, http: httpx.AsyncClient) -> bool:
    return await listed_tools(api, server, http) is not None
