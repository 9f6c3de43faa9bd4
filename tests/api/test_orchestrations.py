"""Start, poll, approve, list and cancel over HTTP against the real stack."""

from __future__ import annotations

import asyncio

from tests.api.conftest import APIFactory
from tests.conftest import CallLog, toolbox_stdio
from tests.scripted_llm import Reply, ScriptedLLM, tool_call
from tests.waiting import eventually


def _servers(call_log: CallLog) -> dict:
    return {"toolbox": toolbox_stdio(call_log, tools_to_auto_execute=["echo"])}


def _pay(model: str) -> tuple[Reply, Reply]:
    return (
        Reply(tool_calls=[tool_call("t1", "toolbox__transfer", {"account": "acme", "amount": 5})]),
        Reply(content="paid"),
    )


async def test_start_wait_approve_complete(api_stack: APIFactory, llm: ScriptedLLM, call_log: CallLog) -> None:
    llm.script("m-api", *_pay("m-api"))
    async with api_stack(_servers(call_log)) as api:
        created = await api.http.post(
            "/v1/orchestrations", json={"input": "pay acme", "model": "m-api", "metadata": {"team": "ops"}}
        )
        assert created.status_code == 202, created.text
        body = created.json()
        run_id = body["id"]
        assert run_id.startswith("orch-") and len(run_id) == 5 + 32
        assert created.headers["location"] == f"/v1/orchestrations/{run_id}"
        assert body["status"] == "running"
        assert body["links"] == {
            "self": f"/v1/orchestrations/{run_id}",
            "approvals": f"/v1/orchestrations/{run_id}/approvals",
            "inputs": f"/v1/orchestrations/{run_id}/inputs",
            "temporal_ui": f"http://127.0.0.1:8233/namespaces/default/workflows/{run_id}",
        }
        waiting = await api.wait_for(run_id, lambda s: s["status"] == "waiting_for_approval")
        [pending] = waiting["pending_approvals"]
        assert pending["tool"] == "transfer" and pending["arguments"] == {"account": "acme", "amount": 5}
        assert waiting["metadata"] == {"team": "ops"}
        decided = await api.http.post(
            f"/v1/orchestrations/{run_id}/approvals",
            json={"tool_call_id": "t1", "decision": "approve", "approver": "alice"},
        )
        assert decided.status_code == 200, decided.text
        assert decided.json()["pending_approvals"] == []
        final = await api.wait_for(run_id, lambda s: s["status"] == "completed")
    assert final["output"] == "paid" and final["stop_reason"] == "final_answer"
    tool_step = next(s for s in final["steps"] if s["kind"] == "tool")
    assert tool_step["approver"] == "alice" and tool_step["status"] == "completed"
    assert set(final) >= {
        "id",
        "status",
        "stop_reason",
        "model",
        "step",
        "max_steps",
        "pending_approvals",
        "steps",
        "output",
        "error",
        "usage",
        "created_at",
        "updated_at",
        "metadata",
    }
    assert len(call_log.calls("transfer")) == 1


async def test_approval_errors(api_stack: APIFactory, llm: ScriptedLLM, call_log: CallLog) -> None:
    llm.script(
        "m-api-err",
        Reply(tool_calls=[tool_call("t1", "toolbox__transfer", {"account": "acme", "amount": 5})]),
        # A second gated call keeps the run open while t1's second decision arrives.
        Reply(tool_calls=[tool_call("t2", "toolbox__transfer", {"account": "acme", "amount": 6})]),
        Reply(content="nothing paid"),
    )
    async with api_stack(_servers(call_log)) as api:
        run_id = (await api.http.post("/v1/orchestrations", json={"input": "pay", "model": "m-api-err"})).json()["id"]
        await api.wait_for(run_id, lambda s: s["status"] == "waiting_for_approval")
        approvals = f"/v1/orchestrations/{run_id}/approvals"

        unknown = await api.http.post(approvals, json={"tool_call_id": "nope", "decision": "approve"})
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_tool_call"
        mismatch = await api.http.post(
            approvals, json={"tool_call_id": "t1", "decision": "approve", "approval_hash": "f" * 64}
        )
        assert mismatch.status_code == 409 and mismatch.json()["error"]["code"] == "approval_mismatch"
        bad = await api.http.post(approvals, json={"tool_call_id": "t1", "decision": "maybe"})
        assert bad.status_code == 422 and "decision" in bad.json()["error"]["message"]
        assert (await api.http.post(approvals, json={"tool_call_id": "t1", "decision": "deny"})).status_code == 200
        again = await api.http.post(approvals, json={"tool_call_id": "t1", "decision": "approve"})
        assert again.status_code == 409 and again.json()["error"]["code"] == "already_decided"
        await api.wait_for(run_id, lambda s: [p["tool_call_id"] for p in s["pending_approvals"]] == ["t2"])
        assert (await api.http.post(approvals, json={"tool_call_id": "t2", "decision": "deny"})).status_code == 200
        await api.wait_for(run_id, lambda s: s["status"] == "completed")
        finished = await api.http.post(approvals, json={"tool_call_id": "t1", "decision": "approve"})
        assert finished.status_code == 409 and finished.json()["error"]["code"] == "run_finished"
        missing = await api.http.post(
            "/v1/orchestrations/orch-nope/approvals", json={"tool_call_id": "t1", "decision": "approve"}
        )
        assert missing.status_code == 404
    assert call_log.calls("transfer") == []


