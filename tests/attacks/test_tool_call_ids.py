"""Attack: make a decision meant for one tool call apply to another.

An endpoint that omits tool-call ids (or numbers them per reply) used to leave two calls of
one run with the same id (`call_0` in step 1 and in step 2), so a late approval of the
first, harmless call approved the second one. And `orch` sends the `approval_hash` of the
call it showed, so a decision never lands on a call the person did not see.
"""

from __future__ import annotations

import json
from typing import Any

from tests.api.conftest import APIFactory
from tests.conftest import CallLog, toolbox_stdio
from tests.orch_cli import run_orch
from tests.scripted_llm import Reply, ScriptedLLM, tool_call


def _without_id(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


async def test_a_late_decision_for_an_earlier_call_never_applies_to_a_later_one(
    api_stack: APIFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script(
        "m-no-ids",
        Reply(tool_calls=[_without_id("toolbox__transfer", {"account": "alice", "amount": 500})]),
        Reply(tool_calls=[_without_id("toolbox__transfer", {"account": "mallory", "amount": 100000})]),
        Reply(content="done"),
    )
    async with api_stack({"toolbox": toolbox_stdio(call_log)}) as api:
        run_id = (await api.http.post("/v1/orchestrations", json={"input": "pay", "model": "m-no-ids"})).json()["id"]
        approvals = f"/v1/orchestrations/{run_id}/approvals"
        first = (await api.wait_for(run_id, lambda s: bool(s["pending_approvals"])))["pending_approvals"][0]
        assert first["arguments"]["account"] == "alice"
        denied = {"tool_call_id": first["tool_call_id"], "decision": "deny", "approver": "bob"}
        assert (await api.http.post(approvals, json=denied)).status_code == 200
        waiting = await api.wait_for(
            run_id, lambda s: any(p["arguments"]["account"] == "mallory" for p in s["pending_approvals"])
        )
        [second] = waiting["pending_approvals"]
        assert second["tool_call_id"] != first["tool_call_id"]
        # Alice approves what she saw earlier (500 to alice), too late.
        late = await api.http.post(approvals, json={"tool_call_id": first["tool_call_id"], "decision": "approve"})
        assert late.status_code == 409 and late.json()["error"]["code"] == "already_decided"
        still = await api.wait_for(run_id, lambda s: s["status"] == "waiting_for_approval")
        assert [p["tool_call_id"] for p in still["pending_approvals"]] == [second["tool_call_id"]]
        deny = {"tool_call_id": second["tool_call_id"], "decision": "deny"}
        assert (await api.http.post(approvals, json=deny)).status_code == 200
        final = await api.wait_for(run_id, lambda s: s["status"] == "completed")
    assert call_log.calls("transfer") == []
    ids = [s["tool_call_id"] for s in final["steps"] if s["kind"] == "tool"]
    assert len(set(ids)) == 2
    shown = llm.requests_for("m-no-ids")[2]["messages"]
    assert [m["tool_call_id"] for m in shown if m["role"] == "tool"] == ids, "the model sees the ids the run uses"
    assert [c["id"] for m in shown if m.get("tool_calls") for c in m["tool_calls"]] == ids


async def test_orch_decides_only_the_call_it_showed(api_stack: APIFactory, llm: ScriptedLLM, call_log: CallLog) -> None:
    llm.script(
        "m-cli-hash",
        Reply(tool_calls=[tool_call("t1", "toolbox__transfer", {"account": "acme", "amount": 5})]),
        Reply(content="paid"),
    )
    async with api_stack({"toolbox": toolbox_stdio(call_log)}) as api:
        run_id = (await api.http.post("/v1/orchestrations", json={"input": "pay", "model": "m-cli-hash"})).json()["id"]
        [pending] = (await api.wait_for(run_id, lambda s: bool(s["pending_approvals"])))["pending_approvals"]
        code, shown, _ = await run_orch("status", run_id, "--api-url", api.base_url)
        assert f"orch approve {run_id} t1 --hash {pending['approval_hash']}" in shown
        code, _, err = await run_orch("approve", run_id, "t1", "--hash", "0" * 64, "--api-url", api.base_url)
        assert code == 1 and "409" in err and "approval_hash" in err, err
        # Without --hash, orch shows the call it decides and binds the decision to it.
        code, out, err = await run_orch("approve", run_id, "t1", "--api-url", api.base_url)
        assert code == 0, err
        assert out.splitlines()[0] == 'approve: toolbox.transfer {"account": "acme", "amount": 5}'
        final = await api.wait_for(run_id, lambda s: s["status"] == "completed")
    assert [c["arguments"] for c in call_log.calls("transfer")] == [{"account": "acme", "amount": 5}]
    assert final["output"] == "paid"
