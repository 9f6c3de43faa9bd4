"""Fault suite: every LLM failure in one run, between tool calls.

Each failure is retried by Temporal (Retry-After honoured) or, for arguments that are
not JSON, sent back to the model; the tool calls recorded before a failure never run
again (counted in the toolbox server's log).
"""

from __future__ import annotations

import pytest

from tests.conftest import CallLog, WorkerFactory, toolbox_stdio
from tests.scripted_llm import Drop, HTTPError, RawBody, Reply, ScriptedLLM, tool_call
from tests.waiting import result_of

pytestmark = pytest.mark.fault


async def test_llm_failures_between_tool_calls_leave_each_call_run_once(
    run_worker: WorkerFactory, llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script(
        "m-llm-faults",
        HTTPError(429, "slow down", headers={"Retry-After": "1"}),
        HTTPError(500, "internal"),
        Reply(tool_calls=[tool_call("one", "toolbox__echo", {"text": "one"})]),
        Drop(),
        RawBody("<html>bad gateway</html>"),
        RawBody('{"choices": []}'),
        Reply(tool_calls=[tool_call("bad", "toolbox__echo", "{not json")]),
        HTTPError(503, "overloaded"),
        Reply(tool_calls=[tool_call("two", "toolbox__echo", {"text": "two"})]),
        Reply(content="all done"),
    )
    async with run_worker({"toolbox": toolbox_stdio(call_log, tools_to_auto_execute=["*"])}) as h:
        handle = await h.start({"input": "go", "model": "m-llm-faults"})
        final = await result_of(handle)
    assert final.status == "completed" and final.output == "all done"
    assert len(llm.requests_for("m-llm-faults")) == 10, "each failure asked again, once"
    assert [c["arguments"]["text"] for c in call_log.calls("echo")] == ["one", "two"], "each recorded call ran once"
    tool_steps = [(s.tool_call_id, s.status) for s in final.steps if s.kind == "tool"]
    assert tool_steps == [("one", "completed"), ("bad", "error"), ("two", "completed")]
    last_request = llm.requests_for("m-llm-faults")[-1]["messages"]
    bad_answer = next(m for m in last_request if m.get("tool_call_id") == "bad")
    assert bad_answer["content"].startswith("error: arguments are not valid JSON")
    assert final.step == 4 and final.usage.tool_calls == 2