async def test_request_errors_have_one_shape(api_stack: APIFactory) -> None:
    async with api_stack() as api:
        cases = [
            (await api.http.get("/v1/orchestrations/orch-unknown"), 404, "not_found"),
            (
                await api.http.post(
                    "/v1/orchestrations", content=b"{not json", headers={"content-type": "application/json"}
                ),
                400,
                "invalid_json",
            ),
            (await api.http.post("/v1/orchestrations", json={"input": "x", "max_step": 3}), 422, "invalid_request"),
            (await api.http.post("/v1/orchestrations", json={"model": "m"}), 422, "invalid_request"),
            (await api.http.post("/v1/orchestrations", json={"input": "x", "max_steps": 0}), 422, "invalid_request"),
            (
                await api.http.post("/v1/orchestrations", json={"input": "x", "webhook_url": "ftp://x"}),
                422,
                "invalid_request",
            ),
            (await api.http.get("/v1/orchestrations", params={"status": "sleeping"}), 422, "invalid_request"),
            (await api.http.get("/v1/orchestrations", params={"page_token": "!!!"}), 400, "bad_page_token"),
            (await api.http.post("/v1/orchestrations/orch-unknown/cancel"), 404, "not_found"),
            (await api.http.get("/v1/nothing-here"), 404, "not_found"),
        ]
        for response, status, code in cases:
            assert response.status_code == status, (response.request.url, response.text)
            assert response.json()["error"]["code"] == code, response.text
            assert response.json()["error"]["message"]
    typo = cases[2][0].json()["error"]["message"]
    assert "max_step" in typo, "unknown fields are named, so typos show"


async def test_idempotency_key(api_stack: APIFactory, llm: ScriptedLLM) -> None:
    llm.script("m-idem", Reply(content="one"))
    async with api_stack() as api:
        body = {"input": "hello", "model": "m-idem"}
        headers = {"Idempotency-Key": "order-42"}
        first, second = await asyncio.gather(
            api.http.post("/v1/orchestrations", json=body, headers=headers),
            api.http.post("/v1/orchestrations", json=body, headers=headers),
        )
        assert sorted([first.status_code, second.status_code]) == [200, 202], (first.text, second.text)
        assert first.json()["id"] == second.json()["id"]
        await api.wait_for(first.json()["id"], lambda s: s["status"] == "completed")
        later = await api.http.post("/v1/orchestrations", json=body, headers=headers)
        assert later.status_code == 200 and later.json()["id"] == first.json()["id"]
        assert later.json()["status"] == "completed"
        other = await api.http.post("/v1/orchestrations", json={"input": "different"}, headers=headers)
        assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
    assert len(llm.requests_for("m-idem")) == 1, "one run, one LLM call"


async def test_list_filters_by_status_and_paginates(api_stack: APIFactory, llm: ScriptedLLM, call_log: CallLog) -> None:
    llm.script("m-list-wait", *_pay("m-list-wait"))
    async with api_stack(_servers(call_log)) as api:
        waiting_id = (await api.http.post("/v1/orchestrations", json={"input": "pay", "model": "m-list-wait"})).json()[
            "id"
        ]
        done_ids = [
            (await api.http.post("/v1/orchestrations", json={"input": f"hi {i}", "model": "m-list-done"})).json()["id"]
            for i in range(3)
        ]
        await api.wait_for(waiting_id, lambda s: s["status"] == "waiting_for_approval")
        for run_id in done_ids:
            await api.wait_for(run_id, lambda s: s["status"] == "completed")

        async def listed(status: str) -> set[str]:
            seen: set[str] = set()
            token = None
            for _ in range(50):
                params = {"status": status, "limit": 2} | ({"page_token": token} if token else {})
                page = await api.http.get("/v1/orchestrations", params=params)
                assert page.status_code == 200, page.text
                assert len(page.json()["data"]) <= 2
                assert all(item["status"] == status for item in page.json()["data"])
                seen |= {item["id"] for item in page.json()["data"]}
                token = page.json()["next_page_token"]
                if not token:
                    return seen
            raise AssertionError("pagination did not end")

        async def all_listed() -> tuple[set[str], set[str]] | None:  # visibility is eventually consistent
            waiting, completed = await listed("waiting_for_approval"), await listed("completed")
            return (waiting, completed) if waiting_id in waiting and set(done_ids) <= completed else None

        waiting, completed = await eventually(all_listed, "visibility lists every run", interval=0.2)
        assert waiting_id not in completed
        assert set(done_ids) <= completed and not set(done_ids) & waiting


async def test_cancel_is_accepted_and_idempotent(api_stack: APIFactory, llm: ScriptedLLM, call_log: CallLog) -> None:
    llm.script("m-api-cancel", *_pay("m-api-cancel"))
    async with api_stack(_servers(call_log)) as api:
        run_id = (await api.http.post("/v1/orchestrations", json={"input": "pay", "model": "m-api-cancel"})).json()[
            "id"
        ]
        await api.wait_for(run_id, lambda s: s["status"] == "waiting_for_approval")
        first = await api.http.post(f"/v1/orchestrations/{run_id}/cancel")
        assert first.status_code == 202 and first.json()["id"] == run_id
        final = await api.wait_for(run_id, lambda s: s["status"] == "cancelled")
        again = await api.http.post(f"/v1/orchestrations/{run_id}/cancel")
        assert again.status_code == 202 and again.json()["status"] == "cancelled"
    assert final["stop_reason"] == "cancelled"
