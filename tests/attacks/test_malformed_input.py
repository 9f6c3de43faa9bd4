"""Attack: crash the API with input no client would send (each used to be a 500 with a traceback).

A 400-digit `webhook-timestamp` (no credentials needed), JSON nested ~900 levels in a prompt
or in edited arguments, and codec payloads with empty data or a key id that is not UTF-8.
Each must be a 4xx that says what is wrong.
"""

from __future__ import annotations

import base64
import json
import os

import pytest

from tests.api.conftest import APIFactory, serve_api
from tests.conftest import CallLog, toolbox_stdio
from tests.scripted_llm import Reply, ScriptedLLM, tool_call
from tests.waiting import eventually
from worker.codec import ENCODING, KEY_ID
from worker.settings import Settings


def _nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"a": value}
    return value


async def test_malformed_requests_are_4xx_with_a_message(api_stack: APIFactory) -> None:
    async with api_stack() as api:
        hook = await api.http.post(
            "/v1/webhooks/approvals",
            json={"orchestration_id": "orch-x", "tool_call_id": "t", "decision": "approve"},
            headers={"webhook-id": "msg_1", "webhook-timestamp": "9" * 400, "webhook-signature": "v1,AAAA"},
        )
        assert hook.status_code == 401 and "Unix time" in hook.json()["error"]["message"], hook.text
        deep_prompt = {"messages": [{"role": "user", "content": [{"type": "text", "text": "x", "x": _nested(900)}]}]}
        deep_edit = {"tool_call_id": "t", "decision": "approve", "arguments": _nested(900)}
        for path, body in (
            ("/v1/orchestrations", deep_prompt),
            ("/v1/orchestrations/orch-x/approvals", deep_edit),
            ("/v1/chat/completions", {"model": "m", **deep_prompt}),
        ):
            answer = await api.http.post(path, content=json.dumps(body), headers={"content-type": "application/json"})
            assert answer.status_code == 400 and answer.json()["error"]["code"] == "json_too_deep", (path, answer.text)
        fine = await api.http.post("/v1/orchestrations", json={"input": "x", "metadata": {"k": "v"}, "model": "m-ok"})
        assert fine.status_code == 202, "ordinary nesting is untouched"


async def test_codec_payloads_that_are_not_ours_are_422(temporal_env) -> None:
    key = f"k1:{base64.b64encode(os.urandom(32)).decode()}"
    settings = Settings(encryption_key=key)
    target = temporal_env.client.service_client.config.target_host

    def payload(key_id: bytes, data: bytes) -> dict:
        metadata = {"encoding": ENCODING, KEY_ID: key_id}
        return {
            "metadata": {name: base64.b64encode(value).decode() for name, value in metadata.items()},
            "data": base64.b64encode(data).decode(),
        }

    async with serve_api(settings, temporal=target) as (http, _):
        for bad, code in ((payload(b"k1", b""), "undecryptable"), (payload(b"\xff\xfe", b"x" * 40), "unknown_key")):
            answer = await http.post("/codec/decode", json={"payloads": [bad]})
            assert answer.status_code == 422 and answer.json()["error"]["code"] == code, answer.text


async def test_a_client_leaving_an_event_stream_closes_it_cleanly(
    api_stack: APIFactory, llm: ScriptedLLM, call_log: CallLog, caplog: pytest.LogCaptureFixture
) -> None:
    llm.script("m-leave", Reply(tool_calls=[tool_call("t1", "toolbox__transfer", {"account": "a", "amount": 1})]))
    async with api_stack({"toolbox": toolbox_stdio(call_log)}) as api:
        run_id = (await api.http.post("/v1/orchestrations", json={"input": "x", "model": "m-leave"})).json()["id"]
        await api.wait_for(run_id, lambda s: bool(s["pending_approvals"]))
        for _ in range(3):
            async with api.http.stream("GET", f"/v1/orchestrations/{run_id}/events") as stream:
                async for line in stream.aiter_lines():
                    if line == "event: tool_pending":
                        break  # and hang up while the stream waits for the run's next event
        hub = api.app.state.events
        await eventually(lambda: hub.watchers(run_id) == 0, "the left streams to be closed")
        await api.http.post(f"/v1/orchestrations/{run_id}/cancel")
    assert "already running" not in caplog.text
    assert "Traceback" not in caplog.text and "Exception" not in caplog.text
