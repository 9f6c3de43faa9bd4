"""The benchmark cases (a to g; p, the peers, is tests/benchmarks/peers); each returns rows for the report."""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from mcp import Client, StdioServerParameters
from temporalio.client import WorkflowHandle

from activities.mcp_config import MCPConfig
from activities.mcp_pool import MCPSessionPool
from tests.benchmarks.baseline import in_process_loop, stdio_params, temporal_baselines
from tests.benchmarks.stack import Stack, gated_model
from tests.conftest import toolbox_stdio
from tests.history_text import local_activity
from tests.scripted_llm import Stall, Turn
from workflows.contract import CALL_TOOL_ACTIVITY, ORCHESTRATION_STATUS_ATTRIBUTE
from workflows.messages import ApprovalDecision, OrchestrationStatus
from workflows.orchestration import Orchestration
from workflows.run_request import OrchestrationRequest
from workflows.state import OrchestrationInput


@dataclass
class Row:
    case: str
    what: str
    median: float
    p99: float | None
    unit: str
    ratio: str = ""
    target: str = ""
    ok: bool | None = None


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms_row(case: str, what: str, seconds: list[float], **extra: Any) -> Row:
    return Row(case, what, statistics.median(seconds) * 1000, percentile(seconds, 0.99) * 1000, "ms", **extra)


async def start_run(bench: Stack, model: str, **request: Any) -> WorkflowHandle[Any, Any]:
    return await bench.client.start_workflow(
        Orchestration.run,
        OrchestrationInput(
            run_request=OrchestrationRequest(
                input="go", model=model, **({"mcp_servers": ["toolbox"], "max_steps": 100} | request)
            )
        ),
        id=f"orch-{uuid.uuid4().hex}",
        task_queue=bench.task_queue,
    )


async def finish(handle: WorkflowHandle[Any, Any]) -> OrchestrationStatus:
    return OrchestrationStatus.model_validate(await handle.result())


async def step_gaps(handle: WorkflowHandle[Any, Any]) -> list[float]:
    """Seconds between consecutive tool calls being recorded: one loop step (LLM call + tool
    call) each, whichever way the calls run. A tool call as an activity is recorded when it is
    scheduled; as a local activity, by its marker, with the next LLM call's command."""
    history = await handle.fetch_history()
    times = [event.event_time.ToDatetime() for event in history.events if _is_tool_call(event)]
    return [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]


def _is_tool_call(event: Any) -> bool:
    if event.HasField("activity_task_scheduled_event_attributes"):
        return bool(event.activity_task_scheduled_event_attributes.activity_type.name == CALL_TOOL_ACTIVITY)
    marker = local_activity(event)
    return marker is not None and marker["activity_type"] == CALL_TOOL_ACTIVITY


# --- Baseline -------------------------------------------------------------------------


async def temporal_floor(bench: Stack, repeats: int) -> list[Row]:
    figures = await temporal_baselines(bench.client, repeats)
    activity = statistics.median(figures["activity"])
    return [
        ms_row("base", "Temporal: no-op activity, per step", figures["activity"]),
        ms_row(
            "base",
            "Temporal: no-op local activity, per step",
            figures["local_activity"],
            ratio=f"{statistics.median(figures['local_activity']) / activity:.2f}x activity",
        ),
        ms_row("base", FLOOR_ROW, figures["both"]),
        ms_row("base", "Temporal: empty workflow start->result", figures["empty"]),
        ms_row(
            "base",
            "Temporal: same, eager start",
            figures["empty_eager"],
            ratio=f"{statistics.median(figures['empty_eager']) / statistics.median(figures['empty']):.2f}x plain",
        ),
    ]


# --- a. Engine overhead per loop step ---------------------------------------------------


FLOOR_ROW = "Temporal: no-op activity + no-op local activity, per step"
"""Temporal's floor for the activities of one default step (the LLM call an activity, the tool
call a local activity); the other modes schedule the same number, one of each or two activities."""
MODES: dict[str, dict[str, str]] = {
    "default (LLM activity, tool local activity)": {},
    "llm_call=local_activity (tool activity)": {"llm_call": "local_activity"},
    "tool_call=activity (both activities)": {"tool_call": "activity"},
}
OVERHEAD_TARGET = 1.3
"""A step's durable overhead against Temporal's floor for the same activities (issue 17)."""


