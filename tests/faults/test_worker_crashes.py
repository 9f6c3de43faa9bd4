"""Fault suite (marked `fault`): a worker SIGKILLed in the middle of a tool call.

Counted in the toolbox server's own log: a call whose result was recorded never runs again;
the call that was cut off is retried once with the same idempotency key in `_meta`, so a
server can tell the retry from a new call.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import PendingActivityState, TimeoutType

from tests.conftest import CallLog, toolbox_stdio
from tests.scripted_llm import Reply, ScriptedLLM, Stall, tool_call
from tests.waiting import WAIT_SECONDS, eventually, result_of

pytestmark = pytest.mark.fault

IDEMPOTENCY_KEY = "io.github.durable-orchestrations/idempotency-key"


async def test_worker_killed_mid_tool_call_retries_only_the_unfinished_call(
    worker_process: Callable[..., Any], llm: ScriptedLLM, call_log: CallLog, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    llm.script(
        "m-crash-tool",
        Reply(tool_calls=[tool_call("done", "toolbox__echo", {"text": "recorded before the crash"})]),
        Reply(tool_calls=[tool_call("cut", "toolbox__hold", {"gate": str(gate)})]),
        Reply(content="survived"),
    )
    servers = {"toolbox": toolbox_stdio(call_log, tools_to_auto_execute=["*"])}
    first, h = worker_process(servers)
    await first.start()
    handle = await h.start({"input": "go", "model": "m-crash-tool", "tool_timeout_seconds": 600})
    await eventually(lambda: call_log.calls("hold"), "the held call reached the toolbox")
    assert await first.stop(signal.SIGKILL) == -signal.SIGKILL
    gate.touch()  # the retry answers at once

    second, _ = worker_process(servers)
    await second.start()
    final = await result_of(handle)
    assert final.status == "completed" and final.output == "survived"
    assert len(call_log.calls("echo")) == 1, "the call recorded before the crash did not run again"
    attempts = call_log.calls("hold")
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
        Stall(seconds=WAIT_SECONDS),  # the worker dies while this request hangs
        Reply(content="answered on the second worker"),
    )
    servers = {"toolbox": toolbox_stdio(call_log, tools_to_auto_execute=["*"])}
    first, h = worker_process(servers)
    await first.start()
    handle = await h.start({"input": "go", "model": "m-crash-llm", "llm_call": llm_call})
    await eventually(lambda: len(llm.requests_for("m-crash-llm")) == 2, "the second LLM call reached the model")
    assert await first.stop(signal.SIGKILL) == -signal.SIGKILL

    second, _ = worker_process(servers)
    await second.start()
    final = await result_of(handle)
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

    async def prepare_run_started() -> bool:
        pending = (await handle.describe()).raw_description.pending_activities
        return any(
            a.activity_type.name == "orch.prepare_run"
            and a.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
            for a in pending
        )

    await eventually(prepare_run_started, "the first worker started prepare_run")
    assert await first.stop(signal.SIGKILL) == -signal.SIGKILL

    second, _ = worker_process({"toolbox": toolbox_stdio(call_log, tools_to_auto_execute=["*"])})
    await second.start()
    final = await result_of(handle)
    assert final.status == "completed" and final.output == "ok"
    assert len(call_log.calls("echo")) == 1
    # The second attempt began because the first missed its heartbeats, not because its
    # 2-minute start-to-close timeout ran out.
    history = await handle.fetch_history()
    scheduled = next(e for e in history.events if e.HasField("activity_task_scheduled_event_attributes"))
    assert scheduled.activity_task_scheduled_event_attributes.activity_type.name == "orch.prepare_run"
    started = next(
        e.activity_task_started_event_attributes
        for e in history.events
        if e.HasField("activity_task_started_event_attributes")
        and e.activity_task_started_event_attributes.scheduled_event_id == scheduled.event_id
    )
    assert started.attempt == 2
    assert started.last_failure.timeout_failure_info.timeout_type == TimeoutType.TIMEOUT_TYPE_HEARTBEAT
