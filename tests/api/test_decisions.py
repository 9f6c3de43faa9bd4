"""Approvals with edited arguments, and several decisions in one request."""

from __future__ import annotations

import json

from tests.api.conftest import APIFactory
from tests.conftest import CallLog, toolbox_stdio
from tests.scripted_llm import Reply, ScriptedLLM, tool_call


def _servers(call_log: CallLog) -> dict:
    return {"toolbox": toolbox_stdio(call_log, tools_to_auto_execute=["echo"])}


async def test_an_approval_with_edited_arguments_runs_them_and_the_model_sees_them(
    api_stack: APIFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script(
        "m-edit",
        Reply(tool_calls=[tool_call("t1", "toolbox__transfer", {"account": "acme", "amount": 500})]),
        Reply(content="paid"),
    )
    async with api_stack(_servers(call_log)) as api:
        run_id = (await api.http.post("/v1/orchestrations", json={"input": "pay", "model": "m-edit"})).json()["id"]
        waiting = await api.wait_for(run_id, lambda s: s["status"] == "waiting_for_approval")
        assert waiting["pending_approvals"][0]["input_schema"]["required"] == ["account", "amount"]
        approvals = f"/v1/orchestrations/{run_id}/approvals"
        for bad, why in [
            ({"account": "acme"}, "amount"),  # a required property missing
            ({"account": "acme", "amount": "lots"}, "amount: 'lots' is not of type 'number'"),
        ]:
            refused = await api.http.post(
                approvals, json={"tool_call_id": "t1", "decision": "approve", "arguments": bad}
            )
            assert refused.status_code == 422, refused.text
            assert refused.json()["error"]["code"] == "invalid_decision" and why in refused.json()["error"]["message"]
        deny_edit = {"tool_call_id": "t1", "decision": "deny", "arguments": {"account": "acme", "amount": 1}}
        assert (await api.http.post(approvals, json=deny_edit)).status_code == 422
        edited = {
            "tool_call_id": "t1",
            "decision": "approve",
            "approver": "bob",
            "arguments": {"account": "acme", "amount": 50},
        }
        assert (await api.http.post(approvals, json=edited)).status_code == 200
        final = await api.wait_for(run_id, lambda s: s["status"] == "completed")
    assert [call["arguments"] for call in call_log.calls("transfer")] == [{"account": "acme", "amount": 50}]
    step = next(s for s in final["steps"] if s["kind"] == "tool")
    assert step["arguments"] == {"account": "acme", "amount": 50}
    assert step["original_arguments"] == {"account": "acme", "amount": 500}
    assert step["decision"] == "approve" and step["approver"] == "bob"
    seen = llm.requests_for("m-edit")[1]["messages"]
    asked = seen[-2]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(asked) == {"account": "acme", "amount": 50}, "the model is shown the arguments used"
    assert seen[-1]["content"].startswith("(Approved with edited arguments") and "transferred 50" in seen[-1]["content"]


async def test_a_batch_of_decisions_applies_all_or_none(
    api_stack: APIFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script(
        "m-batch",
        Reply(
            tool_calls=[
                tool_call("t1", "toolbox__transfer", {"account": "a", "amount": 1}),
                tool_call("t2", "toolbox__transfer", {"account": "b", "amount": 2}),
                tool_call("t3", "toolbox__transfer", {"account": "c", "amount": 3}),
            ]
        ),
        Reply(content="done"),
    )
    async with api_stack(_servers(call_log)) as api:
        run_id = (await api.http.post("/v1/orchestrations", json={"input": "pay", "model": "m-batch"})).json()["id"]
        await api.wait_for(run_id, lambda s: len(s["pending_approvals"]) == 3)
        batch = f"/v1/orchestrations/{run_id}/approvals/batch"
        unknown = await api.http.post(
            batch,
            json={
                "decisions": [{"tool_call_id": "t1", "decision": "approve"}, {"tool_call_id": "t9", "decision": "deny"}]
            },
        )
        assert unknown.status_code == 404 and "'t9'" in unknown.json()["error"]["message"]
        twice = await api.http.post(
            batch,
            json={
                "decisions": [{"tool_call_id": "t1", "decision": "approve"}, {"tool_call_id": "t1", "decision": "deny"}]
            },
        )
        assert twice.status_code == 422 and twice.json()["error"]["code"] == "invalid_decision"
        assert (await api.http.post(batch, json={"decisions": []})).status_code == 422
        still = (await api.http.get(f"/v1/orchestrations/{run_id}")).json()
        assert len(still["pending_approvals"]) == 3, "a refused batch changes nothing"
        decided = await api.http.post(
            batch,
            json={
                "decisions": [
                    {"tool_call_id": "t1", "decision": "approve"},
                    {"tool_call_id": "t2", "decision": "deny", "reason": "not this one"},
                    {"tool_call_id": "t3", "decision": "approve", "arguments": {"account": "c", "amount": 0.5}},
                ]
            },
        )
        assert decided.status_code == 200, decided.text
        assert decided.json()["pending_approvals"] == []
        final = await api.wait_for(run_id, lambda s: s["status"] == "completed")
    assert sorted(c["arguments"]["amount"] for c in call_log.calls("transfer")) == [0.5, 1]
    assert [s["decision"] for s in final["steps"] if s["kind"] == "tool"] == ["approve", "deny", "approve"]


async def test_the_answer_to_a_decision_shows_it_applied(
    api_stack: APIFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script(
        "m-answer",
        Reply(
            tool_calls=[
                tool_call("t1", "toolbox__transfer", {"account": "acme", "amount": 5}),
                tool_call("t2", "toolbox__transfer", {"account": "mallory", "amount": 9}),
            ]
        ),
        Reply(content="done"),
    )
    async with api_stack(_servers(call_log)) as api:
        run_id = (await api.http.post("/v1/orchestrations", json={"input": "pay", "model": "m-answer"})).json()["id"]
        await api.wait_for(run_id, lambda s: len(s["pending_approvals"]) == 2)
        approvals = f"/v1/orchestrations/{run_id}/approvals"
        approve = {"tool_call_id": "t1", "decision": "approve", "approver": "alice", "reason": "known payee"}
        first = (await api.http.post(approvals, json=approve)).json()
        assert first["status"] == "waiting_for_approval", "t2 still waits"
        assert [p["tool_call_id"] for p in first["pending_approvals"]] == ["t2"]
        step = next(s for s in first["steps"] if s.get("tool_call_id") == "t1")
        assert (step["decision"], step["approver"], step["reason"]) == ("approve", "alice", "known payee")
        assert step["decided_at"] is not None and step["status"] in ("running", "completed")
        deny = {"tool_call_id": "t2", "decision": "deny", "approver": "alice", "reason": "unknown payee"}
        second = (await api.http.post(approvals, json=deny)).json()
        assert second["status"] == "running" and second["pending_approvals"] == []
        step = next(s for s in second["steps"] if s.get("tool_call_id") == "t2")
        assert (step["decision"], step["status"], step["reason"]) == ("deny", "denied", "unknown payee")
        await api.wait_for(run_id, lambda s: s["status"] == "completed")
