"""The interactive test servers (tests/mcp_servers/interactive.py, tests/mcp_servers/tasks.py)
against the MCP SDK's own client, over stdio and streamable HTTP: multi-round elicitation
(SEP-2322 `InputRequiredResult`), sampling, roots, progress, the legacy in-session elicitation,
and the Tasks extension (`io.modelcontextprotocol/tasks`, SEP-2663).

The Tasks client side lives here: `TasksClient`, a `ClientExtension` whose `ResultClaim` makes
the SDK client parse a `tools/call` answered with `resultType: "task"` (as `TaskCreated`), and
`get_task` / `update_task` / `cancel_task`, which send `tasks/*` through the SDK session
(`ClientSession.send_request` with `Request` subclasses whose `name_param` puts the task id in
the `Mcp-Name` header)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import mcp_types
import pytest
from mcp import Client
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp.client.session import ClientRequestContext, ClientSession
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp_types import (
    HEADER_MISMATCH,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    CallToolResult,
    CreateMessageRequest,
    CreateMessageRequestParams,
    CreateMessageResult,
    ElicitRequest,
    ElicitRequestFormParams,
    ElicitRequestParams,
    ElicitResult,
    ErrorData,
    InputRequest,
    InputRequiredResult,
    InputResponse,
    ListRootsRequest,
    ListRootsResult,
    Root,
    TextContent,
)
from pydantic import FileUrl

from tests.conftest import REPO_ROOT
from tests.mcp_servers.tasks import TASKS_EXTENSION, TaskIdParams, UpdateTaskParams
from tests.scripted_llm import free_port
from tests.waiting import POLL_SECONDS, WAIT_SECONDS, eventually

T = TypeVar("T")


async def poll(check: Callable[[], Awaitable[T | None]], what: Callable[[], str], *, interval: float) -> T:
    """`eventually` for an async check returning a value or None (typed for it): await `check`
    every `interval` seconds until it returns a value, within the tests' overall limit."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    while (value := await check()) is None:
        if loop.time() > deadline:
            raise AssertionError(f"not reached within {WAIT_SECONDS:g}s: {what()}")
        await asyncio.sleep(interval)
    return value


# --- starting the servers ------------------------------------------------------------------


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM `process` and wait for it; kill it if it outlives the wait."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), WAIT_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise


@contextlib.asynccontextmanager
async def http_server(module: str, *args: str, env: dict[str, str] | None = None) -> AsyncIterator[str]:
    """`python -m <module> --http PORT <args>` on a free port of 127.0.0.1; yields its MCP URL once
    it accepts connections. Its stderr (logs) goes to the test's stderr."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, "--http", str(port), *args,
        cwd=REPO_ROOT, env={**os.environ, **(env or {})}, stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip

    async def accepts() -> bool | None:
        if process.returncode is not None:
            raise AssertionError(f"{module} exited with status {process.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return None
        writer.close()
        return True

    try:
        await poll(accepts, lambda: f"{module} serving on 127.0.0.1:{port}", interval=POLL_SECONDS)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        await _stop(process)


def stdio_server(module: str, *args: str, env: dict[str, str] | None = None) -> StdioServerParameters:
    """`python -m <module> <args>` as the SDK client launches a stdio server."""
    return StdioServerParameters(command=sys.executable, args=["-m", module, *args], cwd=str(REPO_ROOT), env=env or {})


def text_of(result: CallToolResult) -> str:
    assert not result.is_error, result
    [content] = result.content
    assert isinstance(content, TextContent)
    return content.text


# --- the interactive server ----------------------------------------------------------------

INTERACTIVE = "tests.mcp_servers.interactive"


@dataclass
class CallLog:
    """The interactive server's INTERACTIVE_CALL_LOG: the tool bodies that ran to the end."""

    path: Path

    def calls(self, tool: str) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        lines = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
        return [line for line in lines if line["tool"] == tool]


@dataclass
class Interactive:
    """How to reach one running interactive server (a stdio launch or an HTTP URL)."""

    target: StdioServerParameters | str
    log: CallLog

    def client(self, **options: Any) -> Client:
        return Client(self.target, **options)


