"""Attack: forge the audit trail, or approvals, through the signed approval webhook.

A webhook used to record whatever `approver` its body claimed: an API key's name, a rule
(`rule:...`) or the timeout (`system`). And a receiver of the run notifications, which knows
the outbound signing secret, could sign approvals with it.
"""

from __future__ import annotations

import json

import pytest

from api.api_keys import APIKeysError, hash_key, load_api_keys
from tests.api.conftest import APIFactory, collect, signed
from tests.conftest import CallLog, toolbox_stdio
from tests.scripted_llm import Reply, ScriptedLLM, tool_call

INBOUND_SECRET = "whsec_aW5ib3VuZC1hcHByb3ZhbHMtb25seQ=="


def _transfers(*call_ids: str) -> Reply:
    return Reply(tool_calls=[tool_call(c, "toolbox__transfer", {"account": c, "amount": 1}) for c in call_ids])


async def test_a_webhook_approval_records_the_webhook_channel_whatever_it_claims(
    api_stack: APIFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script("m-audit", _transfers("as-key", "as-rule", "as-system", "unnamed"), Reply(content="done"))
    claims = {"as-key": "alice", "as-rule": "rule:small amounts", "as-system": "system", "unnamed": None}
    async with api_stack({"toolbox": toolbox_stdio(call_log)}) as api:
        run_id = (await api.http.post("/v1/orchestrations", json={"input": "pay", "model": "m-audit"})).json()["id"]
        await api.wait_for(run_id, lambda s: len(s["pending_approvals"]) == 4)
        for call_id, claimed in claims.items():
            body = {"orchestration_id": run_id, "tool_call_id": call_id, "decision": "approve", "approver": claimed}
            answer = await api.http.post("/v1/webhooks/approvals", **signed(body, f"msg_{call_id}"))
            assert answer.status_code == 200, answer.text
        final = await api.wait_for(run_id, lambda s: s["status"] == "completed")
        events = await collect(api.http, f"/v1/orchestrations/{run_id}/events")
    expected = {"as-key": "webhook/alice", "as-rule": "webhook/rule:small amounts", "as-system": "webhook/system"}
    expected["unnamed"] = "webhook/"
    recorded = {s["tool_call_id"]: s["approver"] for s in final["steps"] if s["kind"] == "tool"}
    assert recorded == expected
    approved = {
        e["data"]["tool_call_id"]: e["data"]["data"]["approver"] for e in events if e["event"] == "tool_approved"
    }
    assert approved == expected
    assert all(s["approved_by_rule"] is None for s in final["steps"] if s["kind"] == "tool")


async def test_a_claimed_approver_too_long_for_the_webhook_form_is_422(api_stack: APIFactory) -> None:
    """`webhook/` plus the longest approver a body may claim exceeds a decision's approver
    limit: a 422 that says so, not a 500 or a decision the worker would drop."""
    async with api_stack() as api:
        body = {"orchestration_id": "orch-x", "tool_call_id": "t1", "decision": "approve", "approver": "a" * 200}
        refused = await api.http.post("/v1/webhooks/approvals", **signed(body, "msg_long"))
    assert refused.status_code == 422, refused.text
    assert "webhook/" in refused.json()["error"]["message"]


async def test_inbound_approvals_need_the_inbound_secret_when_one_is_set(
    api_stack: APIFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script("m-inbound", _transfers("t1"), Reply(content="done"))
    async with api_stack({"toolbox": toolbox_stdio(call_log)}, webhook_inbound_secret=INBOUND_SECRET) as api:
        run_id = (await api.http.post("/v1/orchestrations", json={"input": "pay", "model": "m-inbound"})).json()["id"]
        await api.wait_for(run_id, lambda s: s["status"] == "waiting_for_approval")
        body = {"orchestration_id": run_id, "tool_call_id": "t1", "decision": "approve", "approver": "erp"}
        forged = await api.http.post("/v1/webhooks/approvals", **signed(body, "msg_1"))
        assert forged.status_code == 401, "the outbound (notification) secret signs no approvals: " + forged.text
        assert forged.json()["error"]["code"] == "bad_signature"
        assert (await api.http.get(f"/v1/orchestrations/{run_id}")).json()["status"] == "waiting_for_approval"
        genuine = await api.http.post("/v1/webhooks/approvals", **signed(body, "msg_2", secret=INBOUND_SECRET))
        assert genuine.status_code == 200, genuine.text
        final = await api.wait_for(run_id, lambda s: s["status"] == "completed")
    step = next(s for s in final["steps"] if s["kind"] == "tool")
    assert step["decision"] == "approve" and step["approver"] == "webhook/erp"
    assert len(call_log.calls("transfer")) == 1


def test_no_api_key_can_be_named_like_what_the_run_records_itself() -> None:
    for name in ("system", "rule:small-amounts"):
        entry = {"name": name, "sha256": hash_key("orch_x"), "roles": ["approve"]}
        with pytest.raises(APIKeysError, match="approval timeout and auto-approval rules"):
            load_api_keys(json.dumps({"keys": [entry]}))
