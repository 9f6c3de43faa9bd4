"""The Temporal plugin every client, worker and replayer of these workflows uses: the data
converter (pydantic models, encrypted payloads with ORCH_ENCRYPTION_KEY), the workflows and the
workflow sandbox's runner. The API's client takes it too (for the converter); the workflow code is
imported only when a worker or replayer is configured, so the API never loads it."""

from __future__ import annotations

from collections.abc import Sequence

from temporalio.plugin import SimplePlugin
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from worker.converter import data_converter

WORKFLOW_RUNNER = SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_all_modules())
"""The sandbox still refuses non-deterministic calls (clocks, randomness, I/O) in workflow code,
but no longer re-imports every module for each run: the workflow modules keep no mutable module
state, and re-importing made a run's first task and every replay of an evicted run cost ~20 ms
(BENCHMARKS.md)."""


def _with_workflows(registered: Sequence[type] | None) -> Sequence[type]:
    from workflows.list_tools import ListTools
    from workflows.orchestration import Orchestration

    return [*(registered or []), Orchestration, ListTools]


class OrchestrationPlugin(SimplePlugin):
    """`Client.connect(..., plugins=[OrchestrationPlugin(key)])`: workers made with that client
    run the workflows; `Replayer(workflows=[], plugins=[OrchestrationPlugin()])` replays them."""

    def __init__(self, encryption_key: str | None = None) -> None:
        super().__init__(
            "durable-orchestrations",
            data_converter=data_converter(encryption_key),
            workflows=_with_workflows,
            workflow_runner=WORKFLOW_RUNNER,
        )