@pytest.fixture(scope="module")
def interactive_log(tmp_path_factory: pytest.TempPathFactory) -> CallLog:
    return CallLog(tmp_path_factory.mktemp("interactive") / "calls.jsonl")


@pytest.fixture(scope="module")
async def interactive_url(interactive_log: CallLog) -> AsyncIterator[str]:
    async with http_server(INTERACTIVE, env={"INTERACTIVE_CALL_LOG": str(interactive_log.path)}) as url:
        yield url


@pytest.fixture(scope="module")
async def legacy_interactive_url(interactive_log: CallLog) -> AsyncIterator[str]:
    env = {"INTERACTIVE_CALL_LOG": str(interactive_log.path)}
    async with http_server(INTERACTIVE, "--legacy", env=env) as url:
        yield url


@pytest.fixture
def interactive(interactive_url: str, interactive_log: CallLog) -> Interactive:
    """The interactive server over streamable HTTP (one process for the module)."""
    return Interactive(interactive_url, interactive_log)


@pytest.fixture(params=["stdio", "http"])
def interactive_any(request: pytest.FixtureRequest, interactive_log: CallLog) -> Interactive:
    """The interactive server as the SDK client reaches it, over stdio (a process per test) or
    streamable HTTP: for the behaviours each transport must show."""
    if request.param == "http":
        return Interactive(request.getfixturevalue("interactive_url"), interactive_log)
    env = {"INTERACTIVE_CALL_LOG": str(interactive_log.path)}
    return Interactive(stdio_server(INTERACTIVE, env=env), interactive_log)


@pytest.fixture(params=["stdio", "http"])
def legacy_interactive(request: pytest.FixtureRequest, interactive_log: CallLog) -> Interactive:
    """The interactive server started with --legacy (handshake-era protocol only)."""
    if request.param == "http":
        return Interactive(request.getfixturevalue("legacy_interactive_url"), interactive_log)
    env = {"INTERACTIVE_CALL_LOG": str(interactive_log.path)}
    return Interactive(stdio_server(INTERACTIVE, "--legacy", env=env), interactive_log)


