"""A run as the API shows it when its workflow cannot say (finished, terminated, or no worker
answers): read from what the Temporal server keeps (its status, search attribute and memo). And
the one line the Temporal UI shows as a run's Summary."""

from __future__ import annotations

from temporalio.api.enums.v1 import WorkflowExecutionStatus as RawStatus
from temporalio.client import WorkflowExecution, WorkflowExecutionDescription, WorkflowExecutionStatus

from workflows.contract import ORCHESTRATION_STATUS_ATTRIBUTE
from workflows.messages import (
    FINAL_EVENT,
    FINAL_EVENT_TYPES,
    EventsPage,
    OrchestrationStatus,
    RunEvent,
    RunEventType,
    RunMemo,
    RunStatus,
    StopReason,
)
from workflows.run_request import OrchestrationRequest

_CLOSED_STATUS = {
    WorkflowExecutionStatus.COMPLETED: RunStatus.COMPLETED,
    WorkflowExecutionStatus.FAILED: RunStatus.FAILED,
    WorkflowExecutionStatus.CANCELED: RunStatus.CANCELLED,
    WorkflowExecutionStatus.TERMINATED: RunStatus.FAILED,
    WorkflowExecutionStatus.TIMED_OUT: RunStatus.TIMED_OUT,
}
CLOSED_STOP_REASON = {
    RunStatus.CANCELLED: StopReason.CANCELLED,
    RunStatus.TIMED_OUT: StopReason.TIMEOUT,
    RunStatus.FAILED: StopReason.ERROR,
}


def status_of(execution: WorkflowExecution, memo: RunMemo) -> RunStatus:
    """The run's status: final memo, else the search attribute, else Temporal's own status."""
    if memo.orchestration is not None:
        return memo.orchestration.status
    if execution.status is not None and execution.status in _CLOSED_STATUS:
        return _CLOSED_STATUS[execution.status]
    value = execution.typed_search_attributes.get(ORCHESTRATION_STATUS_ATTRIBUTE)
    return RunStatus(value) if value is not None and value in RunStatus._value2member_map_ else RunStatus.RUNNING


async def read_memo(execution: WorkflowExecution) -> RunMemo:
    """The run's memo, typed (a field it lacks is None)."""
    return RunMemo.model_validate(await execution.memo())


def minimal_status(description: WorkflowExecutionDescription, memo: RunMemo) -> OrchestrationStatus:
    """What the server alone knows of a run (no worker answered, or it was terminated)."""
    status = status_of(description, memo)
    raw = description.raw_description.workflow_execution_info
    error = "terminated" if raw.status == RawStatus.WORKFLOW_EXECUTION_STATUS_TERMINATED else None
    return OrchestrationStatus(
        id=description.id,
        status=status,
        stop_reason=CLOSED_STOP_REASON.get(status),
        max_steps=0,
        error=error,
        created_at=description.start_time,
        updated_at=description.close_time or description.start_time,
    )


def memo_events(description: WorkflowExecutionDescription, memo: RunMemo, after: int) -> EventsPage:
    """A finished run's events from its memo; a run that ended without writing them
    (terminated, timed out, failed at its start) gets a final event made up here."""
    events = list(memo.events)
    status = status_of(description, memo)
    if not any(event.type in FINAL_EVENT_TYPES for event in events):
        final = minimal_status(description, memo)
        events.append(
            RunEvent(
                id=(events[-1].id if events else 0) + 1,
                type=FINAL_EVENT.get(status, RunEventType.FAILED),
                at=final.updated_at,
                data={"status": status.value, "stop_reason": final.stop_reason, "error": final.error},
            )
        )
    return EventsPage(
        events=[event for event in events if event.id > after],
        first_id=events[0].id,
        last_id=events[-1].id,
        status=status,
    )


def ui_summary(request: OrchestrationRequest) -> str:
    """The run's Summary in the Temporal UI: the prompt's first words, the model."""
    users = [message for message in request.messages or [] if message.role == "user"]
    prompt = request.input or (users[-1].text() or "" if users else "")
    lines = prompt.strip().splitlines()
    model = f"model {request.model}" if request.model else "the worker's default model"
    return f"{(lines[0] if lines else 'orchestration')[:100]} · {model}"
