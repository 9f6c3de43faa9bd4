"""`${VAR}` placeholders are resolved only inside the worker, at connect time."""

from __future__ import annotations

import pytest

from tests.conftest import CallLog, WorkerFactory, toolbox_stdio
from tests.history_text import payload_texts
from tests.scripted_llm import Reply, ScriptedLLM, tool_call
from tests.waiting import result_of

SECRET_VALUE = "sk-live-0123456789-very-secret"


async def test_secret_reaches_the_server_but_never_the_history(
    run_worker: WorkerFactory, llm: ScriptedLLM, call_log: CallLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCH_TEST_TOOLBOX_SECRET", SECRET_VALUE)
    server = toolbox_stdio(call_log, tools_to_auto_execute=["*"])
    server["env"]["TOOLBOX_SECRET"] = "${ORCH_TEST_TOOLBOX_SECRET}"
    llm.script("m-secret", Reply(tool_calls=[tool_call("s", "toolbox__secret_fingerprint", {})]), Reply(content="ok"))
    async with run_worker({"toolbox": server}) as h:
        handle = await h.start({"input": "check", "model": "m-secret"})
        final = await result_of(handle)
        history = await handle.fetch_history()
    [step] = [s for s in final.steps if s.kind == "tool"]
    assert step.output_preview is not None and f"length {len(SECRET_VALUE)}" in step.output_preview
    texts = payload_texts(history)
    assert any("secret sha256 prefix" in text for text in texts), "payloads were decoded"
    assert not [text for text in texts if SECRET_VALUE in text]
    assert SECRET_VALUE not in history.to_json()
    assert SECRET_VALUE not in str(llm.requests)
