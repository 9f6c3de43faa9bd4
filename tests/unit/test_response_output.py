"""A run's event log as OpenAI Responses (`api/response_output.py`): where a response ends, its
items, and the same stream events each time the log is read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from api.response_output import ResponseProjection, ResponseRef, approval_request_id, parse_approval_request_id
from api.schemas import Links
from workflows.messages import OrchestrationStatus, RunEvent, RunEventType, RunStatus, StopReason

RUN = "orch-" + "a" * 32
AT = datetime(2026, 11, 22, tzinfo=UTC)
HASH = "f" * 64
LINKS = Links(self="s", approvals="a", inputs="i", temporal_ui="u")


def ev(number: int, kind: RunEventType, call: str | None = None, **data: Any) -> RunEvent:
    return RunEvent(id=number, type=kind, at=AT, tool_call_id=call, data=data)


def pending(number: int, call: str, tool: str = "transfer") -> RunEvent:
    return ev(number, RunEventType.TOOL_PENDING, call, server="bank", tool=tool, arguments={"x": 1}, approval_hash=HASH)


def started(number: int, call: str, tool: str = "read") -> RunEvent:
    return ev(number, RunEventType.TOOL_STARTED, call, server="files", tool=tool, arguments={"path": "a"})


def finished(number: int, call: str, status: str = "completed") -> RunEvent:
    return ev(
        number, RunEventType.TOOL_FINISHED, call, server="files", tool="read", status=status, output_preview="out"
    )


def replied(number: int, calls: int) -> RunEvent:
    usage = {"prompt_tokens": 10, "completion_tokens": 2}
    return ev(number, RunEventType.LLM_FINISHED, step=1, status="completed", usage=usage, tool_calls=calls)


def run(status: RunStatus = RunStatus.RUNNING, output: str | None = None) -> OrchestrationStatus:
    reason = StopReason.FINAL_ANSWER if status == RunStatus.COMPLETED else None
    return OrchestrationStatus(
        id=RUN, status=status, stop_reason=reason, max_steps=8, output=output, created_at=AT, updated_at=AT
    )


def projected(events: list[RunEvent], after: int = 0) -> tuple[ResponseProjection, list[dict[str, Any]]]:
    projection = ResponseProjection(ResponseRef(RUN, after), {}, AT, LINKS)
    shown = [item for event in events for item in projection.feed(event)]
    return projection, shown


# A step with a gated call (c2) opened before an auto-approved one (c1): c2's wait is told first.
GATED_FIRST = [
    ev(1, RunEventType.STATUS, status="running"),
    replied(2, calls=2),
    pending(3, "c2"),
    ev(4, RunEventType.STATUS, status="waiting_for_approval"),
    started(5, "c1"),
    finished(6, "c1"),
]
DECIDED = [
    ev(7, RunEventType.TOOL_APPROVED, "c2", approver="carol"),
    started(8, "c2", "transfer"),
    finished(9, "c2"),
    ev(10, RunEventType.STATUS, status="running"),
    replied(11, calls=0),
    ev(12, RunEventType.COMPLETED, status="completed"),
]


def test_a_response_ends_when_the_run_rests_with_nothing_under_way() -> None:
    projection, _ = projected(GATED_FIRST)
    assert projection.end == 6, "not at the pending call: the auto-approved one of the same reply still runs"
    assert [item["type"] for item in projection.output] == ["mcp_approval_request", "mcp_call"]
    assert projection.status(run(RunStatus.WAITING_FOR_APPROVAL)) == "completed"
    [request_id] = projection.approval_requests
    assert parse_approval_request_id(request_id) == ("c2", HASH) and request_id == approval_request_id("c2", HASH)


def test_the_continuation_is_the_rest_of_the_same_run() -> None:
    projection, _ = projected(GATED_FIRST + DECIDED, after=6)
    assert projection.starts_where_one_ended and projection.end == 12 and projection.final is not None
    call = projection.output[0]
    assert (call["type"], call["approval_request_id"], call["status"]) == (
        "mcp_call",
        approval_request_id("c2", HASH),
        "completed",
    )
    projection.finish(run(RunStatus.COMPLETED, "paid"))
    snapshot = projection.snapshot(run(RunStatus.COMPLETED, "paid"))
    assert snapshot["previous_response_id"] == ResponseRef(RUN).id and snapshot["usage"]["input_tokens"] == 10
    assert [item["type"] for item in snapshot["output"]] == ["mcp_call", "message"]
    assert snapshot["output"][1]["content"][0]["text"] == "paid"


def test_a_response_that_was_overtaken_says_so() -> None:
    first, _ = projected(GATED_FIRST + DECIDED)
    assert first.end == 6 and first.moved_on
    waiting, _ = projected(GATED_FIRST)
    assert not waiting.moved_on


def test_a_response_ending_waiting_lists_every_call_it_waits_for() -> None:
    two_waiting = [replied(1, calls=2), pending(2, "c1"), pending(3, "c2")]
    c1_decided_elsewhere = [
        ev(4, RunEventType.TOOL_APPROVED, "c1"),
        started(5, "c1", "transfer"),
        finished(6, "c1"),
    ]
    projection, _ = projected(two_waiting + c1_decided_elsewhere, after=3)
    assert projection.starts_where_one_ended and projection.end == 6
    assert [item["type"] for item in projection.output] == ["mcp_call", "mcp_approval_request"]
    assert list(projection.approval_requests) == [approval_request_id("c2", HASH)]


def test_a_response_starts_only_where_one_ended() -> None:
    assert not projected(GATED_FIRST, after=4)[0].starts_where_one_ended
    assert projected(GATED_FIRST)[0].starts_where_one_ended


def test_the_stream_is_the_same_every_time_the_log_is_read() -> None:
    events = GATED_FIRST + DECIDED
    first = projected(events, after=6)[1]
    assert first == projected(events, after=6)[1]
    kinds = [item["type"] for item in first]
    assert kinds == [
        "response.output_item.added",
        "response.mcp_call.in_progress",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.mcp_call.completed",
        "response.output_item.done",
    ]


def test_a_failed_call_and_the_servers_listed() -> None:
    listed = ev(
        1,
        RunEventType.TOOLS_LISTED,
        servers=[{"server": "files", "tools": [{"name": "read"}]}],
        unavailable={"down": "connection refused"},
        schemas_omitted=False,
    )
    projection, shown = projected([listed, replied(2, 1), finished(3, "bad", status="error")])
    lists, failed_call = projection.output[:2], projection.output[2]
    assert [(item["server_label"], item.get("error")) for item in lists] == [
        ("files", None),
        ("down", "connection refused"),
    ]
    assert "response.mcp_list_tools.failed" in [item["type"] for item in shown]
    assert failed_call["status"] == "failed" and failed_call["error"]["content"][0]["text"] == "out"


@pytest.mark.parametrize(
    "response_id, ref",
    [
        ("resp_" + "a" * 32, ResponseRef(RUN)),
        ("resp_" + "a" * 32 + "_17", ResponseRef(RUN, 17)),
        ("resp_" + "a" * 32 + "_0", None),
        ("resp_nope", None),
        ("resp_" + "A" * 32, None),
    ],
)
def test_response_ids(response_id: str, ref: ResponseRef | None) -> None:
    assert ResponseRef.parse(response_id) == ref
    if ref is not None:
        assert ref.id == response_id
    assert ResponseRef.of_run("unit-123") is None


def test_finishing_twice_adds_the_answer_once() -> None:
    projection, _ = projected([replied(1, calls=0), ev(2, RunEventType.COMPLETED, status="completed")])
    done = run(RunStatus.COMPLETED, "hi")
    first, second = projection.finish(done), projection.finish(done)
    assert [item["type"] for item in projection.output] == ["message"]
    assert first[-1]["type"] == second[-1]["type"] == "response.completed"
    assert projection.snapshot(done)["completed_at"] == AT.timestamp()
