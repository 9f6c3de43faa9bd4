"""A small performance regression guard for CI: ratios measured in the same run, with
generous thresholds, never absolute times (the full figures: `python -m tests.benchmarks`)."""

from __future__ import annotations

import statistics
import sys
import time
import uuid

from mcp import Client, StdioServerParameters
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.mcp_config import MCPConfig
from activities.mcp_pool import MCPSessionPool
from tests.benchmarks.baseline import floor_steps, in_process_loop, stdio_params
from tests.benchmarks.cases import step_gaps
from tests.benchmarks.floor_workflows import Steps, noop
from tests.benchmarks.stack import looping_model
from tests.conftest import CallLog, WorkerFactory, toolbox_stdio
from tests.scripted_llm import ScriptedLLM
from tests.waiting import WAIT_SECONDS, result_of

ENGINE_STEP_MAX_RATIO = 30.0
"""Durable loop step / in-process loop step: about 11x measured (BENCHMARKS.md), 47x before the
dev-server fix; the guard catches a return of that kind of regression."""
FLOOR_OVERHEAD_MAX_RATIO = 4.0
"""A durable step's overhead (durable step - in-process step) / Temporal's floor for the same
activities (a no-op activity + a no-op local activity per step), measured in the same test: the
target is 1.3x (BENCHMARKS.md); a workflow task doing several times Temporal's own work fails it."""
SPAWN_MIN_RATIO = 50.0
"""Spawning an MCP server per call / a call through the pool (measured: several hundred)."""


async def test_a_pooled_mcp_call_stays_far_cheaper_than_spawning_a_server() -> None:
    time_server = StdioServerParameters(command=sys.executable, args=["-m", "mcp_server_time"])
    pool = MCPSessionPool(
        MCPConfig.model_validate(
            {"mcpServers": {"time": {"command": sys.executable, "args": ["-m", "mcp_server_time"]}}}
        )
    )
    pooled: list[float] = []
    try:
        await pool.call_tool("time", "get_current_time", {"timezone": "UTC"}, timeout=WAIT_SECONDS, meta={})
        for _ in range(50):
            began = time.perf_counter()
            await pool.call_tool("time", "get_current_time", {"timezone": "UTC"}, timeout=WAIT_SECONDS, meta={})
            pooled.append(time.perf_counter() - began)
    finally:
        await pool.aclose()
    spawned: list[float] = []
    for _ in range(3):
        began = time.perf_counter()
        async with Client(time_server) as session:
            await session.call_tool("get_current_time", {"timezone": "UTC"})
        spawned.append(time.perf_counter() - began)
    ratio = statistics.median(spawned) / statistics.median(pooled)
    assert ratio >= SPAWN_MIN_RATIO, f"spawn per call is only {ratio:.0f}x a pooled call"


async def test_a_durable_loop_step_stays_within_its_ratios_of_the_in_process_step_and_temporals_floor(
    run_worker: WorkerFactory, llm: ScriptedLLM, call_log: CallLog, temporal_env: WorkflowEnvironment
) -> None:
    task_queue = f"floor-{uuid.uuid4().hex[:8]}"
    async with Worker(temporal_env.client, task_queue=task_queue, workflows=[Steps], activities=[noop]):
        await floor_steps(temporal_env.client, task_queue, "both", repeats=1, count=5)  # warm-up
        floor = await floor_steps(temporal_env.client, task_queue, "both", repeats=3, count=30)
    model = "loop-10-echo-x"
    llm.respond(model, looping_model)
    in_process: list[float] = []
    async with Client(stdio_params()) as session:
        for _ in range(3):
            in_process += (await in_process_loop(llm.base_url, model, session, 10))[:-1]
    durable: list[float] = []
    async with run_worker({"toolbox": toolbox_stdio(call_log, tools_to_auto_execute=["echo"])}) as h:
        for _ in range(3):
            handle = await h.start({"input": "go", "model": model, "max_steps": 10})
            assert (await result_of(handle)).step == 10
            durable += await step_gaps(handle)
    ratio = statistics.median(durable) / statistics.median(in_process)
    assert ratio <= ENGINE_STEP_MAX_RATIO, f"a durable step is {ratio:.1f}x the in-process step"
    overhead = statistics.median(durable) - statistics.median(in_process)
    floor_ratio = overhead / statistics.median(floor)
    assert floor_ratio <= FLOOR_OVERHEAD_MAX_RATIO, f"a durable step's overhead is {floor_ratio:.1f}x Temporal's floor"