async def never_elicited(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult | ErrorData:
    """Declares the elicitation capability; a test driving the rounds by hand never calls it."""
    raise AssertionError(f"unexpected elicitation callback: {params.message}")


async def never_sampled(
    context: ClientRequestContext, params: CreateMessageRequestParams
) -> CreateMessageResult | ErrorData:
    raise AssertionError("unexpected sampling callback")


async def never_listed(context: ClientRequestContext) -> ListRootsResult | ErrorData:
    raise AssertionError("unexpected roots callback")


HAND_DRIVEN = {
    "elicitation_callback": never_elicited,
    "sampling_callback": never_sampled,
    "list_roots_callback": never_listed,
}
"""Client options for driving the input rounds by hand: the capabilities are declared (a
resolver refuses with -32021 otherwise), the callbacks must not be called."""


@dataclass
class Rounds:
    """What a hand-driven call went through: each round's input requests, and the result."""

    requests: list[dict[str, InputRequest]] = field(default_factory=list)
    states: list[str | None] = field(default_factory=list)
    result: CallToolResult | None = None


async def call_by_hand(client: Client, tool: str, arguments: dict[str, Any], *answers: InputResponse) -> Rounds:
    """Call `tool`, answering round i's (single) input request with `answers[i]`: each retry
    carries `input_responses` keyed like the request and echoes the round's `request_state`."""
    rounds = Rounds()
    responses: dict[str, InputResponse] | None = None
    state: str | None = None
    for answer in [*answers, None]:
        result = await client.session.call_tool(
            tool, arguments, allow_input_required=True, input_responses=responses, request_state=state
        )
        if isinstance(result, CallToolResult):
            rounds.result = result
            return rounds
        assert isinstance(result, InputRequiredResult)
        assert answer is not None, f"round {len(rounds.requests) + 1} was not expected: {result.input_requests}"
        rounds.requests.append(result.input_requests or {})
        rounds.states.append(result.request_state)
        [key] = (result.input_requests or {}).keys()
        responses, state = {key: answer}, result.request_state
    raise AssertionError(f"{tool} still asked after {len(answers)} rounds")


def form(request: InputRequest) -> ElicitRequestFormParams:
    assert isinstance(request, ElicitRequest) and isinstance(request.params, ElicitRequestFormParams), request
    return request.params


def accept(**content: Any) -> ElicitResult:
    return ElicitResult(action="accept", content=content)


async def test_book_trip_asks_twice_and_the_second_question_depends_on_the_first_answer(
    interactive_any: Interactive,
) -> None:
    interactive = interactive_any
    destination = f"Paris-{uuid.uuid4().hex[:8]}"
    async with asyncio.timeout(WAIT_SECONDS), interactive.client(**HAND_DRIVEN) as client:
        assert client.protocol_version == "2026-07-28"
        rounds = await call_by_hand(
            client,
            "book_trip",
            {"destination": destination},
            accept(date="2026-08-01"),
            accept(seats=2, window=True),
        )
    assert (
        rounds.result is not None and text_of(rounds.result) == f"booked {destination} on 2026-08-01: 2 seat(s), window"
    )
    [first], [second] = (list(requests.items()) for requests in rounds.requests)
    date_question, seats_question = form(first[1]), form(second[1])
    assert first[0] != second[0]
    assert date_question.message == f"When do you travel to {destination}?"
    assert date_question.requested_schema["properties"]["date"]["type"] == "string"
    assert date_question.requested_schema["required"] == ["date"]
    assert seats_question.message == "How many seats on 2026-08-01?"
    assert seats_question.requested_schema["properties"]["seats"]["type"] == "integer"
    assert seats_question.requested_schema["properties"]["window"]["type"] == "boolean"
    assert seats_question.requested_schema["required"] == ["seats"]
    assert all(state for state in rounds.states), "every round carries request_state to echo"
    calls = [c for c in interactive.log.calls("book_trip") if c["arguments"]["destination"] == destination]
    assert len(calls) == 1, "the tool body ran once: in the last round"


async def test_book_trip_with_the_sdks_own_driver(interactive: Interactive) -> None:
    """`Client.call_tool` drives the rounds itself through the elicitation callback."""
    asked: list[str] = []

    async def answer(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult | ErrorData:
        asked.append(params.message)
        return accept(date="2026-09-09") if "When" in params.message else accept(seats=1)

    async with asyncio.timeout(WAIT_SECONDS), interactive.client(elicitation_callback=answer) as client:
        result = await client.call_tool("book_trip", {"destination": "Oslo"})
    assert text_of(result) == "booked Oslo on 2026-09-09: 1 seat(s)"
    assert asked == ["When do you travel to Oslo?", "How many seats on 2026-09-09?"]


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ([ElicitResult(action="decline")], "booking declined"),
        ([ElicitResult(action="cancel")], "booking cancelled"),
        ([accept(date="2026-08-01"), ElicitResult(action="decline")], "booking declined"),
        ([accept(date="2026-08-01"), ElicitResult(action="cancel")], "booking cancelled"),
    ],
    ids=["decline-date", "cancel-date", "decline-seats", "cancel-seats"],
)
async def test_a_refused_booking_reaches_the_tool(
    interactive: Interactive, answers: list[ElicitResult], expected: str
) -> None:
    destination = f"Rome-{uuid.uuid4().hex[:8]}"
    async with asyncio.timeout(WAIT_SECONDS), interactive.client(**HAND_DRIVEN) as client:
        rounds = await call_by_hand(client, "book_trip", {"destination": destination}, *answers)
    assert rounds.result is not None and text_of(rounds.result) == expected
    assert len(rounds.requests) == len(answers), "a refused date asks no second question"
    assert len([c for c in interactive.log.calls("book_trip") if c["arguments"]["destination"] == destination]) == 1


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (accept(name="Ada"), "hello Ada"),
        (ElicitResult(action="decline"), "no name given (decline)"),
        (ElicitResult(action="cancel"), "no name given (cancel)"),
    ],
    ids=["accept", "decline", "cancel"],
)
async def test_ask_name(interactive: Interactive, answer: ElicitResult, expected: str) -> None:
    async with asyncio.timeout(WAIT_SECONDS), interactive.client(**HAND_DRIVEN) as client:
        rounds = await call_by_hand(client, "ask_name", {}, answer)
    assert rounds.result is not None and text_of(rounds.result) == expected
    [[question]] = (list(requests.values()) for requests in rounds.requests)
    assert form(question).message == "What is your name?"
    assert form(question).requested_schema["properties"]["name"]["type"] == "string"