async def engine_overhead(bench: Stack, runs: int, base: list[Row], steps: int = 10) -> list[Row]:
    """Durable steps in each mode against the in-process step, and their overhead (the durable
    step minus the in-process work) against Temporal's floor for the same activities per step."""
    model = bench.model(steps)
    in_process: list[float] = []
    async with Client(stdio_params()) as session:
        await in_process_loop(bench.llm.base_url, model, session, steps)  # warm-up
        for _ in range(runs):
            durations = await in_process_loop(bench.llm.base_url, model, session, steps)
            in_process += durations[:-1]  # LLM call + tool call; the last step answers
    work = statistics.median(in_process)
    floor_ms = next(row.median for row in base if row.what == FLOOR_ROW)
    rows = [ms_row("a", "in-process loop step (LLM + MCP echo)", in_process)]
    for label, options in MODES.items():
        await finish(await start_run(bench, model, **options))  # warm-up
        durable: list[float] = []
        totals: list[float] = []
        for _ in range(runs):
            began = time.perf_counter()
            handle = await start_run(bench, model, **options)
            final = await finish(handle)
            totals.append(time.perf_counter() - began)
            assert final.status == "completed" and final.step == steps, final
            durable += await step_gaps(handle)
        step = statistics.median(durable)
        overhead = [sample - work for sample in durable]
        ratio = statistics.median(overhead) * 1000 / floor_ms
        rows += [
            ms_row("a", f"durable loop step, {label}", durable, ratio=f"{step / work:.1f}x in-process"),
            ms_row(
                "a",
                f"durable overhead per step (step - in-process), {label}",
                overhead,
                ratio=f"{ratio:.2f}x Temporal floor",
                target=f"<= {OVERHEAD_TARGET}x floor" if not options else "",
                ok=ratio <= OVERHEAD_TARGET if not options else None,
            ),
            ms_row("a", f"durable {steps}-step run start->result, {label}", totals),
        ]
    return rows


# --- b. Pooled MCP call ------------------------------------------------------------------


async def mcp_calls(bench: Stack, calls: int, spawns: int) -> list[Row]:
    direct: list[float] = []
    async with Client(stdio_params()) as session:
        await session.call_tool("echo", {"text": "x"})
        for _ in range(calls):
            began = time.perf_counter()
            await session.call_tool("echo", {"text": "x"})
            direct.append(time.perf_counter() - began)
    pool = MCPSessionPool(
        MCPConfig.model_validate({"mcpServers": {"toolbox": toolbox_stdio(bench.call_log) | {"env": {}}}})
    )
    pooled: list[float] = []
    try:
        await pool.call_tool("toolbox", "echo", {"text": "x"}, timeout=10, meta={})
        for _ in range(calls):
            began = time.perf_counter()
            await pool.call_tool("toolbox", "echo", {"text": "x"}, timeout=10, meta={})
            pooled.append(time.perf_counter() - began)
    finally:
        await pool.aclose()
    time_server = StdioServerParameters(command=sys.executable, args=["-m", "mcp_server_time"])
    reused: list[float] = []
    async with Client(time_server) as session:
        for _ in range(calls):
            began = time.perf_counter()
            await session.call_tool("get_current_time", {"timezone": "UTC"})
            reused.append(time.perf_counter() - began)
    spawned: list[float] = []
    for _ in range(spawns):
        began = time.perf_counter()
        async with Client(time_server) as session:
            await session.call_tool("get_current_time", {"timezone": "UTC"})
        spawned.append(time.perf_counter() - began)
    added = statistics.median(pooled) - statistics.median(direct)
    return [
        ms_row("b", "MCP echo, direct on a reused session", direct),
        ms_row("b", "MCP echo, through the worker's pool", pooled, target="<= 2 ms added p50", ok=added <= 0.002),
        ms_row("b", "mcp-server-time call, reused session", reused),
        ms_row(
            "b",
            "mcp-server-time call, spawned per call",
            spawned,
            ratio=f"{statistics.median(spawned) / statistics.median(reused):.0f}x reused",
        ),
    ]


