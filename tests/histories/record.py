"""Record the histories that the replay test runs: `python -m tests.histories.record`.

Runs a run that exercises the whole loop (auto, approved, denied and unknown tool calls,
arguments that break the tool's input schema, arguments over the size bound, a tool-call id repeated across steps, an
ignored decision, model intent) against a real dev server, worker, scripted model and
toolbox server, then writes its history next to this file. Re-record only on purpose:
a history recorded by older code is what proves new code still replays it.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import uuid
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.mcp_config import MCPConfig
from tests.conftest import TEMPORAL_CLI, CallLog, Harness, toolbox_stdio
from tests.scripted_llm import Reply, ScriptedLLM, tool_call
from worker.runner import build_worker, worker_resources
from worker.settings import Settings
from workflows.messages import ApprovalDecision
from workflows.contract import SEARCH_ATTRIBUTES
from workflows.orchestration import Orchestration

HERE = Path(__file__).parent


async def record(name: str = "approvals_and_tools") -> Path:
    llm = ScriptedLLM()
    await llm.start()
    llm.script(
        "recorded-model",
        Reply(
            tool_calls=[
                tool_call("auto", "toolbox__echo", {"model_intent": "say hi", "properties": {"text": "hi"}}),
                tool_call("gated", "toolbox__transfer", {"model_intent": "pay", "account": "acme", "amount": 3}),
                tool_call("unknown", "toolbox__nope", {}),
                tool_call("mistyped", "toolbox__transfer", {"account": "acme", "amount": "3"}),
                tool_call("oversized", "toolbox__echo", {"properties": {"text": "e" * 70_000}}),
            ]
        ),
        # The same id as a call of step 1: the run renames it (call_2_0).
        Reply(tool_calls=[tool_call("gated", "toolbox__transfer", {"properties": {"account": "x", "amount": 1}})]),
        Reply(content="Paid acme, refused x."),
    )
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=TEMPORAL_CLI,
        search_attributes=list(SEARCH_ATTRIBUTES),
        data_converter=pydantic_data_converter,
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            servers = {"toolbox": toolbox_stdio(CallLog(Path(tmp) / "calls.jsonl"), tools_to_auto_execute=["echo"])}
            servers["toolbox"]["model_intent"] = True
            settings = Settings(openai_base_url=llm.base_url, default_model="recorded-model")
            config = MCPConfig.model_validate({"mcpServers": servers})
            async with worker_resources(settings, config) as resources:
                task_queue = f"record-{uuid.uuid4().hex[:8]}"
                async with build_worker(env.client, task_queue, resources.activities):
                    h = Harness(client=env.client, task_queue=task_queue, llm=llm)
                    handle = await h.start({"input": "pay acme 3", "metadata": {"recorded": "yes"}})
                    await h.wait_pending(handle)
                    decide = Orchestration.submit_approval
                    await handle.signal(decide, ApprovalDecision(tool_call_id="nope", decision="approve"))
                    await handle.signal(decide, ApprovalDecision(tool_call_id="gated", decision="approve", approver="a"))
                    await h.wait_for(handle, lambda s: any(p.tool_call_id == "call_2_0" for p in s.pending_approvals))
                    await handle.signal(decide, ApprovalDecision(tool_call_id="call_2_0", decision="deny", reason="no"))
                    await handle.result()
                    history = await handle.fetch_history()
        target = HERE / f"{name}.json"
        target.write_text(history.to_json())
        return target
    finally:
        await env.shutdown()
        await llm.stop()


if __name__ == "__main__":
    print(asyncio.run(record(*sys.argv[1:])))