async def test_summarize_sends_one_sampling_request(interactive_any: Interactive) -> None:
    interactive = interactive_any
    answer = CreateMessageResult(role="assistant", content=TextContent(type="text", text="short"), model="scripted")
    async with asyncio.timeout(WAIT_SECONDS), interactive.client(**HAND_DRIVEN) as client:
        rounds = await call_by_hand(client, "summarize", {"text": "a long text"}, answer)
    assert rounds.result is not None and text_of(rounds.result) == "summary: short"
    [[request]] = (list(requests.values()) for requests in rounds.requests)
    assert isinstance(request, CreateMessageRequest)
    assert request.params.max_tokens == 100
    [message] = request.params.messages
    assert message.role == "user"
    assert message.content == TextContent(type="text", text="Summarize: a long text")


async def test_sampling_needs_the_clients_sampling_capability(interactive: Interactive) -> None:
    async with asyncio.timeout(WAIT_SECONDS), interactive.client() as client:
        with pytest.raises(MCPError) as refused:
            await client.session.call_tool("summarize", {"text": "x"}, allow_input_required=True)
    assert refused.value.error.code == MISSING_REQUIRED_CLIENT_CAPABILITY


@pytest.mark.parametrize(
    ("roots", "expected"),
    [(["file:///work/a", "file:///work/b"], "file:///work/a\nfile:///work/b"), ([], "no roots")],
    ids=["two", "none"],
)
async def test_list_roots(interactive: Interactive, roots: list[str], expected: str) -> None:
    answer = ListRootsResult(roots=[Root(uri=FileUrl(uri)) for uri in roots])
    async with asyncio.timeout(WAIT_SECONDS), interactive.client(**HAND_DRIVEN) as client:
        rounds = await call_by_hand(client, "list_roots", {}, answer)
    assert rounds.result is not None and text_of(rounds.result) == expected
    [[request]] = (list(requests.values()) for requests in rounds.requests)
    assert isinstance(request, ListRootsRequest)


async def test_progress_notifications_arrive(interactive_any: Interactive) -> None:
    interactive = interactive_any
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with asyncio.timeout(WAIT_SECONDS), interactive.client() as client:
        result = await client.call_tool("count_slowly", {"steps": 3}, progress_callback=on_progress)
        assert text_of(result) == "counted to 3"
        await eventually(lambda: len(seen) == 3, lambda: f"3 progress notifications, got {seen}")
    assert sorted(seen) == [(1, 3, "step 1 of 3"), (2, 3, "step 2 of 3"), (3, 3, "step 3 of 3")]


class Elicitations:
    """An elicitation callback that answers by the question asked, and remembers the questions."""

    def __init__(self, answers: dict[str, ElicitResult]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def __call__(self, context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult | ErrorData:
        self.asked.append(params.message)
        return next(answer for question, answer in self.answers.items() if params.message.startswith(question))


LEGACY_QUESTION = "What should the legacy path answer?"


async def test_the_legacy_in_session_elicitation_fails_on_2026(interactive: Interactive) -> None:
    """On 2026-07-28 there are no server-to-client requests: `ctx.elicit(...)` raises the SDK's
    NoBackChannelError, a JSON-RPC error -32600, and the callback is never called."""
    before = len(interactive.log.calls("legacy_ask"))
    async with asyncio.timeout(WAIT_SECONDS), interactive.client(elicitation_callback=never_elicited) as client:
        assert client.protocol_version == "2026-07-28"
        with pytest.raises(MCPError) as refused:
            await client.call_tool("legacy_ask", {})
    assert refused.value.error.code == INVALID_REQUEST
    assert "no back-channel" in refused.value.error.message
    assert len(interactive.log.calls("legacy_ask")) == before


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (accept(answer="yes"), 'legacy answer: accept {"answer":"yes"}'),
        (ElicitResult(action="decline"), "legacy answer: decline"),
    ],
    ids=["accept", "decline"],
)
async def test_a_legacy_server_is_reached_through_auto_negotiation(
    legacy_interactive: Interactive, answer: ElicitResult, expected: str
) -> None:
    """`Client(...)` in its default mode "auto" probes `server/discover`; the --legacy server
    refuses it, the client falls back to `initialize`, and `ctx.elicit(...)` reaches the
    elicitation callback as a standalone `elicitation/create` request."""
    callback = Elicitations({LEGACY_QUESTION: answer})
    async with asyncio.timeout(WAIT_SECONDS), legacy_interactive.client(elicitation_callback=callback) as client:
        assert client.protocol_version == "2025-11-25"
        assert text_of(await client.call_tool("legacy_ask", {})) == expected
    assert callback.asked == [LEGACY_QUESTION]


