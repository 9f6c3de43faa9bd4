"""Counting an activity's calls and their duration (`workflows/metrics.py` names them)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping

from temporalio import activity

from workflows.metrics import count, observe_ms


@contextlib.contextmanager
def measured(calls: str, latency: str, labels: Mapping[str, str]) -> Iterator[dict[str, str]]:
    """Count one call of the running activity and its duration in milliseconds. The block sets
    `outcome` in the dict it gets; a block that raises counts as `failed`."""
    started = time.monotonic()
    outcome = {"outcome": "failed"}
    try:
        yield outcome
    finally:
        meter = activity.metric_meter()
        final = {**labels, **outcome}
        count(meter, calls, final)
        observe_ms(meter, latency, final, (time.monotonic() - started) * 1000)
