"""Prometheus metrics (ORCH_METRICS_PORT) of a real `python -m worker` and `python -m api`: after
one run with an approved, priced tool call and an auto-approved one, each process's `/metrics`
has the SDK's metrics and the service's own with the counts of that run."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import CallLog, ServiceProcess, toolbox_stdio
from tests.scripted_llm import Reply, ScriptedLLM, free_port, tool_call
from tests.waiting import eventually, wait_for_port
from workflows import metrics

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Prometheus text format: `name{label="value",...} number` lines (service_name dropped)."""
    samples: Samples = {}
    for line in text.splitlines():
        found = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if line.startswith("#") or not found:
            continue
        labels = frozenset(
            (k, v) for k, v in re.findall(r'(\w+)="([^"]*)"', found.group(2) or "") if k != "service_name"
        )
        samples[(found.group(1), labels)] = float(found.group(3))
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name`'s samples that have these labels (and any others: the SDK adds the
    namespace, task queue and workflow or activity type to what workflows and activities emit)."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= have)


async def scrape(port: int) -> Samples:
    async with httpx.AsyncClient() as http:
        return parse((await http.get(f"http://127.0.0.1:{port}/metrics")).text)


async def test_one_run_shows_in_both_processes_metrics(
    worker_process: Callable[..., Any], llm: ScriptedLLM, call_log: CallLog, temporal_env, tmp_path: Path
) -> None:
    model = "m-metrics"
    llm.script(
        model,
        Reply(
            tool_calls=[
                tool_call("pay", "toolbox__transfer", {"account": "acme", "amount": 5}),
                tool_call("say", "toolbox__echo", {"text": "hi"}),
            ]
        ),
        Reply(content="paid"),
    )
    toolbox = toolbox_stdio(call_log, tools_to_auto_execute=["echo"], tool_pricing={"transfer": 0.25})
    worker, harness = worker_process({"toolbox": toolbox})
    worker_metrics, api_metrics, api_port = free_port(), free_port(), free_port()
    worker.env |= {"ORCH_METRICS_PORT": str(worker_metrics), "ORCH_METRICS_HOST": "127.0.0.1"}
    await worker.start()
    api = ServiceProcess(worker.env | {"ORCH_METRICS_PORT": str(api_metrics), "ORCH_API_PORT": str(api_port)}, "api")
    await api.start()
    try:
        await wait_for_port(api_port)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}") as http:
            run_id = (await http.post("/v1/orchestrations", json={"input": "pay", "model": model})).json()["id"]

            async def waiting() -> bool:
                return (await http.get(f"/v1/orchestrations/{run_id}")).json()["status"] == "waiting_for_approval"

            await eventually(waiting, "the transfer waits for approval")
            decision = {"tool_call_id": "pay", "decision": "approve", "approver": "ann"}
            assert (await http.post(f"/v1/orchestrations/{run_id}/approvals", json=decision)).status_code == 200

            async def completed() -> bool:
                return (await http.get(f"/v1/orchestrations/{run_id}")).json()["status"] == "completed"

            await eventually(completed, "the run completed")

        seen: list[Samples] = []

        async def finished_counted() -> Samples | None:
            seen.append(await scrape(worker_metrics))
            return seen[-1] if value(seen[-1], metrics.RUNS_FINISHED, status="completed") == 1 else None

        def shown() -> str:
            return "the worker counted the finished run; it shows " + str(sorted({n for n, _ in seen[-1]}))

        worker_samples = await eventually(finished_counted, shown)
        api_samples = await scrape(api_metrics)
    finally:
        await api.stop()
        await worker.stop()

    assert value(api_samples, metrics.RUNS_STARTED) == 1
    assert any(name.startswith("temporal_") for name, _ in api_samples), "the SDK's client metrics"
    w = worker_samples
    assert value(w, metrics.APPROVALS_REQUESTED, server="toolbox", tool="transfer") == 1
    assert value(w, metrics.APPROVALS_DECIDED, decision="approve", channel="update") == 1
    assert value(w, f"{metrics.APPROVAL_WAIT}_count", decision="approve", channel="update") == 1
    for tool in ("transfer", "echo"):
        assert value(w, metrics.TOOL_CALLS, server="toolbox", tool=tool, outcome="ok") == 1, tool
        assert value(w, f"{metrics.TOOL_CALL_LATENCY}_count", server="toolbox", tool=tool, outcome="ok") == 1
    assert value(w, metrics.LLM_CALLS, model=model, outcome="ok") == 2
    assert value(w, f"{metrics.LLM_CALL_LATENCY}_count", model=model, outcome="ok") == 2
    assert value(w, metrics.LLM_TOKENS, model=model, kind="prompt") == 2 * 10
    assert value(w, metrics.LLM_TOKENS, model=model, kind="completion") > 0
    assert value(w, metrics.COST, server="toolbox", tool="transfer") == 250_000
    assert (
        value(
            w,
            "temporal_workflow_completed",
            namespace="default",
            task_queue=harness.task_queue,
            workflow_type="Orchestration",
        )
        == 1
    )
