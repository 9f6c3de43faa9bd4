"""Starting a run, idempotently: the checks every start passes (`api.limits`, the workers' MCP
servers), the workflow id (random, or from the caller's Idempotency-Key, so Temporal itself
makes concurrent starts one run), and telling a retried start (same body: the run it started)
from a reused key (another body: 422). A body that names an assistant arrives here filled in
from it (`PresetRun`); its key is bound to the body as sent."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from pydantic import PrivateAttr
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.runtime import Runtime

from api.auth import Principal
from api.errors import APIError
from api.limits import check_run_request, check_scope
from api.projections import read_memo, status_of, ui_summary
from api.schemas import CreateOrchestration
from api.temporal_calls import temporal_call
from api.tool_listing import ToolListings
from worker.settings import Settings
from workflows import contract, metrics
from workflows.contract import ORCHESTRATION_OWNER_ATTRIBUTE, ORCHESTRATION_STATUS_ATTRIBUTE
from workflows.messages import OrchestrationStatus, RunMemo, RunStatus
from workflows.run_request import OrchestrationRequest
from workflows.state import OrchestrationInput


async def start_run(
    client: Client,
    settings: Settings,
    tools: ToolListings,
    body: CreateOrchestration,
    idempotency_key: str | None,
    caller: Principal,
    response_request: dict[str, Any] | None = None,
) -> tuple[str, RunStatus, bool]:
    """Start a run owned by `caller`, within its MCP scope; returns (id, status, created).
    A known Idempotency-Key with the same body is not created again. `response_request`: the
    Responses API request the run answers, kept in its memo."""
    check_run_request(body, settings)
    check_scope(body, caller)
    if body.mcp_servers:
        await tools.check_servers(body.mcp_servers)
    request = _owned_request(body, caller)
    request_hash = _request_hash(body.as_sent if isinstance(body, PresetRun) else body, caller)
    nonce = uuid.uuid4().hex
    workflow_id = _workflow_id(idempotency_key, caller)
    attributes = [SearchAttributePair(ORCHESTRATION_STATUS_ATTRIBUTE, RunStatus.RUNNING.value)]
    if caller.name is not None:
        attributes.append(SearchAttributePair(ORCHESTRATION_OWNER_ATTRIBUTE, caller.name))
    try:
        async with temporal_call("start orchestration"):
            handle = await client.start_workflow(
                contract.ORCHESTRATION_WORKFLOW,
                OrchestrationInput(run_request=request),
                result_type=OrchestrationStatus,
                id=workflow_id,
                task_queue=settings.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                memo=RunMemo(
                    request_hash=request_hash, start_nonce=nonce, owner=caller.name, response_request=response_request
                ).written("request_hash", "start_nonce", "owner", *(["response_request"] if response_request else [])),
                search_attributes=TypedSearchAttributes(attributes),
                static_summary=ui_summary(request),
            )
    except WorkflowAlreadyStartedError:
        handle = client.get_workflow_handle(workflow_id)
    if idempotency_key is None:
        _started()
        return workflow_id, RunStatus.RUNNING, True
    async with temporal_call("read orchestration"):
        description = await handle.describe()
        memo = await read_memo(description)
    if memo.start_nonce == nonce:
        _started()
        return workflow_id, RunStatus.RUNNING, True
    if memo.request_hash != request_hash:
        raise APIError(
            422, "idempotency_key_reused", "this Idempotency-Key was already used with a different request body"
        )
    return workflow_id, status_of(description, memo), False


class PresetRun(CreateOrchestration):
    """A run body with a preset's options (an assistant's) filled in where the client set none.
    The client's Idempotency-Key stays bound to `as_sent`, the body it sent: a retry finds its
    run even when the preset changed in between."""

    _as_sent: CreateOrchestration = PrivateAttr()

    @classmethod
    def fill(cls, sent: CreateOrchestration, options: dict[str, Any]) -> PresetRun:
        """`sent`, taking each of `options` (validated run options) that it did not set itself."""
        own = {name: getattr(sent, name) for name in sent.model_fields_set}
        run = cls.model_validate({**options, **own})
        run._as_sent = sent
        return run

    @property
    def as_sent(self) -> CreateOrchestration:
        return self._as_sent


def _owned_request(body: CreateOrchestration, caller: Principal) -> OrchestrationRequest:
    """The workflow's request: the body, with the caller's key and scope."""
    request = body.to_run_request()
    request.owner = caller.name
    request.tool_scope = list(caller.mcp_scopes) if caller.mcp_scopes is not None else None
    return request


def _request_hash(body: CreateOrchestration, caller: Principal) -> str:
    """What an Idempotency-Key is bound to: the request `body` asks for, and the assistant it names
    (added only then, so the hashes of runs without one are what they were)."""
    fields = _owned_request(body, caller).model_dump(mode="json")
    if body.assistant is not None:
        fields["assistant"] = body.assistant
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def _workflow_id(idempotency_key: str | None, caller: Principal) -> str:
    """A random id, or the one `idempotency_key` always gives this caller."""
    if idempotency_key is None:
        return f"orch-{uuid.uuid4().hex}"
    # Same key -> same workflow id, so Temporal itself makes concurrent starts one run.
    # Keys are per caller: two API keys using the same Idempotency-Key get two runs.
    scoped_key = idempotency_key if caller.name is None else f"{caller.name}\n{idempotency_key}"
    return "orch-" + hashlib.sha256(scoped_key.encode()).hexdigest()[:32]


def _started() -> None:
    """Count a run this API started (`/metrics` with ORCH_METRICS_PORT)."""
    metrics.count(Runtime.default().metric_meter, metrics.RUNS_STARTED, {})
