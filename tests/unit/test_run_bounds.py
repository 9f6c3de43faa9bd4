"""What a request bounds in its run, with fake activities: `max_tool_calls`, the servers and tools
announced at the start (`tools_listed`), the run's conversation for a follow-up (`history`), and
the run options that tighten a server's policy, checked as the API and the worker read them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tests.unit.conftest import Harness
from tests.unit.fakes import answer, asks, call
from workflows import contract
from workflows.messages import EventsPage, EventsQuery, RunEventType, RunHistory
from workflows.run_request import ApprovalFilter, RunOptions, ToolNames, requires_approval


async def test_calls_past_max_tool_calls_are_not_run_and_the_model_is_told(harness: Harness) -> None:
    fakes = harness.fakes
    fakes.script(
        asks(
            call("c1", "files__read", {"path": "a"}),
            call("bad", "files__nope", {}),
            call("c2", "files__read", {"path": "b"}),
        ),
        asks(call("c3", "files__read", {"path": "c"})),
        answer("done"),
    )
    final = await harness.result(await harness.start(max_tool_calls=1))
    assert [c.tool_call_id for c in fakes.tool_calls] == ["c1"]
    messages = fakes.tool_messages()
    assert messages["c1"] == "contents of a"
    assert messages["bad"].startswith("error: unknown tool"), "a call that cannot run does not count"
    for refused in ("c2", "c3"):
        assert messages[refused] == "error: not run: this run makes at most 1 tool calls (max_tool_calls)"
    assert (
        final.output == "done" and [s.status for s in final.steps if s.kind == "tool"] == ["completed"] + ["error"] * 3
    )


async def test_a_run_announces_the_servers_and_tools_it_pinned(harness: Harness) -> None:
    harness.fakes.tool_catalog = harness.fakes.tool_catalog.model_copy(update={"servers": ["files", "bank"]})
    harness.fakes.script(answer("hi"))
    handle = await harness.start()
    await harness.result(handle)
    page = await handle.query(contract.EVENTS_QUERY, EventsQuery(), result_type=EventsPage)
    listed = [event for event in page.events if event.type == RunEventType.TOOLS_LISTED]
    assert [event.id for event in listed] == [1], "the first event: before the run's status"
    data = listed[0].data
    assert [(server["server"], [tool["name"] for tool in server["tools"]]) for server in data["servers"]] == [
        ("files", ["read"]),
        ("bank", ["transfer"]),
    ]
    assert data["servers"][1]["tools"][0]["input_schema"]["required"] == ["account", "amount"]
    assert (data["unavailable"], data["schemas_omitted"]) == ({"offline": "connection refused"}, False)


async def test_a_catalog_from_before_the_announcement_announces_nothing(harness: Harness) -> None:
    harness.fakes.script(answer("hi"))
    handle = await harness.start()
    await harness.result(handle)
    page = await handle.query(contract.EVENTS_QUERY, EventsQuery(), result_type=EventsPage)
    assert RunEventType.TOOLS_LISTED not in [event.type for event in page.events]


async def test_history_is_the_conversation_without_the_instructions(harness: Harness) -> None:
    harness.fakes.script(asks(call("c1", "files__read", {"path": "a"})), answer("it says a"))
    handle = await harness.start(instructions="be brief", input="read a")
    await harness.result(handle)
    history = await handle.query(contract.HISTORY_QUERY, result_type=RunHistory)
    assert [(m.role, m.text()) for m in history.messages] == [
        ("user", "read a"),
        ("assistant", None),
        ("tool", "contents of a"),
        ("assistant", "it says a"),
    ]


def test_require_approval_is_only_ever_stricter() -> None:
    only_search = ApprovalFilter(never=ToolNames(tool_names=["search"]))
    assert requires_approval("always", "search") and not requires_approval("never", "search")
    assert not requires_approval(None, "search")
    assert not requires_approval(only_search, "search") and requires_approval(only_search, "delete")
    both = ApprovalFilter(always=ToolNames(tool_names=["delete"]), never=ToolNames(tool_names=["search"]))
    assert requires_approval(both, "delete") and requires_approval(both, "other")


@pytest.mark.parametrize(
    "options, problem",
    [
        ({"require_approval": {"bank": {"always": {"tool_names": ["x"]}, "never": {"tool_names": ["x"]}}}}, "both"),
        ({"mcp_servers": ["files"], "require_approval": {"bank": "always"}}, "not in mcp_servers: ['bank']"),
        ({"mcp_servers": ["files"], "allowed_tools": {"bank": ["transfer"]}}, "not in mcp_servers: ['bank']"),
        ({"require_approval": {"bank": "sometimes"}}, "require_approval.bank"),
        ({"max_tool_calls": 0}, "max_tool_calls"),
    ],
)
def test_run_options_refuse_policies_that_cannot_apply(options: dict, problem: str) -> None:
    with pytest.raises(ValidationError) as raised:
        RunOptions.model_validate({"input": "hi", **options})
    assert problem in str(raised.value)