async def test_on_the_legacy_path_the_resolvers_ask_through_the_callbacks(legacy_interactive: Interactive) -> None:
    """The same multi-round tool, on 2025-11-25: each question is an `elicitation/create`
    request mid-call, so one `tools/call` answers with the booking."""
    callback = Elicitations({"When do you travel": accept(date="2026-10-10"), "How many seats": accept(seats=3)})
    async with asyncio.timeout(WAIT_SECONDS), legacy_interactive.client(elicitation_callback=callback) as client:
        result = await client.session.call_tool("book_trip", {"destination": "Lima"}, allow_input_required=True)
    assert isinstance(result, CallToolResult) and text_of(result) == "booked Lima on 2026-10-10: 3 seat(s)"
    assert callback.asked == ["When do you travel to Lima?", "How many seats on 2026-10-10?"]


async def test_a_legacy_mode_client_takes_the_legacy_path_on_the_dual_era_server(interactive: Interactive) -> None:
    callback = Elicitations({LEGACY_QUESTION: accept(answer="old")})
    options: dict[str, Any] = {"elicitation_callback": callback, "mode": "legacy"}
    async with asyncio.timeout(WAIT_SECONDS), interactive.client(**options) as client:
        assert client.protocol_version == "2025-11-25"
        assert text_of(await client.call_tool("legacy_ask", {})) == 'legacy answer: accept {"answer":"old"}'
    assert callback.asked == [LEGACY_QUESTION]


# --- the Tasks extension: the client side --------------------------------------------------

TaskStatus = Literal["working", "input_required", "completed", "cancelled", "failed"]


class TaskCreated(mcp_types.Result):
    """CreateTaskResult: what `tools/call` answers when the server made the call a task."""

    result_type: Literal["task"]
    task_id: str
    status: TaskStatus
    status_message: str | None = None
    created_at: str
    last_updated_at: str
    ttl_ms: int | None
    poll_interval_ms: int | None = None


class TaskState(mcp_types.Result):
    """The result of `tasks/get`: the task, plus `input_requests` / `result` / `error` by status."""

    result_type: str | None = None
    task_id: str
    status: TaskStatus
    status_message: str | None = None
    created_at: str
    last_updated_at: str
    ttl_ms: int | None
    poll_interval_ms: int | None = None
    input_requests: dict[str, InputRequest] | None = None
    result: CallToolResult | None = None
    error: ErrorData | None = None