# --- c. Throughput -----------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its live children (e.g. stdio MCP servers)."""
    clock_ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            fields = open(f"/proc/{current}/stat").read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / clock_ticks
            for task in os.listdir(f"/proc/{current}/task"):
                pids += [int(child) for child in open(f"/proc/{current}/task/{task}/children").read().split()]
        except OSError:
            continue
    return total


async def throughput(bench: Stack, concurrent: int) -> list[Row]:
    """Runs per second, and where the CPU went: the Temporal server's and the worker's
    (with its MCP server) CPU per run, which bound the rate on this machine's cores."""
    assert bench.workers and bench.workers[0].proc is not None
    worker_pid = bench.workers[0].proc.pid
    model = bench.model(3)
    rows = []
    for label, options in MODES.items():
        await finish(await start_run(bench, model, **options))  # warm-up
        server_cpu, worker_cpu = cpu_seconds(bench.server_pid), cpu_seconds(worker_pid)
        began = time.perf_counter()
        handles = await asyncio.gather(*(start_run(bench, model, **options) for _ in range(concurrent)))
        finals = await asyncio.gather(*(finish(handle) for handle in handles))
        elapsed = time.perf_counter() - began
        assert all(final.status == "completed" for final in finals)
        server_ms = (cpu_seconds(bench.server_pid) - server_cpu) / concurrent * 1000
        worker_ms = (cpu_seconds(worker_pid) - worker_cpu) / concurrent * 1000
        rate = concurrent / elapsed
        cores = os.cpu_count() or 1
        rows += [
            Row(
                "c",
                f"3-step runs completed per second, {concurrent} concurrent, 1 worker, {label}",
                rate,
                None,
                "runs/s",
                target=">= 100 runs/s",
                ok=rate >= 100,
            ),
            Row(
                "c",
                f"CPU per run: Temporal server, {label}",
                server_ms,
                None,
                "ms",
                ratio=f"alone caps {cores} cores at {cores * 1000 / server_ms:.0f} runs/s",
            ),
            Row(
                "c",
                f"CPU per run: worker + MCP server, {label}",
                worker_ms,
                None,
                "ms",
                ratio=f"together: {cores * 1000 / (server_ms + worker_ms):.0f} runs/s",
            ),
        ]
    return rows


# --- d. Parked runs ----------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def parked_runs(bench: Stack, count: int, gets: int) -> list[Row]:
    """`count` runs wait for approval of a gated call; then all are approved through the API."""
    assert bench.api_url is not None and bench.workers and bench.workers[0].proc is not None
    model = "parked"
    bench.llm.respond(model, gated_model)
    began = time.perf_counter()
    handles: list[WorkflowHandle[Any, Any]] = []
    for first in range(0, count, 200):
        handles += await asyncio.gather(*(start_run(bench, model) for _ in range(min(200, count - first))))
    query = f'TaskQueue = "{bench.task_queue}" AND {ORCHESTRATION_STATUS_ATTRIBUTE.name} = "waiting_for_approval"'
    while (await bench.client.count_workflows(query)).count < count:
        await asyncio.sleep(1)
    parked_after = time.perf_counter() - began
    worker_rss = rss_mb(bench.workers[0].proc.pid)
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=bench.api_url, timeout=30) as http:
        for index in range(gets):
            run_id = handles[(index * 7919) % len(handles)].id
            start = time.perf_counter()
            response = await http.get(f"/v1/orchestrations/{run_id}")
            latencies.append(time.perf_counter() - start)
            assert response.status_code == 200 and response.json()["status"] == "waiting_for_approval"
        approve_began = time.perf_counter()
        gate = asyncio.Semaphore(50)

        async def approve(handle: WorkflowHandle[Any, Any]) -> None:
            async with gate:
                body = {"tool_call_id": "pay", "decision": "approve"}
                response = await http.post(f"/v1/orchestrations/{handle.id}/approvals", json=body)
                assert response.status_code in (200, 202), response.text

        await asyncio.gather(*(approve(handle) for handle in handles))
        decided_after = time.perf_counter() - approve_began
        finals = [await finish(handle) for handle in handles]
        drained_after = time.perf_counter() - approve_began
    assert all(final.output == "paid" for final in finals)
    p99 = percentile(latencies, 0.99) * 1000
    return [
        Row("d", f"{count} runs parked after", parked_after, None, "s"),
        Row("d", "worker RSS with them parked", worker_rss, None, "MB", target="<= 1024 MB", ok=worker_rss <= 1024),
        ms_row("d", "API GET status while parked", latencies, target="<= 50 ms p99", ok=p99 <= 50),
        Row("d", "approvals accepted per second (API, 50 at a time)", count / decided_after, None, "/s"),
        Row("d", "drain: approved runs completed per second", count / drained_after, None, "runs/s"),
    ]


