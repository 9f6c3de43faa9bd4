"""Activity options of the Orchestration workflow, in one place.

Temporal owns every retry: the HTTP and MCP clients inside the activities never retry
on their own. Each activity kind gets its timeouts and retry policy here, so the
workflow code only says *what* it calls.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType

from workflows import patches
from workflows.contract import ACTIVITY_PREFIX


def activity_name(name: str) -> str:
    """The name to schedule an activity by (a name of `workflows.contract`): a run from before
    activity names were prefixed replays with the bare name it scheduled then."""
    return name if patches.patched(patches.PREFIXED_ACTIVITY_NAMES) else name.removeprefix(ACTIVITY_PREFIX)


# Failure types the activities raise as non-retryable ApplicationErrors; listed here too so
# a policy change in an activity cannot make them retry by accident.
NON_RETRYABLE_ERROR_TYPES = [
    "LLMRequestRejected",
    "ToolTimeout",
    "MCPServerNotConfigured",
    "MCPConfigError",
    "ToolDefinitionChanged",
    "MCPAuthRequired",
    "TaskGone",
]

LLM_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=8,
    non_retryable_error_types=NON_RETRYABLE_ERROR_TYPES,
)

# A tool call that failed in transport is retried a few times; each retry carries the
# same idempotency key in `_meta`, so a server can tell a retry from a new call.
TOOL_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=3,
    non_retryable_error_types=NON_RETRYABLE_ERROR_TYPES,
)

PREPARE_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=3,
    non_retryable_error_types=NON_RETRYABLE_ERROR_TYPES,
)

# A task's server that does not answer a poll is asked again, patiently: the task goes on
# without us, and its result waits for the next poll that gets through.
TASK_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=30,
    non_retryable_error_types=NON_RETRYABLE_ERROR_TYPES,
)

WEBHOOK_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=2),
    maximum_attempts=10,
)

# Time for connecting to an MCP server (spawning a stdio process) on top of the run's
# per-call tool timeout.
TOOL_CONNECT_ALLOWANCE = timedelta(seconds=30)
HEARTBEAT_TIMEOUT = timedelta(seconds=20)
# One task request (`tasks/get` and the like): short, so a poll cut off with its worker is
# asked again soon by another.
TASK_REQUEST_TIMEOUT = timedelta(seconds=15)
# A cancelled run waits until its in-flight LLM or tool call has really stopped (the
# activity learns of it through its heartbeat), so nothing runs on after "cancelled".
CANCELLATION = ActivityCancellationType.WAIT_CANCELLATION_COMPLETED


def llm_options() -> dict[str, Any]:
    """Options for `LLMActivities.chat_completion`."""
    return {
        "start_to_close_timeout": timedelta(minutes=5),
        "heartbeat_timeout": HEARTBEAT_TIMEOUT,
        "retry_policy": LLM_RETRY_POLICY,
        "cancellation_type": CANCELLATION,
    }


def llm_local_options() -> dict[str, Any]:
    """Options for `LLMActivities.chat_completion` run as a local activity (`llm_call:
    "local_activity"`): the same timeout and retries; retries with backoff up to a minute
    stay in the worker, longer ones become durable timers. Cancellation needs no
    heartbeat: the worker cancels a local activity itself."""
    return {
        "start_to_close_timeout": timedelta(minutes=5),
        "retry_policy": LLM_RETRY_POLICY,
        "cancellation_type": CANCELLATION,
    }


def prepare_options() -> dict[str, Any]:
    """Options for `MCPActivities.prepare_run` (lists every server's tools); the heartbeat
    timeout retries it on another worker soon after its worker dies, not after 2 minutes."""
    return {
        "start_to_close_timeout": timedelta(minutes=2),
        "heartbeat_timeout": HEARTBEAT_TIMEOUT,
        "retry_policy": PREPARE_RETRY_POLICY,
    }


def tool_options(tool_timeout_seconds: float) -> dict[str, Any]:
    """Options for `MCPActivities.call_tool`; the MCP call itself times out at `tool_timeout_seconds`."""
    return {
        "start_to_close_timeout": timedelta(seconds=tool_timeout_seconds) + TOOL_CONNECT_ALLOWANCE,
        "heartbeat_timeout": HEARTBEAT_TIMEOUT,
        "retry_policy": TOOL_RETRY_POLICY,
        "cancellation_type": CANCELLATION,
    }


def tool_local_options(tool_timeout_seconds: float) -> dict[str, Any]:
    """Options for `MCPActivities.call_tool` run as a local activity (the default with LLM calls as
    activities): the same timeout and retries; its worker cancels it directly."""
    return {
        "start_to_close_timeout": timedelta(seconds=tool_timeout_seconds) + TOOL_CONNECT_ALLOWANCE,
        "retry_policy": TOOL_RETRY_POLICY,
        "cancellation_type": CANCELLATION,
    }


def task_options() -> dict[str, Any]:
    """Options for the MCP task activities (`get_task`, `update_task`, `cancel_task`): each is one
    short request; the waits between polls are the workflow's timers."""
    return {"start_to_close_timeout": TASK_REQUEST_TIMEOUT, "retry_policy": TASK_RETRY_POLICY}


def webhook_options() -> dict[str, Any]:
    """Options for `WebhookActivities.deliver_webhook`: patient retries, bounded overall."""
    return {
        "start_to_close_timeout": timedelta(seconds=30),
        "schedule_to_close_timeout": timedelta(minutes=15),
        "retry_policy": WEBHOOK_RETRY_POLICY,
    }