class GetTaskRequest(mcp_types.Request[TaskIdParams, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    params: TaskIdParams
    name_param = "taskId"  # Mcp-Name: <taskId> over Streamable HTTP (spec MUST)


class UnroutedGetTaskRequest(mcp_types.Request[TaskIdParams, Literal["tasks/get"]]):
    """`tasks/get` without the Mcp-Name header: the server must refuse it over HTTP."""

    method: Literal["tasks/get"] = "tasks/get"
    params: TaskIdParams


class UpdateTaskRequest(mcp_types.Request[UpdateTaskParams, Literal["tasks/update"]]):
    method: Literal["tasks/update"] = "tasks/update"
    params: UpdateTaskParams
    name_param = "taskId"


class CancelTaskRequest(mcp_types.Request[TaskIdParams, Literal["tasks/cancel"]]):
    method: Literal["tasks/cancel"] = "tasks/cancel"
    params: TaskIdParams
    name_param = "taskId"


async def get_task(session: ClientSession, task_id: str) -> TaskState:
    return await session.send_request(GetTaskRequest(params=TaskIdParams(task_id=task_id)), TaskState)


class Acknowledged(mcp_types.Result):
    """The (empty) result of `tasks/update` and `tasks/cancel`."""

    result_type: str | None = None


async def update_task(session: ClientSession, task_id: str, responses: dict[str, InputResponse]) -> Acknowledged:
    wire = {
        key: response.model_dump(by_alias=True, mode="json", exclude_none=True) for key, response in responses.items()
    }
    request = UpdateTaskRequest(params=UpdateTaskParams(task_id=task_id, input_responses=wire))
    return await session.send_request(request, Acknowledged)


async def cancel_task(session: ClientSession, task_id: str) -> Acknowledged:
    return await session.send_request(CancelTaskRequest(params=TaskIdParams(task_id=task_id)), Acknowledged)


async def wait_for_task(
    session: ClientSession, created: TaskCreated, reached: Callable[[TaskState], bool], what: str
) -> TaskState:
    """Poll `tasks/get` at the task's pollIntervalMs until `reached`, within the tests' deadline."""
    seen: list[TaskState] = []

    async def check() -> TaskState | None:
        state = await get_task(session, created.task_id)
        seen.append(state)
        return state if reached(state) else None

    interval = (created.poll_interval_ms or 1000) / 1000
    return await poll(check, lambda: f"{what}; last seen {seen[-1] if seen else None}", interval=interval)


class TasksClient(ClientExtension):
    """The client half of `io.modelcontextprotocol/tasks`: advertises the extension in every
    request's capabilities (the per-request opt-in) and claims `resultType: "task"`. With
    `client.session.call_tool(..., allow_claimed=True)` the caller gets the `TaskCreated`;
    `client.call_tool(...)` resolves it here: polls `tasks/get`, answers `input_required`
    through the client's callbacks and `tasks/update`, and returns the task's CallToolResult."""

    identifier = TASKS_EXTENSION

    def claims(self) -> list[ResultClaim[Any]]:
        return [ResultClaim(result_type="task", model=TaskCreated, resolve=self.resolve)]

    async def resolve(self, created: TaskCreated, context: ClaimContext) -> CallToolResult:
        session = context.session
        answered: set[str] = set()
        deadline = None
        if created.ttl_ms is not None:
            deadline = datetime.fromisoformat(created.created_at).timestamp() + created.ttl_ms / 1000
        while True:
            state = await get_task(session, created.task_id)
            if state.status == "completed":
                assert state.result is not None
                return state.result
            if state.status == "failed":
                raise MCPError.from_error_data(state.error or ErrorData(code=INTERNAL_ERROR, message="task failed"))
            if state.status == "cancelled":
                raise RuntimeError(f"task {created.task_id} was cancelled: {state.status_message}")
            for key, request in (state.input_requests or {}).items():
                if key in answered:
                    continue  # asked again by a poll before the update took effect
                request_context = ClientRequestContext(session=session, request_id=key)
                response = await session.dispatch_input_request(request_context, request)
                if isinstance(response, ErrorData):
                    await cancel_task(session, created.task_id)
                    raise MCPError.from_error_data(response)
                await update_task(session, created.task_id, {key: response})
                answered.add(key)
            if deadline is not None and datetime.now().timestamp() > deadline:
                raise TimeoutError(f"task {created.task_id} outlived its ttl")
            await asyncio.sleep((state.poll_interval_ms or 1000) / 1000)


# --- the jobs server -----------------------------------------------------------------------

JOBS = "tests.mcp_servers.tasks"


@dataclass
class Jobs:
    """How to reach one running jobs server, and its state dir."""

    target: StdioServerParameters | str
    state_dir: Path

    def client(self, **options: Any) -> Client:
        return Client(self.target, **options)

    def records(self) -> list[dict[str, Any]]:
        path = self.state_dir / "starts.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def starts(self, name: str) -> list[dict[str, Any]]:
        return [record for record in self.records() if record.get("name") == name]

    def cancellations(self, name: str) -> list[dict[str, Any]]:
        return [record for record in self.records() if record.get("cancelled") == name]

    def release(self, name: str) -> None:
        (self.state_dir / f"release-{name}").touch()


@pytest.fixture(scope="module")
def jobs_state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("jobs")


@pytest.fixture(scope="module")
async def jobs_url(jobs_state_dir: Path) -> AsyncIterator[str]:
    async with http_server(JOBS, "--state-dir", str(jobs_state_dir)) as url:
        yield url


@pytest.fixture
def jobs(jobs_url: str, jobs_state_dir: Path) -> Jobs:
    """The jobs server over streamable HTTP."""
    return Jobs(jobs_url, jobs_state_dir)


@pytest.fixture(params=["http", "stdio"])
def jobs_any(request: pytest.FixtureRequest, jobs_state_dir: Path) -> Jobs:
    """The jobs server over streamable HTTP or stdio."""
    if request.param == "http":
        return Jobs(request.getfixturevalue("jobs_url"), jobs_state_dir)
    return Jobs(stdio_server(JOBS, "--state-dir", str(jobs_state_dir)), jobs_state_dir)


def job_name() -> str:
    return f"job-{uuid.uuid4().hex[:8]}"


async def test_opting_in_gets_a_task_that_polls_to_completion(jobs_any: Jobs) -> None:
    jobs = jobs_any
    name = job_name()
    async with asyncio.timeout(WAIT_SECONDS), jobs.client(extensions=[TasksClient()]) as client:
        assert TASKS_EXTENSION in (client.server_capabilities.extensions or {})
        created = await client.session.call_tool("long_job", {"name": name}, allow_claimed=True)
        assert isinstance(created, TaskCreated), created
        assert created.status == "working"
        assert created.poll_interval_ms == 200
        assert created.ttl_ms is not None and created.ttl_ms > 0
        datetime.fromisoformat(created.created_at)
        state = await get_task(client.session, created.task_id)  # durably created before the answer
        assert state.task_id == created.task_id and state.result_type == "complete"
        await wait_for_task(
            client.session,
            created,
            lambda s: s.status == "working" and (s.status_message or "").startswith(f"working on {name}: "),
            "a working task reporting its progress",
        )
        jobs.release(name)
        done = await wait_for_task(client.session, created, lambda s: s.status == "completed", "completed")
    assert done.result is not None and text_of(done.result) == f"job {name} done"
    assert [start["tool"] for start in jobs.starts(name)] == ["long_job"]


async def test_the_task_claim_resolves_transparently(jobs: Jobs) -> None:
    """`client.call_tool(...)` with the extension returns the task's CallToolResult; the input a
    task asks for is answered through the elicitation callback and `tasks/update`."""
    name = job_name()
    callback = Elicitations({f"Proceed with {name}?": accept(proceed=True)})
    jobs.release(name)
    async with (
        asyncio.timeout(WAIT_SECONDS),
        jobs.client(extensions=[TasksClient()], elicitation_callback=callback) as client,
    ):
        assert text_of(await client.call_tool("long_job", {"name": name})) == f"job {name} done"
        assert text_of(await client.call_tool("approval_job", {"name": name})) == f"job {name} proceeded"
    assert callback.asked == [f"Proceed with {name}?"]
    assert [start["tool"] for start in jobs.starts(name)] == ["long_job", "approval_job"]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (accept(proceed=True), "proceeded"),
        (accept(proceed=False), "stopped"),
        (ElicitResult(action="decline"), "stopped"),
    ],
    ids=["proceed", "do-not-proceed", "decline"],
)
async def test_input_required_then_update_then_completed(jobs: Jobs, answer: ElicitResult, expected: str) -> None:
    name = job_name()
    key = f"confirm-{name}"
    async with asyncio.timeout(WAIT_SECONDS), jobs.client(extensions=[TasksClient()]) as client:
        created = await client.session.call_tool("approval_job", {"name": name}, allow_claimed=True)
        assert isinstance(created, TaskCreated)
        asking = await wait_for_task(client.session, created, lambda s: s.status == "input_required", "input_required")
        assert asking.input_requests is not None and list(asking.input_requests) == [key]
        question = form(asking.input_requests[key])
        assert question.message == f"Proceed with {name}?"
        assert question.requested_schema["properties"]["proceed"]["type"] == "boolean"
        assert question.requested_schema["required"] == ["proceed"]

        ack = await update_task(client.session, created.task_id, {key: answer, "never-asked": accept(proceed=True)})
        assert ack.result_type == "complete"
        after = await get_task(client.session, created.task_id)
        assert after.status in ("working", "completed"), "back to working once the input arrived"
        assert not after.input_requests
        done = await wait_for_task(client.session, created, lambda s: s.status == "completed", "completed")
        assert done.result is not None and text_of(done.result) == f"job {name} {expected}"
        # An answer to a key no longer outstanding is ignored.
        await update_task(client.session, created.task_id, {key: accept(proceed=True)})
        assert (await get_task(client.session, created.task_id)).status == "completed"
    assert [start["tool"] for start in jobs.starts(name)] == ["approval_job"]


