"""What servers ask in the middle of a tool call, with fake activities: rounds of
`input_required` answered by update and by signal, declined, expired; sampling by policy;
tasks polled, answered and cancelled."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from tests.unit.conftest import Harness
from tests.unit.fakes import answer, asks, call
from workflows.activity_io import InputRequired, ServerTask, ToolCallInput, ToolCallOutput
from workflows.contract import INPUT_ALREADY_ANSWERED, INPUT_INVALID, INPUT_UNKNOWN
from workflows.messages import EventsQuery, InputAnswer, OrchestrationStatus
from workflows.orchestration import Orchestration

DATE = {"type": "object", "properties": {"date": {"type": "string"}}, "required": ["date"]}
SEATS = {"type": "object", "properties": {"seats": {"type": "integer"}}, "required": ["seats"]}


def _elicit(message: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"method": "elicitation/create", "params": {"mode": "form", "message": message, "requestedSchema": schema}}


def _booking(input: ToolCallInput) -> ToolCallOutput:
    """A server that asks a date, then seats, then answers with what it was told."""
    responses = input.input_responses or {}
    if input.request_state is None:
        return ToolCallOutput(
            input_required=InputRequired(requests={"date": _elicit("When?", DATE)}, request_state="1")
        )
    if input.request_state == "1":
        if responses["date"]["action"] != "accept":
            return ToolCallOutput(text=f"booking {responses['date']['action']}d")
        date = responses["date"]["content"]["date"]
        asked = InputRequired(requests={"seats": _elicit(f"Seats on {date}?", SEATS)}, request_state=f"2:{date}")
        return ToolCallOutput(input_required=asked)
    seats = responses["seats"]
    if seats["action"] != "accept":
        return ToolCallOutput(text=f"booking {seats['action']}d")
    return ToolCallOutput(text=f"booked {input.request_state[2:]}: {seats['content']['seats']} seat(s)")


async def _asking(harness: Harness, **request: Any) -> tuple[WorkflowHandle[Any, Any], OrchestrationStatus]:
    """A run whose model calls the (auto-approved) `read` tool, which asks for input first."""
    harness.fakes.tool_results["read"] = _booking
    harness.fakes.script(asks(call("b1", "files__read", {"path": "trip"})), answer("done"))
    handle = await harness.start(**request)
    return handle, await harness.wait_for(handle, lambda s: bool(s.pending_inputs))


async def test_two_rounds_answered_by_update(harness: Harness) -> None:
    handle, waiting = await _asking(harness)
    assert waiting.status == "waiting_for_input"
    [asked] = waiting.pending_inputs
    assert (asked.input_id, asked.kind, asked.message, asked.requested_schema) == (
        "b1/1/date",
        "elicitation",
        "When?",
        DATE,
    )
    assert (asked.server, asked.tool, asked.tool_call_id) == ("files", "read", "b1")

    answered = await handle.execute_update(
        Orchestration.answer_input, InputAnswer(input_id="b1/1/date", action="accept", content={"date": "May 3"})
    )
    assert not any(p.input_id == "b1/1/date" for p in answered.pending_inputs)
    second = await harness.wait_for(handle, lambda s: bool(s.pending_inputs))
    assert [(p.input_id, p.message) for p in second.pending_inputs] == [("b1/2/seats", "Seats on May 3?")]
    await handle.execute_update(
        Orchestration.answer_input,
        InputAnswer(input_id="b1/2/seats", action="accept", content={"seats": 2}, answerer="ann"),
    )

    final = await harness.result(handle)
    assert harness.fakes.tool_messages() == {"b1": "booked May 3: 2 seat(s)"}
    assert final.output == "done" and final.usage.tool_calls == 1
    rounds = [(c.request_state, c.input_responses) for c in harness.fakes.tool_calls]
    assert rounds == [
        (None, None),
        ("1", {"date": {"action": "accept", "content": {"date": "May 3"}}}),
        ("2:May 3", {"seats": {"action": "accept", "content": {"seats": 2}}}),
    ]
    events = (await handle.query(Orchestration.events, EventsQuery())).events
    answers = [(e.data["input_id"], e.data["answerer"]) for e in events if e.type == "input_answered"]
    assert answers == [("b1/1/date", None), ("b1/2/seats", "ann")]
    assert [e.data["input_id"] for e in events if e.type == "input_requested"] == ["b1/1/date", "b1/2/seats"]


async def test_answers_that_cannot_apply_are_refused_by_update_and_ignored_by_signal(harness: Harness) -> None:
    handle, _ = await _asking(harness)

    async def refused(answer: InputAnswer) -> str | None:
        with pytest.raises(WorkflowUpdateFailedError) as failed:
            await handle.execute_update(Orchestration.answer_input, answer)
        assert isinstance(failed.value.cause, ApplicationError)
        return failed.value.cause.type

    assert await refused(InputAnswer(input_id="b1/1/date", action="accept", content={"when": 3})) == INPUT_INVALID
    assert await refused(InputAnswer(input_id="b1/1/date", action="decline", content={"date": "x"})) == INPUT_INVALID
    assert await refused(InputAnswer(input_id="nope", action="decline")) == INPUT_UNKNOWN
    await handle.signal(Orchestration.submit_input, InputAnswer(input_id="b1/1/date", action="decline", answerer="bob"))
    await harness.wait_for(handle, lambda s: s.pending_inputs == [] or s.pending_inputs[0].input_id != "b1/1/date")
    assert (
        await refused(InputAnswer(input_id="b1/1/date", action="accept", content={"date": "x"}))
        == INPUT_ALREADY_ANSWERED
    )
    await handle.signal(Orchestration.submit_input, InputAnswer(input_id="b1/1/date", action="accept", answerer="eve"))

    final = await harness.result(handle)
    assert harness.fakes.tool_messages() == {"b1": "booking declined"}
    assert [(i.tool_call_id, i.approver) for i in final.ignored_decisions] == [("b1/1/date", "eve")]


async def test_an_unanswered_question_is_declined_when_it_expires_and_the_model_told(harness: Harness) -> None:
    handle, waiting = await _asking(harness, approval_timeout_seconds=600)
    assert (waiting.pending_inputs[0].expires_at - waiting.pending_inputs[0].requested_at).total_seconds() == 600
    await harness.result(handle)  # the test server skips the 10 minutes
    message = harness.fakes.tool_messages()["b1"]
    assert message.startswith("booking declined\n(The server asked: When?. Nobody answered in time")
    assert harness.fakes.tool_calls[1].input_responses == {"date": {"action": "decline"}}


def _summarizing(input: ToolCallInput) -> ToolCallOutput:
    if input.request_state is None:
        sample = {
            "method": "sampling/createMessage",
            "params": {
                "messages": [{"role": "user", "content": {"type": "text", "text": "Sum up: x"}}],
                "maxTokens": 50,
            },
        }
        roots = {"roots": [{"uri": "file:///srv"}]}
        return ToolCallOutput(
            input_required=InputRequired(requests={"s": sample}, answered={"r": roots}, request_state="1")
        )
    sampled = (input.input_responses or {})["s"]
    return ToolCallOutput(text=f"summary: {sampled['content']['text']} by {sampled['model']}")


@pytest.mark.parametrize("policy", ["approve", "auto", "deny"])
async def test_sampling_follows_the_server_policy(harness: Harness, policy: str) -> None:
    fakes = harness.fakes
    assert not isinstance(fakes.tool_catalog, BaseException)
    fakes.tool_catalog.tools[0].sampling = policy  # type: ignore[assignment]
    fakes.tool_results["read"] = _summarizing
    fakes.script(asks(call("s1", "files__read", {"path": "doc"})), answer("a short x"), answer("done"))
    handle = await harness.start()
    if policy == "approve":
        waiting = await harness.wait_for(handle, lambda s: bool(s.pending_inputs))
        [asked] = waiting.pending_inputs
        assert (asked.kind, asked.sampling) == (
            "sampling",
            {"system_prompt": None, "messages": [{"role": "user", "content": "Sum up: x"}], "max_tokens": 50},
        )
        await handle.execute_update(Orchestration.answer_input, InputAnswer(input_id="s1/1/s", action="accept"))
    final = await harness.result(handle)
    message = fakes.tool_messages()["s1"]
    if policy == "deny":
        assert message.startswith("error: the server files asked to use the model (sampling) during read; declined by")
        assert len(fakes.tool_calls) == 1 and len(fakes.llm_requests) == 2
        return
    assert message == "summary: a short x by fake-model"
    sampling_request = fakes.llm_requests[1]
    assert [(m.role, m.text()) for m in sampling_request.messages] == [("user", "Sum up: x")]
    assert (sampling_request.max_tokens, sampling_request.tools) == (50, [])
    assert fakes.tool_calls[1].input_responses == {
        "r": {"roots": [{"uri": "file:///srv"}]},
        "s": {
            "role": "assistant",
            "content": {"type": "text", "text": "a short x"},
            "model": "fake-model",
            "stopReason": "endTurn",
        },
    }
    assert final.usage.prompt_tokens == 30, "the sampling call is counted in the run's usage"
    assert [(s.kind, s.tool_call_id) for s in final.steps if s.kind == "llm"][1] == ("llm", "s1")


def _task(status: str, **fields: Any) -> ServerTask:
    return ServerTask(task_id="t-9", status=status, poll_interval_ms=1000, **fields)  # type: ignore[arg-type]


async def test_a_task_is_polled_answered_and_its_result_given_to_the_model(harness: Harness) -> None:
    fakes = harness.fakes
    fakes.tool_results["read"] = ToolCallOutput(task=_task("working", status_message="queued"))
    confirm = _elicit("Go on?", {"type": "object", "properties": {"go": {"type": "boolean"}}})
    fakes.task_polls = [
        _task("working", status_message="half way"),
        _task("input_required", input_requests={"c": confirm}),
        _task("input_required", input_requests={"c": confirm}),
        _task("completed", output=ToolCallOutput(text="job done")),
    ]
    fakes.script(asks(call("j1", "files__read", {"path": "job"})), answer("done"))
    handle = await harness.start()
    waiting = await harness.wait_for(handle, lambda s: bool(s.pending_inputs))
    assert [(p.input_id, p.source) for p in waiting.pending_inputs] == [("j1/1/c", "task")]
    await handle.execute_update(
        Orchestration.answer_input, InputAnswer(input_id="j1/1/c", action="accept", content={"go": True})
    )
    await harness.result(handle)
    assert fakes.tool_messages() == {"j1": "job done"}
    assert len(fakes.tool_calls) == 1, "the tool was called once; the task was polled"
    kinds = [(kind, request.task_id, request.input_responses) for kind, request in fakes.task_requests]
    assert ("update", "t-9", {"c": {"action": "accept", "content": {"go": True}}}) in kinds
    assert kinds.count(("update", "t-9", {"c": {"action": "accept", "content": {"go": True}}})) == 1
    events = (await handle.query(Orchestration.events, EventsQuery())).events
    messages = [e.data.get("status_message") for e in events if e.type == "task_status"]
    assert messages[:2] == ["queued", "half way"]


async def test_cancelling_the_run_cancels_its_task(harness: Harness) -> None:
    fakes = harness.fakes
    fakes.tool_results["read"] = ToolCallOutput(task=_task("working"))
    fakes.task_polls = [_task("working")]
    fakes.script(asks(call("j1", "files__read", {"path": "job"})), answer("done"))
    handle = await harness.start()
    await harness.wait_for(handle, lambda s: any(kind == "get" for kind, _ in fakes.task_requests))
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await harness.result(handle)
    # The run cancelled the task before it ended.
    assert [kind for kind, _ in fakes.task_requests if kind == "cancel"] == ["cancel"]


async def test_a_server_that_keeps_asking_is_stopped_after_the_bounded_rounds(harness: Harness) -> None:
    def asks_forever(input: ToolCallInput) -> ToolCallOutput:
        rounds = int(input.request_state or "0")
        return ToolCallOutput(input_required=InputRequired(request_state=str(rounds + 1)))

    harness.fakes.tool_results["read"] = asks_forever
    harness.fakes.script(asks(call("f1", "files__read", {"path": "x"})), answer("gave up"))
    handle = await harness.start()
    final = await harness.result(handle)
    assert (
        harness.fakes.tool_messages()["f1"]
        == "error: the server asked for input more than 10 times; the call was stopped"
    )
    assert len(harness.fakes.tool_calls) == 11 and final.output == "gave up"


async def test_a_sampling_request_the_model_fails_ends_the_call_and_the_model_is_told(harness: Harness) -> None:
    fakes = harness.fakes
    assert not isinstance(fakes.tool_catalog, BaseException)
    fakes.tool_catalog.tools[0].sampling = "auto"
    fakes.tool_results["read"] = _summarizing
    rejected = ApplicationError("context too long", type="LLMRequestRejected", non_retryable=True)
    fakes.script(asks(call("s1", "files__read", {"path": "doc"})), rejected, answer("done"))
    final = await harness.result(await harness.start())
    message = fakes.tool_messages()["s1"]
    assert message.startswith(
        "error: the server files asked to use the model (sampling) during read; declined by system"
    )
    assert "the model failed" in message and "context too long" in message
    assert "Nobody answered in time" not in message
    assert len(fakes.tool_calls) == 1, "the server was never sent a failed answer"
    assert final.output == "done"
