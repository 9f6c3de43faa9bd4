"""Payload encryption (ORCH_ENCRYPTION_KEY): history holds ciphertext; the codec endpoints
let the Temporal UI and CLI show it; keys rotate by id."""

from __future__ import annotations

import base64
import os

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from tests.api.conftest import serve_api
from tests.conftest import CallLog, WorkerFactory, toolbox_stdio
from tests.history_text import payload_texts
from tests.scripted_llm import Reply, ScriptedLLM, tool_call
from tests.waiting import result_of
from worker.codec import EncryptionCodec, EncryptionKeyError
from worker.plugin import OrchestrationPlugin
from worker.settings import Settings


def _key(kid: str) -> str:
    return f"{kid}:{base64.b64encode(os.urandom(32)).decode()}"


async def test_history_holds_no_plaintext_and_the_run_still_works(
    run_worker: WorkerFactory, llm: ScriptedLLM, call_log: CallLog, temporal_env: WorkflowEnvironment
) -> None:
    key = _key("k1")
    target = temporal_env.client.service_client.config.target_host
    encrypted = await Client.connect(target, plugins=[OrchestrationPlugin(key)])
    llm.script(
        "m-crypt",
        Reply(tool_calls=[tool_call("e", "toolbox__echo", {"text": "tool-output-PLAINTEXT-42"})]),
        Reply(content="answer-PLAINTEXT-43"),
    )
    server = toolbox_stdio(call_log, tools_to_auto_execute=["*"])
    async with run_worker({"toolbox": server}, env=WorkflowEnvironment.from_client(encrypted)) as h:
        handle = await h.start({"input": "prompt-PLAINTEXT-41", "model": "m-crypt"})
        final = await result_of(handle)
    assert final.output == "answer-PLAINTEXT-43"
    raw_client = await Client.connect(target, data_converter=pydantic_data_converter)
    raw = payload_texts(await raw_client.get_workflow_handle(handle.id).fetch_history())
    assert raw, "payloads were read"
    leaked = [text for text in raw if "PLAINTEXT" in text]
    assert not leaked, leaked[:2]

    # An operator with the key reads it through the API's codec endpoint (as the UI does).
    async with serve_api(Settings(encryption_key=key), temporal=target) as (http, _):
        history = await raw_client.get_workflow_handle(handle.id).fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes.input.payloads[0]
        body = {"payloads": [{"metadata": {k: base64.b64encode(v).decode() for k, v in started.metadata.items()},
                              "data": base64.b64encode(started.data).decode()}]}  # fmt: skip
        decoded = await http.post("/codec/decode", json=body)
        preflight = await http.options(
            "/codec/decode",
            headers={"Origin": "http://localhost:8233", "Access-Control-Request-Method": "POST",
                     "Access-Control-Request-Headers": "content-type,x-namespace"},
        )  # fmt: skip
    assert decoded.status_code == 200, decoded.text
    assert "prompt-PLAINTEXT-41" in base64.b64decode(decoded.json()["payloads"][0]["data"]).decode()
    assert preflight.headers["access-control-allow-origin"] == "http://localhost:8233"


async def test_keys_rotate_by_id() -> None:
    old, new = _key("2025"), _key("2026")
    plain = [Payload(metadata={"encoding": b"json/plain"}, data=b'{"x": 1}')]
    encrypted_with_old = await EncryptionCodec.from_setting(old).encode(plain)
    rotated = EncryptionCodec.from_setting(f"{new},{old}")
    assert await rotated.decode(encrypted_with_old) == plain
    fresh = await rotated.encode(plain)
    assert fresh[0].metadata["encryption-key-id"] == b"2026"
    with pytest.raises(EncryptionKeyError, match="2026"):
        await EncryptionCodec.from_setting(old).decode(fresh)


@pytest.mark.parametrize("value", ["nokid", "k:notbase64!", "k:" + base64.b64encode(b"short").decode()])
def test_malformed_keys_are_refused(value: str) -> None:
    with pytest.raises(EncryptionKeyError, match="kid:base64 of 32 bytes"):
        EncryptionCodec.from_setting(value)


async def test_codec_endpoints_answer_404_when_encryption_is_off(temporal_env: WorkflowEnvironment) -> None:
    target = temporal_env.client.service_client.config.target_host
    async with serve_api(Settings(), temporal=target) as (http, _):
        response = await http.post("/codec/encode", json={"payloads": []})
    assert response.status_code == 404 and "ORCH_ENCRYPTION_KEY" in response.json()["error"]["message"]
