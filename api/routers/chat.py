"""POST /v1/chat/completions: OpenAI's chat API, answered by an orchestration that runs tools."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator
from typing import Any

from fastapi import APIRouter
from fastapi.sse import EventSourceResponse, format_sse_event
from pydantic import ValidationError

from api.assistants import AssistantPresetsDep
from api.auth import Principal, Runner
from api.chat import (
    ChatCompletion,
    ChatCompletionRequest,
    Outcome,
    chunks,
    completion,
    progress_comment,
    wait_for_outcome,
)
from api.deps import EventsHubDep, ServiceDep, SettingsDep
from api.errors import APIError, error_responses
from api.service import OrchestrationService
from api.sse import Send, event_stream
from workflows.messages import TERMINAL_STATUSES, RunEvent, RunStatus
from workflows.validation_errors import first_problem

router = APIRouter(prefix="/v1", tags=["chat"])

_FAILED = TERMINAL_STATUSES - {RunStatus.COMPLETED}


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={
        200: {
            "description": "A chat completion; with `stream: true`, chat.completion.chunk objects as Server-Sent "
            "Events, ending with `data: [DONE]`",
            "content": {"text/event-stream": {}},
        },
        502: {"description": "The run failed or was cancelled (the message names it)"},
        **error_responses(400, 401, 403, 413, 422, 503),
    },
)
async def chat_completions(
    body: ChatCompletionRequest,
    caller: Runner,
    service: ServiceDep,
    settings: SettingsDep,
    hub: EventsHubDep,
    presets: AssistantPresetsDep,
) -> Any:
    """Run the messages as an orchestration (MCP tools executed, approvals as configured) and
    answer with the final message and usage. If a tool call waits for approval longer than
    `approval_wait_seconds`, the answer says so, with the orchestration id and the pending
    calls (also in the `orchestration` extension field): approve them and follow the run.
    With `assistant`, its options apply where the request sets none (its model when `model`
    is omitted or is the assistant's name); 422 `unknown_assistant` when there is none."""
    if body.tools:
        raise APIError(
            422, "client_tools_unsupported", "`tools` is not supported: tools come from the MCP servers (`mcp_servers`)"
        )
    execute = settings.chat_execute_tools if body.execute_tools is None else body.execute_tools
    try:
        run_body = body.to_run(execute)
    except ValidationError as err:
        raise APIError(422, "invalid_request", first_problem(err, located=False)) from None
    run_id, _, _ = await service.start(await presets.apply(run_body), None, caller)
    approval_wait = (
        settings.chat_approval_wait_seconds if body.approval_wait_seconds is None else body.approval_wait_seconds
    )
    events = hub.follow(run_id, 0)
    if body.stream:
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        return _stream(events, run_id, caller, service, approval_wait, settings.chat_timeout_seconds, include_usage)
    try:
        outcome = await wait_for_outcome(events, approval_wait, settings.chat_timeout_seconds)
    finally:
        await events.aclose()
    return await _completion(run_id, outcome, caller, service)


async def _completion(
    run_id: str, outcome: Outcome, caller: Principal, service: OrchestrationService
) -> ChatCompletion:
    run = await service.status(run_id, caller)
    if outcome == "finished" and run.status in _FAILED:
        detail = run.error or (run.stop_reason.value if run.stop_reason else run.status.value)
        raise APIError(502, "orchestration_failed", f"orchestration {run_id} {run.status.value}: {detail}")
    return completion(run, outcome, service.links(run_id))


def _stream(
    events: AsyncGenerator[RunEvent, None],
    run_id: str,
    caller: Principal,
    service: OrchestrationService,
    approval_wait: float,
    timeout: float,
    include_usage: bool,
) -> EventSourceResponse:
    """SSE comments while the run goes on, then the answer's chunks and `data: [DONE]`. A client
    that hangs up cancels the producer, which consumes (and so closes) `events` itself."""

    async def answer(send: Send) -> None:
        async def note(event: RunEvent) -> None:
            send(format_sse_event(comment=progress_comment(event)))

        async with contextlib.aclosing(events):
            outcome = await wait_for_outcome(events, approval_wait, timeout, note)
        try:
            done = await _completion(run_id, outcome, caller, service)
        except APIError as err:
            error = {"error": {"code": err.code, "message": err.message}}
            send(format_sse_event(data_str=json.dumps(error)))
            return
        for piece in chunks(done, include_usage):
            send(format_sse_event(data_str=json.dumps(piece)))
        send(format_sse_event(data_str="[DONE]"))

    return event_stream(answer, f"chat-stream-{run_id}")