# --- e. Approval latency -----------------------------------------------------------------


async def approval_latency(bench: Stack, runs: int) -> list[Row]:
    assert bench.api_url is not None
    model = "approve-latency"
    bench.llm.respond(model, gated_model)
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=bench.api_url, timeout=30) as http:
        for _ in range(runs + 1):
            handle = await start_run(bench, model)
            while not (await handle.query(Orchestration.status)).pending_approvals:
                await asyncio.sleep(0.02)
            key = f"{handle.id}/pay"
            sent = time.time()
            decision = ApprovalDecision(tool_call_id="pay", decision="approve").model_dump()
            response = await http.post(f"/v1/orchestrations/{handle.id}/approvals", json=decision)
            assert response.status_code == 200, response.text
            while not (started := [c for c in bench.call_log.calls() if c["meta"].get(IDEMPOTENCY_KEY) == key]):
                await asyncio.sleep(0.002)
            latencies.append(started[0]["at"] - sent)
            await finish(handle)
    latencies = latencies[1:]  # the first warms up the API's client and the pool
    return [
        ms_row(
            "e",
            "POST approval -> tool call starts",
            latencies,
            target="<= 30 ms p50",
            ok=statistics.median(latencies) <= 0.030,
        )
    ]


IDEMPOTENCY_KEY = "io.github.durable-orchestrations/idempotency-key"


# --- f. A long run -----------------------------------------------------------------------


async def long_run(bench: Stack, steps: int, output_bytes: int, shorter: tuple[int, ...] = (10, 100)) -> list[Row]:
    """A `steps`-step run whose tool returns `output_bytes` each time, and runs of `shorter`
    lengths: the history bytes per step of each, over all the runs of its continue-as-new chain."""
    rows = []
    for length in (*shorter, steps):
        model = bench.model(length, "big_output", str(output_bytes))
        began = time.perf_counter()
        handle = await start_run(bench, model, max_steps=length)
        try:
            final = await asyncio.wait_for(finish(handle), timeout=max(600, length * 2))
            outcome = f"{final.status}, step {final.step}"
        except Exception as err:  # reported, not hidden: the row says why
            outcome = f"did not complete: {type(err).__name__}: {str(err)[:120]}"
            final = None
        elapsed = time.perf_counter() - began
        history_bytes = 0
        chain = 0
        async for execution in bench.client.list_workflows(f'WorkflowId = "{handle.id}"'):
            chain += 1
            history = await bench.client.get_workflow_handle(handle.id, run_id=execution.run_id).fetch_history()
            history_bytes += sum(event.ByteSize() for event in history.events)
        done = final.step if final is not None else length
        if length == steps:
            rows.append(
                Row(
                    "f",
                    f"{length}-step run, {output_bytes} B tool outputs: {outcome}",
                    elapsed,
                    None,
                    "s",
                    ok=final is not None,
                )
            )
        per_step = history_bytes / max(done, 1)
        rows.append(
            Row(
                "f",
                f"history bytes per step, {length}-step run ({chain} run{'s' if chain > 1 else ''})",
                per_step,
                None,
                "B",
                ratio=f"{per_step / output_bytes:.1f}x the tool output",
                target="<= 3x the tool output" if length == steps else "",
                ok=per_step <= 3 * output_bytes if length == steps else None,
            )
        )
    return rows


# --- g. Status and cancel while the model thinks ---------------------------------------


