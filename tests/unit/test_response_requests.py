"""A Responses API request read strictly (`api/responses.py`): what it asks of a run, and a 400
naming each field it cannot honour."""

from __future__ import annotations

from typing import Any

import pytest

from api.errors import APIError
from api.response_output import approval_request_id
from api.responses import ResponsesRequest, check_servers
from workflows.activity_io import ServerTools
from workflows.run_request import ApprovalFilter, ToolNames


def _plan(**body: Any) -> Any:
    request = ResponsesRequest.model_validate({"input": "hi", **body})
    return request, request.plan()


def test_mcp_tools_become_the_run_servers_and_their_tightened_policy() -> None:
    request, plan = _plan(
        tools=[
            {"type": "mcp", "server_label": "files", "require_approval": "never", "allowed_tools": ["read"]},
            {"type": "mcp", "server_label": "bank", "require_approval": {"never": {"tool_names": ["balance"]}}},
            {"type": "mcp", "server_label": "time", "allowed_tools": {"tool_names": ["now"]}},
        ],
        instructions="be brief",
        max_tool_calls=3,
        metadata={"team": "a"},
    )
    body = request.run_body(plan, history=[])
    assert body.mcp_servers == ["files", "bank", "time"]
    assert body.require_approval == {
        "files": "never",
        "bank": ApprovalFilter(never=ToolNames(tool_names=["balance"])),
        "time": "always",
    }
    assert body.allowed_tools == {"files": ["read"], "time": ["now"]}
    assert (body.instructions, body.max_tool_calls, body.metadata) == ("be brief", 3, {"team": "a"})
    assert [(m.role, m.content) for m in body.messages or []] == [("user", "hi")]


def test_no_tools_is_a_run_without_servers() -> None:
    request, plan = _plan()
    body = request.run_body(plan, history=[])
    assert body.mcp_servers == [] and body.require_approval is None


def test_input_items_are_messages_and_approval_answers() -> None:
    _, plan = _plan(
        input=[
            {"role": "developer", "content": "be kind"},
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}],
            },
        ]
    )
    assert [(m.role, m.content) for m in plan.messages] == [("developer", "be kind"), ("user", "ab")]
    _, answering = _plan(
        input=[{"type": "mcp_approval_response", "approval_request_id": "mcpr_x", "approve": False, "reason": "no"}],
        previous_response_id="resp_x",
    )
    [(index, answer)] = answering.approvals
    assert (index, answer.approve, answer.reason, answering.messages) == (0, False, "no", [])


@pytest.mark.parametrize(
    "body, param",
    [
        ({"temperature": 1}, "temperature"),
        ({"reasoning": {"effort": "low"}}, "reasoning"),
        ({"frobnicate": True}, "frobnicate"),
        ({"store": False}, "store"),
        ({"tools": [{"type": "file_search"}]}, "tools[0].type"),
        ({"tools": [{"type": "mcp", "server_label": "a", "connector_id": "connector_gmail"}]}, "tools[0].connector_id"),
        ({"tools": [{"type": "mcp", "server_label": "a", "authorization": "t"}]}, "tools[0].authorization"),
        ({"tools": [{"type": "mcp", "server_label": "a", "require_approval": "sometimes"}]}, "tools[0]"),
        (
            {"tools": [{"type": "mcp", "server_label": "a", "require_approval": {"always": {"read_only": True}}}]},
            "tools[0].require_approval",
        ),
        ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
        ({"input": [{"role": "user", "content": "x", "name": "n"}]}, "input[0].name"),
        ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}, "input[0].content[0]"),
        ({"input": [{"role": "system", "content": "only a system message"}]}, "input"),
        ({"input": [{"type": "mcp_approval_response", "approval_request_id": "x", "approve": "yes"}]}, "input[0]"),
        (
            {
                "previous_response_id": "resp_x",
                "input": [
                    {"type": "mcp_approval_response", "approval_request_id": "x", "approve": True},
                    {"role": "user", "content": "and then"},
                ],
            },
            "input",
        ),
    ],
)
def test_what_cannot_be_honoured_names_its_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(APIError) as refused:
        _plan(**body)
    assert (refused.value.status, refused.value.param) == (400, param)


def _listed(name: str, url: str | None = None, enabled: bool = True) -> ServerTools:
    return ServerTools(name=name, transport="streamable_http" if url else "stdio", enabled=enabled, url=url)


@pytest.mark.parametrize(
    "server_url, refused",
    [
        (None, None),
        ("https://mcp.example.com/mcp", None),
        ("https://mcp.example.com:443/mcp/", None),
        ("https://mcp.example.com/mcp?token=x", None),
        ("http://mcp.example.com/mcp", "tools[0].server_url"),
        ("https://mcp.example.com/other", "tools[0].server_url"),
        ("https://evil.example/mcp", "tools[0].server_url"),
        ("file:///etc/passwd", "tools[0].server_url"),
    ],
)
def test_server_url_must_be_the_configured_servers(server_url: str | None, refused: str | None) -> None:
    tool = {"type": "mcp", "server_label": "remote"} | ({"server_url": server_url} if server_url else {})
    _, plan = _plan(tools=[tool])
    listing = [_listed("remote", "https://mcp.example.com/mcp")]
    if refused is None:
        check_servers(plan.tools, listing)
        return
    with pytest.raises(APIError) as raised:
        check_servers(plan.tools, listing)
    assert raised.value.param == refused


def test_unknown_disabled_and_stdio_servers_are_refused_by_name() -> None:
    for label, listing in [("nope", []), ("off", [_listed("off", enabled=False)])]:
        _, plan = _plan(tools=[{"type": "mcp", "server_label": label}])
        with pytest.raises(APIError) as raised:
            check_servers(plan.tools, listing)
        assert raised.value.param == "tools[0].server_label"
    _, plan = _plan(tools=[{"type": "mcp", "server_label": "local", "server_url": "https://x.example/mcp"}])
    with pytest.raises(APIError) as raised:
        check_servers(plan.tools, [_listed("local")])
    assert raised.value.param == "tools[0].server_url", "a stdio server has no URL a request could name"


def test_approval_answers_are_decisions_about_exactly_the_calls_shown() -> None:
    first, second = approval_request_id("c1", "a" * 64), approval_request_id("c2", "b" * 64)

    def answering(*answers: tuple[str, bool]) -> Any:
        items = [{"type": "mcp_approval_response", "approval_request_id": i, "approve": ok} for i, ok in answers]
        return _plan(input=items, previous_response_id="resp_x")[1]

    decisions = answering((second, False), (first, True)).decisions("resp_x", [first, second], "carol")
    assert [(d.tool_call_id, d.decision, d.approval_hash, d.approver) for d in decisions] == [
        ("c2", "deny", "b" * 64, "carol"),
        ("c1", "approve", "a" * 64, "carol"),
    ]
    for answers, param in [
        (((first, True),), "input"),  # the other request is not answered
        (((first, True), (first, False)), "input[1]"),
        (((approval_request_id("c3", "c" * 64), True),), "input[0].approval_request_id"),
    ]:
        with pytest.raises(APIError) as refused:
            answering(*answers).decisions("resp_x", [first, second], "carol")
        assert refused.value.param == param
