"""Attack: wedge a run by making its state too large for Temporal.

A 1 MB approval `reason`, or a lot of `metadata` beside a large model answer, used to push the
final memo over Temporal's 2 MiB limit: the workflow task failed with PAYLOADS_TOO_LARGE
forever and the run stayed `running`. Every string a person or client puts into a run is
bounded now (422 at the API; a signal over a bound is dropped), the memo and the result are
shortened to fit, and a run whose conversation no longer fits in one payload fails with a
clear error instead of retrying forever. Each test drives a run to a limit.
"""

from __future__ import annotations

import json
from typing import Any

from tests.api.conftest import APIFactory
from tests.conftest import CallLog, toolbox_stdio
from tests.scripted_llm import Reply, ScriptedLLM, tool_call
from workflows.limits import (
    MAX_ARGUMENTS_BYTES,
    MAX_METADATA_ENTRIES,
    MAX_METADATA_KEY_CHARS,
    MAX_METADATA_VALUE_CHARS,
    MAX_NAME_CHARS,
    MAX_REASON_CHARS,
    PAYLOAD_BUDGET_BYTES,
)

TRANSFER = {"account": "acme", "amount": 5}


def _metadata(
    entries: int = MAX_METADATA_ENTRIES, key: int = MAX_METADATA_KEY_CHARS, value: int = MAX_METADATA_VALUE_CHARS
) -> dict[str, str]:
    return {f"{n:02d}".ljust(key, "k"): "v" * value for n in range(entries)}


def _refused(answer: Any, field: str) -> bool:
    return answer.status_code == 422 and field in answer.json()["error"]["message"]


