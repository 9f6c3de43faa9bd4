"""Durable agent loops measured side by side on one stack: this engine, Pydantic AI's Temporal
agent, Temporal's OpenAI Agents integration, and Temporal's own floor for the same activities
per step. Each system is a `Peer`: a worker process of its own (whose CPU is read from /proc)
and a way to run one agent run to its answer.

All of them talk to the same Temporal dev server, the same scripted model (it calls whichever
offered tool is named `echo` or ends in `__echo`, then answers) and the same
MCP server (the toolbox over stdio, `echo`). The peers are installed by the `[bench]` extra.
The model is `peer_model` of tests/benchmarks/stack.py.

    python -m tests.benchmarks.peers pydantic_ai_agent      # one peer alone, for a look
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from google.protobuf.json_format import MessageToJson
from temporalio.client import Client, WorkflowHandle

REPO_ROOT = Path(__file__).parents[3]  # (no resolve(): workflow sandboxes re-import this module)

PEERS = ("this_engine", "pydantic_ai_agent", "openai_agents_sdk", "temporal_floor")
"""Modules of this package, each a `Peer`."""

TOOLBOX_ARGV = [sys.executable, "-m", "tests.mcp_servers.toolbox"]
"""The MCP server every peer uses, over stdio (cwd: the repository root)."""


class Peer(Protocol):
    """What each peer module defines."""

    TITLE: str
    """The system and its configuration, as the table shows it."""

    def worker_argv(self, temporal_address: str, task_queue: str, llm_base_url: str) -> list[str]:
        """The command that runs this peer's worker until SIGTERM (cwd: the repository root)."""
        ...

    def worker_env(self, temporal_address: str, task_queue: str, llm_base_url: str) -> dict[str, str]:
        """Environment added to the worker's."""
        ...

    async def connect(self, temporal_address: str) -> Client:
        """A client with this peer's data converter."""
        ...

    async def run(self, client: Client, task_queue: str, model: str, workflow_id: str) -> None:
        """Run one agent run (prompt "go", model `model`) to its final answer; raise if it fails."""
        ...


def load(name: str) -> Peer:
    """The peer of module `name` (its `PEER`, or the module itself); `this_engine_before`: the
    engine of the checkout at BENCH_BEFORE_ROOT."""
    if name == "this_engine_before":
        from tests.benchmarks.peers.this_engine import ThisEngine

        return ThisEngine(Path(os.environ["BENCH_BEFORE_ROOT"]))
    module: Any = importlib.import_module(f"tests.benchmarks.peers.{name}")
    return getattr(module, "PEER", module)  # type: ignore[no-any-return]


@dataclass
class Figures:
    """One peer's figures: per LLM call (a *step*) and per run."""

    title: str
    step_seconds: list[float] = field(default_factory=list)
    history_bytes_per_step: list[float] = field(default_factory=list)
    worker_cpu_per_run: float = 0.0
    history_events_per_step: list[float] = field(default_factory=list)


@contextlib.asynccontextmanager
async def worker_process(argv: list[str], env: dict[str, str]) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=REPO_ROOT, env=dict(os.environ, **env), stdout=asyncio.subprocess.DEVNULL
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()


async def history_figures(handle: WorkflowHandle[Any, Any]) -> tuple[int, int]:
    """The run's history as JSON bytes (as `temporal workflow show --output json` writes it) and events."""
    history = await handle.fetch_history()
    return sum(len(MessageToJson(event)) for event in history.events), len(history.events)


