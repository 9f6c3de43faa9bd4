"""/v1/responses: OpenAI's Responses API with remote-MCP tools, each response a stretch of a
durable run. `api.responses` reads the request; `api.response_output` shows the run as a
response. A request starts a run, follows up a completed one in a new run with its history, or
answers the approval requests of one waiting: the decisions go to the same run, through the
same update as `POST /v1/orchestrations/{id}/approvals`."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.sse import format_sse_event

from api.api_keys import Role
from api.auth import Caller, Principal, Runner
from api.deps import EventsHubDep, ServiceDep, SettingsDep
from api.errors import APIError, error_responses
from api.events import RunEventsHub, next_event
from api.response_output import ResponseProjection, ResponseRef
from api.responses import ResponsePlan, ResponsesRequest, check_servers
from api.routers.orchestrations import MAX_EVENT_ID
from api.service import OrchestrationService
from api.sse import Send, event_stream
from api.temporal_calls import BUSY_QUERY_TIMEOUT_SECONDS
from workflows.chat_messages import ChatMessage
from workflows.messages import TERMINAL_STATUSES, OrchestrationStatus, RunEvent, RunEventType, RunStatus

router = APIRouter(prefix="/v1/responses", tags=["responses"])

CANCEL_WAIT_SECONDS = 10.0
"""How long a cancel waits for the run to end before answering with the response as it is."""
_STREAM = {
    "description": "With `stream: true`: the Responses API's events as Server-Sent Events (`event` is the type, "
    "`id` the `sequence_number`), until the response ends",
    "content": {"text/event-stream": {}},
}


@router.post(
    "",
    responses={200: _STREAM, **error_responses(400, 401, 403, 409, 413, 422, 503)},
)
async def create_response(
    body: ResponsesRequest,
    caller: Caller,
    service: ServiceDep,
    settings: SettingsDep,
    hub: EventsHubDep,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=255)] = None,
) -> Any:
    """Create a response: a run with the request's MCP tools (each `require_approval` and
    `allowed_tools` only tightening its server's policy). A response whose run waits for approval
    completes with `mcp_approval_request` items; answer them with `mcp_approval_response` items
    and `previous_response_id` (`approve` role): the same run goes on. A new message after a
    completed response continues the conversation in a new run, with the earlier run's history.
    `background: true` answers at once; `stream: true` streams the response's events. Starting a
    run takes the `run` role, answering approvals the `approve` role."""
    plan = body.plan()
    _require(caller, Role.APPROVE if plan.approvals else Role.RUN)
    await _check_tools(plan, service)
    asked = _Asked(body, plan, caller, service, idempotency_key)
    if body.previous_response_id is None:
        ref = await asked.start([])
    else:
        previous, run = await _previous(body.previous_response_id, caller, service)
        ref = await (asked.decide if plan.approvals else asked.follow_up)(previous, run)
    if body.stream:
        return await _streamed(ref, -1, caller, service, hub, settings.events_stream_seconds)
    if body.background:
        projection, run = await _read(ref, caller, service)
        return projection.snapshot(run)
    return await _waited(ref, caller, service, hub, settings.chat_timeout_seconds, settings.chat_approval_wait_seconds)


@router.get(
    "/{response_id}",
    responses={200: _STREAM, **error_responses(400, 401, 403, 404, 422, 503)},
)
async def get_response(
    response_id: str,
    caller: Caller,
    service: ServiceDep,
    settings: SettingsDep,
    hub: EventsHubDep,
    stream: bool = False,
    starting_after: Annotated[int | None, Query(ge=-1, le=MAX_EVENT_ID)] = None,
    last_event_id: Annotated[str | None, Header(description="Resume after this sequence number.")] = None,
) -> Any:
    """The response as its run shows it now (a background response: poll until it is no longer
    `queued` or `in_progress`). With `stream=true`, its events from the start, or after
    `starting_after` (or `Last-Event-ID`): a stream resumes without loss or repeats."""
    ref = _ref(response_id)
    projection, run = await _read(ref, caller, service)
    if not stream:
        return projection.snapshot(run)
    after = starting_after if starting_after is not None else _sequence(last_event_id)
    return await _streamed(ref, after, caller, service, hub, settings.events_stream_seconds)


@router.post(
    "/{response_id}/cancel",
    responses=error_responses(401, 403, 404, 503),
)
async def cancel_response(response_id: str, caller: Runner, service: ServiceDep, hub: EventsHubDep) -> dict[str, Any]:
    """Cancel the run behind the response (its in-flight LLM and tool calls, and any MCP task,
    are cancelled) and answer with the response once the run has ended. Idempotent. Only the key
    that started the run, or an admin, may cancel it."""
    ref = _ref(response_id)
    await service.cancel(ref.run_id, caller)
    projection, run = await _read(ref, caller, service)
    if not projection.ended:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CANCEL_WAIT_SECONDS):
                async with contextlib.aclosing(hub.follow(ref.run_id, projection.fed)) as events:
                    async for event in events:
                        projection.feed(event)
        run = await service.status(ref.run_id, caller)
        if projection.ended:
            projection.finish(run)
    return projection.snapshot(run)


# --- Starting, following up, deciding -----------------------------------------------------


async def _check_tools(plan: ResponsePlan, service: OrchestrationService) -> None:
    """The servers the tools name, checked against the workers' listing. With no worker to ask,
    the run starts anyway and records the servers it cannot use; a `server_url` cannot be checked
    then (503)."""
    if not plan.tools:
        return
    listing = await service.tools.naming([tool.server_label for tool in plan.tools])
    if listing is None:
        if any(tool.server_url is not None for tool in plan.tools):
            raise APIError(503, "no_worker", "no worker answered: a `server_url` cannot be checked now")
        return
    check_servers(plan.tools, listing.servers)


async def _previous(
    response_id: str, caller: Principal, service: OrchestrationService
) -> tuple[ResponseProjection, OrchestrationStatus]:
    ref = ResponseRef.parse(response_id)
    try:
        if ref is None:
            raise _not_found(response_id)
        return await _read(ref, caller, service)
    except APIError as err:
        if err.status != 404:
            raise
        raise APIError(
            400, "previous_response_not_found", f"no response {response_id!r}", param="previous_response_id"
        ) from None


@dataclass
class _Asked:
    """A create request, read: what it starts, follows up, or decides."""

    body: ResponsesRequest
    plan: ResponsePlan
    caller: Principal
    service: OrchestrationService
    idempotency_key: str | None

    async def start(self, history: list[ChatMessage]) -> ResponseRef:
        """A new run, after `history` (a follow-up's earlier conversation)."""
        body, plan = self.body, self.plan
        run_id, _, _ = await self.service.start(
            body.run_body(plan, history), self.idempotency_key, self.caller, response_request=body.echo(plan)
        )
        ref = ResponseRef.of_run(run_id)
        assert ref is not None  # every run this API starts has an `orch-` id
        return ref

    async def follow_up(self, previous: ResponseProjection, run: OrchestrationStatus) -> ResponseRef:
        """A new run that continues the conversation of the completed run behind `previous`."""
        _check_ended(previous)
        if previous.final is None:
            waiting = ", ".join(previous.approval_requests)
            raise APIError(
                409,
                "approval_pending",
                f"response {previous.ref.id} waits for approval of {waiting}: answer its mcp_approval_request items "
                "with mcp_approval_response items",
                param="previous_response_id",
            )
        if run.status != RunStatus.COMPLETED:
            raise APIError(
                409,
                "run_not_completed",
                f"the run behind response {previous.ref.id} is {run.status.value}: only a completed response can be "
                "followed up",
                param="previous_response_id",
            )
        history = await self.service.history(run.id, self.caller)
        return await self.start(history.messages)

    async def decide(self, previous: ResponseProjection, run: OrchestrationStatus) -> ResponseRef:
        """The `mcp_approval_response` items as decisions about the calls `previous` asked approval
        for, delivered as the approvals endpoint delivers them (the key's name as approver); the
        response that answers is the rest of the same run."""
        started = previous.echo | {
            "model": run.model,
            "tools": previous.echo.get("tools", []),
            "metadata": run.metadata,
        }
        self.body.check_pinned(self.plan, started)
        _check_ended(previous)
        if previous.final is not None:
            raise APIError(
                409,
                "run_finished",
                f"response {previous.ref.id} ended with its run: no call waits for approval",
                param="previous_response_id",
            )
        if previous.moved_on:
            raise APIError(
                409,
                "run_moved_on",
                f"the run behind response {previous.ref.id} has gone on since it ended (its calls were decided "
                f"elsewhere): continue from response {ResponseRef(run.id, previous.end or 0).id}",
                param="previous_response_id",
            )
        decisions = self.plan.decisions(previous.ref.id, previous.approval_requests, self.caller.name)
        update_id = _update_id(self.caller, self.idempotency_key)
        await self.service.decide(run.id, decisions, self.caller, update_id=update_id)
        assert previous.end is not None
        return ResponseRef(run.id, previous.end)


def _require(caller: Principal, role: Role) -> None:
    if not caller.has(role):
        raise APIError(403, "forbidden", f"API key {caller.name!r} lacks the {role.value!r} role")


def _check_ended(previous: ResponseProjection) -> None:
    if not previous.ended:
        raise APIError(
            409,
            "response_in_progress",
            f"response {previous.ref.id} is still in progress: wait for it to complete",
            param="previous_response_id",
        )


def _update_id(caller: Principal, idempotency_key: str | None) -> str | None:
    """Decisions retried with the same Idempotency-Key are one update (Temporal answers a repeat
    with the first one's result)."""
    if idempotency_key is None:
        return None
    return "responses-" + hashlib.sha256(f"{caller.name}\n{idempotency_key}".encode()).hexdigest()[:32]


# --- Reading and following a response -------------------------------------------------------


def _ref(response_id: str) -> ResponseRef:
    ref = ResponseRef.parse(response_id)
    if ref is None:
        raise _not_found(response_id)
    return ref


def _not_found(response_id: str) -> APIError:
    return APIError(404, "response_not_found", f"no response {response_id!r}")


def _sequence(last_event_id: str | None) -> int:
    if not last_event_id:
        return -1
    if not last_event_id.isdigit() or len(last_event_id) > 18:
        raise APIError(400, "bad_last_event_id", "Last-Event-ID must be the sequence number of an event of this stream")
    return int(last_event_id)


async def _opened(
    ref: ResponseRef, caller: Principal, service: OrchestrationService
) -> tuple[ResponseProjection, OrchestrationStatus]:
    """The response, with nothing read of its run's events yet (404 for another key's run)."""
    _, memo = await service.describe(ref.run_id, caller)
    run = await service.status(ref.run_id, caller)
    return ResponseProjection(ref, memo.response_request or {}, run.created_at, service.links(ref.run_id)), run


async def _read(
    ref: ResponseRef, caller: Principal, service: OrchestrationService
) -> tuple[ResponseProjection, OrchestrationStatus]:
    """The response as the run's events show it now; 404 when no response of the run has that id."""
    projection, run = await _opened(ref, caller, service)
    after = 0
    while True:
        page = await service.events(ref.run_id, after, BUSY_QUERY_TIMEOUT_SECONDS)
        for event in page.events:
            projection.feed(event)
        if not page.events or page.events[-1].id >= page.last_id:
            break
        after = page.events[-1].id
    if not projection.starts_where_one_ended:
        raise _not_found(ref.id)
    if projection.ended:
        if run.status not in TERMINAL_STATUSES:  # it may have moved on while its events were read
            run = await service.status(ref.run_id, caller)
        projection.finish(run)  # the answer's item
    return projection, run


async def _told(
    projection: ResponseProjection,
    run: OrchestrationStatus,
    caller: Principal,
    service: OrchestrationService,
    hub: RunEventsHub,
    closes_after: float,
    input_wait: float | None = None,
) -> AsyncGenerator[dict[str, Any], None]:
    """The response's stream events, numbered, as its run goes on: until it ends, `closes_after`
    seconds, or `input_wait` seconds into a wait for a server's question to be answered."""
    numbers = itertools.count()
    for shown in projection.opening(run):
        yield shown | {"sequence_number": next(numbers)}
    loop = asyncio.get_running_loop()
    closes_at = loop.time() + closes_after
    waiting_since: float | None = None
    async with contextlib.aclosing(hub.follow(projection.ref.run_id, 0)) as events:
        while not projection.ended:
            deadline = closes_at
            if waiting_since is not None and input_wait is not None:
                deadline = min(closes_at, waiting_since + input_wait)
            try:
                event = await next_event(events, deadline)
            except (StopAsyncIteration, TimeoutError):
                break
            for shown in projection.feed(event):
                yield shown | {"sequence_number": next(numbers)}
            waiting_since = _waiting_since(event, waiting_since, loop.time())
    if projection.ended:
        run = await service.status(projection.ref.run_id, caller)
        for shown in projection.finish(run):
            yield shown | {"sequence_number": next(numbers)}


def _waiting_since(event: RunEvent, since: float | None, now: float) -> float | None:
    """When the run began to wait for a server's question to be answered (None: it does not)."""
    if event.type != RunEventType.STATUS:
        return since
    return (since or now) if event.data.get("status") == RunStatus.WAITING_FOR_INPUT else None


async def _waited(
    ref: ResponseRef,
    caller: Principal,
    service: OrchestrationService,
    hub: RunEventsHub,
    timeout: float,
    input_wait: float,
) -> dict[str, Any]:
    """The response once it has ended; `in_progress` if the run takes longer than `timeout`, or
    waits longer than `input_wait` for a person to answer a server (follow it with GET)."""
    projection, run = await _opened(ref, caller, service)
    async with contextlib.aclosing(_told(projection, run, caller, service, hub, timeout, input_wait)) as told:
        async for _ in told:
            pass
    return projection.snapshot(await service.status(ref.run_id, caller))


async def _streamed(
    ref: ResponseRef,
    after: int,
    caller: Principal,
    service: OrchestrationService,
    hub: RunEventsHub,
    closes_after: float,
) -> Any:
    """The response's events after sequence number `after`, as Server-Sent Events (a stream is
    closed after `closes_after` seconds; resume it with GET `?stream=true&starting_after=`)."""
    projection, run = await _opened(ref, caller, service)

    async def produce(send: Send) -> None:
        async with contextlib.aclosing(_told(projection, run, caller, service, hub, closes_after)) as told:
            async for shown in told:
                number = shown["sequence_number"]
                if number > after:
                    send(format_sse_event(data_str=json.dumps(shown), event=shown["type"], id=str(number)))

    return event_stream(produce, f"responses-stream-{ref.id}")
