"""`python -m worker` as a real process: config errors, restarts, graceful shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GRACEFUL_SHUTDOWN_SECONDS, REPO_ROOT, CallLog, toolbox_stdio
from tests.history_text import local_activity
from tests.scripted_llm import Reply, ScriptedLLM, tool_call
from tests.waiting import WAIT_SECONDS, eventually, result_of
from workflows.messages import ApprovalDecision
from workflows.orchestration import Orchestration


async def _run_worker_to_exit(config_text: str | None, tmp_path: Path) -> tuple[int, str]:
    env = dict(os.environ, TEMPORAL_ADDRESS="127.0.0.1:1")
    if config_text is not None:
        path = tmp_path / "mcp.json"
        path.write_text(config_text)
        env["ORCH_MCP_CONFIG"] = str(path)
    else:
        env["ORCH_MCP_CONFIG"] = str(tmp_path / "missing.json")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "worker",
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), WAIT_SECONDS)
    assert proc.returncode is not None
    return proc.returncode, stderr.decode()


@pytest.mark.parametrize(
    ("config_text", "problem"),
    [
        (None, "cannot read it"),
        ("{not json", "not valid JSON"),
        ('{"mcpServers": {"t": {"url": "http://x/mcp", "transport": "carrier-pigeon"}}}', "transport"),
        ('{"mcpServers": {"t": {"args": ["x"]}}}', "needs `command` (stdio) or `url`"),
        (
            '{"mcpServers": {"t": {"command": "x", "tools_to_execute": ["a"], "tools_to_auto_execute": ["b"]}}}',
            "tools_to_auto_execute names tools outside tools_to_execute: ['b']",
        ),
    ],
)
async def test_invalid_mcp_config_stops_the_worker_with_one_clear_line(
    config_text: str | None, problem: str, tmp_path: Path
) -> None:
    code, stderr = await _run_worker_to_exit(config_text, tmp_path)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("worker: MCP config ") and problem in lines[0]
    assert ("missing.json" if config_text is None else "mcp.json") in lines[0]
    assert "Traceback" not in stderr


@pytest.mark.fault
async def test_worker_killed_while_waiting_then_restarted_runs_each_call_once(
    worker_process: Callable[..., Any], llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script(
        "m-kill",
        Reply(
            tool_calls=[
                tool_call("auto", "toolbox__echo", {"text": "before crash"}),
                tool_call("gated", "toolbox__transfer", {"account": "acme", "amount": 9}),
            ]
        ),
        Reply(content="survived"),
    )
    servers = {"toolbox": toolbox_stdio(call_log, tools_to_auto_execute=["echo"])}
    first, h = worker_process(servers)
    await first.start()
    handle = await h.start({"input": "pay", "model": "m-kill"})
    await h.wait_pending(handle)
    await h.wait_for(handle, lambda s: any(st.tool_call_id == "auto" and st.status == "completed" for st in s.steps))
    assert await first.stop(signal.SIGKILL) == -signal.SIGKILL

    second, _ = worker_process(servers)
    await second.start()
    await handle.signal(Orchestration.submit_approval, ApprovalDecision(tool_call_id="gated", decision="approve"))
    final = await result_of(handle)
    assert final.status == "completed" and final.output == "survived"
    assert len(call_log.calls("echo")) == 1, "the auto call recorded before the crash did not run again"
    assert len(call_log.calls("transfer")) == 1
    assert {c["pid"] for c in call_log.calls()} != set(), "calls were logged by the toolbox server"
    assert await second.stop(signal.SIGTERM) == 0


async def test_sigterm_lets_an_in_flight_tool_call_finish(
    worker_process: Callable[..., Any], llm: ScriptedLLM, call_log: CallLog, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    llm.script("m-term", Reply(tool_calls=[tool_call("s", "toolbox__hold", {"gate": str(gate)})]), Reply(content="ok"))
    servers = {"toolbox": toolbox_stdio(call_log, tools_to_auto_execute=["*"])}
    worker, h = worker_process(servers)
    await worker.start()
    handle = await h.start({"input": "hold", "model": "m-term"})
    await eventually(lambda: call_log.calls("hold"), "the held call reached the toolbox")
    assert worker.proc is not None
    worker.proc.send_signal(signal.SIGTERM)
    await worker.wait_for_line(lambda line: f"stopping: waiting up to {GRACEFUL_SHUTDOWN_SECONDS}s" in line)
    gate.touch()  # the call finishes while the worker is stopping
    assert await worker.stop(signal.SIGTERM) == 0
    history = await handle.fetch_history()
    completed = [e for e in history.events if e.HasField("activity_task_completed_event_attributes")]
    markers = [e for e in history.events if local_activity(e) is not None]
    # prepare_run and the LLM call completed, and the held tool call (a local activity: its result
    # is a marker) was recorded, before the worker exited.
    assert len(completed) == 2 and len(markers) == 1
    assert len(call_log.calls("hold")) == 1


async def test_redeploy_with_another_policy_does_not_alter_a_running_orchestration(
    worker_process: Callable[..., Any], llm: ScriptedLLM, call_log: CallLog
) -> None:
    llm.script(
        "m-fixed",
        Reply(tool_calls=[tool_call("t", "toolbox__transfer", {"account": "a", "amount": 1})]),
        Reply(tool_calls=[tool_call("e", "toolbox__echo", {"text": "still allowed"})]),
        Reply(content="done"),
    )
    before = toolbox_stdio(call_log, tools_to_execute=["echo", "transfer"], tools_to_auto_execute=["echo"])
    after = toolbox_stdio(call_log, tool_deny_list=["echo"], tools_to_auto_execute=["*"])
    old, h = worker_process({"toolbox": before})
    await old.start()
    handle = await h.start({"input": "x", "model": "m-fixed"})
    await h.wait_pending(handle)
    assert await old.stop(signal.SIGTERM) == 0
    new, _ = worker_process({"toolbox": after})
    await new.start()
    await handle.signal(Orchestration.submit_approval, ApprovalDecision(tool_call_id="t", decision="approve"))
    final = await result_of(handle)
    offered = [sorted(t["function"]["name"] for t in request["tools"]) for request in llm.requests_for("m-fixed")]
    assert offered == [["toolbox__echo", "toolbox__transfer"]] * 3
    assert [c["arguments"]["text"] for c in call_log.calls("echo")] == ["still allowed"]
    assert final.output == "done"