async def responsiveness(bench: Stack, reads: int, llm_seconds: float = 4.0) -> list[Row]:
    """A status read (the `status` query) and a cancel while an LLM call is in flight: the
    default mode against `llm_call: local_activity`, which holds the workflow task open."""
    rows: list[Row] = []
    for label, options in {"default": {}, "llm_call=local_activity": {"llm_call": "local_activity"}}.items():
        model = f"slow-{label}"
        asked = asyncio.Event()

        def slow(request: dict[str, Any], asked: asyncio.Event = asked) -> Turn:
            asked.set()
            return Stall(seconds=llm_seconds)

        bench.llm.respond(model, slow)
        handle = await start_run(bench, model, **options)
        await asyncio.wait_for(asked.wait(), 60)
        latencies: list[float] = []
        deadline = time.perf_counter() + llm_seconds * 0.75
        while len(latencies) < reads and time.perf_counter() < deadline:
            began = time.perf_counter()
            await handle.query(Orchestration.status)
            latencies.append(time.perf_counter() - began)
        began = time.perf_counter()
        await handle.cancel()
        answered = time.perf_counter() - began
        with contextlib.suppress(Exception):
            await handle.result()
        cancelled = time.perf_counter() - began
        p99 = percentile(latencies, 0.99)
        rows += [
            ms_row(
                "g",
                f"status read during an LLM call, {label} ({len(latencies)} reads)",
                latencies,
                target="<= 50 ms p99" if not options else "",
                ok=p99 <= 0.050 if not options else None,
            ),
            Row("g", f"cancel during an LLM call answered, {label}", answered * 1000, None, "ms"),
            Row(
                "g",
                f"cancel during an LLM call -> run closed (the call confirmed stopped), {label}",
                cancelled * 1000,
                None,
                "ms",
            ),
        ]
    return rows


# --- r. The Responses API -----------------------------------------------------------------


async def responses_api(bench: Stack, reads: int, requests: int) -> list[Row]:
    """What the Responses API adds: `GET /v1/responses/{id}` (the run's status, then its whole
    event log projected) against `GET /v1/orchestrations/{id}` (the status alone) on finished runs
    of 10 and 100 steps; and a one-step request answered by `POST /v1/responses` against the same
    run through `POST /v1/chat/completions`."""
    assert bench.api_url is not None
    rows: list[Row] = []
    async with httpx.AsyncClient(base_url=bench.api_url, timeout=60) as http:
        for steps in (10, 100):
            handle = await start_run(bench, bench.model(steps))
            await finish(handle)
            paths = {
                "run": f"/v1/orchestrations/{handle.id}",
                "response": f"/v1/responses/resp_{handle.id.removeprefix('orch-')}",
            }
            figures: dict[str, list[float]] = {}
            for label, path in paths.items():
                figures[label] = []
                for _ in range(reads + 1):
                    began = time.perf_counter()
                    answer = await http.get(path)
                    figures[label].append(time.perf_counter() - began)
                    assert answer.status_code == 200, answer.text
                figures[label] = figures[label][1:]  # the first warms up
            ratio = statistics.median(figures["response"]) / statistics.median(figures["run"])
            rows += [
                ms_row("r", f"GET /v1/orchestrations/{{id}}, finished {steps}-step run", figures["run"]),
                ms_row(
                    "r",
                    f"GET /v1/responses/{{id}}, same {steps}-step run",
                    figures["response"],
                    ratio=f"{ratio:.2f}x run",
                ),
            ]
        model = bench.model(2)
        bodies = {
            "chat": ("/v1/chat/completions", {"model": model, "messages": [{"role": "user", "content": "go"}]}),
            "responses": (
                "/v1/responses",
                {
                    "model": model,
                    "input": "go",
                    "tools": [{"type": "mcp", "server_label": "toolbox", "require_approval": "never"}],
                },
            ),
        }
        timings: dict[str, list[float]] = {}
        for label, (path, body) in bodies.items():
            timings[label] = []
            for _ in range(requests + 1):
                began = time.perf_counter()
                answer = await http.post(path, json=body)
                timings[label].append(time.perf_counter() - began)
                assert answer.status_code == 200, answer.text
            timings[label] = timings[label][1:]
        ratio = statistics.median(timings["responses"]) / statistics.median(timings["chat"])
        rows += [
            ms_row("r", "POST /v1/chat/completions, one tool call", timings["chat"]),
            ms_row("r", "POST /v1/responses, the same run", timings["responses"], ratio=f"{ratio:.2f}x chat"),
        ]
    return rows
