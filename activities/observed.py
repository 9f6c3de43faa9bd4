"""What an activity reports about itself: its calls and their duration as metrics
(`workflows/metrics.py` names them) and attributes of its trace span (with tracing on).
Outside an activity (tests calling the methods directly) both are no-ops."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping

from opentelemetry import trace
from temporalio import activity
from temporalio.common import MetricMeter

from workflows.metrics import count, observe_ms


def meter() -> MetricMeter:
    """The running activity's meter (its labels added), or a no-op one."""
    return activity.metric_meter() if activity.in_activity() else MetricMeter.noop


def annotate(attributes: Mapping[str, str | int]) -> None:
    """Put `attributes` (and the run's id) on the running activity's span."""
    span = trace.get_current_span()
    span.set_attributes(dict(attributes))
    if activity.in_activity():
        span.set_attribute("orch.run_id", activity.info().workflow_id or "")


@contextlib.contextmanager
def measured(calls: str, latency: str, labels: Mapping[str, str]) -> Iterator[dict[str, str]]:
    """Count one call of the running activity and its duration in milliseconds. The block sets
    `outcome` in the dict it gets; a block that raises counts as `failed`."""
    started = time.monotonic()
    outcome = {"outcome": "failed"}
    try:
        yield outcome
    finally:
        final = {**labels, **outcome}
        count(meter(), calls, final)
        observe_ms(meter(), latency, final, (time.monotonic() - started) * 1000)
