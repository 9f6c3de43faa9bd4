"""How a run fails: `RunFailed` ends the run (through the workflow's one failure path) with
an error type; the words a failed activity leaves are its innermost cause's; an activity that
ended because the run was cancelled cancels the run."""

from __future__ import annotations

import asyncio

from temporalio.exceptions import ActivityError, CancelledError, FailureError

from workflows import contract
from workflows.limits import MAX_ERROR_CHARS, preview


class RunFailed(Exception):
    """The run cannot go on (e.g. the LLM rejected the request); `type` is the
    failure's error type."""

    def __init__(self, message: str, type: str = contract.RUN_FAILED) -> None:
        super().__init__(message)
        self.type = type


def reraise_cancellation(err: FailureError) -> None:
    """An activity that ended because the run was cancelled cancels the run, not just the step."""
    if isinstance(err, CancelledError) or isinstance(err.cause, CancelledError):
        raise asyncio.CancelledError() from err


def failure_message(err: FailureError) -> str:
    """The innermost failure's message: the provider's or the tool server's own words (the
    first MAX_ERROR_CHARS of them)."""
    cause: BaseException | None = err
    while isinstance(cause, ActivityError) and cause.cause is not None:
        cause = cause.cause
    return preview(cause.message if isinstance(cause, FailureError) else str(cause), MAX_ERROR_CHARS)
