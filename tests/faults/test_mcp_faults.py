"""Fault suite: MCP servers that die mid-call or hang.

Counted in the toolbox server's own log (each line carries the server's pid and the
call's `_meta`).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.conftest import CallLog, WorkerFactory, toolbox_stdio
from tests.scripted_llm import Reply, ScriptedLLM, tool_call
from tests.waiting import TOOL_TIMEOUT_SECONDS, eventually, result_of

pytestmark = pytest.mark.fault

IDEMPOTENCY_KEY = "io.github.durable-orchestrations/idempotency-key"


async def test_stdio_server_killed_mid_call_is_restarted_and_the_call_retried_once(
    run_worker: WorkerFactory, llm: ScriptedLLM, call_log: CallLog, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    llm.script(
        "m-mcp-killed",
        Reply(tool_calls=[tool_call("before", "toolbox__echo", {"text": "recorded"})]),
        Reply(tool_calls=[tool_call("cut", "toolbox__hold", {"gate": str(gate)})]),
        Reply(tool_calls=[tool_call("after", "toolbox__echo", {"text": "new server"})]),
        Reply(content="done"),
    )
    async with run_worker({"toolbox": toolbox_stdio(call_log, tools_to_auto_execute=["*"])}) as h:
        handle = await h.start({"input": "go", "model": "m-mcp-killed", "tool_timeout_seconds": 600})
        [first_attempt] = await eventually(lambda: call_log.calls("hold"), "the held call reached the toolbox")
        os.kill(first_attempt["pid"], signal.SIGKILL)
        gate.touch()  # the retry answers at once
        final = await result_of(handle)
    assert final.status == "completed" and final.output == "done"
    attempts = call_log.calls("hold")
    assert len(attempts) == 2, "the call cut off by the dead server ran again, once"
    assert attempts[0]["pid"] != attempts[1]["pid"], "on a fresh server process"
    assert {a["meta"][IDEMPOTENCY_KEY] for a in attempts} == {f"{handle.id}/cut"}
    echoes = call_log.calls("echo")
    assert [e["arguments"]["text"] for e in echoes] == ["recorded", "new server"], "recorded calls ran once each"
    assert echoes[1]["pid"] == attempts[1]["pid"], "the new server serves the calls after it"
    assert [s.status for s in final.steps if s.kind == "tool"] == ["completed"] * 3


async def test_hanging_server_times_out_to_the_model_and_the_pool_recovers(
    run_worker: WorkerFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script(
        "m-mcp-hang",
        Reply(tool_calls=[tool_call("hang", "toolbox__sleep", {"seconds": 600})]),
        Reply(tool_calls=[tool_call("next", "toolbox__echo", {"text": "still here"})]),
        Reply(content="recovered"),
    )
    async with run_worker({"toolbox": toolbox_stdio(call_log, tools_to_auto_execute=["*"])}) as h:
        # Long enough for any call but the hanging one to answer, even on a busy machine.
        handle = await h.start({"input": "go", "model": "m-mcp-hang", "tool_timeout_seconds": TOOL_TIMEOUT_SECONDS})
        final = await result_of(handle)
    tool_messages = [m for m in llm.requests_for("m-mcp-hang")[1]["messages"] if m["role"] == "tool"]
    assert tool_messages[-1]["content"] == f"error: tool toolbox.sleep timed out after {TOOL_TIMEOUT_SECONDS:g}s"
    assert final.status == "completed" and final.output == "recovered"
    [hung] = call_log.calls("sleep")
    [echo] = call_log.calls("echo")
    assert echo["pid"] == hung["pid"], "the same server session served the next call"
    assert [s.status for s in final.steps if s.kind == "tool"] == ["error", "completed"]
