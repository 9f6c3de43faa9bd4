"""Fault suite (marked `fault`): many runs in flight, random decisions, a worker SIGKILLed midway.

N runs (500; `FAULT_LOAD_RUNS=5000` for the larger setting, by hand) on two worker
processes. Each run asks for a gated `transfer` and an auto-approved `echo`; a seeded
random choice approves, denies or leaves the transfer to its approval timeout. Once every
run waits for its decision, the decisions are sent, and when half the approved transfers
have run, one worker is SIGKILLed (and not replaced): the survivor must finish every run.

Checked against three independent records: each run's final status, the toolbox server's
own log of executed calls, and each run's Temporal history (which attempt of a tool call
was recorded, and when).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pytest

from tests.conftest import CallLog, Harness, WorkerProcess, toolbox_stdio
from tests.faults.load import (
    IDEMPOTENCY_KEY,
    LoadRun,
    ToolActivity,
    alive,
    child_pids,
    expected_keys,
    logged_call_name,
    plan_runs,
    report,
    tool_activities,
)
from tests.scripted_llm import ScriptedLLM
from tests.waiting import WAIT_SECONDS, eventually, result_of
from workflows.messages import OrchestrationStatus

pytestmark = pytest.mark.fault

RUNS = int(os.environ.get("FAULT_LOAD_RUNS", "500"))
SEED = int(os.environ.get("FAULT_LOAD_SEED", "500"))
BATCH = 100
"""Starts, signals and history reads in flight at once, at most."""
PER_RUN_SECONDS = 0.2
"""Added to a wait on all runs for each run: far more than a run's share of the work takes on
a busy 2-core machine (500 runs reach their approval in well under a minute)."""
FINISH_SECONDS = WAIT_SECONDS + RUNS * PER_RUN_SECONDS
"""After the kill: the sticky queue's timeout (10 s), the dead worker's activities' heartbeat
timeout (20 s) and the undecided runs' approval timeout, with room for a slow machine."""


async def _in_batches(calls: list[Callable[[], Awaitable[Any]]]) -> list[Any]:
    results: list[Any] = []
    for first in range(0, len(calls), BATCH):
        results += await asyncio.gather(*(call() for call in calls[first : first + BATCH]))
    return results


async def _start(h: Harness, llm: ScriptedLLM, runs: list[LoadRun]) -> None:
    for run in runs:
        run.script(llm)
    handles = await _in_batches([partial(h.start, run.request()) for run in runs])
    for run, handle in zip(runs, handles, strict=True):
        run.handle = handle


async def _until_all_waiting(h: Harness, since: datetime, count: int) -> None:
    """Until every run is past `prepare_run` and its first LLM call: a worker killed during
    prepare_run (no heartbeat timeout) would hold the run for its 2-minute start-to-close timeout."""
    query = (
        f"TaskQueue = '{h.task_queue}' AND StartTime >= '{since.isoformat()}'"
        " AND OrchestrationStatus IN ('waiting_for_approval', 'completed')"
    )

    async def all_waiting() -> bool:
        return (await h.client.count_workflows(query)).count >= count

    await eventually(all_waiting, f"{count} runs waiting", timeout=WAIT_SECONDS + count * PER_RUN_SECONDS, interval=0.5)


async def _decide(runs: list[LoadRun]) -> None:
    await _in_batches([run.send_decision for run in runs])


async def _until_executed(call_log: CallLog, tool: str, count: int) -> None:
    await eventually(
        lambda: len(call_log.calls(tool)) >= count,
        f"{count} {tool} calls executed",
        timeout=WAIT_SECONDS + count * PER_RUN_SECONDS,
    )


async def _finish(h: Harness, since: datetime, runs: list[LoadRun]) -> list[OrchestrationStatus | BaseException]:
    """Each run's final status, or why there is none. Visibility tells when all runs closed
    (thousands of concurrent result long-polls would hit the server's poller limit)."""
    query = f"TaskQueue = '{h.task_queue}' AND StartTime >= '{since.isoformat()}' AND ExecutionStatus != 'Running'"
    with contextlib.suppress(TimeoutError):  # the runs still open are reported as lost below
        async with asyncio.timeout(FINISH_SECONDS):
            while (await h.client.count_workflows(query)).count < len(runs):
                await asyncio.sleep(0.5)
    return await _in_batches([partial(_final, run) for run in runs])


async def _final(run: LoadRun) -> OrchestrationStatus | BaseException:
    try:
        return await result_of(run.started)
    except Exception as err:
        return err


async def _kill(worker: WorkerProcess) -> set[int]:
    """SIGKILL the worker; returns its MCP server processes (whose calls the kill may cut off)."""
    assert worker.proc is not None
    toolboxes = child_pids(worker.proc.pid)
    assert await worker.stop(signal.SIGKILL) == -signal.SIGKILL
    return toolboxes


