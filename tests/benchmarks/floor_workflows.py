"""Temporal's floor as workflows: sequential steps of no-op activities. A module of its own that
imports only the SDK, so the workflow sandbox can load it as it loads any workflow's module."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="bench_noop")
async def noop() -> None:
    return None


@workflow.defn(name="BenchSteps")
class Steps:
    """`count` sequential steps of no-op activities: `activity`, `local_activity`, or `both` (a
    regular one then a local one: what the engine's default step schedules). With the SDK's
    defaults (in its sandbox, as a Temporal Python workflow runs unless told otherwise)."""

    @workflow.run
    async def run(self, count: int, kind: str) -> None:
        for _ in range(count):
            if kind in ("activity", "both"):
                await workflow.execute_activity(noop, start_to_close_timeout=timedelta(seconds=10))
            if kind in ("local_activity", "both"):
                await workflow.execute_local_activity(noop, start_to_close_timeout=timedelta(seconds=10))
