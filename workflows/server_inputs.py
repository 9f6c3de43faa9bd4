"""What MCP servers ask in the middle of a tool call, and how the run answers: an elicitation
(a form for a person), a sampling request (the run's model answers, after a person allowed it
unless the server's policy is `auto`). Pure functions of the call's record and the answer, so
every rule is tested without a server; the workflow waits and schedules (`workflows/steps.py`).

Requests come from an `InputRequiredResult` (MCP 2026-07-28: the call is retried with the
responses and the server's `request_state`) or from an `input_required` task (answered with
`tasks/update`). Either way each request is one `InputRecord` with an id unique in the run,
`<tool_call_id>/<round>/<the server's key>`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio.exceptions import ApplicationError

from workflows.chat_messages import ChatMessage
from workflows.contract import INPUT_ALREADY_ANSWERED, INPUT_INVALID, INPUT_UNKNOWN, TIMED_OUT_APPROVER
from workflows.messages import IgnoredDecision, InputAnswer, PendingInput
from workflows.state import InputRecord, ToolCallRecord
from workflows.tool_calls import schema_problem

ELICITATION = "elicitation/create"
SAMPLING = "sampling/createMessage"
MAX_INPUT_ROUNDS = 10
"""Rounds of `input_required` one call may take (the MCP SDKs' default bound)."""
MAX_SAMPLING_TOKENS = 8192
"""A sampling request's `maxTokens` is capped at this."""


def open_round(call: ToolCallRecord, requests: dict[str, dict[str, Any]], now: datetime) -> list[InputRecord]:
    """The records of one round of requests (`{key: {"method", "params"}}`) of `call`: the
    elicitations and sampling requests, in the server's order. Other methods are not asked of
    anyone (the worker answered roots itself)."""
    assert call.exchange is not None
    round_number = call.exchange.round
    return [
        InputRecord(
            input_id=f"{call.tool_call_id}/{round_number}/{key}",
            key=key,
            method=request.get("method", ""),
            params=request.get("params") or {},
            requested_at=now,
        )
        for key, request in requests.items()
        if request.get("method") in (ELICITATION, SAMPLING)
    ]


def unsupported(requests: dict[str, dict[str, Any]]) -> list[str]:
    """The methods in `requests` this service does not answer (neither asked nor answered)."""
    return sorted({str(request.get("method")) for request in requests.values()} - {ELICITATION, SAMPLING})


def pending(call: ToolCallRecord, record: InputRecord, expires_at: datetime) -> PendingInput:
    """`record` as the run shows it to the people who may answer."""
    assert call.server is not None and call.tool is not None and call.exchange is not None
    params = record.params
    sampling = record.kind == "sampling"
    return PendingInput(
        input_id=record.input_id,
        tool_call_id=call.tool_call_id,
        server=call.server,
        tool=call.tool,
        kind=record.kind,
        message=None if sampling else params.get("message"),
        requested_schema=None if sampling else params.get("requestedSchema"),
        url=None if sampling else params.get("url"),
        sampling=_sampling_view(params) if sampling else None,
        source="task" if call.exchange.task is not None else "tool_call",
        requested_at=record.requested_at,
        expires_at=expires_at,
    )


def expires_at(record: InputRecord, timeout_seconds: float) -> datetime:
    return record.requested_at + timedelta(seconds=timeout_seconds)


def rejection(answer: InputAnswer, record: InputRecord | None, *, answered_before: bool) -> ApplicationError | None:
    """Why `answer` cannot apply to `record` (the waiting request with its id, None when there
    is none; `answered_before`: a request with that id was answered), or None when it applies."""
    if record is None:
        if answered_before:
            return ApplicationError("already answered", type=INPUT_ALREADY_ANSWERED)
        return ApplicationError("unknown input request", type=INPUT_UNKNOWN)
    if record.answer is not None:
        return ApplicationError("already answered", type=INPUT_ALREADY_ANSWERED)
    if answer.content is not None and (answer.action != "accept" or record.kind != "elicitation"):
        return ApplicationError("`content` only comes with `accept` of an elicitation", type=INPUT_INVALID)
    if answer.action == "accept" and record.kind == "elicitation" and "url" not in record.params:
        schema = record.params.get("requestedSchema") or {"type": "object"}
        problem = schema_problem(schema, answer.content or {})
        if problem is not None:
            return ApplicationError(f"content does not match the requested schema: {problem}", type=INPUT_INVALID)
    return None


def ignored(given: InputAnswer, why: str, received_at: datetime) -> IgnoredDecision:
    """The record of a signalled answer that did not apply (kept with ignored decisions)."""
    return IgnoredDecision(
        tool_call_id=given.input_id, decision=given.action, approver=given.answerer, why=why, received_at=received_at
    )


def answer(record: InputRecord, given: InputAnswer, now: datetime) -> None:
    """Apply `given` (already checked by `rejection`). An elicitation's response is the answer;
    an accepted sampling request gets its response from the model (`sampled`), a refused one
    none: the call ends, the model told why (`refusal`)."""
    record.answer = given
    record.answered_at = now
    if record.kind == "elicitation":
        record.response = {"action": given.action}
        if given.action == "accept" and "url" not in record.params:
            record.response["content"] = given.content or {}


TIMED_OUT_REASON = "input timed out"


def time_out(record: InputRecord, now: datetime) -> None:
    """Nobody answered in time: declined, by the system."""
    answer(record, InputAnswer(input_id=record.input_id, action="decline", answerer=TIMED_OUT_APPROVER), now)
    assert record.answer is not None
    record.answer.reason = TIMED_OUT_REASON


def sampling_failed(record: InputRecord, why: str, now: datetime) -> None:
    """The model could not answer an allowed sampling request: it counts as declined by the
    system (the call ends, the model is told why)."""
    record.answer = InputAnswer(input_id=record.input_id, action="decline", answerer=TIMED_OUT_APPROVER, reason=why)
    record.answered_at = now


def refusal(call: ToolCallRecord) -> str | None:
    """Why the call cannot go on: a sampling request its server made was refused (by a person,
    the timeout or the server's policy), or None."""
    assert call.exchange is not None
    for record in call.exchange.inputs:
        if record.kind == "sampling" and record.answer is not None and record.answer.action != "accept":
            who = record.answer.answerer or "unknown"
            why = f": {record.answer.reason}" if record.answer.reason else ""
            return (
                f"the server {call.server} asked to use the model (sampling) during {call.tool}; "
                f"{record.answer.action}d by {who}{why}. The tool did not finish."
            )
    return None


def to_sample(call: ToolCallRecord) -> list[InputRecord]:
    """The current round's sampling requests that were allowed and await the model's answer."""
    assert call.exchange is not None
    return [
        record
        for record in call.exchange.inputs
        if record.kind == "sampling" and record.response is None and record.answer and record.answer.action == "accept"
    ]


def responses(call: ToolCallRecord) -> dict[str, dict[str, Any]]:
    """What the server is sent for the current round: the worker's own answers and the run's."""
    assert call.exchange is not None
    answered = dict(call.exchange.answered)
    for record in call.exchange.inputs:
        if record.response is not None:
            answered[record.key] = record.response
    return answered


def timed_out_note(call: ToolCallRecord) -> str | None:
    """What the model is told about requests nobody answered in time, or None."""
    assert call.exchange is not None
    late = [
        record.params.get("message") or record.key
        for record in call.exchange.inputs
        if record.answer is not None and record.answer.reason == TIMED_OUT_REASON
    ]
    if not late:
        return None
    return f"(The server asked: {'; '.join(map(str, late))}. Nobody answered in time, so it was declined.)"


# --- Sampling -------------------------------------------------------------------------------


def sampling_messages(params: dict[str, Any]) -> list[ChatMessage]:
    """A sampling request as the chat messages the run's model is sent."""
    messages: list[ChatMessage] = []
    if params.get("systemPrompt"):
        messages.append(ChatMessage(role="system", content=str(params["systemPrompt"])))
    for message in params.get("messages") or []:
        role = "assistant" if message.get("role") == "assistant" else "user"
        messages.append(ChatMessage(role=role, content=_sampling_text(message.get("content"))))
    return messages


def sampling_max_tokens(params: dict[str, Any]) -> int:
    requested = params.get("maxTokens")
    return max(1, min(int(requested), MAX_SAMPLING_TOKENS)) if isinstance(requested, int) else MAX_SAMPLING_TOKENS


def sampling_response(text: str, model: str, finish_reason: str | None) -> dict[str, Any]:
    """The model's reply as MCP's `CreateMessageResult` (JSON)."""
    stop = "maxTokens" if finish_reason == "length" else "endTurn"
    return {"role": "assistant", "content": {"type": "text", "text": text}, "model": model, "stopReason": stop}


def _sampling_text(content: Any) -> str:
    parts = content if isinstance(content, list) else [content]
    texts = []
    for part in parts:
        if isinstance(part, dict) and part.get("type") == "text":
            texts.append(str(part.get("text", "")))
        elif isinstance(part, dict):
            texts.append(f"[{part.get('type', 'content')} omitted]")
    return "\n".join(texts)


def _sampling_view(params: dict[str, Any]) -> dict[str, Any]:
    """What a person sees of a sampling request before allowing it."""
    return {
        "system_prompt": params.get("systemPrompt"),
        "messages": [
            {"role": message.role, "content": message.text()}
            for message in sampling_messages({"messages": params.get("messages")})
        ],
        "max_tokens": sampling_max_tokens(params),
    }
