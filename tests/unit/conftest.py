"""The unit layer's harness: the real `Orchestration` workflow, with the production plugin
(workflow runner and data converter), on a worker whose activities are the fakes of `tests/unit/fakes.py`,
against the session's time-skipping test server (`time_skipping_env` of tests/conftest.py).

One worker per test, on a fresh task queue (it starts and stops in milliseconds); every run a
test leaves unfinished is terminated when the test ends, so no timer of it fires in a later
test's time skipping.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.unit.fakes import FakeActivities
from tests.waiting import WAIT_SECONDS, eventually, result_of
from workflows.messages import OrchestrationStatus
from workflows.orchestration import Orchestration
from workflows.run_request import OrchestrationRequest
from workflows.state import OrchestrationInput


@dataclass
class Harness:
    """A worker running the workflow with fake activities, and the runs a test started."""

    env: WorkflowEnvironment
    client: Client
    task_queue: str
    fakes: FakeActivities
    started: list[WorkflowHandle[Any, Any]] = field(default_factory=list)

    async def start(self, **request: Any) -> WorkflowHandle[Any, OrchestrationStatus]:
        """Start a run; `request` holds the fields of `OrchestrationRequest` (default input "hi")."""
        request.setdefault("input", "hi")
        handle = await self.client.start_workflow(
            Orchestration.run,
            OrchestrationInput(run_request=OrchestrationRequest.model_validate(request)),
            id=f"unit-{uuid.uuid4().hex[:12]}",
            task_queue=self.task_queue,
        )
        self.started.append(handle)
        return handle

    async def status(self, handle: WorkflowHandle[Any, Any]) -> OrchestrationStatus:
        return await handle.query(Orchestration.status)

    async def wait_for(
        self, handle: WorkflowHandle[Any, Any], predicate: Callable[[OrchestrationStatus], bool]
    ) -> OrchestrationStatus:
        seen: list[OrchestrationStatus] = []

        async def reached() -> OrchestrationStatus | None:
            seen[:] = [await self.status(handle)]
            return seen[0] if predicate(seen[0]) else None

        return await eventually(reached, lambda: f"the condition on {handle.id}; last status: {seen}")

    async def wait_pending(self, handle: WorkflowHandle[Any, Any], count: int = 1) -> OrchestrationStatus:
        """The status once `count` calls wait for a decision."""
        return await self.wait_for(handle, lambda s: len(s.pending_approvals) >= count)

    async def result(self, handle: WorkflowHandle[Any, Any]) -> OrchestrationStatus:
        """The run's result (awaiting it lets the test server skip time to the next timer)."""
        return await result_of(handle, WAIT_SECONDS)

    async def terminate_unfinished(self) -> None:
        for handle in self.started:
            try:
                description = await handle.describe()
                if description.status == WorkflowExecutionStatus.RUNNING:
                    await handle.terminate("test over")
            except RPCError:
                pass


@pytest.fixture
async def harness(time_skipping_env: WorkflowEnvironment) -> AsyncIterator[Harness]:
    # The env's client carries OrchestrationPlugin: the worker gets the workflows, the
    # production converter and the sandbox runner from it, and only the fakes from here.
    client = time_skipping_env.client
    fakes = FakeActivities()
    task_queue = f"unit-{uuid.uuid4().hex[:12]}"
    async with Worker(client, task_queue=task_queue, activities=fakes.activities()):
        h = Harness(env=time_skipping_env, client=client, task_queue=task_queue, fakes=fakes)
        try:
            yield h
        finally:
            await h.terminate_unfinished()
