"""The run's own metrics (workflows/metrics.py) by decision channel, read from an in-memory
metric buffer of the worker's runtime: a signal, an update, a webhook approver, a rule; and
nothing counted again when the run's history is replayed."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from temporalio.client import Client
from temporalio.runtime import BufferedMetricUpdate, MetricBuffer, Runtime, TelemetryConfig
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from tests.unit.conftest import Harness
from tests.unit.fakes import FakeActivities, answer, asks, call
from worker.plugin import OrchestrationPlugin
from workflows import metrics
from workflows.messages import ApprovalDecision
from workflows.orchestration import Orchestration

PAY_50 = {"account": "acme", "amount": 50}
PAY_5 = {"account": "acme", "amount": 5}  # within the `small-amounts` rule


@dataclass
class Metered(Harness):
    """The harness, with the worker's runtime recording into `buffer`."""

    runtime: Runtime | None = None
    buffer: MetricBuffer | None = None
    seen: list[BufferedMetricUpdate] = field(default_factory=list)

    def counted(self, name: str, *labels: str) -> Counter[tuple[str, ...]]:
        """`name`'s counts so far, by the values of `labels`."""
        counts: Counter[tuple[str, ...]] = Counter()
        assert self.buffer is not None
        self.seen.extend(self.buffer.retrieve_updates())
        for update in self.seen:
            if update.metric.name == name:
                counts[tuple(str(update.attributes.get(label)) for label in labels)] += int(update.value)
        return counts


@pytest.fixture
async def metered(time_skipping_env: WorkflowEnvironment) -> AsyncIterator[Metered]:
    buffer = MetricBuffer(10_000)
    runtime = Runtime(telemetry=TelemetryConfig(metrics=buffer))
    target = time_skipping_env.client.service_client.config.target_host
    client = await Client.connect(target, runtime=runtime, plugins=[OrchestrationPlugin()])
    fakes = FakeActivities()
    task_queue = f"unit-metrics-{uuid.uuid4().hex[:12]}"
    async with Worker(client, task_queue=task_queue, activities=fakes.activities()):
        h = Metered(env=time_skipping_env, client=client, task_queue=task_queue, fakes=fakes)
        h.runtime, h.buffer = runtime, buffer
        try:
            yield h
        finally:
            await h.terminate_unfinished()


async def test_decisions_are_counted_by_channel_and_the_run_once(metered: Metered) -> None:
    metered.fakes.script(
        asks(
            call("by_signal", "bank__transfer", PAY_50),
            call("by_update", "bank__transfer", PAY_50),
            call("by_webhook", "bank__transfer", PAY_50),
            call("by_rule", "bank__transfer", PAY_5),
        ),
        answer("done"),
    )
    handle = await metered.start(approval_timeout_seconds=3600)
    await metered.wait_pending(handle, count=3)
    await handle.signal(Orchestration.submit_approval, ApprovalDecision(tool_call_id="by_signal", decision="approve"))
    await handle.execute_update(Orchestration.decide, ApprovalDecision(tool_call_id="by_update", decision="deny"))
    webhook = ApprovalDecision(tool_call_id="by_webhook", decision="approve", approver="webhook/hooks")
    await handle.execute_update(Orchestration.decide, webhook)
    assert (await metered.result(handle)).status == "completed"

    decided = metered.counted(metrics.APPROVALS_DECIDED, "decision", "channel")
    assert decided == {
        ("approve", "signal"): 1,
        ("deny", "update"): 1,
        ("approve", "webhook"): 1,
        ("approve", "rule"): 1,
    }
    waited = metered.counted(metrics.APPROVAL_WAIT, "channel")
    assert set(waited) == {("signal",), ("update",), ("webhook",)}, "a rule's approval has no wait"
    assert metered.counted(metrics.APPROVALS_REQUESTED, "tool") == {("transfer",): 3}
    assert metered.counted(metrics.RUNS_FINISHED, "status") == {("completed",): 1}

    # A worker that replays the run's history (as after eviction or a restart), on the same
    # runtime, counts nothing again.
    history = await handle.fetch_history()
    replayer = Replayer(workflows=[], plugins=[OrchestrationPlugin()], runtime=metered.runtime)
    before = len(metered.seen)
    await replayer.replay_workflow(history)
    metered.counted(metrics.RUNS_FINISHED)
    ours = {value for name, value in vars(metrics).items() if name.isupper() and isinstance(value, str)}
    assert not [update.metric.name for update in metered.seen[before:] if update.metric.name in ours]


async def test_a_timed_out_approval_is_counted_with_its_wait(metered: Metered) -> None:
    metered.fakes.script(asks(call("late", "bank__transfer", PAY_50)), answer("gave up"))
    handle = await metered.start(approval_timeout_seconds=60)
    await metered.wait_pending(handle)
    await metered.env.sleep(61)
    assert (await metered.result(handle)).status == "completed"
    assert metered.counted(metrics.APPROVALS_DECIDED, "decision", "channel") == {("deny", "timeout"): 1}
    waits = [u.value for u in metered.seen if u.metric.name == metrics.APPROVAL_WAIT]
    assert len(waits) == 1 and 60_000 <= waits[0] < 70_000, waits  # the timeout, in workflow time