@pytest.mark.timeout(3 * WAIT_SECONDS + RUNS * 4 * PER_RUN_SECONDS)
async def test_runs_survive_a_worker_killed_midway_and_no_recorded_tool_call_runs_again(
    worker_process: Callable[..., Any], llm: ScriptedLLM, call_log: CallLog
) -> None:
    began = time.monotonic()
    runs = plan_runs(RUNS, SEED)
    servers = {"toolbox": toolbox_stdio(call_log, tools_to_auto_execute=["echo"])}
    doomed, h = worker_process(servers)
    survivor, _ = worker_process(servers)
    await asyncio.gather(doomed.start(), survivor.start())

    since = datetime.now(UTC)
    await _start(h, llm, runs)
    marks = {"all started": time.monotonic() - began}
    await _until_all_waiting(h, since, len(runs))
    marks["all waiting for approval"] = time.monotonic() - began
    decisions = asyncio.create_task(_decide([run for run in runs if run.outcome != "timeout"]))
    approved = sum(1 for run in runs if run.outcome == "approve")
    await _until_executed(call_log, "transfer", approved // 2)
    doomed_toolboxes = await _kill(doomed)  # midway through the wave of approved transfers
    marks["worker killed"] = time.monotonic() - began
    await decisions

    finals = await _finish(h, since, runs)
    marks["all finished"] = time.monotonic() - began
    calls = call_log.calls()
    per_run = await _in_batches([partial(tool_activities, run.started) for run in runs])
    history: dict[str, ToolActivity] = {key: act for found in per_run for key, act in found.items()}
    executions = Counter(str(call["meta"].get(IDEMPOTENCY_KEY)) for call in calls)
    rerun_after_recorded = [call for call in calls if _after_recorded(call, history)]
    finished = [final for final in finals if isinstance(final, OrchestrationStatus)]
    print(report(runs, len(finished), calls, executions, history, len(rerun_after_recorded), marks))  # noqa: T201
    for pid in doomed_toolboxes:  # orphans of the killed worker exit on stdin EOF
        assert not alive(pid), f"MCP server {pid} of the killed worker outlived it"

    assert survivor.proc is not None and survivor.proc.returncode is None, "the surviving worker stayed up"
    assert any(call["pid"] in doomed_toolboxes for call in calls), "the killed worker had been executing tool calls"
    lost = [(run.index, final) for run, final in zip(runs, finals, strict=True) if isinstance(final, BaseException)]
    assert not lost, f"{len(lost)} of {len(runs)} runs never finished, e.g. {lost[:3]}"
    for run, final in zip(runs, finals, strict=True):
        assert isinstance(final, OrchestrationStatus)
        run.check_final(final)
    _check_tool_calls(runs, calls, executions, history, doomed_toolboxes)
    assert not rerun_after_recorded, f"tool calls executed after their result was recorded: {rerun_after_recorded}"


def _after_recorded(call: dict[str, Any], history: dict[str, ToolActivity]) -> bool:
    activity = history.get(str(call["meta"].get(IDEMPOTENCY_KEY)))
    return activity is not None and call["at"] > activity.recorded_at


def _check_tool_calls(
    runs: list[LoadRun],
    calls: list[dict[str, Any]],
    executions: Counter[str],
    history: dict[str, ToolActivity],
    doomed_toolboxes: set[int],
) -> None:
    """Each call carries its own idempotency key; an approved transfer and every echo ran, a
    denied or expired transfer never; a key ran more than once only when an attempt on the
    killed worker was cut off (or a local activity's workflow task timed out), and each
    execution of an activity is a distinct attempt of one scheduled activity (a local activity
    cut off with its worker runs again from attempt 1, in the workflow task that the surviving
    worker runs)."""
    keys = expected_keys(runs)
    for call in calls:
        assert call["meta"].get(IDEMPOTENCY_KEY) == keys.get(logged_call_name(call)), f"wrong _meta: {call}"
    for run in runs:
        assert (executions[run.pay_key] > 0) == (run.outcome == "approve"), (
            f"run {run.index} ({run.outcome}): transfer executed {executions[run.pay_key]} times"
        )
        assert executions[run.look_key] > 0, f"run {run.index}: echo never executed"
    for key, count in executions.items():
        activity = history[key]
        assert activity.scheduled == 1, f"{key}: call_tool scheduled {activity.scheduled} times"
        if not activity.local:
            assert count <= activity.attempt, (
                f"{key}: {count} executions, but the recorded attempt is {activity.attempt}"
            )
        if count > 1:
            attempts = sorted((call for call in calls if call["meta"].get(IDEMPOTENCY_KEY) == key), key=_at)
            # Cut off with the killed worker; or, for a local activity, run in a workflow task
            # that timed out (a worker starved past the task's timeout on a loaded machine): the
            # at-least-once of ARCHITECTURE.md's "One step, one workflow task".
            survivor = [call for call in attempts[:-1] if call["pid"] not in doomed_toolboxes]
            assert not survivor or (activity.local and activity.task_failures), f"{key} repeated: {attempts}"


def _at(call: dict[str, Any]) -> float:
    return float(call["at"])
