"""API keys: 401 without a valid key, 403 without the role or scope, `run` keys see only
their own runs, the approver in the audit trail is the key's name, scoped keys are never
offered tools outside their scope, and no keys means loopback only."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.api_keys import APIKeysError, hash_key, load_api_keys
from api.app import create_app
from api.cli.main import main as orch
from tests.api.conftest import APIFactory, APIHarness
from tests.conftest import REPO_ROOT, CallLog, toolbox_stdio
from tests.orch_cli import run_orch
from tests.scripted_llm import Reply, ScriptedLLM, free_port, tool_call
from tests.waiting import WAIT_SECONDS, eventually
from worker.connection import TemporalConnection
from worker.settings import Settings

KEYS = {
    "alice": ("orch_alice-secret", ["run"], None),
    "bob": ("orch_bob-secret", ["run"], None),
    "carol": ("orch_carol-secret", ["approve"], None),
    "root": ("orch_root-secret", ["admin"], None),
    "echoer": ("orch_echoer-secret", ["run"], ["toolbox.echo"]),
}


def keys_json(keys: dict[str, tuple[str, list[str], list[str] | None]] = KEYS) -> str:
    entries: list[dict[str, Any]] = []
    for name, (key, roles, scopes) in keys.items():
        entry: dict[str, Any] = {"name": name, "sha256": hash_key(key), "roles": roles}
        if scopes is not None:
            entry["mcp_scopes"] = scopes
        entries.append(entry)
    return json.dumps({"keys": entries})


def auth(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[name][0]}"}


@asynccontextmanager
async def as_key(api: APIHarness, name: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api.base_url, headers=auth(name), timeout=WAIT_SECONDS) as http:
        yield http


async def _wait(http: httpx.AsyncClient, run_id: str, status: str) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        body: dict[str, Any] = (await http.get(f"/v1/orchestrations/{run_id}")).json()
        return body if body.get("status") == status else None

    return await eventually(reached, f"{run_id} is {status}")


async def _is_listed(http: httpx.AsyncClient, run_id: str) -> bool:
    return run_id in await _listed(http)


async def _listed(http: httpx.AsyncClient) -> set[str]:
    response = await http.get("/v1/orchestrations", params={"limit": 100})
    assert response.status_code == 200, response.text
    return {run["id"] for run in response.json()["data"]}


def _servers(call_log: CallLog) -> dict[str, Any]:
    return {"toolbox": toolbox_stdio(call_log, tools_to_auto_execute=["echo"])}


async def test_missing_or_wrong_key_is_401_and_a_missing_role_is_403(api_stack: APIFactory, call_log: CallLog) -> None:
    async with api_stack(_servers(call_log), api_keys=keys_json()) as api:
        missing = await api.http.get("/v1/orchestrations")
        assert missing.status_code == 401
        assert missing.json()["error"]["message"] == "missing API key: send `Authorization: Bearer <key>`"
        wrong = await api.http.get("/v1/orchestrations", headers={"Authorization": "Bearer orch_guess"})
        assert wrong.status_code == 401 and wrong.json()["error"]["message"] == "invalid API key"
        basic = await api.http.get("/v1/orchestrations", headers={"Authorization": "Basic YWxpY2U6eA=="})
        assert basic.status_code == 401
        no_role = await api.http.post("/v1/orchestrations", json={"input": "hi"}, headers=auth("carol"))
        assert no_role.status_code == 403
        assert no_role.json()["error"] == {"code": "forbidden", "message": "API key 'carol' lacks the 'run' role"}
        codec = await api.http.post("/codec/decode", json={"payloads": []}, headers=auth("alice"))
        assert codec.status_code == 403 and "'admin' role" in codec.json()["error"]["message"]
        # admin passes auth; the codec itself is off in this stack
        assert (await api.http.post("/codec/decode", json={"payloads": []}, headers=auth("root"))).status_code == 404
        # probes and docs stay open
        assert (await api.http.get("/healthz")).status_code == 200
        assert (await api.http.get("/openapi.json")).status_code == 200


async def test_run_keys_see_their_own_runs_and_the_approver_is_the_key(
    api_stack: APIFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script(
        "m-auth",
        Reply(tool_calls=[tool_call("t1", "toolbox__transfer", {"account": "acme", "amount": 5})]),
        Reply(content="paid"),
    )
    async with (
        api_stack(_servers(call_log), api_keys=keys_json()) as api,
        as_key(api, "alice") as alice,
        as_key(api, "bob") as bob,
        as_key(api, "carol") as carol,
        as_key(api, "root") as root,
    ):
        created = await alice.post("/v1/orchestrations", json={"input": "pay acme", "model": "m-auth"})
        assert created.status_code == 202, created.text
        run_id = created.json()["id"]
        waiting = await _wait(alice, run_id, "waiting_for_approval")
        assert waiting["owner"] == "alice"

        # bob (run) cannot see, list, decide or cancel alice's run
        assert (await bob.get(f"/v1/orchestrations/{run_id}")).status_code == 404
        assert (await bob.post(f"/v1/orchestrations/{run_id}/cancel")).status_code == 404
        forbidden = await bob.post(
            f"/v1/orchestrations/{run_id}/approvals", json={"tool_call_id": "t1", "decision": "approve"}
        )
        assert forbidden.status_code == 403 and "'approve' role" in forbidden.json()["error"]["message"]
        await eventually(lambda: _is_listed(alice, run_id), "visibility lists alice's run", interval=0.2)
        assert run_id not in await _listed(bob)
        assert run_id in await _listed(carol) and run_id in await _listed(root)

        # carol (approve) reads and decides, but cannot cancel; her key's name is the approver
        assert (await carol.post(f"/v1/orchestrations/{run_id}/cancel")).status_code == 403
        decided = await carol.post(
            f"/v1/orchestrations/{run_id}/approvals",
            json={"tool_call_id": "t1", "decision": "approve", "approver": "mallory", "reason": "invoice 42"},
        )
        assert decided.status_code == 200, decided.text
        final = await _wait(alice, run_id, "completed")
    tool_step = next(step for step in final["steps"] if step["kind"] == "tool")
    assert tool_step["approver"] == "carol" and tool_step["reason"] == "invoice 42"
    assert len(call_log.calls("transfer")) == 1


async def test_idempotency_keys_are_per_api_key(api_stack: APIFactory, llm: ScriptedLLM, call_log: CallLog) -> None:
    llm.script("m-idem-auth", Reply(content="hi"), Reply(content="hi"))
    async with (
        api_stack(_servers(call_log), api_keys=keys_json()) as api,
        as_key(api, "alice") as alice,
        as_key(api, "bob") as bob,
    ):
        body = {"input": "hello", "model": "m-idem-auth"}
        first = await alice.post("/v1/orchestrations", json=body, headers={"Idempotency-Key": "same"})
        second = await bob.post("/v1/orchestrations", json=body, headers={"Idempotency-Key": "same"})
        assert first.status_code == second.status_code == 202
        assert first.json()["id"] != second.json()["id"]
        again = await alice.post("/v1/orchestrations", json=body, headers={"Idempotency-Key": "same"})
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"]


async def test_a_scoped_key_is_never_offered_tools_outside_its_scope(
    api_stack: APIFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script(
        "m-scope",
        Reply(tool_calls=[tool_call("t1", "toolbox__transfer", {"account": "acme", "amount": 5})]),
        Reply(content="could not pay"),
    )
    servers = {**_servers(call_log), "other": toolbox_stdio(call_log)}
    async with api_stack(servers, api_keys=keys_json()) as api, as_key(api, "echoer") as echoer:
        outside = await echoer.post("/v1/orchestrations", json={"input": "x", "mcp_servers": ["other"]})
        assert outside.status_code == 403
        assert outside.json()["error"]["message"] == "API key 'echoer' may not use MCP servers ['other']"

        tools = (await echoer.get("/v1/tools")).json()["servers"]
        assert [(s["name"], [t["name"] for t in s["tools"]]) for s in tools] == [("toolbox", ["echo"])]

        created = await echoer.post("/v1/orchestrations", json={"input": "pay acme", "model": "m-scope"})
        assert created.status_code == 202, created.text
        final = await _wait(echoer, created.json()["id"], "completed")
    offered = [tool["function"]["name"] for tool in llm.requests_for("m-scope")[0]["tools"]]
    assert offered == ["toolbox__echo"]
    # The model asked for a tool it was never offered: refused, never run, the model told why.
    tool_step = next(step for step in final["steps"] if step["kind"] == "tool")
    assert tool_step["status"] != "completed"
    assert call_log.calls("transfer") == []


async def test_without_keys_only_loopback_is_served() -> None:
    """In process over ASGI: the request's server address decides (no socket is bound)."""
    app = create_app(Settings(), TemporalConnection.plain("127.0.0.1:1"))
    for host, expected in (("10.1.2.3", 403), ("127.0.0.1", 200)):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as http:
            response = await http.get("/v1/tools" if expected == 403 else "/healthz")
        assert response.status_code == expected, response.text
        if expected == 403:
            assert "no API keys are configured (ORCH_API_KEYS)" in response.json()["error"]["message"]


