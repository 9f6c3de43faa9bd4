"""Traces over OTLP (the standard OTEL_* variables) from a real `python -m api` and
`python -m worker`: one trace per run, from the API's request through the workflow start, the
workflow, the tool call with its decision, the activities and their outbound HTTP calls."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from tests.conftest import CallLog, ServiceProcess, toolbox_stdio
from tests.otlp_receiver import OTLPReceiver, Span
from tests.scripted_llm import Reply, ScriptedLLM, free_port, tool_call
from tests.waiting import eventually, wait_for_port


async def test_one_trace_per_run_across_the_api_and_the_worker(
    worker_process: Callable[..., Any], llm: ScriptedLLM, call_log: CallLog
) -> None:
    model = "m-traced"
    llm.script(model, Reply(tool_calls=[tool_call("say", "toolbox__echo", {"text": "hi"})]), Reply(content="traced"))
    async with OTLPReceiver().serve() as receiver:
        otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
        worker, _ = worker_process({"toolbox": toolbox_stdio(call_log, tools_to_auto_execute=["echo"])})
        worker.env |= otel | {"ORCH_LOG_FORMAT": "json"}
        await worker.start()
        api_port = free_port()
        api = ServiceProcess(worker.env | {"ORCH_API_PORT": str(api_port)}, "api")
        await api.start()
        try:
            await wait_for_port(api_port)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}") as http:
                run_id = (await http.post("/v1/orchestrations", json={"input": "hi", "model": model})).json()["id"]

                async def completed() -> bool:
                    return (await http.get(f"/v1/orchestrations/{run_id}")).json()["status"] == "completed"

                await eventually(completed, "the run completed")

            def named(prefix: str) -> list[Span]:
                return [span for span in receiver.spans if span.name.startswith(prefix)]

            def all_there() -> bool:
                finished = named("POST /v1/orchestrations") and named("orch.tool_call") and named("RunWorkflow")
                llm_posts = [
                    s for s in receiver.spans if str(s.attributes.get("http.url", "")).endswith("/completions")
                ]
                return bool(finished) and len(llm_posts) >= 2

            await eventually(all_there, lambda: f"the run's spans; received {sorted({s.name for s in receiver.spans})}")
        finally:
            await api.stop()
            await worker.stop()
    [request] = [s for s in named("POST /v1/orchestrations") if s.parent_id == ""]
    run = [span for span in receiver.spans if span.trace_id == request.trace_id]
    tree = "\n".join(f"{s.service} {s.name} {s.duration_ms:.1f} ms" for s in run)

    def chain(span: Span) -> list[str]:
        return [f"{a.service}:{a.name}" for a in receiver.ancestors(span)]

    [tool_activity] = [s for s in run if s.name == "RunActivity:orch.call_tool"]
    assert chain(tool_activity) == [
        "orch-worker:StartActivity:orch.call_tool",
        "orch-worker:orch.tool_call",
        "orch-worker:RunWorkflow:Orchestration",
        "orch-api:StartWorkflow:Orchestration",
        "orch-api:POST /v1/orchestrations",
    ], tree
    [tool_span] = [s for s in run if s.name == "orch.tool_call"]
    assert tool_span.attributes == {
        "orch.run_id": run_id,
        "orch.mcp.server": "toolbox",
        "orch.mcp.tool": "echo",
        "orch.decision": "auto",
        "orch.approver": "",
    }
    assert tool_activity.attributes["orch.mcp.tool"] == "echo" and tool_activity.attributes["orch.run_id"] == run_id
    llm_calls = [s for s in run if s.name == "RunActivity:orch.chat_completion_delta"]
    assert len(llm_calls) == 2, tree
    for call in llm_calls:
        assert (call.attributes["gen_ai.request.model"], call.attributes["gen_ai.usage.input_tokens"]) == (model, 10)
    outbound = [s for s in run if str(s.attributes.get("http.url", "")).endswith("/chat/completions")]
    assert len(outbound) == 2 and all(
        chain(s)[0] == "orch-worker:RunActivity:orch.chat_completion_delta" for s in outbound
    )
    assert all(chain(s)[-1] == "orch-api:POST /v1/orchestrations" for s in run if s is not request), tree

    # The worker's log lines made inside the run's spans name its trace.
    records = [json.loads(line) for line in worker.output if line.startswith("{")]
    in_trace = [r for r in records if r.get("trace_id") == request.trace_id]
    assert in_trace and any(r.get("run_id") == run_id for r in in_trace), records[-5:]
