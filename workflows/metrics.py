"""The service's own metrics: their names, labels and meaning, in one place.

Emitted replay-safely: by the workflow through `workflow.metric_meter()` (nothing is recorded
while a run's history is replayed), by activities through `activity.metric_meter()`, and by
the API through its runtime's meter. With ORCH_METRICS_PORT each process serves them on
`/metrics` beside the SDK's own (`worker/telemetry.py`). Durations are milliseconds, like the
SDK's. Prometheus shows counters as they are named here (no `_total` suffix).
"""

from __future__ import annotations

from collections.abc import Mapping

from temporalio.common import MetricMeter

RUNS_STARTED = "orch_runs_started"
"""API: runs it started."""
RUNS_FINISHED = "orch_runs_finished"
"""Workflow: runs that ended, by `status` (completed, failed, cancelled)."""
APPROVALS_REQUESTED = "orch_approvals_requested"
"""Workflow: tool calls that began waiting for a person, by `server` and `tool`."""
APPROVALS_DECIDED = "orch_approvals_decided"
"""Workflow: decisions on tool calls, by `decision` (approve, deny) and `channel` (update: the
API; webhook: the API's signed webhook; signal: the Temporal UI or CLI; timeout; rule)."""
APPROVAL_WAIT = "orch_approval_wait_ms"
"""Workflow: from a call's approval request to its decision, by `decision` and `channel`."""
TOOL_CALLS = "orch_tool_calls"
"""Activity: MCP tool calls, by `server`, `tool` and `outcome` (ok, error: the tool said so;
failed: no result)."""
TOOL_CALL_LATENCY = "orch_tool_call_latency_ms"
"""Activity: one MCP tool call's duration, same labels."""
LLM_CALLS = "orch_llm_calls"
"""Activity: chat completions, by `model` and `outcome` (ok, failed)."""
LLM_CALL_LATENCY = "orch_llm_call_latency_ms"
"""Activity: one chat completion's duration, same labels."""
LLM_TOKENS = "orch_llm_tokens"
"""Activity: tokens, by `model` and `kind` (prompt, completion)."""
COST = "orch_cost_usd_micros"
"""Workflow: what tool calls cost (MCP config `tool_pricing`), in millionths of a USD, by
`server` and `tool`."""

HISTOGRAM_BUCKETS: Mapping[str, list[float]] = {
    APPROVAL_WAIT: [1_000, 10_000, 60_000, 300_000, 1_800_000, 3_600_000, 21_600_000, 86_400_000],
    TOOL_CALL_LATENCY: [5, 25, 100, 250, 1_000, 2_500, 10_000, 45_000],
    LLM_CALL_LATENCY: [50, 250, 1_000, 2_500, 5_000, 10_000, 30_000, 120_000],
}
"""Bucket bounds (ms) where the SDK's default ones (50 ms to 10 s) do not fit."""


def count(meter: MetricMeter, name: str, labels: Mapping[str, str], value: int = 1) -> None:
    meter.create_counter(name).add(value, dict(labels))


def observe_ms(meter: MetricMeter, name: str, labels: Mapping[str, str], milliseconds: float) -> None:
    meter.create_histogram_float(name, unit="ms").record(milliseconds, dict(labels))