async def measure(
    peer: Peer,
    temporal_address: str,
    llm_base_url: str,
    register_model: Callable[[int], str],
    cpu_seconds: Callable[[int], float],
    steps: int = 10,
    runs: int = 10,
    cpu_runs: int = 20,
    cpu_steps: int = 3,
) -> Figures:
    """`runs` sequential `steps`-LLM-call runs (time and history per step), then batches of
    `cpu_runs` `cpu_steps`-step runs started together (the worker's CPU, with its MCP server,
    per run: the median batch)."""
    task_queue = f"peer-{uuid.uuid4().hex[:8]}"
    figures = Figures(peer.TITLE)
    client = await peer.connect(temporal_address)
    argv = peer.worker_argv(temporal_address, task_queue, llm_base_url)
    env = peer.worker_env(temporal_address, task_queue, llm_base_url)
    async with worker_process(argv, env) as worker:
        model = register_model(steps)
        await _run(peer, client, task_queue, model)  # warm-up: waits for the worker to poll
        for _ in range(runs):
            began = time.perf_counter()
            handle = await _run(peer, client, task_queue, model)
            figures.step_seconds.append((time.perf_counter() - began) / steps)
            size, events = await history_figures(handle)
            figures.history_bytes_per_step.append(size / steps)
            figures.history_events_per_step.append(events / steps)
        short = register_model(cpu_steps)
        await _run(peer, client, task_queue, short)
        batches = []
        for _ in range(CPU_BATCHES):
            before = cpu_seconds(worker.pid)
            await asyncio.gather(*(_run(peer, client, task_queue, short) for _ in range(cpu_runs)))
            batches.append((cpu_seconds(worker.pid) - before) / cpu_runs)
        figures.worker_cpu_per_run = statistics.median(batches)
    return figures


async def _run(peer: Peer, client: Client, task_queue: str, model: str) -> WorkflowHandle[Any, Any]:
    workflow_id = f"peer-{uuid.uuid4().hex}"
    await asyncio.wait_for(peer.run(client, task_queue, model, workflow_id), timeout=120)
    return client.get_workflow_handle(workflow_id)


def summary(figures: Figures) -> dict[str, Any]:
    return {
        "title": figures.title,
        "ms_per_step": round(statistics.median(figures.step_seconds) * 1000, 1),
        "history_bytes_per_step": round(statistics.median(figures.history_bytes_per_step)),
        "history_events_per_step": round(statistics.median(figures.history_events_per_step), 1),
        "worker_cpu_ms_per_run": round(figures.worker_cpu_per_run * 1000, 1),
    }


CPU_BATCHES = 3

PEER_TARGETS = {"step": 0.6, "history": 0.4, "cpu": 0.6}
"""This engine against the best peer, per measure (issue 17)."""


def installed(name: str) -> bool:
    try:
        load(name)
    except ImportError:
        return False
    return True


async def compare(bench: Any, runs: int) -> list[Any]:
    """Case p: every installed peer on `bench`'s stack, one after the other, then this engine's
    ratios to the best peer and to the floor."""
    from tests.benchmarks.cases import Row, cpu_seconds, ms_row

    figures = {}
    rows: list[Row] = []
    before = ("this_engine_before",) if os.environ.get("BENCH_BEFORE_ROOT") else ()
    for name in (*before, *PEERS):
        if not installed(name):
            rows.append(Row("p", f"{name}: not installed (pip install -e '.[bench]')", 0, None, ""))
            continue
        measured = await measure(
            load(name), bench.temporal_address, bench.llm.base_url, bench.peer_model, cpu_seconds, runs=runs
        )
        figures[name] = measured
        rows += [
            ms_row("p", f"{measured.title}: per step (10-step runs, start->result / 10)", measured.step_seconds),
            Row(
                "p",
                f"{measured.title}: history per step (JSON)",
                statistics.median(measured.history_bytes_per_step),
                None,
                "B",
            ),
            Row("p", f"{measured.title}: worker CPU per 3-step run", measured.worker_cpu_per_run * 1000, None, "ms"),
        ]
    ours = figures.get("this_engine")
    peers = [figures[name] for name in ("pydantic_ai_agent", "openai_agents_sdk") if name in figures]
    if ours is None or not peers:
        return rows
    measures = {
        "step": lambda f: statistics.median(f.step_seconds),
        "history": lambda f: statistics.median(f.history_bytes_per_step),
        "cpu": lambda f: f.worker_cpu_per_run,
    }
    for key, value in measures.items():
        best = min(peers, key=value)
        ratio = value(ours) / value(best)
        rows.append(
            Row(
                "p",
                f"this engine / best peer ({best.title}): {key}",
                ratio,
                None,
                "x",
                target=f"<= {PEER_TARGETS[key]}x",
                ok=ratio <= PEER_TARGETS[key],
            )
        )
    floor = figures.get("temporal_floor")
    if floor is not None:
        ratio = measures["step"](ours) / measures["step"](floor)
        rows.append(Row("p", "this engine / Temporal floor: step", ratio, None, "x"))
    return rows
