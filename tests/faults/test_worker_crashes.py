"""Fault suite (marked `fault`): a worker SIGKILLed in the middle of a tool call.

Counted in the toolbox server's own log: a call whose result was recorded never runs again;
the call that was cut off is retried once with the same idempotency key in `_meta`, so a
server can tell the retry from a new call.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import CallLog, result_of, toolbox_stdio
from tests.scripted_llm import Reply, ScriptedLLM, Stall, tool_call

pytestmark = pytest.mark.fault

IDEMPOTENCY_KEY = "io.github.durable-orchestrations/idempotency-key"


async def test_worker_killed_mid_tool_call_retries_only_the_unfinished_call(
    worker_process: Callable[..., Any], llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script(
        "m-crash-tool",
        Reply(tool_calls=[tool_call("done", "toolbox__echo", {"text": "recorded before the crash"})]),
        Reply(tool_calls=[tool_call("cut", "toolbox__sleep", {"seconds": 3})]),
        Reply(content="survived"),
    )
    servers = {"toolbox": toolbox_stdio(call_log, tools_to_auto_execute=["*"])}
    first, h = worker_process(servers)
    await first.start()
    handle = await h.start({"input": "go", "model": "m-crash-tool", "tool_timeout_seconds": 30})
    async with asyncio.timeout(30):
        while not call_log.calls("sleep"):
            await asyncio.sleep(0.05)
    assert await first.stop(signal.SIGKILL) == -signal.SIGKILL

    second, _ = worker_process(servers)
    await second.start()
    final = await result_of(handle, timeout=90)
    assert final.status == "completed" and final.output == "survived"
    assert len(call_log.calls("echo")) == 1, "the call recorded before the crash did not run again"
    attempts = call_log.calls("sleep")
    assert len(attempts) == 2, "the cut-off call was retried once"
    keys = {attempt["meta"][IDEMPOTENCY_KEY] for attempt in attempts}
    assert keys == {f"{handle.id}/cut"}, "both attempts carry the same idempotency key"
    assert [s.status for s in final.steps if s.kind == "tool"] == ["completed", "completed"]
    assert final.usage.tool_calls == 2


@pytest.mark.parametrize("llm_call", ["activity", "local_activity"])
async def test_worker_killed_mid_llm_call_asks_the_model_again_and_runs_tools_once(
    worker_process: Callable[..., Any], llm: ScriptedLLM, call_log: CallLog, llm_call: str
) -> None:
    llm.script(
        "m-crash-llm",
        Reply(tool_calls=[tool_call("first", "toolbox__echo", {"text": "before"})]),
        Stall(seconds=60),  # the worker dies while this request hangs
        Reply(content="answered on the second worker"),
    )
    servers = {"toolbox": toolbox_stdio(call_log, tools_to_auto_execute=["*"])}
    first, h = worker_process(servers)
    await first.start()
    handle = await h.start({"input": "go", "model": "m-crash-llm", "llm_call": llm_call})
    async with asyncio.timeout(30):
        while len(llm.requests_for("m-crash-llm")) < 2:
            await asyncio.sleep(0.05)
    assert await first.stop(signal.SIGKILL) == -signal.SIGKILL

    second, _ = worker_process(servers)
    await second.start()
    final = await result_of(handle, timeout=90)
    assert final.output == "answered on the second worker"
    assert len(llm.requests_for("m-crash-llm")) == 3, "the cut-off LLM call was asked again, once"
    assert len(call_log.calls("echo")) == 1, "the recorded tool call did not run again"
    assert final.step == 2 and [s.kind for s in final.steps] == ["llm", "tool", "llm"]


async def test_worker_killed_while_listing_tools_hands_the_run_over_within_the_heartbeat_timeout(
    worker_process: Callable[..., Any], llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script(
        "m-crash-prepare", Reply(tool_calls=[tool_call("e", "toolbox__echo", {"text": "hi"})]), Reply(content="ok")
    )
    stuck = toolbox_stdio(call_log, tools_to_auto_execute=["*"])
    # The first worker's server never answers `initialize` (and exits when its stdin closes),
    # so that worker hangs in `prepare_run`.
    stuck = stuck | {"command": "sh", "args": ["-c", "cat >/dev/null"]}
    first, h = worker_process({"toolbox": stuck})
    await first.start()
    handle = await h.start({"input": "go", "model": "m-crash-prepare"})
    await asyncio.sleep(2)  # prepare_run is listing the stuck server's tools
    assert await first.stop(signal.SIGKILL) == -signal.SIGKILL

    second, _ = worker_process({"toolbox": toolbox_stdio(call_log, tools_to_auto_execute=["*"])})
    await second.start()
    began = asyncio.get_running_loop().time()
    final = await result_of(handle, timeout=90)
    assert asyncio.get_running_loop().time() - began < 60, "handed over after the heartbeat timeout, not 2 minutes"
    assert final.status == "completed" and final.output == "ok"
    assert len(call_log.calls("echo")) == 1
