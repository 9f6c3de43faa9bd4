"""Attack: read credentials and plaintext out of what a run records.

A provider error that echoed the Authorization header reached the run's `error`, its events,
the logs and the history verbatim; with ORCH_ENCRYPTION_KEY set, failure messages were still
plaintext in history (only payloads were encrypted). Provider text is redacted now, and with
a key the failures are encoded too.
"""

from __future__ import annotations

import base64
import os

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from tests.api.conftest import APIFactory
from tests.conftest import WorkerFactory
from tests.history_text import payload_texts
from tests.scripted_llm import HTTPError, ScriptedLLM
from tests.waiting import eventually
from worker.plugin import OrchestrationPlugin

API_KEY = "sk-test-0123456789abcdef-LEAKME"


async def test_a_provider_error_echoing_the_key_is_redacted_everywhere(
    api_stack: APIFactory, llm: ScriptedLLM, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    echoed = f"Invalid request header Authorization: Bearer {API_KEY}; see https://llm.example/doc?key={API_KEY}"
    llm.script("m-echo", HTTPError(400, message=echoed))
    async with api_stack() as api:
        run_id = (await api.http.post("/v1/orchestrations", json={"input": "hi", "model": "m-echo"})).json()["id"]
        final = await api.wait_for(run_id, lambda s: s["status"] == "failed")
        events = (await api.http.get(f"/v1/orchestrations/{run_id}/events")).text
        history = await api.worker.client.get_workflow_handle(run_id).fetch_history()
    assert llm.headers[-1]["authorization"] == f"Bearer {API_KEY}", "the key was sent"
    assert "Authorization: Bearer [redacted]" in final["error"], final["error"]
    for where, text in (("error", final["error"]), ("events", events), ("history", history.to_json()),
                        ("payloads", "\n".join(payload_texts(history))), ("logs", caplog.text)):  # fmt: skip
        assert "LEAKME" not in text, where


async def test_with_a_key_failure_messages_are_not_plaintext_in_history(
    run_worker: WorkerFactory, llm: ScriptedLLM, temporal_env: WorkflowEnvironment
) -> None:
    key = f"k1:{base64.b64encode(os.urandom(32)).decode()}"
    target = temporal_env.client.service_client.config.target_host
    encrypted = await Client.connect(target, plugins=[OrchestrationPlugin(key)])
    llm.script("m-fail-crypt", HTTPError(400, message="provider-said-PLAINTEXT-77"))
    async with run_worker(env=WorkflowEnvironment.from_client(encrypted)) as h:
        handle = await h.start({"input": "hi", "model": "m-fail-crypt"})
        final = await eventually(lambda: _failed(handle), "the run to fail")
    assert "provider-said-PLAINTEXT-77" in final, "a client with the key reads the message"
    raw = await Client.connect(target, data_converter=pydantic_data_converter)
    history = (await raw.get_workflow_handle(handle.id).fetch_history()).to_json()
    assert "Encoded failure" in history
    assert "PLAINTEXT" not in history


async def _failed(handle) -> str | None:
    description = await handle.describe()
    if description.status is None or description.status.name != "FAILED":
        return None
    try:
        await handle.result()
    except Exception as err:  # WorkflowFailureError: its cause is the decoded failure
        return f"{err} {err.__cause__}"
    return None