async def test_strings_at_their_bounds_finish_a_run_and_over_them_are_refused(
    api_stack: APIFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    answer = "x" * 1_200_000  # with the metadata, more than the 2 MiB memo held whole
    llm.script("m-bounds", Reply(tool_calls=[tool_call("t1", "toolbox__transfer", TRANSFER)]), Reply(content=answer))
    async with api_stack({"toolbox": toolbox_stdio(call_log)}) as api:
        for metadata in (_metadata(entries=MAX_METADATA_ENTRIES + 1), _metadata(key=MAX_METADATA_KEY_CHARS + 1),
                         _metadata(value=MAX_METADATA_VALUE_CHARS + 1)):  # fmt: skip
            refused = await api.http.post("/v1/orchestrations", json={"input": "x", "model": "m", "metadata": metadata})
            assert _refused(refused, "metadata"), refused.text
        started = await api.http.post(
            "/v1/orchestrations", json={"input": "pay", "model": "m-bounds", "metadata": _metadata()}
        )
        assert started.status_code == 202, started.text
        run_id = started.json()["id"]
        [pending] = (await api.wait_for(run_id, lambda s: bool(s["pending_approvals"])))["pending_approvals"]
        approvals = f"/v1/orchestrations/{run_id}/approvals"
        call = {"tool_call_id": pending["tool_call_id"], "decision": "approve"}
        for over, field in (
            ({"reason": "r" * (MAX_REASON_CHARS + 1)}, "reason"),
            ({"approver": "a" * (MAX_NAME_CHARS + 1)}, "approver"),
            ({"arguments": {"account": "a" * MAX_ARGUMENTS_BYTES, "amount": 5}}, "arguments"),
        ):
            refused = await api.http.post(approvals, json=call | over)
            assert _refused(refused, field), refused.text
        long_id = {"tool_call_id": "c" * 129, "decision": "deny"}
        for path, body in ((approvals, long_id), (f"{approvals}/batch", {"decisions": [long_id]})):
            refused = await api.http.post(path, json=body)
            assert _refused(refused, "tool_call_id"), refused.text
        at_bounds = call | {"reason": "r" * MAX_REASON_CHARS, "approver": "a" * MAX_NAME_CHARS}
        assert (await api.http.post(approvals, json=at_bounds)).status_code == 200
        handle = api.worker.client.get_workflow_handle(run_id)
        await handle.result()  # closed: read from what it left
        memo = await (await handle.describe()).memo()
        assert memo["orchestration"]["shortened"] and len(json.dumps(memo)) < 2 * 1024 * 1024
        final = (await api.http.get(f"/v1/orchestrations/{run_id}")).json()
        events = (await api.http.get(f"/v1/orchestrations/{run_id}/events", params={"after": 0})).text
    assert final["status"] == "completed", final
    assert final["output"] == answer, "the finished run's status has the whole answer"
    assert final["metadata"] == _metadata()
    [step] = [s for s in final["steps"] if s["kind"] == "tool"]
    assert (step["status"], step["reason"], step["approver"]) == (
        "completed",
        "r" * MAX_REASON_CHARS,
        "a" * MAX_NAME_CHARS,
    )
    assert "event: completed" in events and len(events) < 2 * 1024 * 1024, "the final event carries a preview"
    assert len(call_log.calls("transfer")) == 1


async def test_a_signal_over_a_bound_is_dropped_and_the_run_still_ends(
    api_stack: APIFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script("m-signal", Reply(tool_calls=[tool_call("t1", "toolbox__transfer", TRANSFER)]), Reply(content="ok"))
    async with api_stack({"toolbox": toolbox_stdio(call_log)}) as api:
        run_id = (await api.http.post("/v1/orchestrations", json={"input": "pay", "model": "m-signal"})).json()["id"]
        [pending] = (await api.wait_for(run_id, lambda s: bool(s["pending_approvals"])))["pending_approvals"]
        # Straight to Temporal, as the web UI or `temporal workflow signal` would send it.
        handle = api.worker.client.get_workflow_handle(run_id)
        huge = {"tool_call_id": pending["tool_call_id"], "decision": "approve", "reason": "r" * 1_000_000}
        await handle.signal("submit_approval", huge)
        deny = {"tool_call_id": pending["tool_call_id"], "decision": "deny", "reason": "no"}
        assert (await api.http.post(f"/v1/orchestrations/{run_id}/approvals", json=deny)).status_code == 200
        final = await api.wait_for(run_id, lambda s: s["status"] not in ("running", "waiting_for_approval"))
    assert final["status"] == "completed", final
    [step] = [s for s in final["steps"] if s["kind"] == "tool"]
    assert (step["decision"], step["reason"]) == ("deny", "no"), "the oversized approval never applied"
    assert call_log.calls("transfer") == []


async def test_model_arguments_over_the_bound_go_back_to_the_model(
    api_stack: APIFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    oversized = {"text": "e" * MAX_ARGUMENTS_BYTES}
    llm.script(
        "m-big-args",
        Reply(tool_calls=[tool_call("t1", "toolbox__echo", oversized)]),
        Reply(content="understood"),
    )
    async with api_stack({"toolbox": toolbox_stdio(call_log, tools_to_auto_execute=["*"])}) as api:
        run_id = (await api.http.post("/v1/orchestrations", json={"input": "echo", "model": "m-big-args"})).json()["id"]
        final = await api.wait_for(run_id, lambda s: s["status"] == "completed")
    [step] = [s for s in final["steps"] if s["kind"] == "tool"]
    assert step["status"] == "error" and step["arguments"] == {}
    told = [m["content"] for m in llm.requests_for("m-big-args")[1]["messages"] if m["role"] == "tool"]
    size = MAX_ARGUMENTS_BYTES + len('{"text":""}')
    assert told == [f"error: arguments are {size} bytes; the limit is {MAX_ARGUMENTS_BYTES}; send smaller arguments"]
    assert call_log.calls("echo") == []


async def test_a_conversation_too_large_for_one_payload_fails_the_run_clearly(
    api_stack: APIFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    chatter = "y" * 800_000  # the model's own words are never elided from the conversation
    step = Reply(content=chatter, tool_calls=[tool_call("t", "toolbox__echo", {"text": "hi"})])
    llm.script("m-chatty", step, step, step, step, Reply(content="done"))
    async with api_stack({"toolbox": toolbox_stdio(call_log, tools_to_auto_execute=["*"])}) as api:
        started = await api.http.post(
            "/v1/orchestrations", json={"input": "talk", "model": "m-chatty", "context_budget_bytes": 1536 * 1024}
        )
        run_id = started.json()["id"]
        final = await api.wait_for(run_id, lambda s: s["status"] not in ("running", "waiting_for_approval"))
    assert final["status"] == "failed", final
    assert f"over the {PAYLOAD_BUDGET_BYTES} one LLM call can carry" in final["error"]
    assert len(llm.requests_for("m-chatty")) == 2, "the third call, too large to send, was never made"