async def test_python_m_api_refuses_a_public_bind_without_keys_and_bad_key_files(tmp_path: Path) -> None:
    bad = tmp_path / "keys.json"
    bad.write_text('{"keys": [{"name": "x", "sha256": "abc", "roles": ["run"]}]}')
    cases = {
        "refusing to listen on 0.0.0.0: no API keys are configured": {"ORCH_API_HOST": "0.0.0.0"},
        f"ORCH_API_KEYS file {bad}: keys.0.sha256: String should match pattern": {"ORCH_API_KEYS": str(bad)},
        "ORCH_API_KEYS file /nonexistent/keys.json: cannot read it": {"ORCH_API_KEYS": "/nonexistent/keys.json"},
        "ORCH_API_KEYS: not JSON": {"ORCH_API_KEYS": "{nope"},
    }
    for expected, env in cases.items():
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "api", cwd=REPO_ROOT, env=dict(os.environ, ORCH_API_PORT=str(free_port()), **env),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, stderr = await asyncio.wait_for(proc.communicate(), WAIT_SECONDS)
        lines = stderr.decode().strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and expected in lines[0], (env, lines)


def test_orch_keys_new_makes_a_key_that_authenticates(capsys: pytest.CaptureFixture[str]) -> None:
    assert orch(["keys", "new", "deploy-bot", "--role", "run", "--scope", "time", "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["key"].startswith("orch_") and made["key"] not in json.dumps(made["entry"])
    ring = load_api_keys(json.dumps({"keys": [made["entry"]]}))
    assert ring is not None
    found = ring.authenticate(made["key"])
    assert found is not None and found.name == "deploy-bot" and found.mcp_scopes == ["time"]
    assert ring.authenticate(made["key"] + "x") is None
    with pytest.raises(APIKeysError, match="key names must be unique"):
        load_api_keys(json.dumps({"keys": [made["entry"], made["entry"]]}))


async def test_orch_cli_sends_its_api_key(api_stack: APIFactory, call_log: CallLog) -> None:
    async with api_stack(_servers(call_log), api_keys=keys_json()) as api:
        for key, expected in ((KEYS["alice"][0], 0), ("orch_wrong", 1)):
            code, _, stderr = await run_orch("list", "--api-url", api.base_url, ORCH_API_KEY=key)
            assert code == expected, stderr
            if expected:
                assert stderr.strip() == "orch: 401: invalid API key"