async def test_tasks_cancel_stops_the_work(jobs: Jobs) -> None:
    name = job_name()
    async with asyncio.timeout(WAIT_SECONDS), jobs.client(extensions=[TasksClient()]) as client:
        created = await client.session.call_tool("long_job", {"name": name}, allow_claimed=True)
        assert isinstance(created, TaskCreated)
        await eventually(lambda: jobs.starts(name), f"{name} started")
        assert (await cancel_task(client.session, created.task_id)).result_type == "complete"
        assert (await get_task(client.session, created.task_id)).status == "cancelled"
        await eventually(lambda: jobs.cancellations(name), f"the cancellation of {name} reached the job")
        jobs.release(name)  # too late: the work stopped
        await cancel_task(client.session, created.task_id)  # cancelling a cancelled task is acknowledged
        assert (await get_task(client.session, created.task_id)).status == "cancelled"
    assert len(jobs.starts(name)) == 1 and len(jobs.cancellations(name)) == 1


async def test_without_opting_in_the_tool_runs_synchronously(jobs: Jobs) -> None:
    name = job_name()
    jobs.release(name)
    async with asyncio.timeout(WAIT_SECONDS), jobs.client() as client:
        result = await client.session.call_tool("long_job", {"name": name})
        assert text_of(result) == f"job {name} done"
        with pytest.raises(MCPError) as refused:  # a tool that exists only as a task
            await client.session.call_tool("approval_job", {"name": name})
    assert refused.value.error.code == MISSING_REQUIRED_CLIENT_CAPABILITY
    assert refused.value.error.data == {"requiredCapabilities": {"extensions": {TASKS_EXTENSION: {}}}}
    assert [start["tool"] for start in jobs.starts(name)] == ["long_job"]


async def test_tasks_errors(jobs: Jobs) -> None:
    async with asyncio.timeout(WAIT_SECONDS), jobs.client(extensions=[TasksClient()]) as client:
        with pytest.raises(MCPError) as unknown:
            await get_task(client.session, "no-such-task")
        assert unknown.value.error.code == INVALID_PARAMS
        with pytest.raises(MCPError) as unknown:
            await cancel_task(client.session, "no-such-task")
        assert unknown.value.error.code == INVALID_PARAMS

        created = await client.session.call_tool("long_job", {"name": job_name()}, allow_claimed=True)
        assert isinstance(created, TaskCreated)
        with pytest.raises(MCPError) as unrouted:
            await client.session.send_request(
                UnroutedGetTaskRequest(params=TaskIdParams(task_id=created.task_id)), TaskState
            )
        assert unrouted.value.error.code == HEADER_MISMATCH
        await cancel_task(client.session, created.task_id)

    async with asyncio.timeout(WAIT_SECONDS), jobs.client() as client:
        with pytest.raises(MCPError) as undeclared:
            await get_task(client.session, created.task_id)
    assert undeclared.value.error.code == MISSING_REQUIRED_CLIENT_CAPABILITY
