"""Calling Temporal from the API: each call bounded in time, Temporal's errors turned into the
API's (503 when the server or a worker does not answer, 404 for an unknown run, the decision
errors the workflow's updates refuse with)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from temporalio.client import RPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from api.errors import APIError
from worker.connection import failure
from workflows.contract import (
    DECISION_ALREADY_MADE,
    DECISION_INVALID,
    DECISION_MISMATCH,
    DECISION_UNKNOWN_CALL,
    INPUT_ALREADY_ANSWERED,
    INPUT_INVALID,
    INPUT_UNKNOWN,
)

TEMPORAL_TIMEOUT_SECONDS = 5.0
"""A call the Temporal server answers by itself."""
WORKER_TIMEOUT_SECONDS = 8.0
"""A call a worker must answer (an update, a tool listing)."""
QUERY_TIMEOUT_SECONDS = 3.0
"""A query of a running workflow (a worker answers it)."""
BUSY_QUERY_TIMEOUT_SECONDS = 10.0
"""A query that waits, if need be, for a workflow task held open by a local activity (a tool call)
to heartbeat (every 8 s)."""
REPLAY_TIMEOUT_SECONDS = 20.0
"""A query a worker may answer by replaying a finished run's history first."""

DECISION_ERRORS = {
    DECISION_UNKNOWN_CALL: (404, "unknown_tool_call"),
    DECISION_MISMATCH: (409, "approval_mismatch"),
    DECISION_ALREADY_MADE: (409, "already_decided"),
    DECISION_INVALID: (422, "invalid_decision"),
    INPUT_UNKNOWN: (404, "unknown_input"),
    INPUT_ALREADY_ANSWERED: (409, "already_answered"),
    INPUT_INVALID: (422, "invalid_answer"),
}
"""The workflow's decision and answer error types as the API answers them: (HTTP status, error code)."""


@contextlib.asynccontextmanager
async def temporal_call(what: str, timeout: float = TEMPORAL_TIMEOUT_SECONDS) -> AsyncIterator[None]:
    """Bound a Temporal call in time and map transport failures to 503."""
    try:
        async with asyncio.timeout(timeout):
            yield
    except (TimeoutError, RPCTimeoutOrCancelledError):
        raise APIError(503, "temporal_unavailable", f"{what}: Temporal did not answer within {timeout:g}s") from None
    except RPCError as err:
        if err.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.UNKNOWN):
            raise APIError(503, "temporal_unavailable", f"{what}: Temporal is not reachable") from None
        if err.status == RPCStatusCode.INVALID_ARGUMENT:
            raise APIError(400, "bad_request", f"{what}: {err.message}") from None
        raise
    except RuntimeError as err:
        # The SDK's lazy client raises RuntimeError when it cannot connect.
        raise APIError(503, "temporal_unavailable", f"{what}: Temporal is not reachable ({failure(err)})") from None


def not_found(orchestration_id: str) -> APIError:
    return APIError(404, "not_found", f"no orchestration {orchestration_id!r}")
